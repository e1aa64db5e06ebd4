//! The PATCH content types kube-apiserver accepts (JSON patch, merge patch, strategic merge patch and
//! server-side apply) applied to `serde_json::Value` objects, mirroring
//! [`handlers/patch.go`](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go).
//!
//! Every function takes the current object and the decoded patch body and returns the patched object
//! (or a typed [`Error`] whose [`Error::status_code`] is the HTTP code kube-apiserver answers with).
//! Server-side apply and managed-field tracking live in [`apply`], [`apply_with`], [`apply_as`],
//! [`record_update`], [`record_update_with`] and [`record_update_as`]; a [`Writer`] says which
//! manager writes through which subresource.

mod fields;
mod managed;
mod merge;
mod schema;
mod strategic;

use serde_json::Value;

pub use fields::{FieldSet, path_string, to_field_set};
pub use managed::{
    Conflict, Operation, Writer, apply, apply_as, apply_with, conflicts_message, default_manager, record_update,
    record_update_as, record_update_with,
};
pub use schema::{ListKey, ListType, Schema, supports_strategic};
pub use strategic::strategic_merge;

/// The most operations one JSON patch may hold, as kube-apiserver's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Errors from applying a patch; [`Error::status_code`] and [`Error::reason`] give the `metav1.Status` fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The JSON patch body is not a list of objects (400 BadRequest); the text is Go's, as
    /// evanphx/json-patch's `DecodePatch` reports it.
    #[error("json: cannot unmarshal {found} into Go value of type jsonpatch.{}", if *.operation { "Operation" } else { "Patch" })]
    DecodeJsonPatch {
        /// The JSON type found, as Go names it (`object`, `string`, `number`, `bool`, `array`).
        found: &'static str,
        /// Whether an operation, rather than the whole patch, has the wrong type.
        operation: bool,
    },
    /// An operation of a JSON patch is not one: an unknown `op`, a missing `path` or `value`
    /// (422 Invalid, as kube-apiserver answers every operation that cannot be applied).
    #[error("invalid json patch operation")]
    JsonPatchOperation(#[source] serde_json::Error),
    /// The JSON patch holds more than [`MAX_JSON_PATCH_OPERATIONS`] operations (413 RequestEntityTooLarge).
    #[error("the allowed maximum operations in a json patch is {MAX_JSON_PATCH_OPERATIONS}, got {0}")]
    TooManyOperations(usize),
    /// A `test` operation of a JSON patch did not match (422 Invalid).
    #[error("json patch test operation failed")]
    JsonPatchTest(#[source] json_patch::PatchError),
    /// A JSON patch operation could not be applied, e.g. its path does not exist (422 Invalid).
    #[error("apply json patch")]
    JsonPatchApply(#[source] json_patch::PatchError),
    /// A merge patch (or the document it applies to) is not a JSON object (400 BadRequest).
    #[error("invalid json patch")]
    MergePatchNotObject,
    /// Strategic merge patch was asked for a kind without a strategy, e.g. a custom resource (415).
    #[error("strategic merge patch is not supported for {kind} in group {group:?}")]
    StrategicUnsupported {
        /// API group of the object.
        group: String,
        /// Kind of the object.
        kind: String,
    },
    /// A strategic merge patch directive is malformed (400 BadRequest); the text is apimachinery's.
    #[error("{0}")]
    BadStrategicPatch(String),
    /// A strategic merge patch is well formed but cannot be applied (422 Invalid); the text is apimachinery's.
    #[error("{0}")]
    UnprocessableStrategicPatch(String),
    /// A keyed list element in a strategic merge patch lacks its merge key (500, as kube-apiserver).
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The offending list element, as compact JSON.
        element: String,
        /// The merge key the list is declared with.
        key: String,
    },
    /// The apply configuration is not a valid object (400 BadRequest).
    #[error("{0}")]
    InvalidApplyConfig(String),
    /// The apply configuration changes fields owned by other managers and `force` was not set (409 Conflict).
    #[error("apply failed with {} conflict(s)", .0.len())]
    Conflicts(Vec<Conflict>),
}

/// The error type of server-side apply: the module's single [`Error`].
pub type ApplyError = Error;

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status code kube-apiserver answers this error with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::DecodeJsonPatch { .. }
            | Error::MergePatchNotObject
            | Error::BadStrategicPatch(_)
            | Error::InvalidApplyConfig(_) => 400,
            Error::TooManyOperations(_) => 413,
            Error::JsonPatchOperation(_)
            | Error::JsonPatchTest(_)
            | Error::JsonPatchApply(_)
            | Error::UnprocessableStrategicPatch(_) => 422,
            Error::StrategicUnsupported { .. } => 415,
            Error::MissingMergeKey { .. } => 500,
            Error::Conflicts(_) => 409,
        }
    }

    /// The `metav1.Status` reason that goes with [`Error::status_code`].
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "BadRequest",
            409 => "Conflict",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            _ => "InternalError",
        }
    }
}

