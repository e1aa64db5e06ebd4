//! The bounded event history watches replay from, as kube-apiserver's watch cache keeps one.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Stored;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed from storage.
    Deleted,
}

/// One change, at one resourceVersion.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// Storage key of the resource.
    pub storage: Box<str>,
    /// What happened.
    pub ty: EventType,
    /// The object after the change (for a delete: its last state, at the delete's version).
    pub object: Arc<Stored>,
    /// The object before the change, if it existed.
    pub prev: Option<Arc<Stored>>,
}

/// What a watch receives from the store.
#[derive(Debug, Clone)]
pub enum WatchMsg {
    /// A change.
    Event(Arc<Event>),
    /// Everything up to `rv` has been sent.
    Bookmark {
        /// The resourceVersion reached.
        rv: u64,
        /// Whether this bookmark ends a streaming list's initial events.
        initial_events_end: bool,
    },
    /// The server ends this watch.
    Close,
}

pub(super) struct History {
    events: VecDeque<Arc<Event>>,
    limit: usize,
    /// Events at or below this resourceVersion are no longer kept.
    compacted: u64,
}

impl History {
    pub(super) fn new(limit: usize) -> Self {
        History {
            events: VecDeque::new(),
            limit: limit.max(1),
            compacted: 0,
        }
    }

    pub(super) fn push(&mut self, ev: Arc<Event>) {
        if self.events.len() >= self.limit
            && let Some(old) = self.events.pop_front()
        {
            self.compacted = old.rv;
        }
        self.events.push_back(ev);
    }

    /// Events of `storage` after `from`, or `Err(compacted)` when some are no longer kept.
    pub(super) fn since(&self, from: u64, storage: &str) -> Result<Vec<Arc<Event>>, u64> {
        if from < self.compacted {
            return Err(self.compacted);
        }
        let start = self.events.partition_point(|e| e.rv <= from);
        Ok(self
            .events
            .range(start..)
            .filter(|e| &*e.storage == storage)
            .cloned()
            .collect())
    }

    pub(super) fn compact(&mut self, rv: u64) {
        self.events.clear();
        self.compacted = rv;
    }

    pub(super) fn compacted(&self) -> u64 {
        self.compacted
    }
}
