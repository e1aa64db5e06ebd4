//! Admission webhooks: typed [`Validator`]s and [`Defaulter`]s, and raw [`Handler`]s on the
//! AdmissionReview v1 wire types ([Kubernetes: dynamic admission control]).
//!
//! [Kubernetes: dynamic admission control]: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/

mod endpoint;
mod patch;
mod review;

use std::collections::BTreeMap;
use std::future::Future;

pub(crate) use endpoint::{Endpoint, Mutating, Raw, Validating};
pub use review::{
    API_VERSION_V1, API_VERSION_V1BETA1, GroupVersionKind, GroupVersionResource, KIND, Operation, PatchType, Request,
    Response, Review, Status, StatusCause, StatusDetails, UserInfo,
};

/// A typed handler's answer: allowed or denied, with a status code, field causes, warnings and
/// audit annotations.
///
/// Warnings and audit annotations are sent with denials too, as controller-runtime does.
///
/// A denial about particular fields reads best as [`Verdict::invalid`]: the user sees it as
/// they see the API server's own validation errors.
///
/// ```
/// use kdev_webhook::admission::{StatusCause, Verdict};
///
/// let replicas = 20;
/// let verdict = if replicas > 10 {
///     Verdict::invalid([StatusCause::invalid("spec.replicas", replicas, "must be at most 10")])
/// } else {
///     Verdict::allow()
/// };
/// assert!(!verdict.is_allowed());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    allowed: bool,
    code: u16,
    reason: String,
    message: String,
    causes: Vec<StatusCause>,
    /// Made by [`Verdict::invalid`]: the message names the object, from the request.
    invalid: bool,
    warnings: Vec<String>,
    audit_annotations: BTreeMap<String, String>,
}

