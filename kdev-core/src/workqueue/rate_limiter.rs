//! Rate limiters: how long an item waits before it is retried
//! (client-go's [`util/workqueue/default_rate_limiters.go`](https://github.com/kubernetes/client-go/blob/master/util/workqueue/default_rate_limiters.go)).
//!
//! A limiter answers [`when`](RateLimiter::when) an item may be retried, counts how often it
//! was asked ([`num_requeues`](RateLimiter::num_requeues)), and [`forget`](RateLimiter::forget)s
//! an item once it succeeded. [`WorkQueue::add_rate_limited`](super::WorkQueue::add_rate_limited)
//! asks the queue's limiter and waits that long.
//!
//! Time is read from tokio's clock, so `#[tokio::test(start_paused = true)]` tests control it.

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Errors from constructing a rate limiter with invalid arguments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The exponential limiter's base delay was zero.
    #[error("base delay must be greater than zero")]
    ZeroBaseDelay,
    /// The exponential limiter's maximum delay was below its base delay.
    #[error("max delay {max:?} is below base delay {base:?}")]
    MaxBelowBase {
        /// The base delay given.
        base: Duration,
        /// The max delay given.
        max: Duration,
    },
    /// The token bucket's rate was not a positive number.
    #[error("rate must be a positive number of events per second, got {0}")]
    InvalidRate(f64),
    /// The token bucket's burst was zero.
    #[error("burst must be at least 1")]
    ZeroBurst,
}

/// Decides how long an item waits before its next retry (client-go's `TypedRateLimiter`).
///
/// Implementations are shared by the queue's callers, so they take `&self` and keep their
/// state behind a lock.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a workqueue rate limiter for items of type `{T}`",
    note = "see kdev_core::workqueue::rate_limiter for the limiters kdev provides"
)]
pub trait RateLimiter<T>: Send + Sync {
    /// How long `item` should wait now. Counts as one requeue of `item`.
    fn when(&self, item: &T) -> Duration;
    /// Clears what the limiter remembers of `item` (call it once the item succeeded).
    fn forget(&self, item: &T);
    /// How many times `item` has been requeued since it was last forgotten.
    fn num_requeues(&self, item: &T) -> u32;
}

/// Per-item failure counts, the state of the per-item limiters.
struct Failures<T>(Mutex<Map<T, u32>>);

impl<T: Hash + Eq + Clone> Failures<T> {
    fn new() -> Self {
        Self(Mutex::new(Map::default()))
    }
    /// Increments the count of `item` and returns its value before the increment.
    fn bump(&self, item: &T) -> u32 {
        let mut map = self.0.lock();
        match map.get_mut(item) {
            Some(count) => {
                let before = *count;
                *count = count.saturating_add(1);
                before
            }
            None => {
                map.insert(item.clone(), 1);
                0
            }
        }
    }
    fn get(&self, item: &T) -> u32 {
        self.0.lock().get(item).copied().unwrap_or(0)
    }
    fn forget(&self, item: &T) {
        self.0.lock().remove(item);
    }
}

/// `base · 2^failures`, capped at `max` (client-go's `ItemExponentialFailureRateLimiter`).
///
/// Each [`when`](RateLimiter::when) counts a failure of the item; [`forget`](RateLimiter::forget)
/// resets it. An overflowing delay is `max`.
pub struct ItemExponential<T> {
    base: Duration,
    max: Duration,
    failures: Failures<T>,
}

impl<T> fmt::Debug for ItemExponential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemExponential")
            .field("base", &self.base)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<T: Hash + Eq + Clone> ItemExponential<T> {
    /// A limiter starting at `base` and doubling up to `max`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroBaseDelay`] if `base` is zero, [`Error::MaxBelowBase`] if `max < base`.
    pub fn new(base: Duration, max: Duration) -> Result<Self, Error> {
        if base.is_zero() {
            return Err(Error::ZeroBaseDelay);
        }
        if max < base {
            return Err(Error::MaxBelowBase { base, max });
        }
        Ok(Self::unchecked(base, max))
    }

    pub(crate) fn unchecked(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Failures::new(),
        }
    }
}

impl<T: Hash + Eq + Clone + Send> RateLimiter<T> for ItemExponential<T> {
    fn when(&self, item: &T) -> Duration {
        let exp = self.failures.bump(item);
        2u32.checked_pow(exp)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |delay| delay.min(self.max))
    }
    fn forget(&self, item: &T) {
        self.failures.forget(item);
    }
    fn num_requeues(&self, item: &T) -> u32 {
        self.failures.get(item)
    }
}

/// `fast` for the first `max_fast` retries of an item, `slow` after
/// (client-go's `ItemFastSlowRateLimiter`).
pub struct ItemFastSlow<T> {
    fast: Duration,
    slow: Duration,
    max_fast: u32,
    failures: Failures<T>,
}

impl<T> fmt::Debug for ItemFastSlow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemFastSlow")
            .field("fast", &self.fast)
            .field("slow", &self.slow)
            .field("max_fast", &self.max_fast)
            .finish_non_exhaustive()
    }
}

impl<T: Hash + Eq + Clone> ItemFastSlow<T> {
    /// A limiter answering `fast` for `max_fast` retries of an item, then `slow`.
    pub fn new(fast: Duration, slow: Duration, max_fast: u32) -> Self {
        Self {
            fast,
            slow,
            max_fast,
            failures: Failures::new(),
        }
    }
}