/// A PATCH content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "types.PatchType")]
pub enum PatchType {
    /// `application/json-patch+json`, RFC 6902.
    Json,
    /// `application/merge-patch+json`, RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`, built-in kinds only.
    StrategicMerge,
    /// `application/apply-patch+yaml`, server-side apply.
    Apply,
}

impl PatchType {
    /// Parses a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type string.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Applies an RFC 6902 JSON patch (`application/json-patch+json`) to `doc`, as kube-apiserver's
/// evanphx/json-patch does: the body must be a list of objects (`null`, like Go's nil slice, is
/// an empty patch), and each operation is read only when its turn comes.
///
/// # Errors
/// [`Error::DecodeJsonPatch`] if `patch` is not a list of objects, [`Error::TooManyOperations`]
/// past [`MAX_JSON_PATCH_OPERATIONS`], [`Error::JsonPatchOperation`] for an operation that is not
/// one, [`Error::JsonPatchTest`] for a failed `test` and [`Error::JsonPatchApply`] for any other
/// failed operation. The patch is atomic: on error `doc` is left as it was.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value> {
    let items: &[Value] = match patch {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return Err(Error::DecodeJsonPatch {
                found: go_json_type(other),
                operation: false,
            });
        }
    };
    if let Some(bad) = items.iter().find(|i| !i.is_object() && !i.is_null()) {
        return Err(Error::DecodeJsonPatch {
            found: go_json_type(bad),
            operation: true,
        });
    }
    if items.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(Error::TooManyOperations(items.len()));
    }
    let mut out = doc.clone();
    for item in items {
        let op: json_patch::PatchOperation = serde_json::from_value(item.clone()).map_err(Error::JsonPatchOperation)?;
        json_patch::patch(&mut out, std::slice::from_ref(&op)).map_err(|e| match e.kind {
            json_patch::PatchErrorKind::TestFailed => Error::JsonPatchTest(e),
            _ => Error::JsonPatchApply(e),
        })?;
    }
    Ok(out)
}

