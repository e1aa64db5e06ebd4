//! The queue's bookkeeping, always used under the queue's lock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// `delay` from now. A delay too long for the clock (`Duration::MAX`, say, for "not before a
/// long time") is a century: in practice never, and no overflow panic in a worker.
pub(crate) fn later(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

use super::metrics::QueueMetrics;
pub(crate) use super::ready::Added;
pub(crate) use super::ready::Done;
use super::ready::Ready;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An item waiting for its `add_after` time.
struct Waiting {
    ready_at: Instant,
    seq: u64,
    priority: i32,
}

/// A timer-heap entry; the earliest `ready_at` is the greatest, for `BinaryHeap`.
struct Timer<T> {
    ready_at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Timer<T> {}
impl<T> PartialOrd for Timer<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timer<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.ready_at, other.seq).cmp(&(self.ready_at, self.seq))
    }
}

pub(crate) struct State<T> {
    ready: Ready<T>,
    waiting: Map<T, Waiting>,
    timers: BinaryHeap<Timer<T>>,
    seq: u64,
    pub(crate) shutting_down: bool,
    pub(crate) draining: bool,
    /// Consumers asleep in `get`, the most recent last.
    sleepers: Vec<Arc<Sleeper>>,
    /// Sleepers woken that have not yet looked at the queue. While one is on its way, no
    /// other is woken: it wakes the next itself if it leaves work behind. This keeps a
    /// burst of adds from waking every consumer for one item each.
    woken: usize,
    /// The consumer that went to sleep last while timers were waiting: it sleeps until the
    /// earliest timer as it was then, so no later than the earliest one now unless
    /// [`Self::timer_unwatched`] is set.
    watcher: Option<Arc<Sleeper>>,
    /// No sleeping consumer is known to wake by the earliest timer: it moved earlier, or the
    /// watcher stopped sleeping (woken, timed out or cancelled). A consumer that leaves `get`
    /// then wakes another, which goes to sleep until the earliest timer and so becomes the
    /// watcher (client-go's separate waiting loop needs no such hand-over).
    timer_unwatched: bool,
}

/// The parking spot of one consumer waiting in `get`.
#[derive(Default)]
pub(crate) struct Sleeper {
    woken: AtomicBool,
    waker: parking_lot::Mutex<Option<Waker>>,
}

impl Sleeper {
    fn wake(&self) {
        self.woken.store(true, AtomicOrdering::Release);
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }

