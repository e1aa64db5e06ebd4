//! Finalizers: run clean-up before an object may disappear
//! ([Kubernetes finalizers](https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/);
//! controller-runtime's `controllerutil.AddFinalizer` / `RemoveFinalizer` / `ContainsFinalizer`).
//!
//! The API server does not delete an object whose `metadata.finalizers` is not empty: it sets
//! `deletionTimestamp` and waits until every finalizer has been removed. A controller that owns
//! something outside the object (a cloud volume, a DNS record, a row in a database) adds its
//! finalizer while the object lives, and removes it once that thing is gone.
//!
//! [`finalizer`] wraps a reconcile function in that protocol:
//!
//! 1. **Alive, without our finalizer**: the finalizer is added with a merge patch that carries
//!    the object's `resourceVersion` as a precondition, so a concurrent writer is never
//!    clobbered (a stale object fails with 409 Conflict, [`Error::AddFinalizer`], and the
//!    reconcile is retried on the fresh object). Then the closure runs with
//!    [`Event::Apply`] on the patched object, in the same call: no extra round through the
//!    queue. (The patch also produces a watch event, so the object is reconciled once more;
//!    reconciles are idempotent anyway.)
//! 2. **Alive, with our finalizer**: the closure runs with [`Event::Apply`].
//! 3. **Being deleted, with our finalizer**: the closure runs with [`Event::Cleanup`]. Only if
//!    it succeeds is the finalizer removed, with a JSON patch that tests the object's uid and
//!    the finalizer's place in the list rather than the `resourceVersion`: writes the clean-up
//!    made (a status condition saying it runs) do not make the removal fail, while a finalizer
//!    list that changed meanwhile does (422, [`Error::RemoveFinalizer`], retried). When ours
//!    was the last finalizer, the API server then deletes the object. If the clean-up
//!    fails, the finalizer stays, and so does the object: the error is returned
//!    ([`Error::Cleanup`]) and the reconcile is retried with backoff. Clean-up must therefore
//!    be idempotent: it may run again after a success whose finalizer removal failed.
//! 4. **Being deleted, without our finalizer**: nothing to do; the closure is not called and
//!    `T::default()` is returned (for [`Action`](crate::controller::Action): done).
//!
//! [`Error`] converts into [`controller::Error`] with `?`, and is retried with backoff. To stop
//! retries for an error that retrying cannot fix (an invalid spec), let the closure return
//! `controller::Error` and fail with [`controller::Error::terminal`]: the conversion of
//! `Error<controller::Error>` keeps the closure's error terminal, as a `reconcile.TerminalError`
//! stays terminal through controller-runtime's wrapping. See [`finalizer`] for such a reconciler.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::controller::Action;
//! use kdev_core::finalizer::{self, Event, finalizer};
//! use kube_client::{Api, api::{DeleteParams, PostParams}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let ns = env.namespace().await?;
//! let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("guarded".into());
//! let cm = Arc::new(api.create(&PostParams::default(), &cm).await?);
//!
//! async fn reconcile(api: &Api<ConfigMap>, cm: Arc<ConfigMap>) -> Result<Action, finalizer::Error<std::io::Error>> {
//!     finalizer(api, "example.com/cleanup", cm, |event| async move {
//!         match event {
//!             Event::Apply(_cm) => Ok(Action::done()),   // create or update what the object asks for
//!             Event::Cleanup(_cm) => Ok(Action::done()), // delete it; an error keeps the object
//!         }
//!     })
//!     .await
//! }
//!
//! reconcile(&api, cm).await?; // adds the finalizer, then applies
//! let cm = api.get("guarded").await?;
//! assert!(finalizer::has_finalizer(&cm.metadata, "example.com/cleanup"));
//!
//! api.delete("guarded", &DeleteParams::default()).await?; // only marks it deleted
//! reconcile(&api, Arc::new(api.get("guarded").await?)).await?; // cleans up, removes the finalizer
//! assert!(api.get_opt("guarded").await?.is_none());
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_client::Api;
use kube_client::api::{Patch, PatchParams};
use kube_core::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::controller;

/// What the closure passed to [`finalizer`] is asked to do.
#[derive(Debug, Clone)]
pub enum Event<K> {
    /// The object lives (and carries our finalizer): make the world match it.
    Apply(Arc<K>),
    /// The object is being deleted: release what it owns. Our finalizer is removed only if
    /// this succeeds.
    Cleanup(Arc<K>),
}