/// The name Go's JSON decoder gives a JSON value's type in its errors.
pub(crate) fn go_json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Applies an RFC 7386 merge patch (`application/merge-patch+json`) to `doc`.
///
/// # Errors
/// [`Error::MergePatchNotObject`] if `patch` is not a JSON object (evanphx/json-patch's `ErrBadJSONPatch`).
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value> {
    if !patch.is_object() {
        return Err(Error::MergePatchNotObject);
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies a strategic merge patch to a built-in object of `group`/`kind`, with the built-in merge-key table.
///
/// # Errors
/// [`Error::StrategicUnsupported`] when [`supports_strategic`] is false, else as [`strategic_merge`].
pub fn strategic_merge_patch(group: &str, kind: &str, doc: &Value, patch: &Value) -> Result<Value> {
    if !supports_strategic(group, kind) {
        return Err(Error::StrategicUnsupported {
            group: group.to_owned(),
            kind: kind.to_owned(),
        });
    }
    strategic_merge(doc, patch, &Schema::for_kind(group, kind))
}

/// Applies a JSON, merge or strategic merge patch of `patch_type` to `doc` of `group`/`kind`.
///
/// # Errors
/// As the function for each type; [`PatchType::Apply`] answers [`Error::InvalidApplyConfig`]: call [`apply`].
pub fn patch(patch_type: PatchType, group: &str, kind: &str, doc: &Value, patch: &Value) -> Result<Value> {
    match patch_type {
        PatchType::Json => json_patch(doc, patch),
        PatchType::Merge => merge_patch(doc, patch),
        PatchType::StrategicMerge => strategic_merge_patch(group, kind, doc, patch),
        PatchType::Apply => Err(Error::InvalidApplyConfig(
            "server-side apply goes through patch::apply".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn json_patch_tables_match_rfc_6902_and_kube_status_codes() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
            "data": {"k": "v"}, "list": [1, 2]});
        let ok: Vec<(&str, Value, &str, Value)> = vec![
            (
                "add a label",
                json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}]),
                "/metadata/labels",
                json!({"a": "1", "b": "2"}),
            ),
            (
                "replace data",
                json!([{"op": "replace", "path": "/data/k", "value": "w"}]),
                "/data/k",
                json!("w"),
            ),
            (
                "remove a key",
                json!([{"op": "remove", "path": "/data/k"}]),
                "/data",
                json!({}),
            ),
            (
                "append with -",
                json!([{"op": "add", "path": "/list/-", "value": 3}]),
                "/list",
                json!([1, 2, 3]),
            ),
            (
                "passing test then move",
                json!([{"op": "test", "path": "/data/k", "value": "v"},
                {"op": "move", "from": "/data/k", "path": "/data/m"}]),
                "/data",
                json!({"m": "v"}),
            ),
            (
                "escaped slash in a label key",
                json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}]),
                "/metadata/labels/app.kubernetes.io~1name",
                json!("x"),
            ),
        ];
        for (name, patch, pointer, expected) in ok {
            let out = json_patch(&cm, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.pointer(pointer), Some(&expected), "{name}");
        }
        let bad: Vec<(Value, u16)> = vec![
            (json!([{"op": "test", "path": "/data/k", "value": "nope"}]), 422),
            (json!([{"op": "remove", "path": "/data/missing"}]), 422),
            (json!([{"op": "replace", "path": "/nope/deeper", "value": 1}]), 422),
            (json!([{"op": "frobnicate", "path": "/data"}]), 422),
            (json!([{"op": "remove"}]), 422),
            (json!([{"op": "add", "path": "/data/x"}]), 422),
            (json!([null]), 422),
            (json!({"op": "add"}), 400),
            (json!([1]), 400),
        ];
        for (patch, code) in bad {
            let err = json_patch(&cm, &patch).expect_err(&patch.to_string());
            assert_eq!(err.status_code(), code, "{patch}: {err}");
        }
        let test = json_patch(&cm, &json!([{"op": "test", "path": "/data/k", "value": "x"}])).unwrap_err();
        assert!(matches!(test, Error::JsonPatchTest(_)), "{test:?}");
        assert_eq!(test.reason(), "Invalid");
        assert_eq!(
            json_patch(&cm, &json!({"op": "add"})).unwrap_err().to_string(),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(
            json_patch(&cm, &json!(["x"])).unwrap_err().to_string(),
            "json: cannot unmarshal string into Go value of type jsonpatch.Operation"
        );
        assert_eq!(json_patch(&cm, &Value::Null).unwrap(), cm);
    }

    #[test]
    fn json_patch_over_the_operation_limit_is_too_large() {
        let ops = vec![json!({"op": "test", "path": "/a", "value": 1}); MAX_JSON_PATCH_OPERATIONS + 1];
        let err = json_patch(&json!({"a": 1}), &Value::Array(ops)).unwrap_err();
        assert_eq!((err.status_code(), err.reason()), (413, "RequestEntityTooLarge"));
    }

    #[test]
    fn merge_patch_tables_follow_rfc_7386() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let cases: Vec<(&str, Value, &str, Value)> = vec![
            (
                "kubectl label app=api --overwrite",
                json!({"metadata": {"labels": {"app": "api"}}}),
                "/metadata/labels",
                json!({"app": "api", "tier": "fe"}),
            ),
            (
                "kubectl label tier-",
                json!({"metadata": {"labels": {"tier": null}}}),
                "/metadata/labels",
                json!({"app": "web"}),
            ),
            (
                "kubectl annotate",
                json!({"metadata": {"annotations": {"note": "x"}}}),
                "/metadata/annotations",
                json!({"note": "x"}),
            ),
            (
                "lists are replaced whole",
                json!({"spec": {"containers": [{"name": "c"}]}}),
                "/spec/containers",
                json!([{"name": "c"}]),
            ),
            ("empty patch changes nothing", json!({}), "", pod.clone()),
        ];
        for (name, patch, pointer, expected) in cases {
            let out = merge_patch(&pod, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.pointer(pointer), Some(&expected), "{name}");
        }
        for patch in [json!(null), json!([1]), json!("x"), json!(3)] {
            let err = merge_patch(&pod, &patch).unwrap_err();
            assert_eq!((err.status_code(), err.reason()), (400, "BadRequest"), "{patch}");
        }
    }

    #[test]
    fn content_types_parse_with_parameters_and_dispatch() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        for t in [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
        let out = patch(
            PatchType::StrategicMerge,
            "",
            "ConfigMap",
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"b": "2"}}),
        );
        assert_eq!(out.unwrap(), json!({"data": {"a": "1", "b": "2"}}));
        let err = patch(
            PatchType::StrategicMerge,
            "example.com",
            "Widget",
            &json!({}),
            &json!({}),
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 415);
    }

    /// The RFC 7386 patch that turns `a` into `b` (`b` holds no nulls).
    fn merge_diff(a: &Value, b: &Value) -> Value {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                let mut out = serde_json::Map::new();
                for key in a.keys().filter(|k| !b.contains_key(*k)) {
                    out.insert(key.clone(), Value::Null);
                }
                for (key, value) in b {
                    match a.get(key) {
                        Some(old) if old == value => {}
                        Some(old) => drop(out.insert(key.clone(), merge_diff(old, value))),
                        None => drop(out.insert(key.clone(), value.clone())),
                    }
                }
                Value::Object(out)
            }
            _ => b.clone(),
        }
    }

    fn json_value(nulls: bool) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[xyz]{0,2}".prop_map(Value::from),
            Just(if nulls { Value::Null } else { Value::from(0) }),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-e]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn json_object(nulls: bool) -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-e]", json_value(nulls), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn merge_patch_of_the_diff_turns_a_into_b(a in json_object(true), b in json_object(false)) {
            prop_assert_eq!(merge_patch(&a, &merge_diff(&a, &b)).unwrap(), b);
        }

        #[test]
        fn strategic_merge_without_directives_or_keyed_lists_equals_merge_patch(a in json_object(true), p in json_object(true)) {
            let strategic = strategic_merge(&a, &p, &Schema::for_kind("", "ConfigMap")).unwrap();
            prop_assert_eq!(strategic, merge_patch(&a, &p).unwrap());
        }
    }
}
