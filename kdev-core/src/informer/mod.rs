//! The shared index informer: one reflector feeding an indexed store and any number of event
//! handlers, each with its own buffer and thread (client-go's
//! [`tools/cache/shared_informer.go`](https://github.com/kubernetes/client-go/blob/master/tools/cache/shared_informer.go)).

mod factory;
mod handler;
mod lister;

use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use kube_core::Resource;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use factory::Transforms;
pub use factory::{FactoryError, SharedInformerFactory};
use handler::HandlerSlot;
pub use handler::{Event, Registration};
pub use lister::Lister;

use crate::delta_fifo::{self, Closed, Delta, DeltaFifo, DeltaObject, DeltaType};
use crate::real_fifo::RealFifo;
use crate::reflector::{self, ListWatch, Reflector, Sink};
use crate::store::{self, Store, Writer};

/// A function applied to every object before it is stored (client-go's `TransformFunc`),
/// e.g. to drop `metadata.managedFields` and save memory.
pub type Transform<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

/// Drops `metadata.managedFields` (controller-runtime's `TransformStripManagedFields`).
///
/// managedFields are 20–30% of a typical object's JSON, and far more of its memory once
/// decoded: k8s-openapi holds `fieldsV1` as a `serde_json::Value` tree. Measured with
/// `cargo bench -p kdev-core --bench informer_sync` (10,000 ConfigMaps of 1 KiB): the cache
/// takes 37.0 MB of heap without the transform and 22.8 MB with it (−38%); the process's peak
/// RSS drops from 53 MB to 37 MB. The transform runs on each object as it is decoded, so a
/// list in flight never holds the fields either. Use it unless a controller reads managedFields
/// from its cache.
pub fn strip_managed_fields<K: Resource>() -> Transform<K> {
    Arc::new(|obj: &mut K| obj.meta_mut().managed_fields = None)
}

/// Why an informer could not be used as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`SharedIndexInformer::wait_for_sync`] timed out.
    #[error("the informer of {resource} did not sync within {timeout:?}{}", last_error.as_ref().map(|e| format!("; the last list or watch failed: {e}")).unwrap_or_default())]
    SyncTimeout {
        /// What the informer lists and watches: the path, and its selectors
        /// (`/api/v1/namespaces/default/pods?labelSelector=app=web`).
        resource: String,
        /// How long the caller waited.
        timeout: Duration,
        /// The last error the informer's list or watch met while it waited, which is most
        /// often why it did not sync: a 403 (missing RBAC), a 404 (a CRD not installed, a
        /// wrong group or version), a server that cannot be reached. `None` when nothing
        /// failed, only took long (a large list, a slow handler).
        last_error: Option<String>,
    },
    /// The informer was already started.
    #[error("the informer is already running")]
    AlreadyStarted,
    /// [`SharedIndexInformer::wait_for_sync`]: the informer was shut down before it synced (as
    /// client-go's `WaitForCacheSync` gives up when its stop channel closes).
    #[error("the informer was shut down before it synced")]
    Stopped,
    /// [`SharedIndexInformer::wait_for_sync`] ran out of time on an informer nobody started.
    #[error(
        "the informer of {resource} was never started: run it, or start the factory that made it \
         (a factory starts only the informers asked for before its start)"
    )]
    NotStarted {
        /// What the informer lists and watches.
        resource: String,
    },
    /// The informer stopped for good because its transform or an index function panicked
    /// (client-go's informer crashes the process then): its cache no longer follows the
    /// server. See [`SharedIndexInformer::failure`].
    #[error("the informer of {resource} failed: {message}")]
    Failed {
        /// What the informer lists and watches.
        resource: String,
        /// What panicked, and its message.
        message: String,
    },
}

/// Whether the initial list has been stored and dispatched, with a way to wait for it, and
/// the progress of the reflector that fills it (to say why it has not synced).
#[derive(Debug, Default)]
struct SyncFlag {
    flag: AtomicBool,
    notify: Notify,
    status: Mutex<Option<reflector::Status>>,
    /// The informer's stop token (`shutdown` cancels it): once cancelled before the flag is
    /// set, it never will be.
    stop: CancellationToken,
    /// What the informer lists and watches, for errors.
    resource: String,
    /// Why the informer stopped for good (a panic in its transform or an index function).
    failure: std::sync::OnceLock<String>,
    /// The handler threads still running, and a wake-up when one ends.
    handler_threads: AtomicUsize,
    handler_exit: Notify,
}

impl SyncFlag {
    fn set(&self) {
        if !self.flag.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// Synced, and not failed since: a failed informer's cache is not to be trusted.
    fn get(&self) -> bool {
        self.flag.load(Ordering::Acquire) && self.failure.get().is_none()
    }

    /// The error of a failed informer.
    fn failed(&self) -> Option<Error> {
        self.failure.get().map(|message| Error::Failed {
            resource: self.resource.clone(),
            message: message.clone(),
        })
    }

    /// A handler thread ended.
    fn handler_exited(&self) {
        self.handler_threads.fetch_sub(1, Ordering::AcqRel);
        self.handler_exit.notify_waiters();
    }

    /// Waits until no handler thread runs.
    async fn handlers_ended(&self) {
        loop {
            let exited = self.handler_exit.notified();
            if self.handler_threads.load(Ordering::Acquire) == 0 {
                return;
            }
            exited.await;
        }
    }

    /// Records why the informer failed, wakes its waiters and stops it.
    fn fail(&self, message: String) {
        let _ = self.failure.set(message);
        self.notify.notify_waiters();
        self.stop.cancel();
    }

    /// The error of a wait that ran out after `timeout`.
    fn timed_out(&self, timeout: Duration) -> Error {
        Error::SyncTimeout {
            resource: self.resource.clone(),
            timeout,
            last_error: self.status.lock().as_ref().and_then(reflector::Status::last_error),
        }
    }
}

/// In which order an informer hands its handlers what the watch saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// client-go's classic DeltaFIFO: keys leave in the order they first arrived, each with
    /// every change it has had since; the order between keys is not kept (an `A` changed
    /// after `B` was added can reach handlers before `B`'s add, when `A` was queued first).
    #[default]
    PerKey,
    /// client-go's RealFIFO (`InOrderInformers`, on by default since 1.33): every change
    /// leaves in the order it arrived, across keys too.
    Arrival,
}

