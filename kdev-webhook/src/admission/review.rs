//! The AdmissionReview v1 wire types (`k8s.io/api/admission/v1/types.go`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The `apiVersion` of AdmissionReview v1.
pub const API_VERSION_V1: &str = "admission.k8s.io/v1";
/// The `apiVersion` of AdmissionReview v1beta1, which has the same shape and is still accepted.
pub const API_VERSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
/// The `kind` of an AdmissionReview.
pub const KIND: &str = "AdmissionReview";

/// An AdmissionReview: the envelope kube-apiserver posts to a webhook and expects back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// `admission.k8s.io/v1` (or `v1beta1`).
    pub api_version: String,
    /// `AdmissionReview`.
    pub kind: String,
    /// What is being admitted; set on the way in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The webhook's answer; set on the way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
}

impl Review {
    /// A v1 review carrying `response`.
    pub fn from_response(response: Response) -> Review {
        Review {
            api_version: API_VERSION_V1.to_string(),
            kind: KIND.to_string(),
            request: None,
            response: Some(response),
        }
    }
}

/// A group, version and kind, as `metav1.GroupVersionKind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// The API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// The API version.
    pub version: String,
    /// The kind.
    pub kind: String,
}

/// A group, version and resource, as `metav1.GroupVersionResource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// The API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// The API version.
    pub version: String,
    /// The plural resource name.
    pub resource: String,
}

/// The operation being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// `CREATE`.
    Create,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `CONNECT` (exec, attach, port-forward, proxy).
    Connect,
}