impl Verdict {
    /// Admits the request.
    pub fn allow() -> Verdict {
        Verdict {
            allowed: true,
            code: 200,
            reason: String::new(),
            message: String::new(),
            causes: Vec::new(),
            invalid: false,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    /// Denies the request: `message` is shown to the user, with code 403 and reason `Forbidden`
    /// unless [`with_code`](Self::with_code) and [`with_reason`](Self::with_reason) say otherwise.
    pub fn deny(message: impl Into<String>) -> Verdict {
        Verdict {
            allowed: false,
            code: 403,
            reason: "Forbidden".to_string(),
            message: message.into(),
            ..Verdict::allow()
        }
    }

    /// Denies the request as invalid, field by field, as the API server's own validation does
    /// (apimachinery's `NewInvalid`, which controller-runtime webhooks return): code 422, reason
    /// `Invalid`, the message `<Kind>.<group> "<name>" is invalid: <causes>` with the request's
    /// kind and name, and `details` with the kind, name and every cause.
    ///
    /// kube-apiserver prefixes the message with the webhook's name: kubectl shows
    /// `admission webhook "<webhook>" denied the request: Deployment.apps "web" is invalid:
    /// spec.replicas: Invalid value: 20: must be at most 10`.
    pub fn invalid(causes: impl IntoIterator<Item = StatusCause>) -> Verdict {
        Verdict {
            allowed: false,
            code: 422,
            reason: "Invalid".to_string(),
            causes: causes.into_iter().collect(),
            invalid: true,
            ..Verdict::allow()
        }
    }

    /// Adds a field's cause to a denial's `details.causes` (ignored when allowing).
    #[must_use]
    pub fn with_cause(mut self, cause: StatusCause) -> Verdict {
        self.causes.push(cause);
        self
    }

    /// Sets the HTTP-style code the API server reports to the user (for example 422 for an
    /// invalid object).
    #[must_use]
    pub fn with_code(mut self, code: u16) -> Verdict {
        self.code = code;
        self
    }

    /// Sets the machine-readable reason (for example `Invalid`).
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Verdict {
        self.reason = reason.into();
        self
    }

    /// Adds a warning for the client; keep it under 120 characters.
    #[must_use]
    pub fn with_warning(mut self, warning: impl Into<String>) -> Verdict {
        self.warnings.push(warning.into());
        self
    }

    /// Adds an audit annotation; the API server prefixes the key with the webhook's name.
    #[must_use]
    pub fn with_audit_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Verdict {
        self.audit_annotations.insert(key.into(), value.into());
        self
    }

    /// Whether the request is admitted.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The response to `req`, whose kind and name an [`invalid`](Self::invalid) verdict's
    /// message and details name.
    pub fn into_response_to(self, req: &Request) -> Response {
        self.into_response(Some(req))
    }

    pub(crate) fn into_response(self, req: Option<&Request>) -> Response {
        let mut base = if self.allowed {
            Response::allowed()
        } else {
            let mut details = (!self.causes.is_empty()).then(StatusDetails::default);
            let mut message = self.message;
            if self.invalid {
                let (kind, group, name) = match req {
                    Some(req) => (
                        req.kind.kind.as_str(),
                        req.kind.group.as_str(),
                        req.name.as_deref().unwrap_or_default(),
                    ),
                    None => ("", "", ""),
                };
                let mut shown: Vec<String> = Vec::new();
                for cause in &self.causes {
                    let line = cause.to_string();
                    if !shown.contains(&line) {
                        shown.push(line);
                    }
                }
                message = match (kind, group) {
                    ("", _) => "the object is invalid".to_string(),
                    (kind, "") => format!("{kind} {name:?} is invalid"),
                    (kind, group) => format!("{kind}.{group} {name:?} is invalid"),
                };
                // apimachinery's `NewInvalid`: the causes after a colon, when there are any.
                match shown.as_slice() {
                    [] => {}
                    [one] => message = format!("{message}: {one}"),
                    many => message = format!("{message}: [{}]", many.join(", ")),
                }
                let details = details.get_or_insert_with(StatusDetails::default);
                details.kind = kind.to_string();
                details.group = group.to_string();
                details.name = name.to_string();
            }
            if let Some(details) = &mut details {
                details.causes = self.causes;
            }
            let mut response = Response::errored(self.code, message).with_reason(self.reason);
            if let Some(status) = &mut response.status {
                status.details = details;
            }
            response
        };
        base.warnings = self.warnings;
        base.audit_annotations = self.audit_annotations;
        base
    }
}

/// The response without the request: an [`invalid`](Verdict::invalid) verdict's message cannot
/// name the object; prefer [`Verdict::into_response_to`].
impl From<Verdict> for Response {
    fn from(verdict: Verdict) -> Response {
        verdict.into_response(None)
    }
}

/// Validates objects of type `K`: the typed validating webhook, as controller-runtime's
/// `webhook.CustomValidator` (the generic `admission.Validator[T]` in its newest releases).
///
/// Every method defaults to allowing. The request (uid, user, `dry_run`, options, ...) comes as
/// `req`; kdev decodes `object` (and `oldObject` on UPDATE and DELETE) straight from the
/// request body into `K` (so `req.object` and `req.old_object` are empty) and answers a
/// request whose object does not decode with a denial of code 400 itself.
/// CONNECT requests carry no object of type `K`: they are denied with code 400; register a raw
/// [`Handler`] for them.
///
/// # Examples
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use kdev_webhook::admission::{Request, Validator, Verdict};
///
/// struct NoLatestTag;
///
/// impl Validator<Pod> for NoLatestTag {
///     async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
///         let spec = pod.spec.as_ref();
///         let latest = spec.into_iter().flat_map(|s| &s.containers).any(|c| {
///             c.image.as_deref().is_some_and(|i| i.ends_with(":latest"))
///         });
///         if latest { Verdict::deny("images must not use the :latest tag") } else { Verdict::allow() }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Validator<{K}>`",
    note = "implement `kdev_webhook::admission::Validator<{K}>`: see the `kdev_webhook::admission` docs"
)]
pub trait Validator<K>: Send + Sync + 'static {
    /// Validates an object being created.
    fn validate_create(&self, req: &Request, obj: &K) -> impl Future<Output = Verdict> + Send {
        let _ = (req, obj);
        async { Verdict::allow() }
    }

    /// Validates an update from `old` to `new`.
    fn validate_update(&self, req: &Request, old: &K, new: &K) -> impl Future<Output = Verdict> + Send {
        let _ = (req, old, new);
        async { Verdict::allow() }
    }

    /// Validates the deletion of `obj` (the request's `oldObject`).
    fn validate_delete(&self, req: &Request, obj: &K) -> impl Future<Output = Verdict> + Send {
        let _ = (req, obj);
        async { Verdict::allow() }
    }
}

