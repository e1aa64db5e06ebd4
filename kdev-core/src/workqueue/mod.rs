//! A rate-limited, delaying, deduplicating work queue with client-go's contract
//! ([`util/workqueue`](https://github.com/kubernetes/client-go/tree/master/util/workqueue)),
//! plus controller-runtime's priorities.
//!
//! Controllers put *keys* (not objects) in the queue, and workers take them out, reconcile
//! and call [`done`](WorkQueue::done). The queue makes sure one key is never reconciled by
//! two workers at once and that a burst of changes to one object costs one reconcile.
//!
//! # Examples
//!
//! ```
//! use kdev_core::workqueue::WorkQueue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let queue = WorkQueue::<String>::default();
//! queue.add("default/web".to_string());
//! queue.add("default/web".to_string()); // collapses with the first add
//! queue.add("default/db".to_string());
//! queue.shutdown(); // no more adds; what is queued is still handed out
//!
//! let mut handled = Vec::new();
//! while let Some(key) = queue.get().await {
//!     handled.push(key.clone()); // reconcile here
//!     queue.forget(&key); // success: clear its backoff
//!     queue.done(&key);
//! }
//! assert_eq!(handled, ["default/web", "default/db"]);
//! # }
//! ```

mod metrics;
pub mod rate_limiter;
mod ready;
mod state;

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

pub use self::metrics::Metrics;
use self::metrics::{InFlight, QueueMetrics};
pub use self::rate_limiter::{RateLimiter, default_controller_rate_limiter};
use self::state::{Added, Done, Sleeper, State};

/// The priority of ordinary adds.
pub const NORMAL_PRIORITY: i32 = 0;

/// The priority controller-runtime gives to events of an initial list or a resync
/// (`handler.LowPriority`), so that real changes are served first.
pub const LOW_PRIORITY: i32 = -100;

/// Settings of a [`WorkQueue`].
pub struct Config<T> {
    name: Option<String>,
    rate_limiter: Arc<dyn RateLimiter<T>>,
    metrics: Option<Metrics>,
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for Config<T> {
    /// No name, no metrics, and [`default_controller_rate_limiter`].
    fn default() -> Self {
        Self {
            name: None,
            rate_limiter: Arc::new(default_controller_rate_limiter()),
            metrics: None,
        }
    }
}

impl<T> fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Config<T> {
    /// The queue's name: the `name` and `controller` labels of its metrics. As in
    /// client-go, a queue without a name reports no metrics.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The limiter [`WorkQueue::add_rate_limited`] asks. Default:
    /// [`default_controller_rate_limiter`].
    #[must_use]
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<T> + 'static) -> Self {
        self.rate_limiter = Arc::new(limiter);
        self
    }

    /// Report into these metric families (see [`Metrics`]). Needs a [`name`](Self::name).
    #[must_use]
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }
}

/// How to add an item: see [`WorkQueue::add_with`]. Mirrors controller-runtime's `AddOpts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOptions {
    after: Option<Duration>,
    rate_limited: bool,
    priority: i32,
}

impl AddOptions {
    /// Make the item ready after `delay` instead of now.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.after = Some(delay);
        self
    }

    /// Delay the item by what the rate limiter says (the longer of this and
    /// [`after`](Self::after)).
    #[must_use]
    pub fn rate_limited(mut self) -> Self {
        self.rate_limited = true;
        self
    }

    /// The item's priority: higher is served first; equal priorities are FIFO. Default
    /// [`NORMAL_PRIORITY`]; use [`LOW_PRIORITY`] for initial-list and resync events.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The queue's item hasher: `done` hashes before taking the lock.
    hasher: foldhash::fast::RandomState,
    /// Woken when the processing set empties during a drain.
    drained: Notify,
    rate_limiter: Arc<dyn RateLimiter<T>>,
    metrics: Option<QueueMetrics>,
    name: Option<String>,
}

impl<T: Hash + Eq + Clone + Send> InFlight for Shared<T> {
    fn unfinished(&self) -> (f64, f64) {
        self.state.lock().unfinished()
    }
}