impl Operation {
    /// The wire name: `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// The requesting user, as `authenticationv1.UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra authenticator-provided attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What kube-apiserver asks a webhook to admit: the `request` of an AdmissionReview.
///
/// Raw handlers receive it whole. Typed handlers receive it as their context, with `object`
/// and `old_object` left empty: those are decoded straight from the request body into the
/// handler's type and passed as arguments, never built as a [`Value`] as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Identifies this round trip; the response must echo it (kdev does).
    pub uid: String,
    /// The kind of `object`, after any conversion (for example `v1 Pod`).
    pub kind: GroupVersionKind,
    /// The resource being requested (for example `v1 pods`).
    pub resource: GroupVersionResource,
    /// The subresource (`status`, `scale`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The kind of the original API request, when a `matchPolicy: Equivalent` conversion happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource of the original API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The subresource of the original API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name; empty on a CREATE that uses `generateName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace, for namespaced resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object (CREATE, UPDATE, and CONNECT's options object); absent on DELETE.
    /// Empty for typed handlers, which receive it decoded.
    #[serde(default, skip_serializing_if = "is_null")]
    pub object: Option<Value>,
    /// The existing object (UPDATE and DELETE). Empty for typed handlers, which receive it
    /// decoded.
    #[serde(default, skip_serializing_if = "is_null")]
    pub old_object: Option<Value>,
    /// True when nothing will be persisted: a handler with side effects must not perform them.
    #[serde(default)]
    pub dry_run: bool,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`).
    #[serde(default, skip_serializing_if = "is_null")]
    pub options: Option<Value>,
}

/// An AdmissionReview as read from a request body, its objects as `O`: raw JSON borrowed from
/// the body (`&RawValue`), or decoded straight into a handler's type — never a [`Value`] first.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IncomingReview<O> {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    #[serde(default = "none")]
    pub(crate) request: Option<IncomingRequest<O>>,
}

fn none<T>() -> Option<T> {
    None
}

/// [`Request`] with its objects as `O`; see [`IncomingReview`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IncomingRequest<O> {
    pub(crate) uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    request_kind: Option<GroupVersionKind>,
    #[serde(default)]
    request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    request_sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    #[serde(default)]
    user_info: UserInfo,
    #[serde(default = "none")]
    object: Option<O>,
    #[serde(default = "none")]
    old_object: Option<O>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    options: Option<Value>,
}

/// A request's `object` and `oldObject` (`None` when absent or `null`).
#[derive(Clone, Copy)]
pub(crate) struct Objects<O> {
    pub(crate) object: Option<O>,
    pub(crate) old_object: Option<O>,
}

/// Objects as raw JSON borrowed from the request body.
pub(crate) type RawObjects<'a> = Objects<&'a RawValue>;

impl<O> IncomingRequest<O> {
    /// The request without its objects, and the objects.
    pub(crate) fn split(self) -> (Request, Objects<O>) {
        let objects = Objects {
            object: self.object,
            old_object: self.old_object,
        };
        let request = Request {
            uid: self.uid,
            kind: self.kind,
            resource: self.resource,
            sub_resource: self.sub_resource,
            request_kind: self.request_kind,
            request_resource: self.request_resource,
            request_sub_resource: self.request_sub_resource,
            name: self.name,
            namespace: self.namespace,
            operation: self.operation,
            user_info: self.user_info,
            object: None,
            old_object: None,
            dry_run: self.dry_run,
            options: self.options,
        };
        (request, objects)
    }
}

fn is_null(v: &Option<Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// The type of a response's patch; only RFC 6902 JSON patches exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchType {
    /// `JSONPatch` (RFC 6902).
    #[serde(rename = "JSONPatch")]
    JsonPatch,
}

/// The `status` of a response, a subset of `metav1.Status`: why a request was denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// A human-readable message, shown to the user whose request was denied.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A machine-readable reason (`Forbidden`, `BadRequest`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The HTTP-style code the API server returns to the user. kube-apiserver raises a missing
    /// code, or one under 400, to 400; [`Response::denied`] sets 403.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
    /// What the denial is about and its causes field by field; the API server hands them to
    /// the client as they are (a 422 `Invalid` with causes reads as a validation error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

/// The `details` of a [`Status`] (`metav1.StatusDetails`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's API group (empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The object's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// One entry a field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// One field's reason for a denial (`metav1.StatusCause`, built from apimachinery's
/// `field.Error`): the constructors write the reason and message kube-apiserver's own
/// validation writes, so clients show a webhook's field errors as they show the API server's.
///
/// ```
/// use kdev_webhook::admission::StatusCause;
///
/// let cause = StatusCause::invalid("spec.replicas", 20, "must be at most 10");
/// assert_eq!(cause.to_string(), "spec.replicas: Invalid value: 20: must be at most 10");
/// assert_eq!(cause.reason, "FieldValueInvalid");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// The machine-readable kind of error (`FieldValueInvalid`, `FieldValueRequired`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The error, without the field (`Invalid value: 20: must be at most 10`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field's path (`spec.containers[0].image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    fn new(field: impl Into<String>, reason: &str, message: String) -> StatusCause {
        StatusCause {
            reason: reason.to_string(),
            message,
            field: field.into(),
        }
    }

    /// `field` has a value that is not allowed (`field.Invalid`): `Invalid value: <value>:
    /// <detail>`, the value written as JSON (strings quoted).
    pub fn invalid(field: impl Into<String>, value: impl Serialize, detail: impl AsRef<str>) -> StatusCause {
        let value = serde_json::to_string(&value).unwrap_or_else(|_| "<unprintable>".to_string());
        let detail = detail.as_ref();
        let message = if detail.is_empty() {
            format!("Invalid value: {value}")
        } else {
            format!("Invalid value: {value}: {detail}")
        };
        StatusCause::new(field, "FieldValueInvalid", message)
    }

    /// `field` is missing (`field.Required`): `Required value` and the detail, if any.
    pub fn required(field: impl Into<String>, detail: impl AsRef<str>) -> StatusCause {
        StatusCause::new(
            field,
            "FieldValueRequired",
            with_detail("Required value", detail.as_ref()),
        )
    }

    /// `field` may not be set, or not to this (`field.Forbidden`): `Forbidden` and the detail.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> StatusCause {
        StatusCause::new(field, "FieldValueForbidden", with_detail("Forbidden", detail.as_ref()))
    }

    /// `field` has a value outside a known set (`field.NotSupported`): `Unsupported value:
    /// <value>: supported values: "a", "b"`.
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: impl Serialize,
        supported: impl IntoIterator<Item = S>,
    ) -> StatusCause {
        let value = serde_json::to_string(&value).unwrap_or_else(|_| "<unprintable>".to_string());
        let supported: Vec<String> = supported.into_iter().map(|s| format!("{:?}", s.as_ref())).collect();
        let mut message = format!("Unsupported value: {value}");
        if !supported.is_empty() {
            message.push_str(": supported values: ");
            message.push_str(&supported.join(", "));
        }
        StatusCause::new(field, "FieldValueNotSupported", message)
    }

    /// `field` repeats a value that must be unique (`field.Duplicate`): `Duplicate value:
    /// <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Serialize) -> StatusCause {
        let value = serde_json::to_string(&value).unwrap_or_else(|_| "<unprintable>".to_string());
        StatusCause::new(field, "FieldValueDuplicate", format!("Duplicate value: {value}"))
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// `<field>: <message>`, as apimachinery's `field.Error` prints.
impl std::fmt::Display for StatusCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A webhook's answer: the `response` of an AdmissionReview.
///
/// Build one with [`Response::allowed`], [`Response::denied`] or [`Response::errored`] and the
/// `with_*` methods. kdev fills in the uid from the request, so a handler never has to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why it was denied (ignored by the API server when allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The JSON patch to apply to the object (base64 on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_bytes")]
    pub patch: Option<Vec<u8>>,
    /// `JSONPatch` when `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<PatchType>,
    /// Annotations for the audit log; the API server prefixes each key with the webhook's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Warnings returned to the client (keep each under 120 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Response {
    /// Admits the request.
    pub fn allowed() -> Response {
        Response {
            allowed: true,
            ..Response::default()
        }
    }

    /// Denies the request with `message`, code 403 and reason `Forbidden`, as controller-runtime's
    /// `admission.Denied`.
    pub fn denied(message: impl Into<String>) -> Response {
        Response::errored(403, message).with_reason("Forbidden")
    }

    /// Denies the request with `message` and the HTTP-style `code` (400 for a request the
    /// handler cannot read, 500 for its own failure), as controller-runtime's `admission.Errored`.
    pub fn errored(code: u16, message: impl Into<String>) -> Response {
        Response {
            allowed: false,
            status: Some(Status {
                status: "Failure".to_string(),
                message: message.into(),
                reason: String::new(),
                code,
                details: None,
            }),
            ..Response::default()
        }
    }

    /// Sets the status' machine-readable reason (for example `Invalid`).
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Response {
        self.status.get_or_insert_with(Status::default).reason = reason.into();
        self
    }

    /// Sets the status' code.
    #[must_use]
    pub fn with_code(mut self, code: u16) -> Response {
        self.status.get_or_insert_with(Status::default).code = code;
        self
    }

    /// Attaches a JSON patch for the API server to apply (an empty patch attaches nothing).
    #[must_use]
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Response {
        if patch.0.is_empty() {
            self.patch = None;
            self.patch_type = None;
        } else {
            // A Patch is a list of plain operations: serializing it cannot fail.
            self.patch = serde_json::to_vec(patch).ok();
            self.patch_type = self.patch.as_ref().map(|_| PatchType::JsonPatch);
        }
        self
    }

    /// Admits the request with the JSON patch from `original` to `mutated`, as
    /// controller-runtime's `PatchResponseFromRaw`: no patch when they are equal.
    ///
    /// `original` should be the request's `object` as received, and `mutated` that value changed
    /// in place: every difference between the two, including a field dropped or a `null`
    /// added on the way, is sent. A typed [`Defaulter`](super::Defaulter) needs none of this.
    ///
    /// # Examples
    /// ```
    /// use kdev_webhook::admission::{Request, Response};
    ///
    /// async fn label(req: Request) -> Response {
    ///     let Some(original) = req.object else { return Response::allowed() };
    ///     let mut mutated = original.clone();
    ///     mutated["metadata"]["labels"]["team"] = "platform".into();
    ///     Response::from_objects(&original, &mutated)
    /// }
    /// ```
    #[doc(alias = "PatchResponseFromRaw")]
    pub fn from_objects(original: &Value, mutated: &Value) -> Response {
        Response::allowed().with_patch(&json_patch::diff(original, mutated))
    }

    /// Adds a warning for the client.
    #[must_use]
    pub fn with_warning(mut self, warning: impl Into<String>) -> Response {
        self.warnings.push(warning.into());
        self
    }

    /// Adds an audit annotation.
    #[must_use]
    pub fn with_audit_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Response {
        self.audit_annotations.insert(key.into(), value.into());
        self
    }

    /// The decoded JSON patch, if any.
    ///
    /// # Errors
    /// When the patch bytes are not a JSON patch.
    pub fn json_patch(&self) -> Option<Result<json_patch::Patch, serde_json::Error>> {
        self.patch.as_deref().map(serde_json::from_slice)
    }
}