/// Defaults objects of type `K`: the typed mutating webhook, as controller-runtime's
/// `webhook.CustomDefaulter` (the generic `admission.Defaulter[T]` in its newest releases).
///
/// kdev decodes the object straight from the request body (so `req.object` is left empty),
/// calls [`set_defaults`](Self::set_defaults), and answers with an RFC 6902 JSON patch holding the
/// defaulter's changes (none when nothing changed). DELETE and CONNECT requests are allowed
/// without a call.
///
/// # Guarantees
/// 1. Only the defaulter's own changes are sent: the patch is the difference between the object
///    as `K` encodes it before [`set_defaults`](Self::set_defaults) and after, carried onto the object as
///    the request sent it. A defaulter that changes nothing sends no patch.
/// 2. What `K` adds when it encodes an object is no change: the `null` of an `Option` serialized
///    without `skip_serializing_if` (which a `nullable` field would store), or a serde default,
///    is never sent unless the defaulter changed it; a field the defaulter sets that the request
///    lacked is an `add`, and what it adds is sent without the `null`s of its `None`s.
/// 3. Fields the request carried but `K` does not know (or explicit nulls it drops) are never
///    removed or moved by the patch.
/// 4. Where the defaulter inserts or removes array elements, each element keeps its own fields:
///    elements are matched by identity (unchanged, then by a unique `name`, the merge key of
///    most Kubernetes lists), not by index.
///
/// # Caveats
/// An element that has no `name`, that the defaulter changed, and that moved because
/// elements were inserted or removed before it cannot be identified: it is sent as `K` encodes
/// it, losing its unknown fields rather than be given another element's.
///
/// # Examples
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use kdev_webhook::admission::{Defaulter, Request, Verdict};
///
/// struct TeamLabel;
///
/// impl Defaulter<Pod> for TeamLabel {
///     async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
///         let labels = pod.metadata.labels.get_or_insert_with(Default::default);
///         labels.entry("team".to_string()).or_insert_with(|| "platform".to_string());
///         Verdict::allow()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Defaulter<{K}>`",
    note = "implement `kdev_webhook::admission::Defaulter<{K}>`: see the `kdev_webhook::admission` docs"
)]
pub trait Defaulter<K>: Send + Sync + 'static {
    /// Mutates `obj` in place (controller-runtime's `Default`; named so that a defaulter that
    /// also implements `Default` keeps an unambiguous `Type::default()`). Returning a denial
    /// sends no patch.
    fn set_defaults(&self, req: &Request, obj: &mut K) -> impl Future<Output = Verdict> + Send;
}

/// A raw admission handler: the whole [`Request`] in, a [`Response`] out, for any kind — the
/// webhook written by hand.
///
/// Closures `Fn(Request) -> impl Future<Output = Response>` implement it. kdev sets the
/// response's uid to the request's.
///
/// A handler that patches must be a mutating webhook: serve it with
/// [`Builder::raw_mutating`](crate::server::Builder::raw_mutating), which also sets
/// `patchType: JSONPatch` on a response whose `patch` is set. A response from a handler served
/// with [`Builder::raw`](crate::server::Builder::raw) is sent as the handler returned it, as
/// controller-runtime does; one with a patch is logged as a warning. kube-apiserver treats a
/// validating webhook's patch as a failed call ("validating webhook may not return
/// response.patch"): under `failurePolicy: Fail` the request is refused with an internal error,
/// under `Ignore` it is admitted as if the webhook had not been called.
///
/// # Examples
/// ```
/// use kdev_webhook::admission::{Request, Response};
///
/// let handler = |req: Request| async move {
///     if req.namespace.as_deref() == Some("kube-system") {
///         Response::denied("hands off kube-system")
///     } else {
///         Response::allowed()
///     }
/// };
/// # fn is_handler<H: kdev_webhook::admission::Handler>(_: &H) {}
/// # is_handler(&handler);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an admission `Handler`",
    note = "use a closure `|req: Request| async move {{ Response::allowed() }}` or implement `kdev_webhook::admission::Handler`"
)]
pub trait Handler: Send + Sync + 'static {
    /// Answers one admission request.
    fn handle(&self, req: Request) -> impl Future<Output = Response> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    fn handle(&self, req: Request) -> impl Future<Output = Response> + Send {
        self(req)
    }
}
