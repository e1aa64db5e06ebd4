//! The [`Manager`]: shared caches, controllers and other runnables, leader election, HTTP
//! listeners for `/healthz`, `/readyz` and `/metrics` (one, or one each), and graceful shutdown
//! (controller-runtime's `pkg/manager`).
//!
//! # What a manager does
//!
//! - Owns one [`SharedInformerFactory`]: every controller it builds gets its informers there,
//!   so a type is watched once however many controllers use it. [`Manager::cache`] reads from
//!   the same informers; [`Cache::namespaced`] reads one namespace through informers that
//!   list and watch only it, for an operator whose RBAC is a Role rather than a ClusterRole
//!   (pair it with [`Manager::controller_for`] on a namespaced `Api`).
//! - Runs controllers and user runnables; the controllers reconcile every object again about
//!   every [sync period](ManagerBuilder::sync_period) (10 hours), as controller-runtime's do.
//!   Those that need leader election start only while this process holds the lease and stop when it is lost (the manager then exits with
//!   [`ManagerError::LeaderElectionLost`], as controller-runtime does, so that the process
//!   restarts clean). Informers run regardless, so a new leader starts with warm caches.
//! - Serves `/healthz` (alive, no informer has failed, plus your checks), `/readyz` (the
//!   manager runs, its informers have synced, plus your checks) and `/metrics` (the controller, work-queue, leader-election,
//!   `rest_client_requests_total` and `process_*` metrics of [`crate::metrics`] in the OpenMetrics
//!   text format, plus anything registered in [`Manager::registry`]). The
//!   probes answer as controller-runtime's healthz handler: `ok`, or 500 with one line per
//!   check and its reason; `/readyz/<check>` (and `/healthz/ping`) runs one check, `?verbose`
//!   lists the checks when all pass, and `?exclude=<check>` skips one. `/metrics` can be served
//!   over TLS ([`ManagerBuilder::metrics_tls`]) and only to those the API server authenticates
//!   and authorizes ([`ManagerBuilder::metrics_auth`], [`auth`]), as kubebuilder's secure
//!   metrics are.
//! - Stops on SIGTERM or SIGINT (or [`Manager::shutdown_token`]): stops taking new work, lets
//!   the reconciles in flight finish for at most the graceful-shutdown timeout (30 s), sends
//!   the events its [`Manager::event_recorder`]s still hold, releases the lease, and returns.
//!   A second signal stops at once.
//! - Logs through [`tracing`]: install a subscriber (`tracing_subscriber::fmt::init()`), or
//!   reconcile errors go unseen; a manager run without one says so once on stderr.
//!
//! `/readyz`'s `informers` check waits for the informers started when the manager first finds
//! them all synced: the controllers' (started by [`run`](Manager::run)) and those of any cache
//! read made by then. From then on it passes. An informer started later, by a cache read of a
//! new kind or a controller added while running, fails only its caller if it cannot sync (a
//! missing RBAC permission, say): a running replica is not taken out of its Service for it, as
//! controller-runtime's readiness does not depend on such informers either.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::controller::{Action, Context, Error};
//! use kdev_core::manager::Manager;
//!
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let client = env.client();
//! let manager = Manager::builder(client)
//!     .http_addr("127.0.0.1:0".parse()?)
//!     .handle_signals(false)
//!     .build();
//! manager
//!     .controller::<ConfigMap>()
//!     .complete(|cm: Arc<ConfigMap>, _ctx: Context| async move {
//!         let _ = cm;
//!         Ok::<_, Error>(Action::done())
//!     })?;
//! let stop = manager.shutdown_token();
//! let running = tokio::spawn({
//!     let manager = manager.clone();
//!     async move { manager.run().await }
//! });
//! # tokio::time::sleep(std::time::Duration::from_millis(200)).await;
//! stop.cancel();
//! running.await??;
//! # Ok(()) }
//! ```

pub mod auth;
mod cache;
mod http;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use kube_client::{Api, Client};
use parking_lot::{Mutex, MutexGuard};
use prometheus_client::registry::Registry;

use crate::metrics::{ProcessCollector, RestClientMetrics};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use cache::{Cache, CacheError, NamespacedCache};

use crate::controller::{self, BuildError, Controller, Object, Reconciler};
use crate::event::Recorder;
use crate::informer::{SharedInformerFactory, Transforms};
use crate::leader_election::{self, LeaderElector, LeaseLock, Lock};
use crate::reflector;
use crate::workqueue;

/// An error a runnable may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Manager::run`] returned an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// `run` was called twice.
    #[error("the manager was already started")]
    AlreadyStarted,
    /// The probe/metrics listener could not bind.
    #[error("binding the probe and metrics listener on {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A runnable (or controller) failed; the manager stopped the others.
    #[error("runnable {name:?} failed")]
    Runnable {
        /// The runnable's name.
        name: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// The lease was lost: the leader-only runnables were stopped at once.
    #[error("leader election lost")]
    LeaderElectionLost,
    /// Asked to stop, the runnables did not all end within the graceful shutdown timeout and
    /// were abandoned (controller-runtime's `failed waiting for all runnables to end within
    /// grace period`).
    #[error("failed waiting for all runnables to end within grace period of {timeout:?}; still running: {}", still_running.join(", "))]
    ShutdownTimeout {
        /// The graceful shutdown timeout.
        timeout: Duration,
        /// The runnables (controllers by name) still running when it ran out.
        still_running: Vec<String>,
    },
    /// A second SIGTERM or SIGINT while stopping: the runnables still running were abandoned
    /// (controller-runtime exits with status 1).
    #[error("a second signal stopped the manager before its runnables ended; still running: {}", still_running.join(", "))]
    Interrupted {
        /// The runnables still running.
        still_running: Vec<String>,
    },
}

