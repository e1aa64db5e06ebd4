//! Event handlers: each with its own unbounded buffer and its own task (client-go's
//! `processorListener`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::Store;

/// What a handler is told.
#[derive(Debug)]
pub enum Event<K> {
    /// An object appeared. `initial` is client-go's `isInInitialList`: true for the objects of
    /// the informer's first list (until it has synced) and for the replay a handler added after
    /// start receives; false for objects created later. Controllers queue initial adds at low
    /// priority so that real changes go first.
    Add {
        /// The object.
        obj: Arc<K>,
        /// Whether the object comes from the initial list (or a late handler's replay).
        initial: bool,
    },
    /// An object changed, or a resync replayed it (then `old` and `new` are the same object).
    Update {
        /// The object before.
        old: Arc<K>,
        /// The object after.
        new: Arc<K>,
    },
    /// An object was deleted; its last known state.
    Delete(Arc<K>),
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Add { obj, initial } => Event::Add {
                obj: obj.clone(),
                initial: *initial,
            },
            Event::Update { old, new } => Event::Update {
                old: old.clone(),
                new: new.clone(),
            },
            Event::Delete(o) => Event::Delete(o.clone()),
        }
    }
}

/// The informer's side of one handler.
pub(super) struct HandlerSlot<K> {
    id: u64,
    tx: mpsc::UnboundedSender<Event<K>>,
    pending: Arc<AtomicUsize>,
}

impl<K> HandlerSlot<K> {
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Buffers an event for the handler; false when its task is gone.
    pub(super) fn send(&self, event: Event<K>) -> bool {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.tx.send(event).is_ok()
    }
}

/// A registered handler: remove it with
/// [`SharedIndexInformer::remove_event_handler`](super::SharedIndexInformer::remove_event_handler).
#[derive(Debug, Clone)]
pub struct Registration {
    id: u64,
    pending: Arc<AtomicUsize>,
}

impl Registration {
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Events buffered for this handler and not yet handled.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// Starts a handler's task, first replaying `existing` as initial adds.
///
/// # Panics
/// Outside a tokio runtime (the handler's task is spawned).
pub(super) fn spawn<K, F>(
    id: u64,
    mut handler: F,
    existing: Vec<Arc<K>>,
    resync: Option<Duration>,
    store: Store<K>,
) -> (HandlerSlot<K>, Registration)
where
    K: kube_core::Resource + Send + Sync + 'static,
    F: FnMut(Event<K>) + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Event<K>>();
    let pending = Arc::new(AtomicUsize::new(0));
    let slot = HandlerSlot {
        id,
        tx,
        pending: pending.clone(),
    };
    for obj in existing {
        slot.send(Event::Add { obj, initial: true });
    }
    let counter = pending.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            handler(event);
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    });
    if let Some(period) = resync.filter(|p| !p.is_zero()) {
        let weak = slot.tx.downgrade();
        let counter = pending.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                let Some(tx) = weak.upgrade() else { return };
                for obj in store.list() {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if tx
                        .send(Event::Update {
                            old: obj.clone(),
                            new: obj,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
    }
    (slot, Registration { id, pending })
}