/// The queue between an informer's reflector and its handlers.
enum Fifo<K> {
    PerKey(Arc<DeltaFifo<K>>),
    Arrival(Arc<RealFifo<K>>),
}

impl<K: Resource + Send + Sync + 'static> Fifo<K> {
    fn new(order: Order, store: &Store<K>) -> Self {
        let config = delta_fifo::Config::default().known_objects(store.clone());
        match order {
            Order::PerKey => Fifo::PerKey(Arc::new(DeltaFifo::new(config))),
            Order::Arrival => Fifo::Arrival(Arc::new(RealFifo::new(config))),
        }
    }
    /// The reflector's end of the queue.
    fn sink(&self) -> Box<dyn Sink<K> + Sync> {
        match self {
            Fifo::PerKey(f) => Box::new(f.clone()),
            Fifo::Arrival(f) => Box::new(f.clone()),
        }
    }
    fn has_synced(&self) -> bool {
        match self {
            Fifo::PerKey(f) => f.has_synced(),
            Fifo::Arrival(f) => f.has_synced(),
        }
    }
    fn close(&self) {
        match self {
            Fifo::PerKey(f) => f.close(),
            Fifo::Arrival(f) => f.close(),
        }
    }
    /// Pops one key's deltas (per key) or one delta (in arrival order) and runs `process` on
    /// them while the FIFO is locked.
    async fn pop(&self, process: impl FnOnce(&mut dyn Iterator<Item = Delta<K>>, bool)) -> Result<(), Closed> {
        match self {
            Fifo::PerKey(f) => f.pop(|deltas, initial| process(&mut deltas.into_iter(), initial)).await,
            Fifo::Arrival(f) => {
                f.pop(|delta, initial| process(&mut std::iter::once(delta), initial))
                    .await
            }
        }
    }
}

/// A `Sink` that applies the transform to each object as it is decoded, before the FIFO (or
/// the rest of a list) holds it.
struct TransformSink<K> {
    queue: Box<dyn Sink<K> + Sync>,
    fifo: Arc<Fifo<K>>,
    transform: Option<Transform<K>>,
    synced: Arc<SyncFlag>,
}

impl<K: Resource + Clone + Send + Sync + 'static> Sink<K> for TransformSink<K> {
    fn accept(&self, mut obj: K) -> Arc<K> {
        if let Some(t) = &self.transform {
            t(&mut obj);
        }
        Arc::new(obj)
    }
    fn add(&mut self, obj: Arc<K>) {
        self.queue.add(obj);
    }
    fn update(&mut self, obj: Arc<K>) {
        self.queue.update(obj);
    }
    fn delete(&mut self, obj: Arc<K>) {
        self.queue.delete(obj);
    }
    fn current(&self, key: &str) -> Option<Arc<K>> {
        self.queue.current(key)
    }
    fn replace(&mut self, list: Vec<Arc<K>>) {
        self.queue.replace(list);
        // An empty first list is synced at once: there is nothing to pop.
        if self.fifo.has_synced() {
            self.synced.set();
        }
    }
}

struct Inner<K> {
    lw: ListWatch<K>,
    config: reflector::Config,
    store: Store<K>,
    /// The store writer and the handlers, locked together: a store change and its
    /// notification happen as one step, so a late handler sees every object exactly once.
    dispatch: Mutex<Dispatch<K>>,
    fifo: Arc<Fifo<K>>,
    transform: Option<Transform<K>>,
    synced: Arc<SyncFlag>,
    started: AtomicBool,
    /// `run` was called, or a factory spawned it (before its first poll).
    start_requested: AtomicBool,
    /// The resync period of handlers added with `resync: None`.
    default_resync: Mutex<Option<Duration>>,
}

struct Dispatch<K> {
    writer: Writer<K>,
    handlers: Vec<HandlerSlot<K>>,
    next_id: u64,
}

