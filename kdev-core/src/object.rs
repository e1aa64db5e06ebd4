//! Writing the objects a controller manages: create-or-update, create-or-patch, status
//! patches and server-side apply (controller-runtime's `controllerutil.CreateOrUpdate` and
//! `CreateOrPatch`, client-go's `retry.RetryOnConflict`).
//!
//! Three ways to make an object look the way a reconcile wants:
//!
//! - [`create_or_update`]: read, change a copy with a closure, **replace** the whole object
//!   with its resourceVersion if it changed. Optimistic concurrency: a concurrent write makes
//!   the replace fail with 409 Conflict, and the read-mutate-replace is retried (5 attempts,
//!   10 ms apart, as client-go's `retry.DefaultRetry`). Simple; the closure must be
//!   idempotent, and it sees the whole object.
//! - [`create_or_patch`]: the same read and closure, then a **JSON merge patch** of just what
//!   the closure changed, and a separate merge patch of `status` to the status subresource
//!   when the status changed. Fields other writers own are never sent, so nothing conflicts.
//! - [`apply`]: **server-side apply** with a field manager: send only the fields you have an
//!   opinion about; the API server merges, tracks ownership per field, and reports conflicts
//!   with other managers (or takes over with `force`). No read needed.
//!
//! [`patch_status`] merge-patches the status subresource with the fields given;
//! [`patch_status_from`] makes it exactly a given status, removing the fields it lacks.
//! [`is_not_found`] and [`ignore_not_found`] tell a missing object from a failure (client-go's
//! `apierrors.IsNotFound`, controller-runtime's `client.IgnoreNotFound`).
//!
//! # Example
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kdev_core::object::{self, OperationResult};
//! use kube_client::Api;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let env = kdev_testenv::TestEnv::start().await?;
//! # let ns = env.namespace().await?;
//! let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
//! let set_color = |cm: &mut ConfigMap| {
//!     cm.data.get_or_insert_default().insert("color".into(), "blue".into());
//!     Ok::<_, std::convert::Infallible>(())
//! };
//! let (result, cm) = object::create_or_update(&api, "settings", set_color).await?;
//! assert_eq!(result, OperationResult::Created);
//! let (result, _) = object::create_or_update(&api, "settings", set_color).await?;
//! assert_eq!(result, OperationResult::Unchanged);
//! assert_eq!(cm.data.unwrap()["color"], "blue");
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::fmt::Debug;
use std::time::Duration;

use kube_client::Api;
use kube_client::api::{Patch, PatchParams, PostParams};
use kube_core::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// What [`create_or_update`] or [`create_or_patch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationResult {
    /// The object did not exist and was created.
    Created,
    /// The object (not its status) was updated.
    Updated,
    /// Both the object and its status were patched ([`create_or_patch`] only).
    UpdatedStatus,
    /// Only the status was patched ([`create_or_patch`] only).
    UpdatedStatusOnly,
    /// The closure changed nothing; nothing was written.
    Unchanged,
}

