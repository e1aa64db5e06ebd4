//! The controller runtime: a [`Reconciler`], the [`Controller`] that feeds it from shared
//! informers through a rate-limited work queue, and its builder (controller-runtime's
//! `pkg/builder`, `pkg/controller` and `pkg/reconcile`).
//!
//! # How a controller works
//!
//! 1. Informers (shared through a [`SharedInformerFactory`]) watch the primary type
//!    ([`Controller::builder`]), the children it owns ([`Builder::owns`]) and anything else
//!    that matters ([`Builder::watches`]).
//! 2. Each event passes the [predicates](predicate) and is mapped to [`Request`]s — the
//!    object's own key, its controller owner's, or whatever the map function says — which go
//!    into a [`WorkQueue`]. A key is queued once however many events arrive; objects of the
//!    initial list (and resyncs) are queued at low priority so that real changes go first.
//! 3. `max_concurrent_reconciles` workers take keys from the queue. The queue never hands out
//!    a key that is being reconciled, so one object is never reconciled twice at once.
//! 4. The reconciler gets the cached object. Its result decides what happens to the key
//!    (controller-runtime's rules, `reconcileHandler`):
//!
//! | result | queue | `controller_runtime_reconcile_total{result}` |
//! |---|---|---|
//! | `Ok(Action::done())` | `forget` (backoff reset) | `success` |
//! | `Ok(Action::requeue_after(d))` | `forget`, then `add_after(d)` | `requeue_after` |
//! | `Err(e)` | `add_rate_limited` (per-key exponential backoff, 5 ms … 1000 s) | `error` |
//! | `Err(Error::terminal(e))` | not requeued | `error` (+ terminal errors) |
//! | panic | caught, logged, `add_rate_limited` | `error` (+ panics) |
//! | timeout ([`Builder::reconcile_timeout`]) | `add_rate_limited` | `error` (+ timeouts) |
//!
//! Each reconcile runs in a tracing span `reconcile` with `controller`, `namespace`, `name`
//! and `reconcile_id`. The span is at `ERROR` level, so it is enabled whenever anything is: a
//! reconcile error, or the reconciler's own log line, names its object even when only errors
//! are logged (Go's reconcile logger always carries these keys).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::controller::{Action, Context, Controller, Error};
//! use kube_client::{Api, api::PostParams};
//! use tokio_util::sync::CancellationToken;
//!
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let client = env.client();
//! # let ns = env.namespace().await?;
//! let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
//! let controller = Controller::builder(Api::<ConfigMap>::namespaced(client.clone(), &ns))
//!     .build(move |cm: Arc<ConfigMap>, ctx: Context| {
//!         let tx = tx.clone();
//!         async move {
//!             tx.send(ctx.request().name.clone()).ok();
//!             Ok::<_, Error>(Action::done())
//!         }
//!     })?;
//! let stop = CancellationToken::new();
//! let running = tokio::spawn({
//!     let (controller, stop) = (controller.clone(), stop.clone());
//!     async move { controller.run(stop).await }
//! });
//!
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("web".into());
//! Api::<ConfigMap>::namespaced(client, &ns).create(&PostParams::default(), &cm).await?;
//! # loop {
//! let name = seen.recv().await.unwrap();
//! # if name == "web" { break; } }
//! stop.cancel();
//! running.await??;
//! # Ok(()) }
//! ```

mod metrics;
pub mod predicate;
mod reconcile;

use std::any::TypeId;
use std::collections::HashSet;
use std::fmt::{self, Debug};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::ClusterResourceScope;
use kube_client::{Api, Client};
use kube_core::Resource;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use metrics::Metrics;
pub use predicate::Predicate;
pub use reconcile::{Action, Context, Error, Reconciler, Request, Result};

use crate::informer::{self, Event, SharedIndexInformer, SharedInformerFactory};
use crate::store::Store;
use crate::workqueue::{self, AddOptions, LOW_PRIORITY, NORMAL_PRIORITY, RateLimiter, WorkQueue};

/// A typed Kubernetes object a controller can watch: any k8s-openapi type or custom resource
/// whose kind is known at compile time.
pub trait Object: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