/// How a manager campaigns for leadership: see [`ManagerBuilder::leader_election`].
pub(crate) trait Campaign: Send + Sync {
    /// Campaigns until `stop`: sends `true` when leading starts, `false` when it ends.
    fn run(&self, events: mpsc::UnboundedSender<bool>, stop: CancellationToken) -> BoxFuture<'static, ()>;
    /// The healthz check (`Err` when leading but the lease could not be renewed for too long).
    fn check(&self) -> Result<(), String>;
    /// Report into the manager's leader-election metrics.
    fn attach_metrics(&self, metrics: &leader_election::Metrics);
}

type RunFn = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, Result<(), BoxError>> + Send>;
type Check = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

struct Runnable {
    name: String,
    needs_leader: bool,
    run: RunFn,
}

/// The runnables, before and while the manager runs.
#[derive(Default)]
struct Runnables {
    /// Added before `run`.
    pending: Vec<Runnable>,
    /// While `run` runs: where a runnable added meanwhile goes, to start at once (or once
    /// leading), as controller-runtime's runnable groups start what joins them late.
    late: Option<mpsc::UnboundedSender<Runnable>>,
    /// `run` has begun to stop: a runnable added now never runs.
    stopped: bool,
}

struct Inner {
    client: Client,
    factory: Arc<SharedInformerFactory>,
    registry: Mutex<Registry>,
    controller_metrics: controller::Metrics,
    queue_metrics: workqueue::Metrics,
    runnables: Mutex<Runnables>,
    names: Mutex<HashSet<String>>,
    health: Mutex<Vec<(String, Check)>>,
    ready: Mutex<Vec<(String, Check)>>,
    campaign: Option<Arc<dyn Campaign>>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    probe_addr: Option<SocketAddr>,
    /// Who may read `/metrics`, when anyone may not.
    metrics_auth: Option<auth::DelegatingAuth>,
    /// TLS for the listener serving `/metrics`.
    metrics_tls: Option<Arc<rustls::ServerConfig>>,
    /// The addresses the listeners are bound to, by what they serve.
    bound: Mutex<HashMap<http::Routes, SocketAddr>>,
    graceful_shutdown_timeout: Duration,
    handle_signals: bool,
    sync_period: Option<Duration>,
    shutdown: CancellationToken,
    started: AtomicBool,
    running: AtomicBool,
    /// The informers synced once while running: `/readyz`'s `informers` check passes from then on.
    informers_synced: AtomicBool,
    /// Whether this process leads (true while running without leader election).
    elected: tokio::sync::watch::Sender<bool>,
    /// The event recorders handed out, by reporting controller; flushed at shutdown.
    recorders: Mutex<HashMap<String, Recorder>>,
}

impl Inner {
    /// From now on no runnable starts, and `/readyz` says the manager is not running.
    fn stop_intake(&self) {
        let mut runnables = self.runnables.lock();
        runnables.stopped = true;
        runnables.late = None;
        drop(runnables);
        self.running.store(false, Ordering::Release);
    }

    fn health_results(&self) -> Vec<(String, Result<(), String>)> {
        let mut out = vec![("ping".to_string(), Ok(()))];
        if let Some(c) = &self.campaign {
            out.push(("leaderElection".to_string(), c.check()));
        }
        // An informer whose transform or index function panicked is dead: restart the process,
        // as client-go's crash would.
        let failures = self.factory.failures();
        out.push((
            "informers".to_string(),
            match failures.first() {
                None => Ok(()),
                Some(first) => Err(format!("{first} ({} failed)", failures.len())),
            },
        ));
        with_checks(out, &self.health)
    }

    /// Whether the informers have synced: every informer started when it is first asked while
    /// running (the controllers', and any cache read's so far), then true for good. An informer
    /// started later (a cache read of a new kind, a controller added while running) fails only
    /// its caller if it cannot sync, never the replica's readiness.
    fn informers_synced(&self, running: bool) -> bool {
        // A failed informer is reported by `ready_results` before this is asked.
        if self.informers_synced.load(Ordering::Acquire) {
            return true;
        }
        let synced = running && self.factory.has_synced();
        if synced {
            self.informers_synced.store(true, Ordering::Release);
        }
        synced
    }

    fn ready_results(&self) -> Vec<(String, Result<(), String>)> {
        let running = self.running.load(Ordering::Acquire);
        let out = vec![
            (
                "started".to_string(),
                if running {
                    Ok(())
                } else {
                    Err("the manager is not running".into())
                },
            ),
            (
                "informers".to_string(),
                match self.factory.failures().first() {
                    Some(failed) => Err(failed.to_string()),
                    None if self.informers_synced(running) => Ok(()),
                    None => Err("caches have not synced yet".into()),
                },
            ),
        ];
        with_checks(out, &self.ready)
    }
}

/// Says once per process, on stderr, that logs go nowhere when a manager runs without a
/// tracing subscriber: reconcile errors would be silent (controller-runtime warns likewise
/// when no logger was set).
fn warn_without_subscriber() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if no_subscriber() && !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "kdev: the manager runs without a tracing subscriber, so its logs (reconcile errors among them) \
             are not shown; install one, e.g. tracing_subscriber::fmt::init()"
        );
    }
}

