//! What both FIFOs share: the lock and wake-ups, closing, popping, and client-go's
//! bookkeeping of the first full list behind `has_synced`.

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::Closed;

/// The queue proper of a FIFO: what one pop hands out.
pub(crate) trait Queue {
    /// What one pop hands out: a key's deltas, or one delta.
    type Item;
    /// Removes the next item.
    fn take_front(&mut self) -> Option<Self::Item>;
    /// How many items are queued.
    fn queued(&self) -> usize;
}

/// A FIFO's state under its lock.
pub(crate) struct Locked<Q> {
    pub(crate) queue: Q,
    /// Whether anything was queued yet (an event, or the first list).
    pub(crate) populated: bool,
    /// Items of the first list not yet popped.
    pub(crate) initial_population_count: usize,
    pub(crate) closed: bool,
}

impl<Q> Locked<Q> {
    pub(crate) fn synced(&self) -> bool {
        self.populated && self.initial_population_count == 0
    }

    /// Records the first full list: `count` items must be popped before `has_synced`.
    pub(crate) fn first_population(&mut self, count: usize) {
        if !self.populated {
            self.populated = true;
            self.initial_population_count = count;
        }
    }
}

pub(crate) struct Core<Q> {
    state: Mutex<Locked<Q>>,
    notify: Notify,
}

impl<Q: Queue> Core<Q> {
    pub(crate) fn new(queue: Q) -> Self {
        Self {
            state: Mutex::new(Locked {
                queue,
                populated: false,
                initial_population_count: 0,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked<Q>> {
        self.state.lock()
    }

    /// Wakes one waiting pop; call after queuing a new item.
    pub(crate) fn wake_one(&self) {
        self.notify.notify_one();
    }

    pub(crate) async fn pop<R>(&self, process: impl FnOnce(Q::Item, bool) -> R) -> Result<R, Closed> {
        let mut process = Some(process);
        crate::wait::until(&self.state, &self.notify, |state| {
            if state.queue.queued() == 0 {
                return state.closed.then_some(Err(Closed));
            }
            let process = process.take()?;
            Self::pop_locked(state, process).map(Ok)
        })
        .await
    }

    pub(crate) fn try_pop<R>(&self, process: impl FnOnce(Q::Item, bool) -> R) -> Option<R> {
        Self::pop_locked(&mut self.state.lock(), process)
    }

    fn pop_locked<R>(state: &mut Locked<Q>, process: impl FnOnce(Q::Item, bool) -> R) -> Option<R> {
        let in_initial_list = !state.synced();
        let item = state.queue.take_front()?;
        state.initial_population_count = state.initial_population_count.saturating_sub(1);
        Some(process(item, in_initial_list))
    }

    pub(crate) fn has_synced(&self) -> bool {
        self.state.lock().synced()
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().queue.queued()
    }
}