/// An async work queue with client-go's contract, delays, rate limiting, priorities and
/// metrics (client-go's `TypedRateLimitingInterface`, controller-runtime's `PriorityQueue`).
///
/// `WorkQueue` is a cheap handle: clone it into every producer and worker.
///
/// # Guarantees
///
/// These are client-go's, and kdev's property tests check each of them.
///
/// - **(a)** An item added N times before a worker takes it is handed out once.
/// - **(b)** An item is never handed to two workers at once: until [`done`](Self::done) is
///   called for it, [`get`](Self::get) does not hand it out again.
/// - **(c)** An item added while it is being processed is handed out again after
///   [`done`](Self::done), once.
/// - **(d)** [`shutdown`](Self::shutdown) stops intake: later adds are ignored, waiting
///   (delayed) items are dropped, ready items are still handed out, then `get` returns
///   `None`. [`shutdown_with_drain`](Self::shutdown_with_drain) does the same and waits
///   until every item handed out is `done`.
///
/// Also: items of equal priority come out in the order they became ready; a higher
/// priority comes out first; an item delayed twice with [`add_after`](Self::add_after)
/// becomes ready at the earlier time.
///
/// # Caveats
///
/// - Workers must call [`done`](Self::done) for every item [`get`](Self::get) returned, or
///   the item is never handed out again. [`forget`](Self::forget) only clears the rate
///   limiter's memory of the item; it does not replace `done`.
/// - There is no background task. While any worker waits in `get`, one of them sleeps
///   until the earliest delayed item's time, so the item is handed out then. When every
///   worker is busy past that time, the item becomes ready at the next `get`, `len` or
///   shutdown, and keys added meanwhile may come out before it.
///
/// # Memory usage
///
/// Each queued item is stored once, plus a 12-byte index record: an add of an item already
/// queued or being processed keeps nothing of it. A taken item leaves a
/// stale record behind until a sweep, which runs once stale records outnumber queued
/// items four to one. Items being processed are stored once more (the copy `get` returns
/// is a clone). The rate limiter keeps one counter per item it has not forgotten: call
/// [`forget`](Self::forget) when an item succeeds.
///
/// # Performance
///
/// As in client-go, `add` queues the item under the queue's lock, so the depth gauge and the
/// queue-duration clock start at the add; the lock is held for one hash-table probe.
/// `cargo bench -p kdev-core --bench workqueue_throughput` compares it with client-go's
/// queue.
#[doc(alias = "workqueue")]
#[doc(alias = "RateLimitingInterface")]
pub struct WorkQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

/// Takes a consumer that stops waiting off the sleepers, including by cancellation.
struct Parked<'a, T: Hash + Eq + Clone> {
    shared: &'a Shared<T>,
    /// Allocated on the first sleep only: a `get` that finds an item allocates nothing.
    sleeper: Option<Arc<Sleeper>>,
    parked: bool,
}

impl<T: Hash + Eq + Clone> Parked<'_, T> {
    /// Back from sleep, with the lock held.
    fn unpark(&mut self, state: &mut State<T>) -> bool {
        if !self.parked {
            return false;
        }
        self.parked = false;
        self.sleeper.as_ref().is_some_and(|sleeper| state.wake_up(sleeper))
    }
}