impl<T> Object for T
where
    T: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    T::Scope: 'static,
{
}

/// Whether `K` is cluster-scoped (its k8s-openapi scope says so).
fn cluster_scoped<K: Resource>() -> bool
where
    K::Scope: 'static,
{
    TypeId::of::<K::Scope>() == TypeId::of::<ClusterResourceScope>()
}

/// Why a controller could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_concurrent_reconciles(0)`.
    #[error("max_concurrent_reconciles must be at least 1")]
    NoWorkers,
    /// The name is empty or not a valid metric label / DNS-1123-like name.
    #[error("invalid controller name {0:?}: use lowercase letters, digits, '-', '_' and '.'")]
    InvalidName(String),
    /// Another controller of the same manager has this name.
    #[error("a controller named {0:?} already exists")]
    DuplicateName(String),
}

/// Why a running controller stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// [`Controller::run`] was called twice.
    #[error("controller {0:?} was already started")]
    AlreadyStarted(String),
    /// An informer did not sync within the cache sync timeout.
    #[error("controller {controller:?}: caches did not sync")]
    CacheSync {
        /// The controller.
        controller: String,
        /// The informer's error.
        #[source]
        source: informer::Error,
    },
    /// A worker panicked outside the reconciler (whose panics are caught and retried): in a
    /// rate limiter, say. The other workers are stopped, as a Go controller's process would
    /// crash, rather than go on with fewer workers and nobody told.
    #[error("controller {controller:?}: a worker panicked: {message}")]
    WorkerPanicked {
        /// The controller.
        controller: String,
        /// The panic's message.
        message: String,
    },
}

/// One watched type: its informer, its predicate and how its events map to requests.
trait Source: Send + Sync {
    /// Registers the handler that feeds `queue`, replaying the cache to it every `resync`.
    fn register(&self, queue: &WorkQueue<Request>, resync: Option<Duration>) -> Registered;
}

/// A source's handler, registered.
struct Registered {
    /// Removes the handler.
    remove: Box<dyn FnOnce() + Send>,
    /// Synced once the informer has synced and the handler has queued every object of the
    /// initial list (controller-runtime waits on the handler's registration too, so the
    /// workers start with the whole initial state queued).
    registration: informer::Registration,
}

type MapFn<W> = Arc<dyn Fn(&W) -> Vec<Request> + Send + Sync>;

struct InformerSource<W> {
    informer: SharedIndexInformer<W>,
    predicate: Predicate<W>,
    map: MapFn<W>,
}

fn priority_of_update<W: Resource>(old: &Arc<W>, new: &Arc<W>) -> i32 {
    // A resync replays the cached object: same object, same resourceVersion.
    if Arc::ptr_eq(old, new) || old.meta().resource_version == new.meta().resource_version {
        LOW_PRIORITY
    } else {
        NORMAL_PRIORITY
    }
}

impl<W: Object> Source for InformerSource<W> {
    fn register(&self, queue: &WorkQueue<Request>, resync: Option<Duration>) -> Registered {
        let (queue, predicate, map) = (queue.clone(), self.predicate.clone(), self.map.clone());
        let enqueue = move |requests: Vec<Request>, priority: i32| {
            for r in requests {
                queue.add_with(r, AddOptions::default().priority(priority));
            }
        };
        let registration = self.informer.add_event_handler(
            move |event: Event<W>| match event {
                Event::Add { obj, initial } => {
                    if predicate.create(&obj) {
                        enqueue(map(&obj), if initial { LOW_PRIORITY } else { NORMAL_PRIORITY });
                    }
                }
                Event::Update { old, new } => {
                    if predicate.update(&old, &new) {
                        let priority = priority_of_update(&old, &new);
                        let mut requests = map(&new);
                        for r in map(&old) {
                            if !requests.contains(&r) {
                                requests.push(r);
                            }
                        }
                        enqueue(requests, priority);
                    }
                }
                Event::Delete { obj, .. } => {
                    if predicate.delete(&obj) {
                        enqueue(map(&obj), NORMAL_PRIORITY);
                    }
                }
            },
            resync,
        );
        let (informer, handle) = (self.informer.clone(), registration.clone());
        Registered {
            remove: Box::new(move || informer.remove_event_handler(&handle)),
            registration,
        }
    }
}