/// One watch per resource, a local indexed cache, and events fanned out to handlers.
///
/// # Guarantees
/// 1. The store is updated before handlers are told; handlers see the store at least as new
///    as the event.
/// 2. Each handler has its own unbounded buffer and its own thread (client-go gives each its
///    own goroutine): a slow handler, or one that blocks, never delays the reflector, the
///    store or another handler, on any tokio runtime. The thread enters the runtime the
///    handler was added from, so a handler may `tokio::spawn` or send on tokio channels.
/// 3. Events for one key reach each handler in order. By default ([`Order::PerKey`]) the
///    informer feeds a [`DeltaFifo`], client-go's classic queue: keys leave
///    it in the order they first arrived, each with all its changes since. With
///    [`Order::Arrival`] it feeds a [`RealFifo`], as client-go's
///    informers do by default since 1.33 (`InOrderInformers`), and every change reaches handlers in the order
///    the watch saw it, across keys too. (A controller's workqueue reorders keys anyway.)
/// 4. A handler added after the informer started first receives an `Add` (with `initial:
///    true`) for every cached object, then every later event (client-go's late subscription).
/// 5. [`has_synced`](Self::has_synced) turns true once the initial list has been stored and
///    dispatched.
///
/// # Memory usage
/// Objects are held once, as `Arc<K>`, by the store; handlers get clones of the `Arc`. A slow
/// handler's buffer grows without bound (as in client-go); watch `Registration::pending`.
pub struct SharedIndexInformer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for SharedIndexInformer<K> {
    fn clone(&self) -> Self {
        SharedIndexInformer {
            inner: self.inner.clone(),
        }
    }
}

impl<K> Debug for SharedIndexInformer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIndexInformer")
            .field("lw", &self.inner.lw)
            .finish_non_exhaustive()
    }
}