/// Whether this thread's tracing events go nowhere (no global or scoped subscriber).
fn no_subscriber() -> bool {
    tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
}

/// Adds `check` under `name`, replacing a check of that name.
fn add_check(checks: &Mutex<Vec<(String, Check)>>, name: String, check: Check) {
    let mut checks = checks.lock();
    checks.retain(|(n, _)| *n != name);
    checks.push((name, check));
}

/// The results of the built-in checks `builtin` that no added check replaces, then those of
/// the added `checks`.
fn with_checks(
    mut builtin: Vec<(String, Result<(), String>)>,
    checks: &Mutex<Vec<(String, Check)>>,
) -> Vec<(String, Result<(), String>)> {
    let checks = checks.lock();
    builtin.retain(|(name, _)| !checks.iter().any(|(n, _)| n == name));
    builtin.extend(checks.iter().map(|(n, c)| (n.clone(), c())));
    builtin
}

/// Runs controllers and runnables with shared caches, probes, metrics, leader election and
/// graceful shutdown. Cheap to clone (a handle). See the [module docs](self).
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("runnables", &self.inner.runnables.lock().pending.len())
            .field("http_addr", &self.inner.http_addr)
            .field("leader_election", &self.inner.campaign.is_some())
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Manager`]; start with [`Manager::builder`].
#[must_use]
pub struct ManagerBuilder {
    client: Client,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    probe_addr: Option<SocketAddr>,
    metrics_auth: Option<auth::DelegatingAuth>,
    metrics_tls: Option<Arc<rustls::ServerConfig>>,
    graceful_shutdown_timeout: Duration,
    handle_signals: bool,
    reflector: reflector::Config,
    transforms: Transforms,
    order: crate::informer::Order,
    campaign: Option<Arc<dyn Campaign>>,
    registry: Registry,
    rest_metrics: RestClientMetrics,
    sync_period: Option<Duration>,
}

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("http_addr", &self.http_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("health_probe_addr", &self.probe_addr)
            .field("metrics_auth", &self.metrics_auth)
            .field("metrics_tls", &self.metrics_tls.is_some())
            .field("graceful_shutdown_timeout", &self.graceful_shutdown_timeout)
            .field("handle_signals", &self.handle_signals)
            .finish_non_exhaustive()
    }
}

impl ManagerBuilder {
    /// Serve `/healthz`, `/readyz` and `/metrics` on `addr` (port 0 picks a free port; see
    /// [`Manager::http_addr`]). Default: no listener.
    pub fn http_addr(mut self, addr: SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    /// Serve `/metrics` alone on `addr` (controller-runtime's `Metrics.BindAddress`, `:8080` in
    /// kubebuilder's manifests); see [`Manager::metrics_addr`]. With
    /// [`health_probe_addr`](Self::health_probe_addr) it splits what [`http_addr`](Self::http_addr)
    /// serves on one listener, and may be used with it.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Serve `/healthz`, `/livez` and `/readyz` alone on `addr` (controller-runtime's
    /// `HealthProbeBindAddress`, `:8081` in kubebuilder's manifests); see
    /// [`Manager::health_probe_addr`].
    pub fn health_probe_addr(mut self, addr: SocketAddr) -> Self {
        self.probe_addr = Some(addr);
        self
    }

    /// Serve `/metrics` over TLS with `config` (controller-runtime's `SecureServing`;
    /// kubebuilder's manifests serve metrics on `:8443`): the metrics-only listener when there is
    /// one ([`metrics_addr`](Self::metrics_addr)), else the shared one
    /// ([`http_addr`](Self::http_addr), whose probes then answer over TLS too: give kubelet's
    /// probes `scheme: HTTPS`). The health-probe listener stays plain HTTP, as kubelet probes it.
    /// With a metrics-only listener secured (TLS or [`metrics_auth`](Self::metrics_auth)), the
    /// shared listener no longer serves `/metrics`, which would bypass it.
    ///
    /// The connection speaks HTTP/1.1 whatever ALPN protocols `config` lists. For a
    /// certificate that is renewed on disk, give `config` a certificate resolver that reloads it
    /// (kdev-webhook's `ServingCert` keeps one current). A client has 10 seconds to finish its
    /// handshake.
    ///
    /// # Examples
    /// ```
    /// # fn run(client: kube_client::Client, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use kdev_core::manager::Manager;
    /// use kdev_core::manager::auth::DelegatingAuth;
    /// use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    ///
    /// let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    /// let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    ///     .with_safe_default_protocol_versions()?
    ///     .with_no_client_auth()
    ///     .with_single_cert(certs, key)?;
    /// let manager = Manager::builder(client.clone())
    ///     .metrics_addr("0.0.0.0:8443".parse()?)
    ///     .metrics_tls(Arc::new(tls))
    ///     .metrics_auth(DelegatingAuth::new(client))
    ///     .build();
    /// # let _ = manager; Ok(()) }
    /// ```
    pub fn metrics_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        let mut config = Arc::unwrap_or_clone(config);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.metrics_tls = Some(Arc::new(config));
        self
    }

    /// Let only those the API server authenticates and authorizes read `/metrics`
    /// (controller-runtime's `filters.WithAuthenticationAndAuthorization`): a TokenReview of
    /// the request's bearer token, then a SubjectAccessReview of `get` on `/metrics`; see
    /// [`auth`] for the answers, the caches and the RBAC both sides need. On the shared
    /// listener only `/metrics` is guarded; the probes stay open to kubelet. Pair it with
    /// [`metrics_tls`](Self::metrics_tls), or the tokens travel in the clear.
    pub fn metrics_auth(mut self, auth: auth::DelegatingAuth) -> Self {
        self.metrics_auth = Some(auth);
        self
    }

    /// How long shutdown waits for reconciles in flight. Default 30 s (controller-runtime's).
    /// Runnables still running then are abandoned and [`Manager::run`] returns
    /// [`ManagerError::ShutdownTimeout`] naming them.
    pub fn graceful_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.graceful_shutdown_timeout = timeout;
        self
    }

    /// Whether `run` stops on SIGTERM and SIGINT. Default true; turn it off in tests and when
    /// the program handles signals itself (use [`Manager::shutdown_token`]).
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// The reflector settings of the manager's informers.
    pub fn reflector_config(mut self, config: reflector::Config) -> Self {
        self.reflector = config;
        self
    }

    /// Runs `transform` on the metadata of every object the manager's informers cache, before
    /// it is stored (controller-runtime's `cache.Options.DefaultTransform`); see
    /// [`SharedInformerFactory::default_transform`].
    ///
    /// # Examples
    /// ```no_run
    /// # fn run(client: kube_client::Client) {
    /// use kdev_core::manager::Manager;
    ///
    /// // The caches keep no managedFields: about a third less memory for small objects.
    /// let manager = Manager::builder(client).default_transform(|meta| meta.managed_fields = None).build();
    /// # }
    /// ```
    pub fn default_transform(
        mut self,
        transform: impl Fn(&mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) + Send + Sync + 'static,
    ) -> Self {
        self.transforms.set_default(Arc::new(transform));
        self
    }

    /// Runs `transform` on every cached object of type `T`, instead of the
    /// [`default_transform`](Self::default_transform) (controller-runtime's
    /// `cache.Options.ByObject[..].Transform`); see [`SharedInformerFactory::transform`].
    pub fn transform<T: 'static>(mut self, transform: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.transforms.set::<T>(Arc::new(transform));
        self
    }

    /// The order in which the manager's informers hand their handlers the watch's changes
    /// (default [`Order::PerKey`](crate::informer::Order::PerKey); `Order::Arrival` is
    /// client-go's `InOrderInformers`, on by default since 1.33); see [`SharedInformerFactory::order`].
    pub fn informer_order(mut self, order: crate::informer::Order) -> Self {
        self.order = order;
        self
    }

    /// How often the manager's controllers replay their caches, so that every object is
    /// reconciled again (controller-runtime's `Cache.SyncPeriod`; default 10 hours, `None`
    /// for never); see [`controller::Builder::sync_period`].
    pub fn sync_period(mut self, period: Option<Duration>) -> Self {
        self.sync_period = period;
        self
    }

    /// Register the manager's metrics into this registry (e.g. one that already holds your
    /// own); default: a fresh one, reachable through [`Manager::registry`].
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Run the controllers and leader-only runnables only while `elector` leads (see
    /// [`leader_election`]). The elector's health check joins `/healthz` (it fails when the
    /// lease has not been renewed for the lease duration plus 20 s), its metrics `/metrics`.
    pub fn leader_election<L: Lock>(mut self, elector: LeaderElector<L>) -> Self {
        self.campaign = Some(Arc::new(elector));
        self
    }

    /// Leader election on the Lease `namespace/name` with controller-runtime's defaults
    /// (15 s lease, 10 s renew deadline, 2 s retry, release on shutdown) and this process's
    /// [`default_identity`](leader_election::default_identity) (host name and a UUID).
    ///
    /// controller-runtime puts the Lease in the Pod's own namespace unless told otherwise; an
    /// in-cluster client's `default_namespace()` is that namespace (its service account's), so
    /// `leader_election_lease(client.default_namespace(), "my-operator-leader")` does the same.
    pub fn leader_election_lease(self, namespace: &str, name: &str) -> Self {
        let lock = LeaseLock::new(
            self.client.clone(),
            namespace,
            name,
            leader_election::default_identity(),
        );
        let elector = LeaderElector::new_unchecked(lock, leader_election::Config::default());
        self.leader_election(elector)
    }

    /// The manager.
    pub fn build(self) -> Manager {
        if (self.metrics_tls.is_some() || self.metrics_auth.is_some())
            && self.metrics_addr.is_none()
            && self.http_addr.is_none()
        {
            tracing::warn!("metrics TLS or authorization is set, but no listener serves /metrics");
        }
        let mut registry = self.registry;
        let controller_metrics = controller::Metrics::register(&mut registry);
        let queue_metrics = workqueue::Metrics::register(&mut registry);
        let election_metrics = leader_election::Metrics::register(&mut registry);
        self.rest_metrics.register(&mut registry);
        ProcessCollector::register(&mut registry);
        if let Some(c) = &self.campaign {
            c.attach_metrics(&election_metrics);
        }
        Manager {
            inner: Arc::new(Inner {
                factory: Arc::new(
                    SharedInformerFactory::with_config(self.client.clone(), self.reflector)
                        .with_transforms(self.transforms)
                        .order(self.order),
                ),
                client: self.client,
                registry: Mutex::new(registry),
                controller_metrics,
                queue_metrics,
                runnables: Mutex::default(),
                names: Mutex::new(HashSet::new()),
                health: Mutex::new(Vec::new()),
                ready: Mutex::new(Vec::new()),
                campaign: self.campaign,
                http_addr: self.http_addr,
                bound: Mutex::default(),
                metrics_addr: self.metrics_addr,
                probe_addr: self.probe_addr,
                metrics_auth: self.metrics_auth,
                metrics_tls: self.metrics_tls,
                graceful_shutdown_timeout: self.graceful_shutdown_timeout,
                handle_signals: self.handle_signals,
                sync_period: self.sync_period,
                shutdown: CancellationToken::new(),
                started: AtomicBool::new(false),
                running: AtomicBool::new(false),
                informers_synced: AtomicBool::new(false),
                elected: tokio::sync::watch::channel(false).0,
                recorders: Mutex::default(),
            }),
        }
    }
}