/// Why [`finalizer`] failed; `E` is the closure's error.
///
/// It implements [`std::error::Error`] when `E` does, and so converts into
/// [`controller::Error`] with `?` (retried with backoff). `Error<controller::Error>` has its own
/// conversion, which keeps a [terminal](controller::Error::terminal) error from the closure
/// terminal; every other variant is retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The closure failed on [`Event::Apply`].
    #[error("apply failed")]
    Apply(#[source] E),
    /// The closure failed on [`Event::Cleanup`]; the finalizer was kept.
    #[error("cleanup failed")]
    Cleanup(#[source] E),
    /// Adding the finalizer failed (409 Conflict when the object changed meanwhile).
    #[error("adding finalizer {finalizer} to {object} failed")]
    AddFinalizer {
        /// The object, `namespace/name`.
        object: String,
        /// The finalizer.
        finalizer: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// Removing the finalizer failed (422 Unprocessable Entity when the finalizer list
    /// changed meanwhile or the object was recreated under the same name).
    #[error("removing finalizer {finalizer} from {object} failed")]
    RemoveFinalizer {
        /// The object, `namespace/name`.
        object: String,
        /// The finalizer.
        finalizer: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// The object has no name, so it cannot be patched.
    #[error("object has no name")]
    UnnamedObject,
    /// The object has no resourceVersion, so it cannot be patched safely (objects read from
    /// the API server or a cache always have one).
    #[error("object {0} has no resourceVersion")]
    NoResourceVersion(String),
    /// The object has no uid, so the finalizer cannot be removed safely (objects read from
    /// the API server or a cache always have one).
    #[error("object {0} has no uid")]
    NoUid(String),
    /// The finalizer name is not a qualified name such as `example.com/cleanup`.
    #[error("invalid finalizer name {0:?}: expected a qualified name such as example.com/cleanup")]
    InvalidName(String),
}

/// Whether `meta.finalizers` contains `finalizer` (controller-runtime's `ContainsFinalizer`).
pub fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == finalizer)
}

/// Appends `finalizer` unless present; returns whether the list changed (controller-runtime's
/// `AddFinalizer`). Local only: write the object to make it count.
pub fn add_finalizer(meta: &mut ObjectMeta, finalizer: &str) -> bool {
    if has_finalizer(meta, finalizer) {
        return false;
    }
    meta.finalizers.get_or_insert_default().push(finalizer.to_string());
    true
}

/// Removes every occurrence of `finalizer`; returns whether the list changed
/// (controller-runtime's `RemoveFinalizer`). Local only: write the object to make it count.
pub fn remove_finalizer(meta: &mut ObjectMeta, finalizer: &str) -> bool {
    let Some(list) = meta.finalizers.as_mut() else {
        return false;
    };
    let before = list.len();
    list.retain(|f| f != finalizer);
    list.len() != before
}

/// Whether `name` is a qualified name (`[prefix/]name`, prefix a DNS subdomain, name at most
/// 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric), the form the API
/// server requires of finalizers (and of an Event's `reportingController`).
pub(crate) fn valid_name(name: &str) -> bool {
    let (prefix, local) = match name.split_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, name),
    };
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let local_ok = !local.is_empty()
        && local.len() <= 63
        && alnum(local.chars().next())
        && alnum(local.chars().last())
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    local_ok && prefix_ok
}

fn object_key(meta: &ObjectMeta) -> String {
    match (&meta.namespace, &meta.name) {
        (Some(ns), Some(name)) if !ns.is_empty() => format!("{ns}/{name}"),
        (_, name) => name.clone().unwrap_or_default(),
    }
}

