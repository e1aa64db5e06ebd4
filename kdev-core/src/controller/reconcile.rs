//! What a reconcile receives and returns: [`Request`], [`Context`], [`Action`], [`Error`] and
//! the [`Reconciler`] trait.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube_client::Client;
use kube_core::Resource;

/// The object a reconcile is about: its namespace (`None` for cluster-scoped objects) and name
/// (controller-runtime's `reconcile.Request`). It is what the work queue holds, so a key is
/// queued at most once however many events arrive for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// The namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl Request {
    /// A request for the cluster-scoped object `name`.
    pub fn cluster(name: impl Into<String>) -> Self {
        Request {
            namespace: None,
            name: name.into(),
        }
    }

    /// A request for `namespace/name`.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Request {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The request for an object, `None` when it has no name.
    pub fn from_object<K: Resource>(obj: &K) -> Option<Self> {
        let meta = obj.meta();
        Some(Request {
            namespace: meta.namespace.clone().filter(|ns| !ns.is_empty()),
            name: meta.name.clone()?,
        })
    }

    /// The cache key: `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> Cow<'_, str> {
        match &self.namespace {
            Some(ns) => Cow::Owned(format!("{ns}/{}", self.name)),
            None => Cow::Borrowed(&self.name),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Nothing more to do: the key's failure backoff is reset, and the next event for the
    /// object brings it back.
    pub fn done() -> Self {
        Action { requeue_after: None }
    }

    /// Reconcile again after `delay` (e.g. to poll something outside the cluster). The key's
    /// failure backoff is reset. A zero delay means [`done`](Self::done), as in
    /// controller-runtime.
    pub fn requeue_after(delay: Duration) -> Self {
        Action {
            requeue_after: Some(delay).filter(|d| !d.is_zero()),
        }
    }

    /// The delay asked for by [`requeue_after`](Self::requeue_after).
    pub fn requeue_delay(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// A failed reconcile. Any error converts into it with `?`; the key is then requeued with
/// the queue's per-key exponential backoff. [`Error::terminal`] marks an error that retrying
/// cannot fix: it is recorded (logged and counted) and the key is not requeued until its
/// object changes again (controller-runtime's `reconcile.TerminalError`).
///
/// It is not itself a [`std::error::Error`] (that would clash with the conversion from every
/// error, as for `anyhow::Error`). [`finalizer`](crate::finalizer::finalizer) therefore
/// accepts any closure error type, so that its closure can return this one: a
/// [`finalizer::Error<Error>`](crate::finalizer::Error) converts back with `?` and keeps the
/// closure's error terminal.
pub struct Error {
    source: Box<dyn StdError + Send + Sync + 'static>,
    terminal: bool,
}

impl Error {
    /// An error that is retried with backoff.
    pub fn retry(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Error {
            source: source.into(),
            terminal: false,
        }
    }

    /// An error that is not retried.
    pub fn terminal(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Error {
            source: source.into(),
            terminal: true,
        }
    }

    /// A retried error with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::retry(message.to_string())
    }

    /// Whether this error is terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// The underlying error, by value (for conversions that wrap it and keep the flag).
    pub(crate) fn into_source(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.source
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::retry(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("source", &self.source)
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terminal {
            write!(f, "terminal error: {}", self.source)
        } else {
            fmt::Display::fmt(&self.source, f)
        }
    }
}

/// What a reconcile knows besides the object: which request, which controller, which attempt.
#[derive(Clone)]
pub struct Context {
    pub(crate) request: Request,
    pub(crate) controller: Arc<str>,
    pub(crate) reconcile_id: Arc<str>,
    pub(crate) client: Client,
    pub(crate) factory: Arc<crate::informer::SharedInformerFactory>,
    pub(crate) retries: u32,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("request", &self.request)
            .field("controller", &self.controller)
            .field("reconcile_id", &self.reconcile_id)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The request being reconciled.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The controller's name.
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// A unique id of this reconcile (a random UUID, as controller-runtime's `reconcileID`);
    /// it is also on the reconcile's tracing span.
    pub fn reconcile_id(&self) -> &str {
        &self.reconcile_id
    }

    /// The client, for writes (reads should go through the [`cache`](Self::cache)).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The cached reader over the controller's informers: its manager's
    /// [`Manager::cache`](crate::manager::Manager::cache), or, for a controller built alone,
    /// one over the controller's own informer factory. Reads of the kinds the controller
    /// watches are local; the first read of another kind starts an informer for it.
    pub fn cache(&self) -> crate::manager::Cache {
        crate::manager::Cache::new(self.factory.clone(), self.client.clone())
    }

    /// How many times this key has failed in a row (0 on a first attempt).
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

/// The reconcile result.
pub type Result<T = Action, E = Error> = std::result::Result<T, E>;

/// Drives the cluster toward what an object asks for.
///
/// [`reconcile`](Self::reconcile) is called with the cached object (an `Arc`, never a copy)
/// whenever it, or something mapped to it, changes; [`reconcile_missing`](Self::reconcile_missing)
/// when a request names an object that is not in the cache (it was deleted, or a mapping named
/// something that does not exist). A reconcile must be idempotent: it sees the current state,
/// not the event that caused it.
///
/// Plain async closures `Fn(Arc<K>, Context) -> impl Future<Output = Result<Action>>` are
/// reconcilers too.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kdev_core::controller::{Action, Context, Error, Reconciler};
///
/// struct Labeller;
///
/// impl Reconciler<ConfigMap> for Labeller {
///     async fn reconcile(&self, cm: Arc<ConfigMap>, ctx: Context) -> Result<Action, Error> {
///         println!("{} ({})", ctx.request(), cm.data.as_ref().map_or(0, |d| d.len()));
///         Ok(Action::done())
///     }
/// }
/// ```
pub trait Reconciler<K>: Send + Sync + 'static {
    /// Reconciles one object.
    fn reconcile(&self, obj: Arc<K>, ctx: Context) -> impl Future<Output = Result> + Send;

    /// Reconciles a request whose object is not in the cache. The default does nothing.
    fn reconcile_missing(&self, ctx: Context) -> impl Future<Output = Result> + Send {
        let _ = ctx;
        async { Ok(Action::done()) }
    }
}

impl<K, F, Fut> Reconciler<K> for F
where
    K: Send + Sync + 'static,
    F: Fn(Arc<K>, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result> + Send,
{
    fn reconcile(&self, obj: Arc<K>, ctx: Context) -> impl Future<Output = Result> + Send {
        self(obj, ctx)
    }
}