/// Why a write failed. `E` is the error type of the caller's closure.
///
/// It implements [`std::error::Error`] when `E` does, and so converts into
/// [`controller::Error`](crate::controller::Error) with `?` (retried with backoff).
/// `Error<controller::Error>` has its own conversion, which keeps a
/// [terminal](crate::controller::Error::terminal) error from the closure terminal; every other
/// variant is retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// The caller's closure failed; nothing was written.
    #[error("mutate function failed")]
    Mutate(#[source] E),
    /// The closure changed the object's name or namespace.
    #[error("mutate function changed the name or namespace of {object}")]
    NameChanged {
        /// The object, `namespace/name`.
        object: String,
    },
    /// The object has no name.
    #[error("object has no name")]
    UnnamedObject,
    /// Reading the object failed.
    #[error("getting {object} failed")]
    Get {
        /// The object, `namespace/name`.
        object: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// Creating, replacing or patching the object failed (after the conflict retries).
    #[error("writing {object} failed")]
    Write {
        /// The object, `namespace/name`.
        object: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// Patching the status subresource failed.
    #[error("writing the status of {object} failed")]
    WriteStatus {
        /// The object, `namespace/name`.
        object: String,
        /// What the API server said.
        #[source]
        source: kube_client::Error,
    },
    /// The object could not be serialized to JSON.
    #[error("serializing {object} failed")]
    Serialize {
        /// The object, `namespace/name`.
        object: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl<E> Error<E> {
    /// The API server's answer, when a request failed ([`Get`](Self::Get),
    /// [`Write`](Self::Write), [`WriteStatus`](Self::WriteStatus)); `None` for the errors
    /// raised before any request.
    pub fn api_error(&self) -> Option<&kube_client::Error> {
        match self {
            Error::Get { source, .. } | Error::Write { source, .. } | Error::WriteStatus { source, .. } => Some(source),
            Error::Mutate(_) | Error::NameChanged { .. } | Error::UnnamedObject | Error::Serialize { .. } => None,
        }
    }

    /// Whether a request failed because the object does not exist (see [`is_not_found`]): for
    /// example a status patch of an object deleted meanwhile, which a reconcile can let go.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn run(api: kube_client::Api<k8s_openapi::api::core::v1::ConfigMap>) -> Result<(), kdev_core::object::Error> {
    /// use kdev_core::object::patch_status;
    ///
    /// match patch_status(&api, "settings", &serde_json::json!({"phase": "Ready"})).await {
    ///     Ok(_) => {}
    ///     // Deleted since it was read: nothing to report on.
    ///     Err(e) if e.is_not_found() => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_not_found(&self) -> bool {
        self.api_error().is_some_and(is_not_found)
    }

    /// The same error with the closure's error mapped by `f`.
    fn map_mutate<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Mutate(e) => Error::Mutate(f(e)),
            Error::NameChanged { object } => Error::NameChanged { object },
            Error::UnnamedObject => Error::UnnamedObject,
            Error::Get { object, source } => Error::Get { object, source },
            Error::Write { object, source } => Error::Write { object, source },
            Error::WriteStatus { object, source } => Error::WriteStatus { object, source },
            Error::Serialize { object, source } => Error::Serialize { object, source },
        }
    }
}

/// A [terminal](crate::controller::Error::terminal) error from the closure stays terminal: the
/// controller does not retry it; every other error is retried. The source chain is
/// `mutate function failed`, then the closure's error and its sources.
impl From<Error<crate::controller::Error>> for crate::controller::Error {
    fn from(e: Error<crate::controller::Error>) -> Self {
        let mut terminal = false;
        let e = e.map_mutate(|inner| {
            terminal = inner.is_terminal();
            crate::finalizer::Cause(inner.into_source())
        });
        if terminal {
            crate::controller::Error::terminal(e)
        } else {
            crate::controller::Error::retry(e)
        }
    }
}

/// Whether `err` is the API server saying the object does not exist, as client-go's
/// `apierrors.IsNotFound` decides: the reason `NotFound`, or a 404 whose reason is not one of
/// the API's known reasons (an empty one, from a proxy in between).
///
/// # Examples
/// ```
/// use kdev_core::object::is_not_found;
/// use kube_core::Status;
///
/// let gone = kube_client::Error::Api(Box::new(Status::failure("configmaps \"a\" not found", "NotFound").with_code(404)));
/// assert!(is_not_found(&gone));
/// let conflict = kube_client::Error::Api(Box::new(Status::failure("changed", "Conflict").with_code(409)));
/// assert!(!is_not_found(&conflict));
/// ```
pub fn is_not_found(err: &kube_client::Error) -> bool {
    // Not kube-core's `Status::is_not_found`: it checks whether "NotFound" (not the answer's
    // reason) is a known reason, so a 404 without a reason is not "not found" to it.
    reason_or_code(err, kube_core::response::reason::NOT_FOUND, 404)
}

/// client-go's test for most reasons: the answer's reason is `reason`, or its code is `code`
/// and its reason none the API knows (an empty one, from a proxy in between).
fn reason_or_code(err: &kube_client::Error, reason: &str, code: u16) -> bool {
    match err {
        kube_client::Error::Api(status) => {
            status.reason == reason || (status.code == code && !kube_core::response::reason::is_known(&status.reason))
        }
        _ => false,
    }
}

/// `Ok(None)` for an error `ignored` accepts, else the result as it was.
fn ignore<T>(
    result: Result<T, kube_client::Error>,
    ignored: fn(&kube_client::Error) -> bool,
) -> Result<Option<T>, kube_client::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if ignored(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// `Ok(None)` for an error that [`is_not_found`], else the result as it was (controller-runtime's
/// `client.IgnoreNotFound`): a get or delete of an object that may already be gone.
///
/// # Errors
/// Every error but a Not Found.
///
/// # Examples
/// ```no_run
/// # async fn run(api: kube_client::Api<k8s_openapi::api::core::v1::ConfigMap>) -> Result<(), kube_client::Error> {
/// use kdev_core::object::ignore_not_found;
///
/// match ignore_not_found(api.get("settings").await)? {
///     Some(cm) => println!("found {:?}", cm.data),
///     None => println!("no settings yet"),
/// }
/// // Deleting what may already be deleted.
/// ignore_not_found(api.delete("settings", &Default::default()).await)?;
/// # Ok(()) }
/// ```
pub fn ignore_not_found<T>(result: Result<T, kube_client::Error>) -> Result<Option<T>, kube_client::Error> {
    ignore(result, is_not_found)
}

/// Whether `err` is the API server saying an object of that name already exists (a create that
/// lost a race, or met an object a stale cache did not show), as client-go's
/// `apierrors.IsAlreadyExists` decides: the reason `AlreadyExists`. A 409 alone is not enough:
/// a conflict on update is a 409 too.
///
/// # Examples
/// ```
/// use kdev_core::object::{is_already_exists, is_conflict};
/// use kube_core::Status;
///
/// let exists = kube_client::Error::Api(Box::new(Status::failure("configmaps \"a\" already exists", "AlreadyExists").with_code(409)));
/// assert!(is_already_exists(&exists));
/// assert!(!is_conflict(&exists));
/// ```
pub fn is_already_exists(err: &kube_client::Error) -> bool {
    matches!(err, kube_client::Error::Api(status) if status.reason == kube_core::response::reason::ALREADY_EXISTS)
}

/// Whether `err` is the API server refusing a write made against an older version of the object
/// (optimistic concurrency: the resourceVersion sent is no longer the current one), as client-go's
/// `apierrors.IsConflict` decides: the reason `Conflict`, or a 409 whose reason is not one of the
/// API's known reasons. Read the object again and redo the change, or use
/// [`create_or_update`], which does.
pub fn is_conflict(err: &kube_client::Error) -> bool {
    reason_or_code(err, kube_core::response::reason::CONFLICT, 409)
}

/// `Ok(None)` for an error that [`is_already_exists`], else the result as it was
/// (controller-runtime's `client.IgnoreAlreadyExists`): a create of an object that may already
/// be there.
///
/// # Errors
/// Every error but an Already Exists.
///
/// # Examples
/// ```no_run
/// # async fn run(api: kube_client::Api<k8s_openapi::api::core::v1::ConfigMap>, cm: k8s_openapi::api::core::v1::ConfigMap) -> Result<(), kube_client::Error> {
/// use kdev_core::object::ignore_already_exists;
///
/// if ignore_already_exists(api.create(&Default::default(), &cm).await)?.is_none() {
///     println!("created earlier: nothing to do");
/// }
/// # Ok(()) }
/// ```
pub fn ignore_already_exists<T>(result: Result<T, kube_client::Error>) -> Result<Option<T>, kube_client::Error> {
    ignore(result, is_already_exists)
}

/// Attempts of client-go's `retry.DefaultRetry`: 5 steps, 10 ms apart, 10 % jitter.
const RETRY_STEPS: u32 = 5;
const RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// A write to retry from a fresh read: a conflict on update, or a create that raced another
/// (both are 409s).
fn is_retriable_409(e: &kube_client::Error) -> bool {
    matches!(e, kube_client::Error::Api(s) if s.code == 409)
}

async fn retry_pause() {
    let jitter = RETRY_INTERVAL.mul_f64(0.1 * fastrand::f64());
    tokio::time::sleep(RETRY_INTERVAL + jitter).await;
}

fn key<K: Resource>(api: &Api<K>, name: &str) -> String {
    match api.namespace() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// `obj`'s name; [`Error::UnnamedObject`] when it has none (or an empty one).
fn name_of<K: Resource, E>(obj: &K) -> Result<String, Error<E>> {
    obj.meta()
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(Error::UnnamedObject)
}

/// A default `K` with `name` and the `api`'s namespace.
fn fresh<K: Default + Resource>(api: &Api<K>, name: &str) -> K {
    let mut k = K::default();
    k.meta_mut().name = Some(name.to_string());
    k.meta_mut().namespace = api.namespace().map(str::to_string);
    k
}

/// Runs `mutate` on `obj` and checks it kept its identity.
fn run_mutate<K: Resource, E>(
    obj: &mut K,
    mutate: &mut impl FnMut(&mut K) -> Result<(), E>,
    object: &str,
) -> Result<(), Error<E>> {
    let (name, ns) = (obj.meta().name.clone(), obj.meta().namespace.clone());
    mutate(obj).map_err(Error::Mutate)?;
    if obj.meta().name != name || obj.meta().namespace != ns {
        return Err(Error::NameChanged {
            object: object.to_string(),
        });
    }
    Ok(())
}

fn to_json<K: Serialize, E>(obj: &K, object: &str) -> Result<Value, Error<E>> {
    serde_json::to_value(obj).map_err(|source| Error::Serialize {
        object: object.to_string(),
        source,
    })
}

/// Makes the object `name` look as `mutate` wants it (controller-runtime's `CreateOrUpdate`),
/// and returns what was done and the object as the API server holds it.
///
/// 1. Get the object. If it does not exist, `mutate` a default `K` with `name` and the
///    `api`'s namespace, and create it: [`OperationResult::Created`].
/// 2. Otherwise `mutate` a copy; if its JSON equals the original's:
///    [`OperationResult::Unchanged`] and nothing is sent.
/// 3. Else replace the object (the resourceVersion read in step 1 is the precondition):
///    [`OperationResult::Updated`].
/// 4. On 409 Conflict (someone wrote in between, or created it first) start again from 1,
///    at most 5 attempts 10 ms apart (client-go's `retry.RetryOnConflict(retry.DefaultRetry)`).
///
/// `mutate` may run several times and must not change the name or namespace. Status changes
/// are not written when the type has a status subresource (the API server ignores them on
/// update): use [`create_or_patch`] for that. For types without `Default` (e.g.
/// `DynamicObject`) use [`create_or_update_from`].
///
/// # Errors
///
/// [`Error::Mutate`], [`Error::NameChanged`], [`Error::Get`], [`Error::Write`] (including
/// the last 409 when the retries ran out), [`Error::Serialize`].
///
/// # Cancel safety
///
/// Dropping the future after the write was sent may leave it done; calling again is safe.
pub async fn create_or_update<K, E>(
    api: &Api<K>,
    name: &str,
    mutate: impl FnMut(&mut K) -> Result<(), E>,
) -> Result<(OperationResult, K), Error<E>>
where
    K: Resource + Default + Clone + Serialize + DeserializeOwned + Debug,
{
    create_or_update_from(api, fresh(api, name), mutate).await
}

/// [`create_or_update`] starting from `new` (which names the object) when the object does
/// not exist yet.
///
/// # Errors
///
/// As [`create_or_update`]; [`Error::UnnamedObject`] when `new` has no name.
pub async fn create_or_update_from<K, E>(
    api: &Api<K>,
    new: K,
    mut mutate: impl FnMut(&mut K) -> Result<(), E>,
) -> Result<(OperationResult, K), Error<E>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = name_of(&new)?;
    let object = key(api, &name);
    let mut attempt = 1;
    loop {
        let written = match api.get_opt(&name).await {
            Err(source) => return Err(Error::Get { object, source }),
            Ok(None) => {
                let mut obj = new.clone();
                run_mutate(&mut obj, &mut mutate, &object)?;
                api.create(&PostParams::default(), &obj)
                    .await
                    .map(|o| (OperationResult::Created, o))
            }
            Ok(Some(current)) => {
                let mut obj = current.clone();
                run_mutate(&mut obj, &mut mutate, &object)?;
                if to_json(&obj, &object)? == to_json(&current, &object)? {
                    return Ok((OperationResult::Unchanged, current));
                }
                api.replace(&name, &PostParams::default(), &obj)
                    .await
                    .map(|o| (OperationResult::Updated, o))
            }
        };
        match written {
            Ok(done) => return Ok(done),
            Err(e) if is_retriable_409(&e) && attempt < RETRY_STEPS => {
                attempt += 1;
                retry_pause().await;
            }
            Err(source) => return Err(Error::Write { object, source }),
        }
    }
}

/// Makes the object `name` look as `mutate` wants it by patching only what `mutate` changed
/// (controller-runtime's `CreateOrPatch`).
///
/// 1. Get the object. If it does not exist, `mutate` a default `K` with `name` and the `api`'s
///    namespace and create it: [`OperationResult::Created`].
/// 2. Otherwise `mutate` a copy and compute the JSON merge patch (RFC 7386) from the original
///    to the copy, separately for `status` and for everything else.
/// 3. Send the main patch if it is not empty, then the status patch to the status subresource
///    if it is not empty: [`OperationResult::Updated`], [`OperationResult::UpdatedStatus`]
///    (both), [`OperationResult::UpdatedStatusOnly`], or [`OperationResult::Unchanged`].
///
/// The patches carry no resourceVersion: they apply on top of whatever is stored, so they
/// need no conflict retries, and a list is always sent whole (merge patches replace lists).
///
/// # Errors
///
/// [`Error::Mutate`], [`Error::NameChanged`], [`Error::Get`], [`Error::Write`],
/// [`Error::WriteStatus`], [`Error::Serialize`].
///
/// # Cancel safety
///
/// Dropping the future may leave the main patch sent and the status patch not; calling
/// again completes it.
pub async fn create_or_patch<K, E>(
    api: &Api<K>,
    name: &str,
    mutate: impl FnMut(&mut K) -> Result<(), E>,
) -> Result<(OperationResult, K), Error<E>>
where
    K: Resource + Default + Clone + Serialize + DeserializeOwned + Debug,
{
    create_or_patch_from(api, fresh(api, name), mutate).await
}

/// [`create_or_patch`] starting from `new` (which names the object) when the object does
/// not exist yet; for types without `Default`, such as `DynamicObject`.
///
/// # Errors
///
/// As [`create_or_patch`]; [`Error::UnnamedObject`] when `new` has no name.
pub async fn create_or_patch_from<K, E>(
    api: &Api<K>,
    new: K,
    mut mutate: impl FnMut(&mut K) -> Result<(), E>,
) -> Result<(OperationResult, K), Error<E>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = name_of(&new)?;
    let name = name.as_str();
    let object = key(api, name);
    let current = match api.get_opt(name).await {
        Err(source) => return Err(Error::Get { object, source }),
        Ok(Some(current)) => current,
        Ok(None) => {
            let mut obj = new;
            run_mutate(&mut obj, &mut mutate, &object)?;
            return match api.create(&PostParams::default(), &obj).await {
                Ok(o) => Ok((OperationResult::Created, o)),
                Err(source) => Err(Error::Write { object, source }),
            };
        }
    };
    let mut obj = current.clone();
    run_mutate(&mut obj, &mut mutate, &object)?;
    let mut before = to_json(&current, &object)?;
    let mut after = to_json(&obj, &object)?;
    let status_before = before.as_object_mut().and_then(|m| m.remove("status"));
    let status_after = after.as_object_mut().and_then(|m| m.remove("status"));
    let main = merge_diff(&before, &after);
    let status = match (&status_before, &status_after) {
        (a, b) if a == b => None,
        (Some(a), Some(b)) => merge_diff(a, b),
        (_, b) => Some(b.clone().unwrap_or(Value::Null)),
    };
    let pp = PatchParams::default();
    let mut latest = current;
    if let Some(patch) = &main {
        latest = api
            .patch(name, &pp, &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Write {
                object: object.clone(),
                source,
            })?;
    }
    if let Some(status) = &status {
        latest = api
            .patch_status(name, &pp, &Patch::Merge(json!({ "status": status })))
            .await
            .map_err(|source| Error::WriteStatus { object, source })?;
    }
    let result = match (main.is_some(), status.is_some()) {
        (true, true) => OperationResult::UpdatedStatus,
        (true, false) => OperationResult::Updated,
        (false, true) => OperationResult::UpdatedStatusOnly,
        (false, false) => OperationResult::Unchanged,
    };
    Ok((result, latest))
}

/// The JSON merge patch (RFC 7386) that turns `before` into `after`, `None` when they are
/// equal. Objects are diffed key by key; anything else (lists included) is sent whole.
pub(crate) fn merge_diff(before: &Value, after: &Value) -> Option<Value> {
    if before == after {
        return None;
    }
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        return Some(after.clone());
    };
    let mut patch = Map::new();
    for (k, av) in a {
        match b.get(k) {
            Some(bv) if bv == av => {}
            Some(bv) if bv.is_object() && av.is_object() => {
                if let Some(d) = merge_diff(bv, av) {
                    patch.insert(k.clone(), d);
                }
            }
            _ => {
                patch.insert(k.clone(), av.clone());
            }
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    Some(Value::Object(patch))
}

/// Merge-patches the status subresource of `name` with `status` (`{"status": status}`) and
/// returns the object. Only the fields present in `status` change; `null` removes one.
///
/// # Errors
///
/// [`Error::WriteStatus`]; [`Error::Serialize`] if `status` does not serialize.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let object = key(api, name);
    let status = serde_json::to_value(status).map_err(|source| Error::Serialize {
        object: object.clone(),
        source,
    })?;
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(|source| Error::WriteStatus { object, source })
}

/// Makes the status of `current` exactly `status`: merge-patches the status subresource with
/// the difference between the two, so a field `status` no longer has (an `Option` now `None`,
/// skipped when serialized) is removed with `null`, and unchanged fields are not sent
/// (controller-runtime's `Status().Patch(ctx, obj, client.MergeFrom(orig))`). `current` is the
/// object as the reconcile read it, typically from the cache. Returns the object, or `current`
/// unchanged, without a request, when the status already matches.
///
/// Use [`patch_status`] to send only the fields you set, whatever the object holds.
///
/// # Errors
///
/// [`Error::WriteStatus`]; [`Error::Serialize`] if `current` or `status` does not serialize.
pub async fn patch_status_from<K>(api: &Api<K>, current: &K, status: &impl Serialize) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = current.meta().name.clone().unwrap_or_default();
    let object = key(api, &name);
    let serialize = |source| Error::Serialize {
        object: object.clone(),
        source,
    };
    let before = serde_json::to_value(current)
        .map_err(serialize)?
        .get_mut("status")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let after = serde_json::to_value(status).map_err(serialize)?;
    let Some(diff) = merge_diff(&before, &after) else {
        return Ok(current.clone());
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": diff })))
        .await
        .map_err(|source| Error::WriteStatus { object, source })
}

/// Server-side applies `obj` as `field_manager` and returns the result (`PatchParams::apply`).
/// `obj` should hold only the fields this manager has an opinion about, with `apiVersion`
/// and `kind` (typed k8s-openapi objects always serialize them); its `managedFields` are
/// cleared before sending. With `force`, fields owned by other managers are taken over
/// instead of failing with 409 Conflict.
///
/// # Errors
///
/// [`Error::UnnamedObject`]; [`Error::Write`] (409 lists the conflicting managers).
pub async fn apply<K>(api: &Api<K>, obj: &K, field_manager: &str, force: bool) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = name_of(obj)?;
    let mut pp = PatchParams::apply(field_manager);
    if force {
        pp = pp.force();
    }
    let body = if obj.meta().managed_fields.is_some() {
        let mut o = obj.clone();
        o.meta_mut().managed_fields = None;
        api.patch(&name, &pp, &Patch::Apply(&o)).await
    } else {
        api.patch(&name, &pp, &Patch::Apply(obj)).await
    };
    body.map_err(|source| Error::Write {
        object: key(api, &name),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller;

    fn api_error(code: u16, reason: &str) -> kube_client::Error {
        kube_client::Error::Api(Box::new(kube_core::Status::failure("m", reason).with_code(code)))
    }

    /// client-go's `IsNotFound`: the reason, or a 404 with an unknown reason.
    #[test]
    fn not_found_is_the_reason_or_a_404_with_an_unknown_reason() {
        assert!(is_not_found(&api_error(404, "NotFound")));
        assert!(is_not_found(&api_error(404, "")));
        assert!(is_not_found(&api_error(404, "SomethingNew")));
        assert!(!is_not_found(&api_error(404, "MethodNotAllowed")));
        assert!(!is_not_found(&api_error(409, "Conflict")));
        assert!(!is_not_found(&api_error(410, "Gone")));
        assert!(!is_not_found(&kube_client::Error::LinesCodecMaxLineLengthExceeded));
        assert_eq!(ignore_not_found(Ok::<_, kube_client::Error>(1)).unwrap(), Some(1));
        assert_eq!(ignore_not_found::<i32>(Err(api_error(404, "NotFound"))).unwrap(), None);
        assert!(ignore_not_found::<i32>(Err(api_error(500, "InternalError"))).is_err());
    }

    /// client-go's `IsAlreadyExists` (the reason only) and `IsConflict` (the reason, or a 409
    /// with an unknown reason).
    #[test]
    fn already_exists_and_conflict_are_told_apart() {
        assert!(is_already_exists(&api_error(409, "AlreadyExists")));
        assert!(!is_already_exists(&api_error(409, "Conflict")));
        assert!(!is_already_exists(&api_error(409, "")));
        assert!(is_conflict(&api_error(409, "Conflict")));
        assert!(is_conflict(&api_error(409, "")));
        assert!(!is_conflict(&api_error(409, "AlreadyExists")));
        assert!(!is_conflict(&api_error(500, "InternalError")));
        assert!(!is_conflict(&kube_client::Error::LinesCodecMaxLineLengthExceeded));
        assert_eq!(ignore_already_exists(Ok::<_, kube_client::Error>(1)).unwrap(), Some(1));
        assert_eq!(
            ignore_already_exists::<i32>(Err(api_error(409, "AlreadyExists"))).unwrap(),
            None
        );
        assert!(ignore_already_exists::<i32>(Err(api_error(409, "Conflict"))).is_err());
    }

    #[test]
    fn an_object_error_is_not_found_only_when_its_request_was_answered_so() {
        let get = Error::<Infallible>::Get {
            object: "ns/a".into(),
            source: api_error(404, "NotFound"),
        };
        assert!(get.is_not_found());
        assert!(get.api_error().is_some());
        let status = Error::<Infallible>::WriteStatus {
            object: "ns/a".into(),
            source: api_error(404, ""),
        };
        assert!(status.is_not_found());
        let conflict = Error::<Infallible>::Write {
            object: "ns/a".into(),
            source: api_error(409, "Conflict"),
        };
        assert!(!conflict.is_not_found());
        assert!(!Error::<Infallible>::UnnamedObject.is_not_found());
        assert!(Error::<Infallible>::UnnamedObject.api_error().is_none());
    }

    #[test]
    fn a_terminal_error_from_the_closure_stays_terminal() {
        let mutate = controller::Error::from(Error::Mutate(controller::Error::terminal("bad spec")));
        assert!(mutate.is_terminal());
        assert_eq!(mutate.to_string(), "terminal error: mutate function failed");
        assert_eq!(
            mutate.source().source().map(|e| e.to_string()).as_deref(),
            Some("bad spec")
        );
        let retried = controller::Error::from(Error::Mutate(controller::Error::msg("try again")));
        assert!(!retried.is_terminal());
        let unnamed = controller::Error::from(Error::<controller::Error>::UnnamedObject);
        assert!(!unnamed.is_terminal());
        // A closure error that is a std error converts as before.
        let io = controller::Error::from(Error::Mutate(std::io::Error::other("disk")));
        assert!(!io.is_terminal());
    }

    #[test]
    fn merge_diff_sends_changes_and_nulls_for_removals() {
        let before = json!({"a": 1, "m": {"x": 1, "y": 2}, "l": [1, 2], "gone": true});
        let after = json!({"a": 1, "m": {"x": 1, "y": 3, "z": {"k": "v"}}, "l": [1], "new": "n"});
        let patch = merge_diff(&before, &after).unwrap();
        assert_eq!(
            patch,
            json!({"m": {"y": 3, "z": {"k": "v"}}, "l": [1], "new": "n", "gone": null})
        );
        assert_eq!(merge_diff(&after, &after), None);
    }

    #[test]
    fn merge_diff_round_trips_through_rfc7386() {
        fn apply(target: &mut Value, patch: &Value) {
            match (target.as_object_mut(), patch.as_object()) {
                (Some(t), Some(p)) => {
                    for (k, v) in p {
                        if v.is_null() {
                            t.remove(k);
                        } else {
                            apply(t.entry(k.clone()).or_insert(Value::Null), v);
                        }
                    }
                }
                _ => *target = patch.clone(),
            }
        }
        let before = json!({"spec": {"replicas": 1, "sel": {"a": "b"}}, "meta": {"labels": {"x": "1"}}});
        let after = json!({"spec": {"replicas": 2}, "meta": {"labels": {"x": "1", "y": "2"}}, "extra": [1]});
        let mut patched = before.clone();
        apply(&mut patched, &merge_diff(&before, &after).unwrap());
        assert_eq!(patched, after);
    }
}