/// Runs `reconcile` under the finalizer `finalizer_name`: adds the finalizer to live objects,
/// and on deletion removes it only after [`Event::Cleanup`] succeeded. The flow is numbered
/// in the [module docs](self).
///
/// `obj` is the object as the reconcile sees it (from the cache); `api` must be able to
/// patch it (an `Api` for its namespace, or cluster-wide for cluster-scoped objects).
///
/// The closure's error `E` may be any type. With [`controller::Error`], the closure can use
/// `?` on any error and return [`controller::Error::terminal`] for what retrying cannot fix;
/// `?` on the result then hands the controller a terminal error, which it does not retry.
///
/// # Examples
///
/// A reconciler that refuses an invalid spec for good, but retries a failed clean-up:
///
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kdev_core::controller::{Action, Context, Error, Reconciler};
/// use kdev_core::finalizer::{Event, finalizer};
/// use kube_client::Api;
///
/// struct Guard;
///
/// impl Reconciler<ConfigMap> for Guard {
///     async fn reconcile(&self, cm: Arc<ConfigMap>, ctx: Context) -> Result<Action, Error> {
///         let ns = ctx.request().namespace.as_deref().unwrap_or_default();
///         let api: Api<ConfigMap> = Api::namespaced(ctx.client().clone(), ns);
///         let action = finalizer(&api, "example.com/cleanup", cm, |event| async move {
///             match event {
///                 Event::Apply(cm) if cm.data.is_none() => {
///                     Err(Error::terminal("data is required")) // not retried
///                 }
///                 Event::Apply(_) => Ok(Action::done()),
///                 Event::Cleanup(_) => Err(Error::msg("the volume is still attached")), // retried
///             }
///         })
///         .await?; // stays terminal
///         Ok(action)
///     }
/// }
/// ```
///
/// # Errors
///
/// - [`Error::Apply`] / [`Error::Cleanup`]: the closure failed (on clean-up the finalizer stays);
/// - [`Error::AddFinalizer`] / [`Error::RemoveFinalizer`]: the patch failed, typically with
///   409 Conflict (adding) or 422 (removing) because `obj` is stale; retrying with the fresh
///   object fixes it;
/// - [`Error::InvalidName`], [`Error::UnnamedObject`], [`Error::NoResourceVersion`],
///   [`Error::NoUid`]: bad input, found before anything is sent or the closure runs.
///
/// # Cancel safety
///
/// Dropping the future may leave the finalizer added (and the closure not run) or the
/// clean-up done and the finalizer not yet removed; the next reconcile continues from there.
pub async fn finalizer<K, F, Fut, T, E>(
    api: &Api<K>,
    finalizer_name: &str,
    obj: Arc<K>,
    reconcile: F,
) -> Result<T, Error<E>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: Default,
{
    if !valid_name(finalizer_name) {
        return Err(Error::InvalidName(finalizer_name.to_string()));
    }
    let meta = obj.meta();
    let deleting = meta.deletion_timestamp.is_some();
    match (deleting, has_finalizer(meta, finalizer_name)) {
        (false, true) => reconcile(Event::Apply(obj)).await.map_err(Error::Apply),
        (false, false) => {
            let mut finalizers = meta.finalizers.clone().unwrap_or_default();
            finalizers.push(finalizer_name.to_string());
            let patched = patch_finalizers(api, meta, finalizers)
                .await?
                .map_err(|source| Error::AddFinalizer {
                    object: object_key(meta),
                    finalizer: finalizer_name.to_string(),
                    source,
                })?;
            reconcile(Event::Apply(Arc::new(patched))).await.map_err(Error::Apply)
        }
        (true, true) => {
            // Bad input fails before the clean-up runs, not after it on every retry.
            let name = meta.name.as_deref().ok_or(Error::UnnamedObject)?;
            let uid = meta
                .uid
                .as_deref()
                .filter(|uid| !uid.is_empty())
                .ok_or_else(|| Error::NoUid(object_key(meta)))?;
            let out = reconcile(Event::Cleanup(Arc::clone(&obj)))
                .await
                .map_err(Error::Cleanup)?;
            let finalizers = meta.finalizers.as_deref().unwrap_or_default();
            match remove_by_patch(api, name, uid, finalizers, finalizer_name).await {
                Ok(()) => Ok(out),
                // Already gone: someone else removed the last finalizer.
                Err(kube_client::Error::Api(s)) if s.is_not_found() => Ok(out),
                Err(source) => Err(Error::RemoveFinalizer {
                    object: object_key(meta),
                    finalizer: finalizer_name.to_string(),
                    source,
                }),
            }
        }
        (true, false) => Ok(T::default()),
    }
}

/// Sets `metadata.finalizers` to `finalizers` with a merge patch conditional on the object's
/// resourceVersion. The outer error is bad input, the inner one the API call.
async fn patch_finalizers<K, E>(
    api: &Api<K>,
    meta: &ObjectMeta,
    finalizers: Vec<String>,
) -> Result<Result<K, kube_client::Error>, Error<E>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let name = meta.name.as_deref().ok_or(Error::UnnamedObject)?;
    let rv = meta
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| Error::NoResourceVersion(object_key(meta)))?;
    let patch = json!({ "metadata": { "resourceVersion": rv, "finalizers": finalizers } });
    Ok(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await)
}

/// Removes `finalizer` from the object `name` (whose uid and finalizer list are given) with a
/// JSON patch that tests the object's uid and the finalizer's position, not its
/// resourceVersion: writes the clean-up made to the object (a status update) do not make the
/// removal fail, while a finalizer list that changed meanwhile (422, retried on the fresh
/// object) or an object recreated under the same name does.
async fn remove_by_patch<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    finalizers: &[String],
    finalizer: &str,
) -> Result<(), kube_client::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{PatchOperation, RemoveOperation, TestOperation};

    let Some(index) = finalizers.iter().position(|f| f == finalizer) else {
        return Ok(()); // not there: nothing to remove
    };
    let at = PointerBuf::from_tokens(["metadata", "finalizers", &index.to_string()]);
    let ops = vec![
        PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["metadata", "uid"]),
            value: uid.into(),
        }),
        PatchOperation::Test(TestOperation {
            path: at.clone(),
            value: finalizer.into(),
        }),
        PatchOperation::Remove(RemoveOperation { path: at }),
    ];
    let patch: Patch<()> = Patch::Json(json_patch::Patch(ops));
    api.patch(name, &PatchParams::default(), &patch).await.map(drop)
}

