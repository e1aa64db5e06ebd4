//! Event handlers: each with its own unbounded buffer and its own thread (client-go's
//! `processorListener`, which runs on its own goroutine).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::mpsc;

use tokio::sync::Notify;

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
    /// An object was deleted.
    Delete {
        /// Its last known state: the object of the watch's DELETED event (its final state,
        /// carrying the deletion's resourceVersion); what the cache held when that object did
        /// not decode, or when `final_state_unknown`.
        obj: Arc<K>,
        /// True when the informer did not see the deletion itself: the object was missing from a
        /// relist, so it was deleted while the watch was down and `obj` is the state the cache
        /// held, not the final one (client-go's `DeletedFinalStateUnknown`).
        final_state_unknown: bool,
    },
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
            Event::Delete {
                obj,
                final_state_unknown,
            } => Event::Delete {
                obj: obj.clone(),
                final_state_unknown: *final_state_unknown,
            },
        }
    }
}

impl<K> Event<K> {
    /// The object the event is about: the added object, the updated object's new state, or the
    /// deleted object's last known state.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use kdev_core::informer::Event;
    ///
    /// let mut cm = ConfigMap::default();
    /// cm.metadata.namespace = Some("default".into());
    /// cm.metadata.name = Some("web".into());
    /// let event = Event::Delete { obj: Arc::new(cm), final_state_unknown: true };
    /// assert_eq!(event.object().metadata.name.as_deref(), Some("web"));
    /// assert_eq!(event.key(), "default/web");
    /// ```
    pub fn object(&self) -> &Arc<K> {
        match self {
            Event::Add { obj, .. } | Event::Delete { obj, .. } => obj,
            Event::Update { new, .. } => new,
        }
    }

    /// The cache key of [`object`](Self::object) (`namespace/name`, or `name`), what a
    /// controller queues (client-go's `MetaNamespaceKeyFunc`, which also unwraps
    /// `DeletedFinalStateUnknown`).
    pub fn key(&self) -> String
    where
        K: kube_core::Resource,
    {
        crate::store::key_of(&**self.object())
    }
}

/// The informer's side of one handler.
pub(super) struct HandlerSlot<K> {
    id: u64,
    tx: mpsc::Sender<Event<K>>,
    counters: Arc<Counters>,
}

/// What a handler has buffered, shared by its slot, its thread and its registration.
#[derive(Debug, Default)]
struct Counters {
    /// Initial adds (`initial: true`) buffered and not yet handled.
    initial: AtomicUsize,
    /// Woken when `initial` drops to zero.
    initial_handled: Notify,
    /// Events buffered so far, in all (what is pending is `sent - handled`).
    sent: AtomicU64,
    /// Events handled so far, in all.
    handled: AtomicU64,
    /// The handler was removed or its informer shut down: what is still buffered is dropped.
    stopped: AtomicBool,
}

impl<K> HandlerSlot<K> {
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Stops the handler: the event it is handling, if any, is its last; the buffered ones are
    /// dropped (client-go's listener, whose pending notifications go with it).
    pub(super) fn stop(&self) {
        self.counters.stopped.store(true, Ordering::Release);
        // Its registration's waiters learn that it will not sync now.
        self.counters.initial_handled.notify_waiters();
    }

    /// Buffers an event for the handler; false when its thread is gone.
    pub(super) fn send(&self, event: Event<K>) -> bool {
        let initial = matches!(event, Event::Add { initial: true, .. });
        if initial {
            self.counters.initial.fetch_add(1, Ordering::AcqRel);
        }
        // Counted before it is sent, so that the handler never has handled more than was sent.
        self.counters.sent.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(event).is_ok() {
            return true;
        }
        if initial && self.counters.initial.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.counters.initial_handled.notify_waiters();
        }
        self.counters.sent.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// How many events have been buffered for the handler so far.
    pub(super) fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Acquire)
    }

    /// Whether the handler has handled at least `count` events so far.
    pub(super) fn has_handled(&self, count: u64) -> bool {
        self.counters.handled.load(Ordering::Acquire) >= count
    }
}

/// A registered handler: remove it with
/// [`SharedIndexInformer::remove_event_handler`](super::SharedIndexInformer::remove_event_handler).
#[derive(Debug, Clone)]
pub struct Registration {
    id: u64,
    counters: Arc<Counters>,
    informer_synced: Arc<super::SyncFlag>,
}

impl Registration {
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Events buffered for this handler and not yet handled.
    pub fn pending(&self) -> usize {
        let handled = self.counters.handled.load(Ordering::Acquire);
        let sent = self.counters.sent.load(Ordering::Acquire);
        usize::try_from(sent.saturating_sub(handled)).unwrap_or(usize::MAX)
    }

