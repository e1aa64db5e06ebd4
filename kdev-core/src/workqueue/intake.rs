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
    /// Whether the buffer holds items; written under the buffer's lock, read without it so
    /// that a consumer finds an empty intake (every `get` of a drain) without locking.
    filled: AtomicBool,
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
            filled: AtomicBool::new(false),
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
        if buffer.items.is_empty() {
            self.filled.store(true, Ordering::Release);
        }
        buffer.items.push((item, priority));
        true
    }

    /// Refuses further adds.
    pub(crate) fn close(&self) {
        self.buffer.lock().closed = true;
    }

    /// Exchanges the buffer's items with `spare` (an empty vector whose capacity is reused).
    /// An add still in progress may be missed; a consumer about to sleep looks again with
    /// [`Self::is_empty`], which takes the lock.
    pub(crate) fn swap(&self, spare: &mut Vec<(T, i32)>) {
        if !self.filled.load(Ordering::Acquire) {
            return;
        }
        let mut buffer = self.buffer.lock();
        if !buffer.items.is_empty() {
            std::mem::swap(&mut buffer.items, spare);
            self.filled.store(false, Ordering::Relaxed);
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