/// Builds a [`Controller`]: what it watches, how events map to requests, how it runs.
/// Start with [`Controller::builder`], or [`Manager::controller`](crate::manager::Manager::controller)
/// inside a manager (then finish with [`complete`](Self::complete)).
pub struct Builder<K> {
    client: Client,
    factory: Arc<SharedInformerFactory>,
    api: Api<K>,
    name: Option<String>,
    predicate: Predicate<K>,
    sources: Vec<Box<dyn Source>>,
    max_concurrent: usize,
    reconcile_timeout: Option<Duration>,
    cache_sync_timeout: Duration,
    queue_config: workqueue::Config<Request>,
    metrics: Option<Metrics>,
    queue_metrics: Option<workqueue::Metrics>,
    need_leader_election: bool,
    sync_period: Option<Duration>,
    /// Label and field selectors of the primary informer.
    selectors: (String, String),
    manager: Option<crate::manager::Manager>,
}

impl<K> Debug for Builder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("api", &self.api)
            .field("sources", &self.sources.len())
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl<K: Object> Builder<K>
where
    K::Scope: 'static,
{
    pub(crate) fn new(api: Api<K>, factory: Arc<SharedInformerFactory>) -> Self {
        Builder {
            client: api.clone().into_client(),
            factory,
            api,
            name: None,
            predicate: Predicate::all(),
            sources: Vec::new(),
            max_concurrent: 1,
            reconcile_timeout: None,
            cache_sync_timeout: Duration::from_secs(120),
            queue_config: workqueue::Config::default().rate_limiter(
                workqueue::rate_limiter::ItemExponential::unchecked(
                    Duration::from_millis(5),
                    Duration::from_secs(1000),
                ),
            ),
            metrics: None,
            queue_metrics: None,
            need_leader_election: true,
            sync_period: None,
            selectors: (String::new(), String::new()),
            manager: None,
        }
    }

    /// Watches and caches only the objects of `K` matching these label and field selectors
    /// (`""` for none) in this controller's primary informer, as kube-runtime's
    /// `watcher::Config::labels` does (controller-runtime sets them for a whole manager's
    /// cache, `cache.Options.ByObject`). A predicate filters events but still caches every
    /// object; a selector keeps the others out of the informer and off the wire.
    ///
    /// The informer is shared with every other controller and reader asking for `K` with the
    /// same scope and selectors, not with those asking for all of `K`.
    ///
    /// # Caveats
    /// - An object that stops matching (its label removed) leaves the cache, and its key is
    ///   reconciled as missing, as the API server's watch reports it deleted from the selection:
    ///   "not in the cache" then means "not selected", not "deleted". Clean up with a
    ///   finalizer, not on a missing object.
    /// - Reading `K` through a [`Manager`](crate::manager::Manager)'s cache starts a second
    ///   informer of every `K`, without the selectors.
    #[must_use]
    pub fn selectors(mut self, labels: &str, fields: &str) -> Self {
        self.selectors = (labels.to_string(), fields.to_string());
        self
    }

    pub(crate) fn manager(mut self, manager: crate::manager::Manager) -> Self {
        self.manager = Some(manager);
        self
    }

    pub(crate) fn take_manager(&mut self) -> Option<crate::manager::Manager> {
        self.manager.take()
    }

    /// The controller's name: its metrics label, its queue's name and its log field. Default:
    /// the lowercased kind of `K` (controller-runtime's default).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Filters the events of `K` itself (combine several with `&`, `|`, `!`).
    #[must_use]
    pub fn with_predicate(mut self, predicate: Predicate<K>) -> Self {
        self.predicate = self.predicate & predicate;
        self
    }

    /// Reconciles `K` when an object of type `C` that it controls changes: `C`'s controller
    /// owner reference (`controller: true`) of `K`'s group and kind names the request
    /// (controller-runtime's `Owns`, with `EnqueueRequestForOwner(OnlyControllerOwner)`).
    ///
    /// A controller of one namespace (made from a namespaced `Api`) watches its children in
    /// that namespace only, where owner references keep them: its RBAC may be a Role there.
    #[must_use]
    pub fn owns<C: Object>(self) -> Self
    where
        C::Scope: 'static,
    {
        let informer = self.scoped::<C>();
        self.owns_informer(informer, Predicate::all())
    }

    /// The shared informer of everything of `T` in the primary `Api`'s namespace when it has
    /// one and `T` is namespaced; else of everything of `T`.
    fn scoped<T: Object>(&self) -> SharedIndexInformer<T>
    where
        T::Scope: 'static,
    {
        let namespace = self.api.namespace().filter(|_| !cluster_scoped::<T>());
        self.factory.informer_in(self.client.clone(), namespace)
    }

    /// [`owns`](Self::owns) for the children `api` addresses (e.g. one namespace), with a
    /// predicate on their events.
    #[must_use]
    pub fn owns_with<C: Object>(self, api: Api<C>, predicate: Predicate<C>) -> Self
    where
        C::Scope: 'static,
    {
        let informer = self.factory.informer(api);
        self.owns_informer(informer, predicate)
    }

    /// [`owns`](Self::owns) through `informer`, for example one restricted by selectors from
    /// [`SharedInformerFactory::informer_with_selectors`]: the controller watches only the
    /// children that informer caches. Take it from the controller's factory
    /// ([`Controller::with_factory`], a manager's `factory()`), which the controller starts;
    /// run any other informer yourself, or the controller's cache sync times out.
    #[must_use]
    pub fn owns_from<C: Object>(self, informer: SharedIndexInformer<C>, predicate: Predicate<C>) -> Self
    where
        C::Scope: 'static,
    {
        self.owns_informer(informer, predicate)
    }

    fn owns_informer<C: Object>(mut self, informer: SharedIndexInformer<C>, predicate: Predicate<C>) -> Self
    where
        C::Scope: 'static,
    {
        let (group, kind) = (K::group(&()).into_owned(), K::kind(&()).into_owned());
        let owner_cluster_scoped = cluster_scoped::<K>();
        let map: MapFn<C> = Arc::new(move |child: &C| {
            let meta = child.meta();
            meta.owner_references
                .iter()
                .flatten()
                .filter(|r| r.controller == Some(true) && r.kind == kind && group_of(&r.api_version) == group)
                .map(|r| Request {
                    namespace: if owner_cluster_scoped {
                        None
                    } else {
                        meta.namespace.clone().filter(|ns| !ns.is_empty())
                    },
                    name: r.name.clone(),
                })
                .collect()
        });
        self.sources.push(Box::new(InformerSource {
            informer,
            predicate,
            map,
        }));
        self
    }

    /// Reconciles the requests `map` returns for every event of `W` (controller-runtime's
    /// `Watches` with `EnqueueRequestsFromMapFunc`); on updates both the old and the new
    /// object are mapped. A controller of one namespace watches namespaced `W` in that
    /// namespace only, as controller-runtime's namespace-restricted cache does; use
    /// [`watches_with`](Self::watches_with) and `Api::all` to watch every namespace.
    #[must_use]
    pub fn watches<W: Object>(self, map: impl Fn(&W) -> Vec<Request> + Send + Sync + 'static) -> Self
    where
        W::Scope: 'static,
    {
        let informer = self.scoped::<W>();
        self.watches_informer(informer, Arc::new(map), Predicate::all())
    }

    /// [`watches`](Self::watches) for the objects `api` addresses, with a predicate on their
    /// events.
    #[must_use]
    pub fn watches_with<W: Object>(
        self,
        api: Api<W>,
        map: impl Fn(&W) -> Vec<Request> + Send + Sync + 'static,
        predicate: Predicate<W>,
    ) -> Self
    where
        W::Scope: 'static,
    {
        let informer = self.factory.informer(api);
        self.watches_informer(informer, Arc::new(map), predicate)
    }

    /// [`watches`](Self::watches) through `informer`, for example one restricted by selectors
    /// from [`SharedInformerFactory::informer_with_selectors`]; see [`owns_from`](Self::owns_from).
    #[must_use]
    pub fn watches_from<W: Object>(
        self,
        informer: SharedIndexInformer<W>,
        map: impl Fn(&W) -> Vec<Request> + Send + Sync + 'static,
        predicate: Predicate<W>,
    ) -> Self
    where
        W::Scope: 'static,
    {
        self.watches_informer(informer, Arc::new(map), predicate)
    }

    fn watches_informer<W: Object>(
        mut self,
        informer: SharedIndexInformer<W>,
        map: MapFn<W>,
        predicate: Predicate<W>,
    ) -> Self
    where
        W::Scope: 'static,
    {
        self.sources.push(Box::new(InformerSource {
            informer,
            predicate,
            map,
        }));
        self
    }

    /// Replays every cached object to the controller about every `period` (jittered by ±10 %,
    /// so that controllers do not run in lock-step), queued at low priority behind real changes:
    /// controller-runtime's `SyncPeriod`. `Some(Duration::ZERO)` means never. `None`, the
    /// default of a controller built alone, replays at its informers'
    /// [default resync period](crate::informer::SharedIndexInformer::default_resync) (not
    /// jittered): none unless their factory [sets one](crate::informer::SharedInformerFactory::default_resync).
    /// A [`Manager`](crate::manager::Manager)'s controllers get the manager's (10 hours by
    /// default). A safety net for state no watch shows (something outside the cluster), not a
    /// substitute for watching what the controller owns. Predicates see the replays as updates
    /// whose old and new objects are the same, so `generation_changed` filters them out.
    #[must_use]
    pub fn sync_period(mut self, period: Option<Duration>) -> Self {
        self.sync_period = period;
        self
    }

    /// How many reconciles may run at once (different keys; one key is never reconciled twice
    /// at once). Default 1, as controller-runtime.
    #[must_use]
    pub fn max_concurrent_reconciles(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Abandon a reconcile that runs longer than `timeout`; it counts as an error and is
    /// retried with backoff. Default: no timeout.
    #[must_use]
    pub fn reconcile_timeout(mut self, timeout: Duration) -> Self {
        self.reconcile_timeout = Some(timeout);
        self
    }

    /// How long to wait for the informers' initial lists before giving up. Default 2 min.
    #[must_use]
    pub fn cache_sync_timeout(mut self, timeout: Duration) -> Self {
        self.cache_sync_timeout = timeout;
        self
    }

    /// The rate limiter of failed keys. Default: per-key exponential, 5 ms doubling to
    /// 1000 s (controller-runtime's default with its priority queue).
    #[must_use]
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<Request> + 'static) -> Self {
        self.queue_config = self.queue_config.rate_limiter(limiter);
        self
    }

    /// Report controller and work-queue metrics into these families (a manager passes its own).
    #[must_use]
    pub fn metrics(mut self, metrics: &Metrics, queue_metrics: &workqueue::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self.queue_metrics = Some(queue_metrics.clone());
        self
    }

    /// Whether the controller runs only while its manager holds the leader lease. Default true.
    #[must_use]
    pub fn need_leader_election(mut self, need: bool) -> Self {
        self.need_leader_election = need;
        self
    }

    /// Builds the controller; run it with [`Controller::run`] (or let a manager run it).
    ///
    /// # Errors
    /// [`BuildError`] for an invalid name or `max_concurrent_reconciles(0)`.
    pub fn build<R: Reconciler<K>>(self, reconciler: R) -> std::result::Result<Controller<K, R>, BuildError> {
        let name = self.name.clone().unwrap_or_else(|| K::kind(&()).to_lowercase());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        {
            return Err(BuildError::InvalidName(name));
        }
        if self.max_concurrent == 0 {
            return Err(BuildError::NoWorkers);
        }
        let mut queue_config = self.queue_config.name(name.clone());
        if let Some(m) = &self.queue_metrics {
            queue_config = queue_config.metrics(m);
        }
        if let Some(m) = &self.metrics {
            m.init(&name, self.max_concurrent);
        }
        let (labels, fields) = &self.selectors;
        let informer = self.factory.informer_with_selectors(self.api.clone(), labels, fields);
        let store = informer.store();
        let mut sources = self.sources;
        sources.insert(
            0,
            Box::new(InformerSource {
                informer,
                predicate: self.predicate,
                map: Arc::new(|o: &K| Request::from_object(o).into_iter().collect()),
            }),
        );
        Ok(Controller {
            inner: Arc::new(Inner {
                name: name.into(),
                reconciler,
                store,
                client: self.client,
                queue: WorkQueue::new(queue_config),
                sources,
                factory: self.factory,
                max_concurrent: self.max_concurrent,
                reconcile_timeout: self.reconcile_timeout,
                cache_sync_timeout: self.cache_sync_timeout,
                metrics: self.metrics,
                need_leader_election: self.need_leader_election,
                // controller-runtime's `resyncPeriod`: a factor in [0.9, 1.1).
                // A period too long for it stays as long as can be: no resync in practice.
                resync: self.sync_period.map(|p| {
                    Duration::try_from_secs_f64(p.as_secs_f64() * (0.9 + fastrand::f64() / 5.0))
                        .unwrap_or(Duration::MAX)
                }),
                started: AtomicBool::new(false),
            }),
        })
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

struct Inner<K, R> {
    name: Arc<str>,
    reconciler: R,
    store: Store<K>,
    client: Client,
    queue: WorkQueue<Request>,
    sources: Vec<Box<dyn Source>>,
    factory: Arc<SharedInformerFactory>,
    max_concurrent: usize,
    reconcile_timeout: Option<Duration>,
    cache_sync_timeout: Duration,
    metrics: Option<Metrics>,
    need_leader_election: bool,
    /// The jittered sync period: how often the sources replay their caches.
    resync: Option<Duration>,
    started: AtomicBool,
}

/// A controller: informers → predicates → a work queue → workers running a [`Reconciler`].
/// Cheap to clone (a handle).
pub struct Controller<K, R> {
    inner: Arc<Inner<K, R>>,
}

impl<K, R> Clone for Controller<K, R> {
    fn clone(&self) -> Self {
        Controller {
            inner: self.inner.clone(),
        }
    }
}

impl<K, R> Debug for Controller<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.inner.name)
            .field("max_concurrent", &self.inner.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Controller<(), ()> {
    /// A builder for a controller of `K` in every namespace, with its own informer factory.
    pub fn for_type<K: Object>(client: Client) -> Builder<K>
    where
        K::Scope: 'static,
    {
        Self::builder(Api::all(client))
    }

    /// A builder for a controller of the objects `api` addresses (e.g. one namespace), with
    /// its own informer factory.
    pub fn builder<K: Object>(api: Api<K>) -> Builder<K>
    where
        K::Scope: 'static,
    {
        let factory = Arc::new(SharedInformerFactory::new(api.clone().into_client()));
        Builder::new(api, factory)
    }

    /// A builder for a controller of the objects `api` addresses whose informers come from
    /// `factory`, shared with other controllers (one watch per type however many use it).
    pub fn with_factory<K: Object>(api: Api<K>, factory: Arc<SharedInformerFactory>) -> Builder<K>
    where
        K::Scope: 'static,
    {
        Builder::new(api, factory)
    }
}

/// A reconcile's outcome, before it is applied to the queue.
enum Outcome {
    Done(Result),
    Panicked(String),
    TimedOut(Duration),
}

impl<K: Object, R: Reconciler<K>> Controller<K, R>
where
    K::Scope: 'static,
{
    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The cache of `K` the controller reads its objects from.
    pub fn store(&self) -> Store<K> {
        self.inner.store.clone()
    }

    /// Whether the controller runs only while its manager leads.
    pub fn needs_leader_election(&self) -> bool {
        self.inner.need_leader_election
    }

    /// Keys waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.inner.queue.len()
    }

    /// Queues a reconcile of `request` (e.g. from an external event source).
    pub fn enqueue(&self, request: Request) {
        self.inner.queue.add(request);
    }

    /// Runs the controller until `shutdown` is cancelled: registers its handlers, starts the
    /// informers, waits until their initial lists are stored and its handlers have queued every
    /// object in them, then runs the workers. On shutdown it stops taking keys, lets the
    /// reconciles in flight finish, and returns.
    ///
    /// # Errors
    /// [`RunError::AlreadyStarted`] on a second call; [`RunError::CacheSync`] when an informer
    /// does not sync within the cache sync timeout.
    pub async fn run(&self, shutdown: CancellationToken) -> std::result::Result<(), RunError> {
        let inner = &self.inner;
        if inner.started.swap(true, Ordering::AcqRel) {
            return Err(RunError::AlreadyStarted(inner.name.to_string()));
        }
        let (unregister, registrations): (Vec<_>, Vec<_>) = inner
            .sources
            .iter()
            .map(|s| {
                let Registered { remove, registration } = s.register(&inner.queue, inner.resync);
                (remove, registration)
            })
            .unzip();
        // However `run` ends, its future dropped included: the queue stops and the handlers
        // leave the informers, which would otherwise feed a queue nobody reads.
        let mut unregister = Some(unregister);
        let _cleanup = crate::informer::OnDrop(|| {
            inner.queue.shutdown();
            for u in unregister.take().into_iter().flatten() {
                u();
            }
        });
        inner.factory.start();
        // One deadline for every source, as controller-runtime's `CacheSyncTimeout`.
        let deadline = tokio::time::Instant::now().checked_add(inner.cache_sync_timeout);
        let synced = async {
            for registration in &registrations {
                let left = deadline.map_or(inner.cache_sync_timeout, |d| {
                    d.saturating_duration_since(tokio::time::Instant::now())
                });
                registration.wait_for_sync(left).await.map_err(|e| match e {
                    informer::Error::SyncTimeout {
                        resource, last_error, ..
                    } => informer::Error::SyncTimeout {
                        resource,
                        timeout: inner.cache_sync_timeout,
                        last_error,
                    },
                    other => other,
                })?;
            }
            Ok::<(), informer::Error>(())
        };
        let mut result = tokio::select! {
            r = synced => r.map_err(|source| RunError::CacheSync { controller: inner.name.to_string(), source }),
            () = shutdown.cancelled() => Ok(()),
        };
        if result.is_ok() && !shutdown.is_cancelled() {
            tracing::info!(controller = %inner.name, workers = inner.max_concurrent, "starting workers");
            let stop = shutdown.child_token();
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..inner.max_concurrent {
                let (this, stop) = (self.clone(), stop.clone());
                workers.spawn(async move { this.work(stop).await });
            }
            while let Some(joined) = workers.join_next().await {
                if let Err(e) = joined
                    && e.is_panic()
                    && result.is_ok()
                {
                    let message = panic_message(&*e.into_panic());
                    tracing::error!(controller = %inner.name, panic = %message, "a worker panicked: stopping the controller");
                    stop.cancel();
                    result = Err(RunError::WorkerPanicked {
                        controller: inner.name.to_string(),
                        message,
                    });
                }
            }
            tracing::info!(controller = %inner.name, "all workers finished");
        }
        result
    }

    async fn work(&self, shutdown: CancellationToken) {
        let queue = &self.inner.queue;
        loop {
            let request = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                r = queue.get() => match r {
                    Some(r) => r,
                    None => return,
                },
            };
            // Done however processing ends, a panic included: a key never marked done would
            // never be handed out again.
            let _done = crate::informer::OnDrop(|| queue.done(&request));
            self.process(&request).await;
        }
    }

    async fn process(&self, request: &Request) {
        let inner = &self.inner;
        let label = metrics::ControllerLabel {
            controller: inner.name.to_string(),
        };
        let ctx = Context {
            request: request.clone(),
            controller: inner.name.clone(),
            reconcile_id: new_uuid().into(),
            client: inner.client.clone(),
            factory: inner.factory.clone(),
            retries: inner.queue.num_requeues(request),
        };
        // At ERROR level so that it is enabled whenever anything is logged: an error, or a
        // reconciler's own log line, names its object however high the log level is set (Go's
        // reconcile logger always carries these keys).
        let span = tracing::error_span!(
            "reconcile",
            controller = %inner.name,
            namespace = %request.namespace.as_deref().unwrap_or(""),
            name = %request.name,
            reconcile_id = %ctx.reconcile_id,
        );
        let obj = inner.store.get_by_key(&request.key());
        if let Some(m) = &inner.metrics {
            m.active.get_or_create(&label).inc();
        }
        let started = Instant::now();
        let reconcile = async {
            match obj {
                Some(obj) => inner.reconciler.reconcile(obj, ctx).await,
                None => inner.reconciler.reconcile_missing(ctx).await,
            }
        };
        let guarded = AssertUnwindSafe(reconcile).catch_unwind();
        let outcome = async {
            let caught = match inner.reconcile_timeout {
                Some(limit) => match tokio::time::timeout(limit, guarded).await {
                    Ok(caught) => caught,
                    Err(_) => return Outcome::TimedOut(limit),
                },
                None => guarded.await,
            };
            match caught {
                Ok(result) => Outcome::Done(result),
                Err(panic) => Outcome::Panicked(panic_message(&*panic)),
            }
        }
        .instrument(span.clone())
        .await;
        let elapsed = started.elapsed();
        let _entered = span.enter();
        let result_label = self.apply(request, outcome);
        if let Some(m) = &inner.metrics {
            m.active.get_or_create(&label).dec();
            m.time.get_or_create(&label).observe(elapsed.as_secs_f64());
            m.total
                .get_or_create(&metrics::ResultLabels {
                    controller: inner.name.to_string(),
                    result: result_label,
                })
                .inc();
        }
    }

    /// Applies an outcome to the queue and the error counters; returns the `result` label.
    fn apply(&self, request: &Request, outcome: Outcome) -> &'static str {
        let inner = &self.inner;
        let queue = &inner.queue;
        let count = |family: fn(
            &Metrics,
        ) -> &prometheus_client::metrics::family::Family<
            metrics::ControllerLabel,
            prometheus_client::metrics::counter::Counter,
        >| {
            if let Some(m) = &inner.metrics {
                family(m)
                    .get_or_create(&metrics::ControllerLabel {
                        controller: inner.name.to_string(),
                    })
                    .inc();
            }
        };
        match outcome {
            Outcome::Done(Ok(action)) => {
                queue.forget(request);
                match action.requeue_delay() {
                    Some(delay) => {
                        queue.add_after(request.clone(), delay);
                        "requeue_after"
                    }
                    None => "success",
                }
            }
            Outcome::Done(Err(e)) => {
                count(|m| &m.errors);
                if e.is_terminal() {
                    count(|m| &m.terminal);
                    tracing::error!(error = %chain(&e), "reconciler error (terminal, not retried)");
                } else {
                    tracing::error!(error = %chain(&e), "reconciler error");
                    queue.add_rate_limited(request.clone());
                }
                "error"
            }
            Outcome::Panicked(message) => {
                count(|m| &m.errors);
                count(|m| &m.panics);
                tracing::error!(panic = %message, "reconciler panicked");
                queue.add_rate_limited(request.clone());
                "error"
            }
            Outcome::TimedOut(limit) => {
                count(|m| &m.errors);
                count(|m| &m.timeouts);
                tracing::error!(timeout = ?limit, "reconcile timed out");
                queue.add_rate_limited(request.clone());
                "error"
            }
        }
    }
}

/// A random UUID (version 4), controller-runtime's `reconcileID`.
pub(crate) fn new_uuid() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string())
}

/// Requests that deduplicate: a set for map functions that may return the same key twice.
pub fn dedup(requests: impl IntoIterator<Item = Request>) -> Vec<Request> {
    let mut seen = HashSet::new();
    requests.into_iter().filter(|r| seen.insert(r.clone())).collect()
}

/// A reconcile error with its causes, `outer: inner: innermost`, for the log: a wrapper such as
/// the finalizer's "apply failed" says little without what failed inside it. A cause whose
/// text the message already holds (an error that prints its source) is not repeated.
fn chain(e: &Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source().source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("apply failed")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("list failed: {0}")]
    struct Echo(#[source] std::io::Error);

    #[test]
    fn a_logged_reconcile_error_names_its_causes_once() {
        let inner = || std::io::Error::other("bucket missing");
        assert_eq!(
            chain(&Error::terminal(Outer(inner()))),
            "terminal error: apply failed: bucket missing"
        );
        assert_eq!(chain(&Error::retry(Echo(inner()))), "list failed: bucket missing");
    }
}