    /// Resolves once [`State::wake_one`] or [`State::wake_all`] picked this sleeper.
    pub(crate) fn sleep(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.woken.load(AtomicOrdering::Acquire) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            if self.woken.load(AtomicOrdering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

impl<T: Hash + Eq + Clone> State<T> {
    pub(crate) fn new(hasher: foldhash::fast::RandomState) -> Self {
        Self {
            ready: Ready::new(hasher),
            waiting: Map::default(),
            timers: BinaryHeap::new(),
            seq: 0,
            shutting_down: false,
            draining: false,
            sleepers: Vec::new(),
            woken: 0,
            watcher: None,
            timer_unwatched: false,
        }
    }

    /// Puts a consumer to sleep; it must call [`Self::wake_up`] when it next holds the lock
    /// (or is dropped).
    pub(crate) fn park(&mut self, sleeper: &Arc<Sleeper>) {
        // It sleeps until the earliest timer as it is now.
        self.timer_unwatched = false;
        self.watcher = (!self.timers.is_empty()).then(|| Arc::clone(sleeper));
        sleeper.woken.store(false, AtomicOrdering::Relaxed);
        self.sleepers.push(Arc::clone(sleeper));
    }

    /// A parked consumer is back (woken, timed out or cancelled). Returns whether it had
    /// been woken, i.e. whether it owes the queue a look.
    pub(crate) fn wake_up(&mut self, sleeper: &Arc<Sleeper>) -> bool {
        if sleeper.woken.load(AtomicOrdering::Acquire) {
            self.woken = self.woken.saturating_sub(1);
            true
        } else {
            self.sleepers.retain(|s| !Arc::ptr_eq(s, sleeper));
            self.stops_sleeping(sleeper);
            false
        }
    }

    /// `sleeper` left the sleepers: if it was the watcher, nobody watches the timers now.
    fn stops_sleeping(&mut self, sleeper: &Arc<Sleeper>) {
        if self.watcher.as_ref().is_some_and(|w| Arc::ptr_eq(w, sleeper)) {
            self.watcher = None;
            self.timer_unwatched = !self.timers.is_empty();
        }
    }

    /// Whether a consumer leaving `get` (with an item, or cancelled) must wake another: items
    /// are ready, or no sleeper will wake for the earliest timer.
    pub(crate) fn owes_wake(&self) -> bool {
        self.ready_len() > 0 || (self.timer_unwatched && !self.timers.is_empty())
    }

    /// Wakes one sleeping consumer, unless one is already on its way.
    pub(crate) fn wake_one(&mut self) {
        if self.woken == 0
            && let Some(sleeper) = self.sleepers.pop()
        {
            self.woken += 1;
            sleeper.wake();
            self.stops_sleeping(&sleeper);
        }
    }

    /// Wakes every sleeping consumer (shutdown).
    pub(crate) fn wake_all(&mut self) {
        for sleeper in self.sleepers.drain(..) {
            self.woken += 1;
            sleeper.wake();
        }
        self.watcher = None;
        self.timer_unwatched = !self.timers.is_empty();
    }

    /// Items ready to be handed out.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub(crate) fn processing_len(&self) -> usize {
        self.ready.processing_len()
    }

    /// When the earliest waiting item becomes ready.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|t| t.ready_at)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// client-go's `Add` (see [`Ready::add`]); nothing after shutdown.
    pub(crate) fn add(&mut self, item: T, priority: i32, metrics: Option<&QueueMetrics>) -> Added {
        if self.shutting_down {
            return Added::Nothing;
        }
        self.ready.add(item, priority, metrics)
    }

    /// client-go's `AddAfter`: the earlier ready time wins for an item already waiting.
    /// Returns whether the earliest timer moved earlier: a sleeper must then be woken to
    /// learn it.
    pub(crate) fn add_after(
        &mut self,
        item: T,
        delay: Duration,
        priority: i32,
        metrics: Option<&QueueMetrics>,
    ) -> bool {
        if self.shutting_down {
            return false;
        }
        if let Some(m) = metrics {
            m.retries.inc();
        }
        let ready_at = later(delay);
        let earliest = self.next_timer().is_none_or(|t| ready_at < t);
        if let Some(waiting) = self.waiting.get_mut(&item) {
            waiting.priority = waiting.priority.max(priority);
            if ready_at >= waiting.ready_at {
                return false;
            }
            self.seq += 1;
            waiting.ready_at = ready_at;
            waiting.seq = self.seq;
            self.timers.push(Timer {
                ready_at,
                seq: self.seq,
                item,
            });
            self.timer_unwatched |= earliest;
            return earliest;
        }
        let seq = self.next_seq();
        self.waiting.insert(
            item.clone(),
            Waiting {
                ready_at,
                seq,
                priority,
            },
        );
        self.timers.push(Timer { ready_at, seq, item });
        self.timer_unwatched |= earliest;
        earliest
    }

    /// Moves waiting items whose time has come into the ready lanes; returns how many
    /// became ready.
    pub(crate) fn promote(&mut self, metrics: Option<&QueueMetrics>) -> usize {
        if self.timers.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut ready = 0;
        while self.timers.peek().is_some_and(|t| t.ready_at <= now) {
            let Some(timer) = self.timers.pop() else { break };
            let live = self.waiting.get(&timer.item).is_some_and(|w| w.seq == timer.seq);
            if !live {
                continue;
            }
            if let Some((item, waiting)) = self.waiting.remove_entry(&timer.item)
                && self.add(item, waiting.priority, metrics) == Added::Ready
            {
                ready += 1;
            }
        }
        ready
    }

    /// Takes the next ready item into processing.
    pub(crate) fn take(&mut self, metrics: Option<&QueueMetrics>) -> Option<T> {
        self.ready.take(metrics)
    }

    /// Stops intake and drops every waiting item, as client-go's delaying queue stops its
    /// waiting loop.
    pub(crate) fn shut_down(&mut self, drain: bool) {
        self.shutting_down = true;
        self.draining = drain;
        self.waiting.clear();
        self.timers.clear();
        self.wake_all();
    }

    /// Marks an item done; see [`Done`]. `hash` is the item's hash by the queue's hasher.
    pub(crate) fn done(&mut self, item: &T, hash: u64, metrics: Option<&QueueMetrics>) -> Done<T> {
        self.ready.done(item, hash, metrics)
    }

    /// Seconds of work in progress summed, and the longest.
    pub(crate) fn unfinished(&self) -> (f64, f64) {
        self.ready.unfinished()
    }
}