    /// Whether this handler has handled the initial state: the informer has synced and the
    /// handler has handled every `Add { initial: true }` it was sent, whether from the first
    /// list or from the replay a handler added after start receives (client-go's
    /// `ResourceEventHandlerRegistration.HasSynced`). A controller waits for this, not just for
    /// the informer, before it trusts that its own view is complete.
    pub fn has_synced(&self) -> bool {
        self.informer_synced.get() && self.counters.initial.load(Ordering::Acquire) == 0
    }

    /// Waits until [`has_synced`](Self::has_synced), at most `timeout`.
    ///
    /// # Errors
    /// [`Error::SyncTimeout`](super::Error::SyncTimeout), with the informer's last list or
    /// watch error; [`Error::Stopped`](super::Error::Stopped) at once when the informer is shut
    /// down before it synced (it never will), or the handler is removed, or the informer shut
    /// down, before the handler handled its initial adds; [`Error::Failed`](super::Error::Failed)
    /// when the informer failed. A handler added after the informer shut down (having synced)
    /// still gets its replay, and its registration syncs.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_sync(&self, timeout: Duration) -> Result<(), super::Error> {
        let wait = async {
            loop {
                // Both futures exist before the check, so a change in between still wakes us.
                let informer = self.informer_synced.notify.notified();
                let handled = self.counters.initial_handled.notified();
                if let Some(failed) = self.informer_synced.failed() {
                    return Err(failed);
                }
                if self.has_synced() {
                    return Ok(());
                }
                // Removed, or its informer shut down, before it handled its initial adds: the
                // ones still buffered are dropped, so it never will.
                if self.counters.stopped.load(Ordering::Acquire) {
                    return Err(super::Error::Stopped);
                }
                let stop = &self.informer_synced.stop;
                if stop.is_cancelled() && !self.informer_synced.get() {
                    return Err(super::Error::Stopped);
                }
                tokio::select! {
                    () = informer => {}
                    () = handled => {}
                    () = stop.cancelled(), if !stop.is_cancelled() => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| self.informer_synced.timed_out(timeout))?
    }
}

/// Starts a handler's thread, first replaying `existing` as initial adds. A panic in the handler
/// is logged and skips that one event; the handler keeps receiving the next ones (client-go,
/// when panics are not fatal).
///
/// Each handler runs on its own OS thread, as each client-go listener runs on its own goroutine:
/// a handler that blocks (a lock, a synchronous call, heavy work) holds up only itself, never a
/// runtime worker that the reflector or another handler needs, whatever the runtime's flavour
/// or size. The thread enters the tokio runtime the handler was added from, so a handler may
/// still `tokio::spawn` or send on tokio channels. It ends once the handler is removed or the
/// informer shut down (after the event in hand; the buffered ones are dropped, as client-go's
/// listener drops its pending notifications), or the informer is dropped and the buffered
/// events are handled. A handler that
/// holds a clone of its own informer keeps the informer, and so its own thread, alive until
/// the informer is shut down: capture the informer's store or a lister instead.
pub(super) fn spawn<K, F>(
    id: u64,
    mut handler: F,
    existing: Vec<Arc<K>>,
    informer_synced: Arc<super::SyncFlag>,
) -> (HandlerSlot<K>, Registration)
where
    K: Send + Sync + 'static,
    F: FnMut(Event<K>) + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Event<K>>();
    let counters = Arc::new(Counters::default());
    let slot = HandlerSlot {
        id,
        tx,
        counters: counters.clone(),
    };
    for obj in existing {
        slot.send(Event::Add { obj, initial: true });
    }
    let task_counters = counters.clone();
    let runtime = tokio::runtime::Handle::try_current().ok();
    informer_synced.handler_threads.fetch_add(1, Ordering::AcqRel);
    let live = informer_synced.clone();
    let run = move || {
        let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
        let _exit = super::OnDrop(|| live.handler_exited());
        while let Ok(event) = rx.recv() {
            if task_counters.stopped.load(Ordering::Acquire) {
                break;
            }
            let initial = matches!(event, Event::Add { initial: true, .. });
            if std::panic::catch_unwind(AssertUnwindSafe(|| handler(event))).is_err() {
                tracing::error!(
                    handler = id,
                    "an informer event handler panicked; that event is skipped"
                );
            }
            if initial && task_counters.initial.fetch_sub(1, Ordering::AcqRel) == 1 {
                task_counters.initial_handled.notify_waiters();
            }
            task_counters.handled.fetch_add(1, Ordering::AcqRel);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("kdev-handler-{id}"))
        .spawn(run)
    {
        // The receiver went down with the closure: the informer drops this handler at its
        // next event, and its registration never syncs.
        informer_synced.handler_exited();
        tracing::error!(handler = id, error = %e, "could not start a thread for an informer event handler");
    }
    let registration = Registration {
        id,
        counters,
        informer_synced,
    };
    (slot, registration)
}