impl<E> Error<E> {
    /// The same error with the closure's error mapped by `f`.
    fn map_closure_error<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Apply(e) => Error::Apply(f(e)),
            Error::Cleanup(e) => Error::Cleanup(f(e)),
            Error::AddFinalizer {
                object,
                finalizer,
                source,
            } => Error::AddFinalizer {
                object,
                finalizer,
                source,
            },
            Error::RemoveFinalizer {
                object,
                finalizer,
                source,
            } => Error::RemoveFinalizer {
                object,
                finalizer,
                source,
            },
            Error::UnnamedObject => Error::UnnamedObject,
            Error::NoResourceVersion(object) => Error::NoResourceVersion(object),
            Error::NoUid(object) => Error::NoUid(object),
            Error::InvalidName(name) => Error::InvalidName(name),
        }
    }
}

/// Keeps the closure's error [terminal](controller::Error::terminal) when it was, so that the
/// controller does not retry it; every other error is retried. The source chain is this
/// error's step (`apply failed`), then the closure's error and its sources.
impl From<Error<controller::Error>> for controller::Error {
    fn from(e: Error<controller::Error>) -> Self {
        let mut terminal = false;
        let e = e.map_closure_error(|inner| {
            terminal = inner.is_terminal();
            Cause(inner.into_source())
        });
        if terminal {
            controller::Error::terminal(e)
        } else {
            controller::Error::retry(e)
        }
    }
}

/// The source of a closure's [`controller::Error`], standing in for it in a converted
/// [`Error`] or [`object::Error`](crate::object::Error) (which must be a
/// [`std::error::Error`]; `controller::Error` is not one).
pub(crate) struct Cause(pub(crate) Box<dyn StdError + Send + Sync + 'static>);

impl Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_report_whether_the_list_changed() {
        let mut meta = ObjectMeta::default();
        assert!(!has_finalizer(&meta, "a.io/x"));
        assert!(!remove_finalizer(&mut meta, "a.io/x"));
        assert!(add_finalizer(&mut meta, "a.io/x"));
        assert!(!add_finalizer(&mut meta, "a.io/x"));
        assert!(add_finalizer(&mut meta, "a.io/y"));
        assert_eq!(meta.finalizers.as_deref().unwrap(), ["a.io/x", "a.io/y"]);
        assert!(remove_finalizer(&mut meta, "a.io/x"));
        assert!(!has_finalizer(&meta, "a.io/x"));
        assert!(has_finalizer(&meta, "a.io/y"));
    }

    /// The chain of messages below `e`.
    fn chain(e: &controller::Error) -> Vec<String> {
        let mut out = vec![];
        let mut next: Option<&(dyn StdError + 'static)> = Some(e.source());
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    #[test]
    fn a_terminal_error_from_the_closure_stays_terminal() {
        let apply = controller::Error::from(Error::Apply(controller::Error::terminal("bad spec")));
        assert!(apply.is_terminal());
        assert_eq!(chain(&apply), ["apply failed", "bad spec"]);
        let gone = std::io::Error::other("volume gone for good");
        let cleanup = controller::Error::from(Error::Cleanup(controller::Error::terminal(gone)));
        assert!(cleanup.is_terminal());
        assert_eq!(chain(&cleanup), ["cleanup failed", "volume gone for good"]);
        assert_eq!(cleanup.to_string(), "terminal error: cleanup failed");
    }

    #[test]
    fn other_finalizer_errors_are_retried() {
        let inner = controller::Error::from(std::io::Error::other("busy"));
        let apply = controller::Error::from(Error::Apply(inner));
        assert!(!apply.is_terminal());
        assert_eq!(chain(&apply), ["apply failed", "busy"]);
        let bad = controller::Error::from(Error::<controller::Error>::InvalidName("x/".into()));
        assert!(!bad.is_terminal());
        // Through the blanket conversion, for a closure error that is a `std::error::Error`.
        let io = controller::Error::from(Error::Cleanup(std::io::Error::other("busy")));
        assert!(!io.is_terminal());
        assert_eq!(chain(&io), ["cleanup failed", "busy"]);
    }

    #[test]
    fn finalizer_names_must_be_qualified_names() {
        for ok in ["example.com/cleanup", "cleanup", "a.b-c.io/x_y.z", "kubernetes"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "Example.com/x",
            "example.com/",
            "a b",
            "x/-y",
            "a/b/c",
            &"x".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