impl<K> SharedIndexInformer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `lw`; nothing happens until [`run`](Self::run) is called.
    pub fn new(lw: ListWatch<K>, config: reflector::Config) -> Self {
        Self::with_transform(lw, config, None)
    }

    /// An informer whose objects pass through `transform` before they are stored.
    pub fn with_transform(lw: ListWatch<K>, config: reflector::Config, transform: Option<Transform<K>>) -> Self {
        Self::with_order(lw, config, transform, Order::default())
    }

    /// An informer whose objects pass through `transform` before they are stored, and whose
    /// handlers get the watch's changes in `order`.
    pub fn with_order(
        lw: ListWatch<K>,
        config: reflector::Config,
        transform: Option<Transform<K>>,
        order: Order,
    ) -> Self {
        let (store, writer) = store::store::<K>();
        let fifo = Arc::new(Fifo::new(order, &store));
        let resource = lw.to_string();
        SharedIndexInformer {
            inner: Arc::new(Inner {
                lw,
                config,
                store,
                dispatch: Mutex::new(Dispatch {
                    writer,
                    handlers: Vec::new(),
                    next_id: 0,
                }),
                fifo,
                transform,
                synced: Arc::new(SyncFlag {
                    resource,
                    ..SyncFlag::default()
                }),
                started: AtomicBool::new(false),
                start_requested: AtomicBool::new(false),
                default_resync: Mutex::new(None),
            }),
        }
    }

    /// Adds a named index to the store (before or after start; existing objects are indexed).
    ///
    /// # Errors
    /// A store error when the name is taken.
    pub fn add_indexer<F>(&self, name: impl Into<String>, index: F) -> store::Result<()>
    where
        F: Fn(&K) -> Vec<String> + Send + Sync + 'static,
    {
        self.inner.dispatch.lock().writer.add_indexer(name, index)
    }

    /// In which order the informer hands its handlers the watch's changes.
    pub fn order(&self) -> Order {
        match *self.inner.fifo {
            Fifo::PerKey(_) => Order::PerKey,
            Fifo::Arrival(_) => Order::Arrival,
        }
    }

    /// The informer's store (cheap to clone; reads never copy objects).
    pub fn store(&self) -> Store<K> {
        self.inner.store.clone()
    }

    /// A typed lister over the store.
    pub fn lister(&self) -> Lister<K> {
        Lister::new(self.inner.store.clone())
    }

    /// Whether the initial list has been stored and dispatched (false again once the informer
    /// [failed](Self::failure)).
    pub fn has_synced(&self) -> bool {
        self.inner.synced.get()
    }

    /// Why the informer stopped for good, if it did: its transform or an index function
    /// panicked, so its cache no longer follows the server. client-go's informer crashes the
    /// process then; a kdev informer logs the panic at ERROR, stops, stops counting as synced,
    /// and a [`Manager`](crate::manager::Manager)'s `/healthz` fails, so that the process is
    /// restarted.
    pub fn failure(&self) -> Option<Error> {
        self.inner.synced.failed()
    }

    /// Waits until [`has_synced`](Self::has_synced), at most `timeout`.
    ///
    /// # Errors
    /// [`Error::SyncTimeout`]; [`Error::NotStarted`] when nobody started it;
    /// [`Error::Stopped`] when the informer is shut down first; [`Error::Failed`] when it
    /// failed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_sync(&self, timeout: Duration) -> Result<(), Error> {
        let wait = async {
            loop {
                let notified = self.inner.synced.notify.notified();
                if let Some(failed) = self.inner.synced.failed() {
                    return Err(failed);
                }
                if self.has_synced() {
                    return Ok(());
                }
                if self.inner.synced.stop.is_cancelled() {
                    return Err(Error::Stopped);
                }
                tokio::select! {
                    () = notified => {}
                    () = self.inner.synced.stop.cancelled() => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            if self.inner.start_requested.load(Ordering::Acquire) {
                self.inner.synced.timed_out(timeout)
            } else {
                Error::NotStarted {
                    resource: self.inner.synced.resource.clone(),
                }
            }
        })?
    }

    /// Sets the resync period of the handlers added from now on with `resync: None` (client-go's
    /// `defaultEventHandlerResyncPeriod`, the period `AddEventHandler` uses); `None` or zero, the
    /// default, means no resync. Handlers already added keep theirs. Set it before handing the
    /// informer out: every holder shares it, as they share the informer. A
    /// [`SharedInformerFactory`] sets the factory's
    /// [`default_resync`](SharedInformerFactory::default_resync) on each informer it makes;
    /// change that, not this, on a factory's informers.
    pub fn set_default_resync(&self, period: Option<Duration>) {
        *self.inner.default_resync.lock() = period.filter(|p| !p.is_zero());
    }

    /// The resync period of handlers added with `resync: None`; see
    /// [`set_default_resync`](Self::set_default_resync).
    pub fn default_resync(&self) -> Option<Duration> {
        *self.inner.default_resync.lock()
    }

    /// Registers a handler; it runs on its own thread with its own buffer, and may block.
    ///
    /// `resync`: replay every cached object to this handler as an `Update` with identical old
    /// and new objects at this period (client-go's per-handler resync). `None` takes the
    /// informer's [`default_resync`](Self::default_resync) (none unless set, as client-go's
    /// `AddEventHandler` takes the informer's default); `Some(Duration::ZERO)` asks for no
    /// resync whatever the default. Periods under one second are raised to one second, as
    /// client-go does. A replay is sent in step with the informer's own events, so it never
    /// overtakes an add or a delete of the same key.
    ///
    /// A handler added after [`shutdown`](Self::shutdown) receives the replay of the cache and
    /// nothing more.
    ///
    /// # Panics
    /// When a resync period applies (given, or the informer's default) outside a tokio runtime
    /// (the resync timer runs there).
    pub fn add_event_handler<F>(&self, handler: F, resync: Option<Duration>) -> Registration
    where
        F: FnMut(Event<K>) + Send + 'static,
    {
        let mut d = self.inner.dispatch.lock();
        d.next_id += 1;
        let id = d.next_id;
        let started = self.inner.started.load(Ordering::Acquire);
        let existing = if started { self.inner.store.list() } else { Vec::new() };
        let (slot, registration) = handler::spawn(id, handler, existing, self.inner.synced.clone());
        if self.inner.synced.stop.is_cancelled() {
            return registration;
        }
        d.handlers.push(slot);
        let resync = resync.or_else(|| *self.inner.default_resync.lock());
        if let Some(period) = resync.filter(|p| !p.is_zero()) {
            let period = if period < MINIMUM_RESYNC_PERIOD {
                tracing::warn!(?period, "a resync period under 1 s is raised to 1 s");
                MINIMUM_RESYNC_PERIOD
            } else {
                period
            };
            tokio::spawn(resync_handler(
                Arc::downgrade(&self.inner),
                self.inner.synced.stop.clone(),
                id,
                period,
            ));
        }
        registration
    }

    /// Removes a handler: it gets no event after the one it may be handling, as client-go's
    /// `RemoveEventHandler` drops the listener's pending notifications.
    pub fn remove_event_handler(&self, registration: &Registration) {
        self.inner.dispatch.lock().handlers.retain(|h| {
            let keep = h.id() != registration.id();
            if !keep {
                h.stop();
            }
            keep
        });
    }

    /// The reflector's progress (None before `run`).
    pub fn reflector_status(&self) -> Option<reflector::Status> {
        self.inner.synced.status.lock().clone()
    }

    /// Stops the informer: the reflector ends, and the handlers after the event each may be
    /// handling (the buffered ones are dropped, as client-go's do); [`run`](Self::run) returns
    /// once their threads have ended.
    ///
    /// Every clone is the same informer: shutting one down stops it for all its holders. On an
    /// informer from a [`SharedInformerFactory`], which other controllers and readers may share,
    /// remove your handler with [`remove_event_handler`](Self::remove_event_handler) instead,
    /// and leave the informer to the factory's [`shutdown`](SharedInformerFactory::shutdown).
    pub fn shutdown(&self) {
        self.inner.synced.stop.cancel();
        self.inner.fifo.close();
        for handler in self.inner.dispatch.lock().handlers.drain(..) {
            handler.stop();
        }
    }

    /// Runs the reflector and dispatches its deltas until [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call; [`Error::Failed`] when the transform or an
    /// index function panicked (the informer stops then: see [`failure`](Self::failure)).
    ///
    /// # Cancel safety
    /// Dropping the future shuts the informer down, as [`shutdown`](Self::shutdown) does: the
    /// handlers' threads end after the event in hand and the resync timers stop, rather than
    /// go on serving a cache nobody updates (without waiting for the threads). [`has_synced`](Self::has_synced) stays true,
    /// as client-go's `HasSynced` does after its informer stops.
    pub async fn run(&self) -> Result<(), Error> {
        self.inner.start_requested.store(true, Ordering::Release);
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyStarted);
        }
        let _shutdown = OnDrop(|| self.shutdown());
        // Handlers registered before start get the initial list as Add events with `initial`.
        let sink = TransformSink {
            queue: self.inner.fifo.sink(),
            fifo: self.inner.fifo.clone(),
            transform: self.inner.transform.clone(),
            synced: self.inner.synced.clone(),
        };
        let reflector = Reflector::new(self.inner.lw.clone(), sink, self.inner.config.clone());
        *self.inner.synced.status.lock() = Some(reflector.status());
        let stop = self.inner.synced.stop.clone();
        // The transform runs in the reflector's sink, index functions as deltas are stored: a
        // panic in either would end this future with the informer looking synced.
        let reflect = AssertUnwindSafe(reflector.run(stop.clone())).catch_unwind();
        let process = AssertUnwindSafe(self.process()).catch_unwind();
        tokio::pin!(reflect, process);
        let ended = tokio::select! {
            r = &mut reflect => r.map(drop),
            r = &mut process => r,
        };
        let result = match ended {
            Ok(()) => Ok(()),
            Err(panic) => {
                let message = format!(
                    "its transform or an index function panicked: {}",
                    crate::controller::panic_message(&*panic)
                );
                tracing::error!(
                    resource = %self.inner.synced.resource,
                    "the informer stopped: {message}; its cache no longer follows the server"
                );
                self.inner.synced.fail(message);
                Err(self.inner.synced.failed().unwrap_or(Error::Stopped))
            }
        };
        // As client-go's `Run` waits for its processor: no handler runs once this returns.
        self.shutdown();
        self.inner.synced.handlers_ended().await;
        result
    }

    async fn process(&self) {
        let inner = &self.inner;
        loop {
            let popped = inner
                .fifo
                .pop(|deltas, initial| {
                    let mut d = inner.dispatch.lock();
                    for delta in deltas {
                        match (delta.kind, delta.object) {
                            (DeltaType::Deleted, DeltaObject::Tombstone(t)) => {
                                // Missing from a relist: deleted while the watch was down.
                                if let Some(obj) = d.writer.delete_key(&t.key).or(t.object) {
                                    d.fanout(Event::Delete {
                                        obj,
                                        final_state_unknown: true,
                                    });
                                }
                            }
                            (DeltaType::Deleted, DeltaObject::Object(obj)) => {
                                // The object of the DELETED event, as client-go's `OnDelete`
                                // gets it: its final state, with the deletion's resourceVersion.
                                d.writer.delete(&obj);
                                d.fanout(Event::Delete {
                                    obj,
                                    final_state_unknown: false,
                                });
                            }
                            (kind, object) => {
                                let Some(obj) = object.get().cloned() else { continue };
                                match d.writer.apply(obj.clone()) {
                                    // An unchanged object from a relist (or a FIFO resync) is a
                                    // sync, not a change: client-go hands it only to handlers
                                    // due for a resync, and kdev's handlers get their resyncs
                                    // from their own timers.
                                    Some(old) if is_sync(kind, &*old, &*obj) => {}
                                    Some(old) => d.fanout(Event::Update { old, new: obj }),
                                    None => d.fanout(Event::Add { obj, initial }),
                                }
                            }
                        }
                    }
                })
                .await;
            if popped.is_err() {
                return;
            }
            if !inner.synced.get() && inner.fifo.has_synced() {
                inner.synced.set();
            }
        }
    }
}

