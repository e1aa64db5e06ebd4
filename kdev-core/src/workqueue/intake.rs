//! The intake: where `add` drops items without touching the queue's main lock.
//!
//! Producers append to a short-locked buffer; the next consumer (or `len`) folds the whole
//! buffer into the queue under the main lock, in arrival order. Producers thus never wait
//! for the lock that guards the queue's tables while workers hold it, and a burst of adds
//! is deduplicated in one pass.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

struct Buffer<T> {
    items: Vec<(T, i32)>,
    closed: bool,
}

pub(crate) struct Intake<T> {
    buffer: Mutex<Buffer<T>>,
    /// Whether a consumer sleeps and none is on its way: an `add` must wake one.
    /// Written under the queue's main lock, read by producers without it.
    pub(crate) need_wake: AtomicBool,
}

impl<T> Intake<T> {
    pub(crate) fn new() -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                items: Vec::new(),
                closed: false,
            }),
            need_wake: AtomicBool::new(false),
        }
    }

    /// Appends an add; `false` (and the item dropped) once closed. Closing and pushing
    /// are serialized, so every accepted item is in the buffer before `close` returns.
    pub(crate) fn push_add(&self, item: T, priority: i32) -> bool {
        let mut buffer = self.buffer.lock();
        if buffer.closed {
            return false;
        }
        buffer.items.push((item, priority));
        true
    }

    /// Refuses further adds.
    pub(crate) fn close(&self) {
        self.buffer.lock().closed = true;
    }

    /// Exchanges the buffer's items with `spare` (an empty vector whose capacity is reused).
    pub(crate) fn swap(&self, spare: &mut Vec<(T, i32)>) {
        let mut buffer = self.buffer.lock();
        if !buffer.items.is_empty() {
            std::mem::swap(&mut buffer.items, spare);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buffer.lock().items.is_empty()
    }

    pub(crate) fn set_need_wake(&self, need: bool) {
        // Skip rewriting `false` over `false`: most calls, and a write would pull the
        // cache line away from producers for nothing. `true` is always written, since the
        // sleeper's check of the buffer must come after it.
        if need || self.need_wake.load(Ordering::Relaxed) {
            self.need_wake.store(need, Ordering::SeqCst);
        }
    }

    pub(crate) fn needs_wake(&self) -> bool {
        self.need_wake.load(Ordering::SeqCst)
    }
}