impl<T: Hash + Eq + Clone> Drop for Parked<'_, T> {
    fn drop(&mut self) {
        if self.parked {
            let mut state = self.shared.state.lock();
            self.unpark(&mut state);
            if state.owes_wake() {
                // Woken for work it will not do, or it was to wake for the earliest timer:
                // pass that on.
                state.wake_one();
            }
        }
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    /// A queue with the given settings.
    pub fn new(config: Config<T>) -> Self {
        let metrics = match (&config.metrics, &config.name) {
            (Some(metrics), Some(name)) => Some(metrics.for_queue(name)),
            _ => None,
        };
        let hasher = foldhash::fast::RandomState::default();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(hasher.clone())),
            hasher,
            drained: Notify::new(),
            rate_limiter: config.rate_limiter,
            metrics,
            name: config.name,
        });
        if let Some(metrics) = &shared.metrics {
            let weak: Weak<Shared<T>> = Arc::downgrade(&shared);
            metrics.watch(weak);
        }
        Self { shared }
    }

    fn metrics(&self) -> Option<&QueueMetrics> {
        self.shared.metrics.as_ref()
    }

    /// Adds `item` now at [`NORMAL_PRIORITY`] (client-go's `Add`). Ignored after shutdown.
    pub fn add(&self, item: T) {
        self.add_now(item, NORMAL_PRIORITY);
    }

    fn add_now(&self, item: T, priority: i32) {
        let mut state = self.shared.state.lock();
        if state.add(item, priority, self.metrics()) == Added::Ready {
            state.wake_one();
        }
    }

    /// Adds `item` once `delay` has passed (client-go's `AddAfter`). A zero delay adds at
    /// once. If the item is already waiting, the earlier ready time wins.
    pub fn add_after(&self, item: T, delay: Duration) {
        self.add_with(item, AddOptions::default().after(delay));
    }

    /// Adds `item` after the delay the rate limiter gives it (client-go's `AddRateLimited`):
    /// how a worker retries an item that failed.
    pub fn add_rate_limited(&self, item: T) {
        self.add_with(item, AddOptions::default().rate_limited());
    }

    /// Adds `item` with a delay, rate limiting and a priority (controller-runtime's
    /// `AddWithOpts`).
    pub fn add_with(&self, item: T, options: AddOptions) {
        let mut delay = options.after.unwrap_or_default();
        if options.rate_limited {
            delay = delay.max(self.shared.rate_limiter.when(&item));
        }
        if delay.is_zero() {
            return self.add_now(item, options.priority);
        }
        let mut state = self.shared.state.lock();
        if state.add_after(item, delay, options.priority, self.metrics()) {
            state.wake_one();
        }
    }

    /// Waits for an item and hands it out; `None` once the queue is shut down and has no
    /// ready item left (client-go's `Get`). Call [`done`](Self::done) when finished with it.
    ///
    /// Like tokio's channels, `get` takes part in tokio's cooperative scheduling: a worker
    /// whose every `get` finds an item ready still yields to the other tasks of its thread
    /// once its task budget is spent, so it cannot hold a thread until the queue is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an item is taken in the same step it is returned, so dropping the
    /// future never loses one.
    pub async fn get(&self) -> Option<T> {
        // Without this, a consumer that tokio woke into this thread's LIFO slot (which other
        // threads cannot steal from) would wait until this worker emptied the queue.
        tokio::task::coop::consume_budget().await;
        let shared = &*self.shared;
        let mut parked = Parked {
            shared,
            sleeper: None,
            parked: false,
        };
        loop {
            let deadline = {
                let mut state = shared.state.lock();
                parked.unpark(&mut state);
                state.promote(self.metrics());
                if let Some(item) = state.take(self.metrics()) {
                    if state.owes_wake() {
                        // Leave the rest, or the earliest timer, to another consumer.
                        state.wake_one();
                    }
                    return Some(item);
                }
                if state.shutting_down {
                    return None;
                }
                state.park(parked.sleeper.get_or_insert_with(Arc::default));
                parked.parked = true;
                state.next_timer()
            };
            let Some(sleeper) = parked.sleeper.clone() else {
                continue;
            };
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = sleeper.sleep() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => sleeper.sleep().await,
            }
        }
    }

    /// Marks `item` as finished (client-go's `Done`). If it was added while being processed,
    /// it is ready again now. Calling it for an item that is not being processed does
    /// nothing.
    pub fn done(&self, item: &T) {
        let hash = self.shared.hasher.hash_one(item);
        let mut state = self.shared.state.lock();
        let released = match state.done(item, hash, self.metrics()) {
            Done::Requeued => {
                state.wake_one();
                None
            }
            Done::Released(copy) => Some(copy),
            Done::NotProcessing => None,
        };
        if state.draining && state.processing_len() == 0 {
            self.shared.drained.notify_waiters();
        }
        drop(state);
        // The queue's copy is freed after the lock is released.
        drop(released);
    }

    /// Clears the rate limiter's memory of `item` (client-go's `Forget`): call it when the
    /// item succeeded. It does not replace [`done`](Self::done).
    pub fn forget(&self, item: &T) {
        self.shared.rate_limiter.forget(item);
    }

    /// How many times `item` was rate-limited since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.shared.rate_limiter.num_requeues(item)
    }

    /// The number of items ready to be handed out (client-go's `Len`). Delayed items and
    /// items being processed do not count.
    pub fn len(&self) -> usize {
        let mut state = self.shared.state.lock();
        if state.promote(self.metrics()) > 0 {
            state.wake_one();
        }
        state.ready_len()
    }

    /// Whether no item is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops intake without waiting (guarantee (d), client-go's `ShutDown`). A concurrent
    /// [`shutdown_with_drain`](Self::shutdown_with_drain) stops waiting.
    pub fn shutdown(&self) {
        self.shut_down(false);
        self.shared.drained.notify_waiters();
    }

    /// Stops intake and waits until every item handed out is [`done`](Self::done)
    /// (client-go's `ShutDownWithDrain`). Ready items are still handed out meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the queue is shut down on the first poll; dropping the future only stops
    /// the waiting.
    pub async fn shutdown_with_drain(&self) {
        self.shut_down(true);
        crate::wait::until(&self.shared.state, &self.shared.drained, |state| {
            (state.processing_len() == 0 || !state.draining).then_some(())
        })
        .await;
    }

    fn shut_down(&self, drain: bool) {
        let mut state = self.shared.state.lock();
        // Items whose delay has passed were added before the shutdown, as client-go's
        // waiting loop would have added them by now.
        state.promote(self.metrics());
        state.shut_down(drain);
    }

    /// Whether the queue is shutting down (client-go's `ShuttingDown`).
    pub fn is_shutting_down(&self) -> bool {
        self.shared.state.lock().shutting_down
    }
}