/// Runs its closure when dropped: shuts an informer down when its `run` future ends or is
/// dropped, marks a controller's key done however its processing ends.
pub(crate) struct OnDrop<F: FnMut()>(pub(crate) F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// client-go's `isSync`: a `Sync` delta, or a `Replaced` one whose object has the stored
/// object's resourceVersion.
fn is_sync<K: Resource>(kind: DeltaType, old: &K, new: &K) -> bool {
    match kind {
        DeltaType::Sync => true,
        DeltaType::Replaced => old.meta().resource_version == new.meta().resource_version,
        _ => false,
    }
}

/// client-go's `minimumResyncPeriod`.
const MINIMUM_RESYNC_PERIOD: Duration = Duration::from_secs(1);

/// Replays the cache to handler `id` every `period`, under the dispatch lock so the replay
/// sits between the events around it, until the handler is removed or the informer stops. It
/// holds the informer only while it replays.
///
/// A handler still working through the previous replay skips this one: resyncs that come
/// faster than a handler can take them would otherwise grow its buffer without bound.
async fn resync_handler<K: Resource + Send + Sync + 'static>(
    inner: std::sync::Weak<Inner<K>>,
    stop: CancellationToken,
    id: u64,
    period: Duration,
) {
    // A period too long for the clock is no resync at all.
    let Some(first) = tokio::time::Instant::now().checked_add(period) else {
        return;
    };
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The handler has handled the last replay once it has handled this many events.
    let mut last_replay_end = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let d = inner.dispatch.lock();
        let Some(slot) = d.handlers.iter().find(|h| h.id() == id) else {
            return;
        };
        if !slot.has_handled(last_replay_end) {
            tracing::debug!(
                handler = id,
                "the handler is still on its last resync; this one is skipped"
            );
            continue;
        }
        for obj in inner.store.list() {
            if !slot.send(Event::Update {
                old: obj.clone(),
                new: obj,
            }) {
                return;
            }
        }
        last_replay_end = slot.sent();
    }
}