/// controller-runtime's default `SyncPeriod`.
const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(10 * 60 * 60);

/// What ended the run loop.
enum Stop {
    Requested,
    Failed(String, BoxError),
    LeaderLost,
}

impl Manager {
    /// Settings for a manager using `client`.
    ///
    /// The manager counts the requests of its client in `rest_client_requests_total`:
    /// [`client`](Self::client) is `client` wrapped, and so are the clients of the informers of
    /// [`controller`](Self::controller), of [`cache`](Self::cache) reads and of
    /// [`leader_election_lease`](ManagerBuilder::leader_election_lease). An `Api` you build from
    /// `client` itself (for [`controller_for`](Self::controller_for), `owns_with` or writes) is
    /// not counted: build it from `manager.client()`. A ready-made client does not tell which
    /// API server it talks to, so the metric's `host` label is `none`, as client-go's for a
    /// client without a base URL; [`from_config`](Self::from_config) labels it with the API
    /// server's `host:port`.
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `kube_client::Client::new` (the wrapped client's buffer runs
    /// as a task).
    pub fn builder(client: Client) -> ManagerBuilder {
        Self::builder_for(client, "none".to_string())
    }

    /// Settings for a manager with a client for `config` (controller-runtime's
    /// `ctrl.NewManager(cfg, options)`); its requests are counted under the API server's
    /// `host:port` (see [`builder`](Self::builder)).
    ///
    /// # Errors
    /// The error of building the client (an unreadable certificate, say).
    ///
    /// # Panics
    /// Outside a Tokio runtime, as [`builder`](Self::builder).
    pub fn from_config(config: kube_client::Config) -> Result<ManagerBuilder, kube_client::Error> {
        let host = crate::metrics::host_label(&config.cluster_url);
        Ok(Self::builder_for(Client::try_from(config)?, host))
    }

    fn builder_for(client: Client, host: String) -> ManagerBuilder {
        let rest_metrics = RestClientMetrics::default();
        ManagerBuilder {
            client: rest_metrics.instrument(client, host),
            http_addr: None,
            metrics_addr: None,
            probe_addr: None,
            metrics_auth: None,
            metrics_tls: None,
            graceful_shutdown_timeout: Duration::from_secs(30),
            handle_signals: true,
            reflector: reflector::Config::default(),
            transforms: Transforms::default(),
            order: crate::informer::Order::default(),
            campaign: None,
            registry: Registry::default(),
            rest_metrics,
            sync_period: Some(DEFAULT_SYNC_PERIOD),
        }
    }

    /// Settings for a manager with the client `kube_client::Config::infer` finds
    /// (`KUBECONFIG`, `~/.kube/config`, or the in-cluster service account); see
    /// [`from_config`](Self::from_config).
    ///
    /// # Errors
    /// The configuration's error, or that of building the client.
    pub async fn try_default() -> Result<ManagerBuilder, kube_client::Error> {
        let config = kube_client::Config::infer()
            .await
            .map_err(kube_client::Error::InferConfig)?;
        Self::from_config(config)
    }

    /// The client: writes go through it (`Api::namespaced(manager.client().clone(), ns)`).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The informer factory every controller of this manager shares.
    pub fn factory(&self) -> Arc<SharedInformerFactory> {
        self.inner.factory.clone()
    }

    /// Adds the index `name` to every informer of `K` the manager runs or will run, whatever
    /// their namespace or selectors (controller-runtime's `mgr.GetFieldIndexer().IndexField`):
    /// query it with [`Cache::by_index`] or [`NamespacedCache::by_index`].
    /// See [`SharedInformerFactory::add_indexer`].
    ///
    /// # Errors
    /// [`store::Error::IndexerConflict`](crate::store::Error::IndexerConflict) when `K` already
    /// has an index of that name.
    #[doc(alias = "IndexField")]
    pub fn add_indexer<K: Object>(
        &self,
        name: impl Into<String>,
        index: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Result<(), crate::store::Error> {
        self.inner.factory.add_indexer(name, index)
    }

    /// The cached reader.
    pub fn cache(&self) -> Cache {
        Cache::new(self.inner.factory.clone(), self.inner.client.clone())
    }

    /// An event recorder reporting as `reporting_controller`, using the manager's client
    /// (controller-runtime's `mgr.GetEventRecorderFor`). Every call with the same name returns
    /// the same recorder (its clones share the spam filter, the series cache and the sending
    /// task), and the manager sends what the recorders still hold before [`run`](Self::run)
    /// returns, within the graceful shutdown timeout; so a controller's last events are not
    /// lost at shutdown.
    ///
    /// # Errors
    ///
    /// As [`Recorder::new`]: a `reporting_controller` the API server would refuse (it must be
    /// a qualified name, such as `example.com/my-controller`), or no Tokio runtime.
    pub fn event_recorder(&self, reporting_controller: &str) -> Result<Recorder, crate::event::Error> {
        let mut recorders = self.inner.recorders.lock();
        if let Some(recorder) = recorders.get(reporting_controller) {
            return Ok(recorder.clone());
        }
        let recorder = Recorder::new(self.inner.client.clone(), reporting_controller)?;
        recorders.insert(reporting_controller.to_owned(), recorder.clone());
        Ok(recorder)
    }

    /// The metrics registry `/metrics` serves; register your own metrics here.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock()
    }

    /// A controller of `K` in every namespace, sharing this manager's informers and metrics;
    /// finish it with [`complete`](controller::Builder::complete).
    pub fn controller<K: Object>(&self) -> controller::Builder<K>
    where
        K::Scope: 'static,
    {
        self.controller_for(Api::all(self.inner.client.clone()))
    }

    /// A controller of the objects `api` addresses (e.g. one namespace), sharing this manager's
    /// informers and metrics.
    pub fn controller_for<K: Object>(&self, api: Api<K>) -> controller::Builder<K>
    where
        K::Scope: 'static,
    {
        Controller::with_factory(api, self.inner.factory.clone())
            .metrics(&self.inner.controller_metrics, &self.inner.queue_metrics)
            // The manager's `None` is never, whatever its factory's informers default to.
            .sync_period(Some(self.inner.sync_period.unwrap_or(Duration::ZERO)))
            .manager(self.clone())
    }

    /// Adds a controller built elsewhere. Controller names must be unique within a manager.
    ///
    /// # Errors
    /// [`BuildError::DuplicateName`].
    pub fn add_controller<K: Object, R: Reconciler<K>>(&self, controller: Controller<K, R>) -> Result<(), BuildError>
    where
        K::Scope: 'static,
    {
        let name = controller.name().to_string();
        if !self.inner.names.lock().insert(name.clone()) {
            return Err(BuildError::DuplicateName(name));
        }
        let needs_leader = controller.needs_leader_election();
        self.push(name, needs_leader, move |stop| async move {
            controller.run(stop).await.map_err(BoxError::from)
        });
        Ok(())
    }

    /// Adds a runnable: `run` gets a token that is cancelled when the manager stops (or this
    /// process stops leading, when `needs_leader`), and should return soon after. An error
    /// stops the manager. Added while the manager runs, it starts at once (once leading, when
    /// `needs_leader`); added once the manager is stopping, it never runs.
    pub fn add_runnable<F, Fut>(&self, name: impl Into<String>, needs_leader: bool, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.push(name.into(), needs_leader, run);
    }

    fn push<F, Fut>(&self, name: String, needs_leader: bool, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let runnable = Runnable {
            name,
            needs_leader,
            run: Box::new(move |stop| Box::pin(run(stop))),
        };
        let mut runnables = self.inner.runnables.lock();
        if runnables.stopped {
            tracing::warn!(runnable = %runnable.name, "the manager is stopping: a runnable added now does not run");
        } else if let Some(late) = &runnables.late {
            // The receiver lives as long as `late` is set.
            let _ = late.send(runnable);
        } else {
            runnables.pending.push(runnable);
        }
    }

    /// Adds a liveness check to `/healthz`. Checks are keyed by name, as controller-runtime's
    /// are: a check of a name already added replaces it, and so does one named after a
    /// built-in check (`ping`, `informers`, `leaderElection`).
    pub fn add_health_check(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        add_check(&self.inner.health, name.into(), Box::new(check));
    }

    /// Adds a readiness check to `/readyz`, keyed by name as [`add_health_check`](Self::add_health_check)'s
    /// (the built-in ones are `started` and `informers`).
    pub fn add_ready_check(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        add_check(&self.inner.ready, name.into(), Box::new(check));
    }

    /// Whether this process leads now: it holds the lease, or runs without leader election.
    /// False before [`run`](Self::run) and after the lease is released or lost.
    pub fn is_leader(&self) -> bool {
        *self.inner.elected.borrow()
    }

    /// Completes once this process leads (controller-runtime's `Elected()`): when it first
    /// holds the lease, or as soon as [`run`](Self::run) starts without leader election. It
    /// never completes in a process that never leads: pair it with a stop signal.
    ///
    /// ```no_run
    /// # async fn f(manager: kdev_core::manager::Manager) {
    /// let stop = manager.shutdown_token();
    /// tokio::select! {
    ///     () = manager.elected() => println!("leading"),
    ///     () = stop.cancelled() => println!("stopped before leading"),
    /// }
    /// # }
    /// ```
    pub async fn elected(&self) {
        let mut leading = self.inner.elected.subscribe();
        // The sender lives as long as the manager, so waiting ends only when it leads.
        let _ = leading.wait_for(|l| *l).await;
    }

    /// Cancel this token to stop the manager gracefully (what SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// The address the probe/metrics listener is bound to, once [`run`](Self::run) has bound it.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.inner.bound.lock().get(&http::Routes::All).copied()
    }