mod base64_bytes {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_is_base64_on_the_wire_and_round_trips() {
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::json!([{"op": "add", "path": "/a", "value": 1}])).unwrap();
        let response = Response::allowed().with_patch(&patch);
        let wire = serde_json::to_value(&response).unwrap();
        assert!(wire["patch"].is_string());
        assert_eq!(wire["patchType"], "JSONPatch");
        let back: Response = serde_json::from_value(wire).unwrap();
        assert_eq!(back.json_patch().unwrap().unwrap(), patch);
    }

    #[test]
    fn from_objects_patches_what_differs_and_nothing_when_equal() {
        let original = serde_json::json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        let mut mutated = original.clone();
        mutated["data"]["seen"] = "yes".into();
        let response = Response::from_objects(&original, &mutated);
        assert!(response.allowed);
        assert_eq!(response.patch_type, Some(PatchType::JsonPatch));
        let patch = serde_json::to_value(response.json_patch().unwrap().unwrap()).unwrap();
        assert_eq!(
            patch,
            serde_json::json!([{"op": "add", "path": "/data/seen", "value": "yes"}])
        );
        let same = Response::from_objects(&original, &original);
        assert!(same.allowed);
        assert_eq!((same.patch, same.patch_type), (None, None));
    }

    #[test]
    fn denied_carries_forbidden_and_403() {
        let wire = serde_json::to_value(Response::denied("no")).unwrap();
        assert_eq!(wire["allowed"], false);
        assert_eq!(wire["status"]["code"], 403);
        assert_eq!(wire["status"]["reason"], "Forbidden");
        assert_eq!(wire["status"]["message"], "no");
    }
}