impl<T: Hash + Eq + Clone + Send> RateLimiter<T> for ItemFastSlow<T> {
    fn when(&self, item: &T) -> Duration {
        let failures = self.failures.bump(item).saturating_add(1);
        if failures <= self.max_fast {
            self.fast
        } else {
            self.slow
        }
    }
    fn forget(&self, item: &T) {
        self.failures.forget(item);
    }
    fn num_requeues(&self, item: &T) -> u32 {
        self.failures.get(item)
    }
}

/// A token bucket shared by all items: `qps` tokens a second, at most `burst` saved
/// (client-go's `BucketRateLimiter` over `golang.org/x/time/rate`).
///
/// Each [`when`](RateLimiter::when) reserves a token and answers how long until it is
/// available. It keeps no per-item state: `num_requeues` is always 0 and `forget` does
/// nothing. The bucket starts full.
#[derive(Debug)]
pub struct Bucket {
    qps: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// A bucket refilling at `qps` tokens a second, holding at most `burst`.
    /// `f64::INFINITY` never limits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRate`] unless `qps > 0` (NaN included), [`Error::ZeroBurst`] if
    /// `burst == 0`.
    pub fn new(qps: f64, burst: u32) -> Result<Self, Error> {
        if qps.is_nan() || qps <= 0.0 {
            return Err(Error::InvalidRate(qps));
        }
        if burst == 0 {
            return Err(Error::ZeroBurst);
        }
        Ok(Self::unchecked(qps, burst))
    }

    fn unchecked(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            state: Mutex::new(BucketState {
                tokens: f64::from(burst),
                last: None,
            }),
        }
    }
}

impl<T> RateLimiter<T> for Bucket {
    fn when(&self, _item: &T) -> Duration {
        if self.qps.is_infinite() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        if let Some(last) = state.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.qps;
            state.tokens = (state.tokens + refill).min(self.burst);
        }
        state.last = Some(now);
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-state.tokens / self.qps).unwrap_or(Duration::MAX)
        }
    }
    fn forget(&self, _item: &T) {}
    fn num_requeues(&self, _item: &T) -> u32 {
        0
    }
}

/// The worst case of several limiters (client-go's `MaxOfRateLimiter`): the longest
/// `when` and the highest `num_requeues`; `forget` goes to every one.
pub struct MaxOf<T> {
    limiters: Vec<Box<dyn RateLimiter<T>>>,
}

impl<T> fmt::Debug for MaxOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxOf").field("limiters", &self.limiters.len()).finish()
    }
}

impl<T> MaxOf<T> {
    /// Combines `limiters`. With none, every item may go at once.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<T>>>) -> Self {
        Self { limiters }
    }
}

impl<T> RateLimiter<T> for MaxOf<T> {
    fn when(&self, item: &T) -> Duration {
        // Every limiter is asked, so each counts the requeue.
        self.limiters.iter().map(|l| l.when(item)).max().unwrap_or_default()
    }
    fn forget(&self, item: &T) {
        self.limiters.iter().for_each(|l| l.forget(item));
    }
    fn num_requeues(&self, item: &T) -> u32 {
        self.limiters.iter().map(|l| l.num_requeues(item)).max().unwrap_or(0)
    }
}

/// Caps another limiter's delay at `max_wait` (client-go's `WithMaxWaitRateLimiter`).
#[derive(Debug)]
pub struct WithMaxWait<L> {
    inner: L,
    max_wait: Duration,
}

impl<L> WithMaxWait<L> {
    /// Wraps `inner`, never answering more than `max_wait`.
    pub fn new(inner: L, max_wait: Duration) -> Self {
        Self { inner, max_wait }
    }
}

impl<T, L: RateLimiter<T>> RateLimiter<T> for WithMaxWait<L> {
    fn when(&self, item: &T) -> Duration {
        self.inner.when(item).min(self.max_wait)
    }
    fn forget(&self, item: &T) {
        self.inner.forget(item);
    }
    fn num_requeues(&self, item: &T) -> u32 {
        self.inner.num_requeues(item)
    }
}

/// The limiter every controller gets by default (client-go's `DefaultControllerRateLimiter`,
/// also controller-runtime's):
///
/// - per item, exponential from **5 ms to 1000 s** — a failing item backs off on its own;
/// - overall, a token bucket of **10 qps with a burst of 100** — many failing items together
///   cannot flood the API server.
///
/// The delay is the larger of the two.
pub fn default_controller_rate_limiter<T: Hash + Eq + Clone + Send + 'static>() -> MaxOf<T> {
    let per_item = ItemExponential::unchecked(Duration::from_millis(5), Duration::from_secs(1000));
    let overall = Bucket::unchecked(10.0, 100);
    MaxOf::new(vec![Box::new(per_item), Box::new(overall)])
}

/// Per-item exponential from 1 ms to 1000 s (client-go's `DefaultTypedItemBasedRateLimiter`).
pub fn default_item_based_rate_limiter<T: Hash + Eq + Clone + Send>() -> ItemExponential<T> {
    ItemExponential::unchecked(Duration::from_millis(1), Duration::from_secs(1000))
}