impl<K> Dispatch<K> {
    fn fanout(&mut self, event: Event<K>) {
        self.handlers.retain(|h| h.send(event.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use parking_lot::Mutex;

    use kube_client::api::WatchEvent;

    use super::{Error, Event, Order, Registration, SharedIndexInformer};
    use crate::reflector::Config;
    use crate::reflector::script::{Script, cm_at, gone, list_of};

    fn describe(ev: &Event<ConfigMap>) -> String {
        let name = |o: &ConfigMap| o.metadata.name.clone().unwrap_or_default();
        let rv = |o: &ConfigMap| o.metadata.resource_version.clone().unwrap_or_default();
        match ev {
            Event::Add { obj, initial } => format!("add {}{}", name(obj), if *initial { " initial" } else { "" }),
            Event::Update { old, new } => format!("update {} {}->{}", name(new), rv(old), rv(new)),
            Event::Delete {
                obj,
                final_state_unknown,
            } => format!(
                "delete {}{}",
                name(obj),
                if *final_state_unknown {
                    " final-state-unknown"
                } else {
                    ""
                }
            ),
        }
    }

    type Log = Arc<Mutex<Vec<String>>>;

    fn recorder() -> (Log, impl FnMut(Event<ConfigMap>) + Send + 'static) {
        let log = Log::default();
        let writer = log.clone();
        (log, move |ev: Event<ConfigMap>| writer.lock().push(describe(&ev)))
    }

    /// Waits until `done` holds, for at most 60,000 steps: a few minutes of real time at worst.
    /// Each step lets tokio's clock (paused in most of these tests) move 5 ms, and the
    /// handlers, which run on their own threads in real time, at least 1 ms.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..60_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until every event sent to these handlers has been handled.
    async fn handled(registrations: &[&Registration]) {
        until(|| registrations.iter().all(|r| r.pending() == 0)).await;
    }

    /// An informer over `script`, with paginated lists; start it with [`run`].
    fn informer(script: &Arc<Script>) -> SharedIndexInformer<ConfigMap> {
        SharedIndexInformer::new(script.list_watch(), Config::default().streaming_lists(false))
    }

    /// An informer over a script that lists `names` (each at resourceVersion 1), then
    /// watches quietly.
    fn listing(names: &[&str]) -> SharedIndexInformer<ConfigMap> {
        let script = Arc::new(Script::default());
        script
            .list(list_of(names.iter().map(|n| cm_at(n, "1")).collect(), "10", None))
            .watch(Ok(Vec::new()));
        informer(&script)
    }

    fn run(informer: &SharedIndexInformer<ConfigMap>) {
        let runner = informer.clone();
        tokio::spawn(async move { runner.run().await });
    }

    /// A handler that finishes one event per `()` sent on the returned sender.
    fn gated() -> (
        std::sync::mpsc::Sender<()>,
        impl FnMut(Event<ConfigMap>) + Send + 'static,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        (release, move |_| {
            let _ = wait.recv();
        })
    }

    /// A handler that counts its events and blocks on each until released.
    fn counting_gate() -> (
        Arc<std::sync::atomic::AtomicUsize>,
        std::sync::mpsc::Sender<()>,
        impl FnMut(Event<ConfigMap>) + Send + 'static,
    ) {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, mut gate) = gated();
        let seen = count.clone();
        (count, release, move |ev| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gate(ev);
        })
    }

    /// Waiting on an informer nobody started says so.
    #[tokio::test]
    async fn waiting_on_an_informer_never_started_says_so() {
        let informer = listing(&["a"]);
        let err = informer
            .wait_for_sync(Duration::from_millis(50))
            .await
            .expect_err("never started");
        assert!(
            matches!(&err, Error::NotStarted { .. }) && err.to_string().contains("never started"),
            "{err:?}"
        );
    }

    /// A handler removed before it handled its initial adds never syncs, and its waiters hear
    /// so at once.
    #[tokio::test]
    async fn a_handler_removed_before_its_initial_adds_stops_its_waiters() {
        let informer = listing(&["a", "b"]);
        let (count, release, handler) = counting_gate();
        let registration = informer.add_event_handler(handler, None);
        run(&informer);
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        until(|| count.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
        let waiting = tokio::spawn({
            let registration = registration.clone();
            async move { registration.wait_for_sync(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        informer.remove_event_handler(&registration);
        let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiter is told at once")
            .expect("joined");
        assert!(matches!(waited, Err(Error::Stopped)), "{waited:?}");
        drop(release);
        informer.shutdown();
    }

    /// client-go's `RemoveEventHandler`: the listener's pending notifications go with it.
    #[tokio::test]
    async fn a_removed_handler_gets_nothing_after_the_event_in_hand() {
        let informer = listing(&["a", "b", "c"]);
        let (count, release, handler) = counting_gate();
        let registration = informer.add_event_handler(handler, None);
        run(&informer);
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        until(|| count.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
        assert_eq!(registration.pending(), 3, "one in hand, two buffered");
        informer.remove_event_handler(&registration);
        drop(release);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        informer.shutdown();
    }

    /// client-go's `Run` waits for its processor: once `run` returns after a shutdown, no
    /// handler runs, and the buffered events are dropped.
    #[tokio::test]
    async fn run_returns_after_a_shutdown_once_no_handler_runs() {
        let informer = listing(&["a", "b", "c"]);
        let (count, release, handler) = counting_gate();
        informer.add_event_handler(handler, None);
        let runner = informer.clone();
        let task = tokio::spawn(async move { runner.run().await });
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        until(|| count.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
        informer.shutdown();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!task.is_finished(), "the handler still holds its event");
        drop(release);
        let ended = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("run returns once the handler is done")
            .expect("joined");
        assert!(ended.is_ok(), "{ended:?}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the buffered events were dropped"
        );
    }

    /// A panicking transform (or index function) stops the informer for good, and it says so,
    /// instead of passing for synced with a cache that no longer follows the server.
    #[tokio::test]
    async fn a_panicking_transform_fails_the_informer() {
        let script = Arc::new(Script::default());
        script.list(list_of(vec![cm_at("a", "1")], "10", None)).watch(Ok(vec![
            WatchEvent::Added(cm_at("boom", "11")),
            WatchEvent::Added(cm_at("later", "12")),
        ]));
        let transform: super::Transform<ConfigMap> = Arc::new(|cm: &mut ConfigMap| {
            if cm.metadata.name.as_deref() == Some("boom") {
                panic!("cannot transform boom");
            }
        });
        let informer = SharedIndexInformer::with_transform(
            script.list_watch(),
            Config::default().streaming_lists(false),
            Some(transform),
        );
        let (log, handler) = recorder();
        informer.add_event_handler(handler, None);
        let runner = informer.clone();
        let ended = tokio::time::timeout(Duration::from_secs(10), async move { runner.run().await })
            .await
            .expect("run ends");
        let failed =
            |e: &Error| matches!(e, Error::Failed { message, .. } if message.contains("cannot transform boom"));
        assert!(ended.as_ref().is_err_and(failed), "{ended:?}");
        assert!(!informer.has_synced(), "a failed informer is not synced");
        assert!(informer.failure().as_ref().is_some_and(failed));
        let waited = informer.wait_for_sync(Duration::from_secs(1)).await;
        assert!(waited.as_ref().is_err_and(failed), "{waited:?}");
        assert!(!log.lock().iter().any(|e| e.contains("later")), "{:?}", log.lock());
    }

    /// An index function that panics fails the informer the same way.
    #[tokio::test]
    async fn a_panicking_index_function_fails_the_informer() {
        let script = Arc::new(Script::default());
        script
            .list(list_of(vec![cm_at("a", "1")], "10", None))
            .watch(Ok(vec![WatchEvent::Added(cm_at("boom", "11"))]));
        let informer = informer(&script);
        informer
            .add_indexer("by-name", |cm: &ConfigMap| {
                assert_ne!(cm.metadata.name.as_deref(), Some("boom"), "cannot index boom");
                Vec::new()
            })
            .expect("indexer");
        let runner = informer.clone();
        let ended = tokio::time::timeout(Duration::from_secs(10), async move { runner.run().await })
            .await
            .expect("run ends");
        assert!(
            matches!(&ended, Err(Error::Failed { message, .. }) if message.contains("cannot index boom")),
            "{ended:?}"
        );
        assert!(!informer.has_synced());
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_tells_handlers_what_changed_and_nothing_else() {
        let script = Arc::new(Script::default());
        script
            .list(list_of(
                vec![cm_at("a", "1"), cm_at("b", "1"), cm_at("c", "1")],
                "10",
                None,
            ))
            .watch(Ok(vec![gone()]))
            .list(list_of(vec![cm_at("a", "1"), cm_at("b", "2")], "20", None))
            .watch(Ok(Vec::new()));
        let informer = informer(&script);
        let (log, handler) = recorder();
        let registration = informer.add_event_handler(handler, None);
        run(&informer);
        until(|| log.lock().len() >= 5).await;
        // Let anything else that would come arrive.
        tokio::time::sleep(Duration::from_secs(5)).await;
        handled(&[&registration]).await;
        // `a` is unchanged by the relist: no update for it (client-go treats a Replaced delta
        // with the same resourceVersion as a sync). `c` vanished while the watch was down.
        assert_eq!(
            *log.lock(),
            [
                "add a initial",
                "add b initial",
                "add c initial",
                "update b 1->2",
                "delete c final-state-unknown"
            ]
        );
        let names: Vec<_> = informer.store().list_keys().iter().map(|k| k.to_string()).collect();
        assert_eq!(names.len(), 2);
        informer.shutdown();
    }

    /// Three changes arrive together, before the informer pops any: per key, `a`'s two leave
    /// together; in arrival order, `b`'s add comes between them.
    #[tokio::test(start_paused = true)]
    async fn handlers_get_changes_per_key_or_in_arrival_order() {
        for (order, expected) in [
            (Order::PerKey, ["add a", "update a 2->4", "add b"]),
            (Order::Arrival, ["add a", "add b", "update a 2->4"]),
        ] {
            let script = Arc::new(Script::default());
            script.list(list_of(Vec::new(), "1", None)).watch(Ok(vec![
                WatchEvent::Added(cm_at("a", "2")),
                WatchEvent::Added(cm_at("b", "3")),
                WatchEvent::Modified(cm_at("a", "4")),
            ]));
            let informer = SharedIndexInformer::with_order(
                script.list_watch(),
                Config::default().streaming_lists(false),
                None,
                order,
            );
            let (log, handler) = recorder();
            let registration = informer.add_event_handler(handler, None);
            run(&informer);
            until(|| log.lock().len() >= 3).await;
            handled(&[&registration]).await;
            assert_eq!(*log.lock(), expected, "{order:?}");
            informer.shutdown();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_handler_skips_that_event_and_keeps_receiving() {
        let informer = listing(&["a", "b"]);
        let (log, mut record) = recorder();
        let registration = informer.add_event_handler(
            move |ev: Event<ConfigMap>| {
                if describe(&ev).starts_with("add a") {
                    panic!("a handler bug");
                }
                record(ev);
            },
            None,
        );
        run(&informer);
        until(|| !log.lock().is_empty()).await;
        handled(&[&registration]).await;
        assert_eq!(*log.lock(), ["add b initial"]);
        assert_eq!(registration.pending(), 0);
        assert!(registration.has_synced());
        informer.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn resyncs_go_only_to_the_handler_that_asked_at_least_a_second_apart_and_end_with_the_informer() {
        let informer = listing(&["a"]);
        run(&informer);
        let (every_30s, h1) = recorder();
        let (never, h2) = recorder();
        let (every_ms, h3) = recorder();
        let r1 = informer.add_event_handler(h1, Some(Duration::from_secs(30)));
        let r2 = informer.add_event_handler(h2, None);
        let r3 = informer.add_event_handler(h3, Some(Duration::from_millis(1)));
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        // Handlers that keep up: each second's events are handled before the clock moves on
        // (a handler still on its last replay would skip the next).
        for _ in 0..65 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            handled(&[&r1, &r2, &r3]).await;
        }
        assert_eq!(*every_30s.lock(), ["add a initial", "update a 1->1", "update a 1->1"]);
        assert_eq!(*never.lock(), ["add a initial"]);
        let fast = every_ms.lock().len();
        assert!((60..=67).contains(&fast), "raised to one a second: {fast}");
        informer.shutdown();
        tokio::time::sleep(Duration::from_secs(65)).await;
        handled(&[&r1]).await;
        assert_eq!(every_30s.lock().len(), 3, "no resync after shutdown");
        // A handler added after shutdown gets the cache, and nothing more.
        let (late, h4) = recorder();
        let r4 = informer.add_event_handler(h4, Some(Duration::from_secs(1)));
        until(|| !late.lock().is_empty()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        handled(&[&r4]).await;
        assert_eq!(*late.lock(), ["add a initial"]);
    }

    #[tokio::test(start_paused = true)]
    async fn handlers_without_a_period_take_the_informers_default_and_zero_opts_out() {
        let informer = listing(&["a"]);
        let (before, h1) = recorder();
        let r1 = informer.add_event_handler(h1, None);
        informer.set_default_resync(Some(Duration::from_secs(10)));
        assert_eq!(informer.default_resync(), Some(Duration::from_secs(10)));
        run(&informer);
        let (defaulted, h2) = recorder();
        let (own, h3) = recorder();
        let (opted_out, h4) = recorder();
        let r2 = informer.add_event_handler(h2, None);
        let r3 = informer.add_event_handler(h3, Some(Duration::from_secs(30)));
        let r4 = informer.add_event_handler(h4, Some(Duration::ZERO));
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        for _ in 0..35 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            handled(&[&r1, &r2, &r3, &r4]).await;
        }
        assert_eq!(*before.lock(), ["add a initial"], "added before the default was set");
        assert_eq!(defaulted.lock().len(), 4, "{:?}", defaulted.lock());
        assert_eq!(*own.lock(), ["add a initial", "update a 1->1"]);
        assert_eq!(*opted_out.lock(), ["add a initial"]);
        informer.set_default_resync(Some(Duration::ZERO));
        assert_eq!(informer.default_resync(), None);
        informer.shutdown();
    }

    /// On a current-thread runtime a handler that blocks would stop everything if handlers ran
    /// on the runtime: the reflector, the store and the other handlers.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_handler_holds_up_nothing_even_on_a_current_thread_runtime() {
        let informer = listing(&["a", "b"]);
        let (release, blocked) = gated();
        let stuck = informer.add_event_handler(blocked, None);
        let (log, handler) = recorder();
        let free = informer.add_event_handler(handler, None);
        run(&informer);
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        free.wait_for_sync(Duration::from_secs(10))
            .await
            .expect("the other handler keeps up");
        assert_eq!(*log.lock(), ["add a initial", "add b initial"]);
        assert_eq!(informer.store().len(), 2);
        assert_eq!(stuck.pending(), 2, "the blocked handler holds its events");
        drop(release);
        handled(&[&stuck]).await;
        informer.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_run_future_shuts_the_informer_down() {
        let informer = listing(&["a"]);
        let (log, handler) = recorder();
        let registration = informer.add_event_handler(handler, Some(Duration::from_secs(1)));
        let runner = informer.clone();
        let task = tokio::spawn(async move { runner.run().await });
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        handled(&[&registration]).await;
        task.abort();
        let _ = task.await;
        assert!(informer.inner.synced.stop.is_cancelled());
        tokio::time::sleep(Duration::from_secs(10)).await;
        handled(&[&registration]).await;
        assert_eq!(*log.lock(), ["add a initial"], "no resync from a stopped informer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_still_on_its_last_resync_skips_the_next() {
        let informer = listing(&["a", "b"]);
        let (release, blocked) = gated();
        let registration = informer.add_event_handler(blocked, Some(Duration::from_secs(1)));
        run(&informer);
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Two initial adds and one replay of two objects, not ten replays.
        assert_eq!(registration.pending(), 4);
        drop(release);
        handled(&[&registration]).await;
        informer.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_registration_has_synced_once_its_handler_has_handled_the_initial_adds() {
        let informer = listing(&["a", "b"]);
        let (release, handler) = gated();
        let registration = informer.add_event_handler(handler, None);
        run(&informer);
        informer.wait_for_sync(Duration::from_secs(10)).await.expect("synced");
        assert!(informer.has_synced());
        assert!(!registration.has_synced(), "its initial adds are still buffered");
        release.send(()).expect("handler waits");
        let one_left = registration.wait_for_sync(Duration::from_millis(100)).await;
        assert!(
            matches!(one_left, Err(Error::SyncTimeout { timeout, .. }) if timeout == Duration::from_millis(100)),
            "{one_left:?}"
        );
        release.send(()).expect("handler waits");
        registration
            .wait_for_sync(Duration::from_secs(10))
            .await
            .expect("handled both");
        assert!(registration.has_synced());
        // A late handler is synced once it has handled its replay of the cache.
        let (release, handler) = gated();
        let late = informer.add_event_handler(handler, None);
        assert!(!late.has_synced(), "its replay is still buffered");
        release.send(()).expect("handler waits");
        release.send(()).expect("handler waits");
        late.wait_for_sync(Duration::from_secs(10))
            .await
            .expect("handled the replay");
        assert!(late.has_synced());
        informer.shutdown();
    }
}