    /// The address the metrics-only listener ([`ManagerBuilder::metrics_addr`]) is bound to,
    /// once [`run`](Self::run) has bound it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.bound.lock().get(&http::Routes::Metrics).copied()
    }

    /// The address the probes-only listener ([`ManagerBuilder::health_probe_addr`]) is bound
    /// to, once [`run`](Self::run) has bound it.
    pub fn health_probe_addr(&self) -> Option<SocketAddr> {
        self.inner.bound.lock().get(&http::Routes::Probes).copied()
    }

    /// Whether `/readyz` passes: the manager runs, its informers have synced (the ones started
    /// by then, once: see the [module docs](self)), and every check added with
    /// [`add_ready_check`](Self::add_ready_check) passes.
    pub fn ready(&self) -> bool {
        self.inner.ready_results().iter().all(|(_, r)| r.is_ok())
    }

    /// Runs everything until a signal, [`shutdown_token`](Self::shutdown_token), a failing
    /// runnable or a lost lease; then shuts down gracefully (see the [module docs](self)).
    ///
    /// # Cancel safety
    /// Dropping the future stops the manager without the grace period: the runnables are
    /// told to stop and aborted, the lease is released, the informers and the listener stop.
    ///
    /// # Errors
    /// [`ManagerError`]: a second call, a listener that cannot bind, a failed runnable, a lost
    /// lease; after a requested stop, runnables abandoned when the graceful shutdown timeout ran
    /// out ([`ShutdownTimeout`](ManagerError::ShutdownTimeout)) or a second signal came
    /// ([`Interrupted`](ManagerError::Interrupted)), so that a process can exit non-zero.
    pub async fn run(&self) -> Result<(), ManagerError> {
        let inner = &self.inner;
        if inner.started.swap(true, Ordering::AcqRel) {
            return Err(ManagerError::AlreadyStarted);
        }
        warn_without_subscriber();
        let server_stop = CancellationToken::new();
        let listeners = [
            (inner.http_addr, http::Routes::All),
            (inner.metrics_addr, http::Routes::Metrics),
            (inner.probe_addr, http::Routes::Probes),
        ];
        let mut bound = Vec::new();
        for (addr, routes) in listeners {
            if let Some(addr) = addr {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ManagerError::Bind { addr, source })?;
                bound.push((listener, routes));
            }
        }
        // Serving starts once every listener is bound: a failed bind leaves nothing running.
        for (listener, routes) in bound {
            if let Ok(local) = listener.local_addr() {
                inner.bound.lock().insert(routes, local);
            }
            tokio::spawn(http::serve(listener, routes, inner.clone(), server_stop.clone()));
        }
        let (late_tx, mut late_rx) = mpsc::unbounded_channel();
        let runnables = {
            let mut runnables = inner.runnables.lock();
            runnables.late = Some(late_tx);
            std::mem::take(&mut runnables.pending)
        };
        let (mut leader_only, others): (Vec<_>, Vec<_>) = runnables.into_iter().partition(|r| r.needs_leader);
        let stop_all = CancellationToken::new();
        let campaign_stop = CancellationToken::new();
        // However `run` ends, its future dropped included: nothing new starts, the runnables
        // are told to stop (the task set aborts them when dropped), the lease is released (the
        // campaign task does it when told to stop), the informers and the listener stop.
        let _stopped = crate::informer::OnDrop(|| {
            inner.elected.send_replace(false);
            inner.stop_intake();
            stop_all.cancel();
            campaign_stop.cancel();
            inner.factory.stop();
            server_stop.cancel();
        });
        let mut tasks: JoinSet<(String, Result<(), BoxError>)> = JoinSet::new();
        // The names of the runnables still running, by task, for a shutdown that times out.
        let names: Mutex<HashMap<tokio::task::Id, String>> = Mutex::new(HashMap::new());
        let spawn = |tasks: &mut JoinSet<_>, r: Runnable| {
            let token = stop_all.child_token();
            let name = r.name;
            let fut = (r.run)(token);
            let id = tasks.spawn({
                let name = name.clone();
                async move { (name, fut.await) }
            });
            names.lock().insert(id.id(), name);
        };
        let finished = |id: tokio::task::Id| {
            names.lock().remove(&id);
        };
        inner.factory.start();
        inner.running.store(true, Ordering::Release);
        for r in others {
            spawn(&mut tasks, r);
        }

        let (lead_tx, mut lead_rx) = mpsc::unbounded_channel();
        let campaign = inner
            .campaign
            .clone()
            .map(|c| tokio::spawn(c.run(lead_tx, campaign_stop.clone())));
        if campaign.is_none() {
            for r in leader_only.drain(..) {
                spawn(&mut tasks, r);
            }
            inner.elected.send_replace(true);
        }

        let mut signals = Signals::new(inner.handle_signals);
        let mut leading = false;
        let stop = loop {
            tokio::select! {
                () = signals.next() => break Stop::Requested,
                () = inner.shutdown.cancelled() => break Stop::Requested,
                event = lead_rx.recv(), if campaign.is_some() => match event {
                    Some(true) if !leading => {
                        leading = true;
                        tracing::info!("leading: starting the leader-only runnables");
                        for r in leader_only.drain(..) {
                            spawn(&mut tasks, r);
                        }
                        inner.elected.send_replace(true);
                    }
                    Some(false) | None if leading => {
                        inner.elected.send_replace(false);
                        break Stop::LeaderLost;
                    }
                    // The campaign ended without ever leading (an elector already running
                    // elsewhere, a panic in a lock): the leader-only work would never start.
                    None => break Stop::Failed(
                        "leader election".into(),
                        "the election ended before this process led".into(),
                    ),
                    _ => {}
                },
                Some(r) = late_rx.recv() => {
                    if r.needs_leader && !leading && campaign.is_some() {
                        leader_only.push(r);
                    } else {
                        spawn(&mut tasks, r);
                    }
                }
                Some(done) = tasks.join_next_with_id() => match done {
                    Ok((id, (_, Ok(())))) => finished(id),
                    Ok((id, (name, Err(e)))) => {
                        finished(id);
                        break Stop::Failed(name, e);
                    }
                    Err(e) if e.is_panic() => {
                        let name = names.lock().remove(&e.id()).unwrap_or_else(|| "a runnable".into());
                        break Stop::Failed(name, format!("panicked: {e}").into());
                    }
                    Err(e) => finished(e.id()),
                },
            }
        };

        // Graceful shutdown: stop intake, let in-flight work finish (not after a lost lease:
        // another process may already lead).
        inner.stop_intake();
        stop_all.cancel();
        let grace = match stop {
            Stop::LeaderLost => Duration::ZERO,
            _ => inner.graceful_shutdown_timeout,
        };
        // One deadline for the whole shutdown, the informers' handlers included.
        let deadline = tokio::time::Instant::now() + grace;
        let drained = async {
            while let Some(done) = tasks.join_next_with_id().await {
                match done {
                    Ok((id, (name, result))) => {
                        finished(id);
                        if let Err(e) = result {
                            tracing::warn!(runnable = %name, error = &*e as &(dyn std::error::Error + 'static), "runnable failed while stopping");
                        }
                    }
                    Err(e) => finished(e.id()),
                }
            }
            // Then the events the stopped controllers recorded: the recorders close and send
            // what they hold.
            let recorders: Vec<Recorder> = inner.recorders.lock().values().cloned().collect();
            for recorder in &recorders {
                recorder.shutdown().await;
            }
        };
        // A lease lost while draining ends the grace period: another process may lead now.
        let lease_lost = async {
            if !leading {
                return std::future::pending().await;
            }
            while let Some(true) = lead_rx.recv().await {}
        };
        let still_running = || {
            let mut names: Vec<String> = names.lock().values().cloned().collect();
            names.sort();
            names
        };
        let mut at_once = false;
        let abandoned = tokio::select! {
            () = drained => None,
            // Only runnables count: the events still being sent when time runs out are logged by
            // their recorders.
            () = tokio::time::sleep(grace) => {
                tracing::warn!(timeout = ?grace, "graceful shutdown timed out; abandoning the runnables still running");
                let still_running = still_running();
                (!still_running.is_empty()).then_some(ManagerError::ShutdownTimeout { timeout: grace, still_running })
            }
            () = signals.next() => {
                tracing::warn!("second signal: stopping at once");
                at_once = true;
                let still_running = still_running();
                (!still_running.is_empty()).then_some(ManagerError::Interrupted { still_running })
            }
            () = lease_lost => {
                inner.elected.send_replace(false);
                tracing::warn!("the lease was lost while stopping: stopping at once");
                at_once = true;
                None
            }
        };
        tasks.abort_all();
        // Release the lease, then stop the caches and the listener.
        campaign_stop.cancel();
        if let Some(c) = campaign {
            let _ = c.await;
        }
        inner.elected.send_replace(false);
        // The informers end once their handlers are done with the event in hand, within what is
        // left of the grace period; a handler blocked for good is left behind, and a stop at
        // once does not wait for them.
        if at_once {
            inner.factory.stop();
        } else if tokio::time::timeout_at(deadline, inner.factory.shutdown())
            .await
            .is_err()
        {
            inner.factory.stop();
            tracing::warn!("an informer event handler did not return within the grace period");
        }
        server_stop.cancel();
        // Why it stopped comes first; an abandoned shutdown is reported when the stop was asked.
        match stop {
            Stop::Requested => abandoned.map_or(Ok(()), Err),
            Stop::Failed(name, source) => Err(ManagerError::Runnable { name, source }),
            Stop::LeaderLost => Err(ManagerError::LeaderElectionLost),
        }
    }
}

/// SIGTERM and SIGINT, or nothing when the manager does not handle signals.
struct Signals {
    enabled: bool,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new(enabled: bool) -> Self {
        Signals {
            enabled,
            #[cfg(unix)]
            term: if enabled {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
            } else {
                None
            },
        }
    }

    async fn next(&mut self) {
        if !self.enabled {
            return std::future::pending().await;
        }
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl<K: Object> controller::Builder<K>
where
    K::Scope: 'static,
{
    /// Builds the controller and adds it to the manager it came from
    /// ([`Manager::controller`]); without one, it only builds.
    ///
    /// # Errors
    /// [`BuildError`], including [`BuildError::DuplicateName`].
    pub fn complete<R: Reconciler<K>>(mut self, reconciler: R) -> Result<Controller<K, R>, BuildError> {
        let manager = self.take_manager();
        let controller = self.build(reconciler)?;
        if let Some(m) = manager {
            m.add_controller(controller.clone())?;
        }
        Ok(controller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_subscriber_is_detected_and_a_scoped_one_counts() {
        assert!(no_subscriber());
        let subscriber = tracing_subscriber::fmt().with_writer(std::io::sink).finish();
        tracing::subscriber::with_default(subscriber, || assert!(!no_subscriber()));
    }
}
