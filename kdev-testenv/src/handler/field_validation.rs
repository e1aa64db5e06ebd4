//! `fieldValidation` for the fields an object's type does not know (a custom resource's schema,
//! a built-in type's Go struct): `Strict` refuses the write (400 BadRequest, `strict decoding
//! error: unknown field "spec.x"`; a patch 422 Invalid on field `patch`), `Warn` (the default)
//! drops them with a `Warning` header each, `Ignore` drops them silently — as kube-apiserver does
//! when it decodes an object
//! ([field validation](https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation)).
//!
//! The directive is set for one synchronous write verb on this thread ([`run`]); the decoding
//! step deep inside the verb reports what it dropped ([`unknown`]).

use std::cell::RefCell;

use http::Response;

use serde_json::Value;

use super::Ctx;
use crate::schema::{Cause, go_quote, go_value};
use crate::status::ApiError;
use crate::wire::Body;

/// What to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    Ignore,
    Warn,
    Strict,
}

/// What a patch refused under `Strict` shows as the invalid value of its `patch` field.
#[derive(Debug, Clone)]
pub(crate) enum Patched {
    /// A JSON or merge patch: the patched object, as JSON.
    Object,
    /// A strategic merge patch: the patch, as Go's `%+v` prints the map it decoded.
    Strategic(Value),
}

struct Scope {
    directive: Directive,
    warnings: Vec<String>,
    /// Set when the write is a patch: `Strict` then refuses as kube-apiserver's patch handler
    /// does (`patch.go`), not as its decoder does.
    patch: Option<Patched>,
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// The request's `fieldValidation` (`Warn` when absent), refused as `ValidateFieldValidation`
/// refuses an unknown value (422 on the write's options kind).
pub(crate) fn directive(ctx: &Ctx, options_kind: &str) -> Result<Directive, ApiError> {
    parse(ctx.query.get("fieldValidation").unwrap_or("")).map_err(|cause| ApiError::Invalid {
        kind: options_kind.into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes: vec![cause],
    })
}

/// `fieldValidation`'s value (`Warn` when empty), or `ValidateFieldValidation`'s cause.
pub(crate) fn parse(value: &str) -> Result<Directive, Cause> {
    match value {
        "" | "Warn" => Ok(Directive::Warn),
        "Ignore" => Ok(Directive::Ignore),
        "Strict" => Ok(Directive::Strict),
        other => Err(Cause::with_message(
            "FieldValueNotSupported",
            "fieldValidation",
            format!(
                "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                crate::schema::go_quote(other)
            ),
        )),
    }
}

/// Runs the write `f` with `directive` in force and adds to `warnings` the unknown fields it
/// dropped under `Warn`, whether the write then succeeds or fails (kube-apiserver records them as
/// it decodes, before anything can fail).
pub(crate) fn run(
    directive: Directive,
    warnings: &mut Vec<String>,
    f: impl FnOnce() -> Result<Response<Body>, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let outer = CURRENT.with(|c| {
        c.borrow_mut().replace(Scope {
            directive,
            warnings: Vec::new(),
            patch: None,
        })
    });
    let result = f();
    let scope = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    warnings.extend(scope.map(|s| s.warnings).unwrap_or_default());
    result
}

/// Marks the write in force as a patch, which `Strict` refuses with 422 Invalid on field `patch`
/// (showing `patched`) rather than with the decoder's 400.
pub(crate) fn patching(patched: Patched) {
    CURRENT.with(|c| {
        if let Some(scope) = c.borrow_mut().as_mut() {
            scope.patch = Some(patched);
        }
    });
}

/// Whether an unknown field would now be refused showing the object: a JSON or merge patch under
/// `Strict`. Lets a caller that is about to drop fields render the object first, and only then.
pub(crate) fn shows_object() -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|s| s.directive == Directive::Strict && matches!(s.patch, Some(Patched::Object)))
    })
}

/// Refuses a `kind` object written in `version` that does not decode into its type (`why`), as
/// kube-apiserver's decoder does whatever `fieldValidation` says: 400 for a create or update,
/// 422 on field `patch` for a patch. Nothing outside a [`run`] (the server's own writes).
pub(crate) fn undecodable(
    kind: &str,
    version: &str,
    why: &str,
    object: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    CURRENT.with(|c| match c.borrow().as_ref() {
        None => Ok(()),
        Some(scope) => Err(decode_error(scope.patch.as_ref(), kind, version, why, object)),
    })
}

/// A decoding error as kube-apiserver reports it: 400 for a create or update (a body that
/// `patch` is `None` for); for a patch
/// `errors.NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), ...))`,
/// showing the patched object (JSON and merge patches) or the patch (strategic merge).
fn decode_error(
    patch: Option<&Patched>,
    kind: &str,
    version: &str,
    error: &str,
    object: impl FnOnce() -> String,
) -> ApiError {
    let Some(patched) = patch else {
        return ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {error}"
        ));
    };
    let shown = match patched {
        Patched::Object => object(),
        Patched::Strategic(patch) => go_v(patch),
    };
    ApiError::Invalid {
        kind: String::new(),
        group: String::new(),
        name: String::new(),
        causes: vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {}: {error}", go_quote(&shown)),
            field: "patch".into(),
        }],
    }
}

/// Reports the unknown fields dropped from a `kind` object written in `version`: an error under
/// `Strict`, warnings under `Warn`; nothing outside a [`run`] (the server's own writes).
///
/// `object` renders the object as decoded, unknown fields included: a refused JSON or merge patch
/// shows it.
pub(crate) fn unknown(
    kind: &str,
    version: &str,
    paths: &[String],
    object: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    if paths.is_empty() {
        return Ok(());
    }
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        let Some(scope) = slot.as_mut() else {
            return Ok(());
        };
        let each = paths.iter().map(|p| format!("unknown field {p:?}"));
        match scope.directive {
            Directive::Ignore => Ok(()),
            Directive::Warn => {
                scope.warnings.extend(each);
                Ok(())
            }
            Directive::Strict => {
                let error = format!("strict decoding error: {}", each.collect::<Vec<_>>().join(", "));
                Err(decode_error(scope.patch.as_ref(), kind, version, &error, object))
            }
        }
    })
}

/// Go's `%v` (and `%+v`) of a decoded JSON value: `map[a:1 b:[x y]]`, keys sorted.
fn go_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => go_value(value),
        Value::Array(items) => format!("[{}]", items.iter().map(go_v).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{}", go_v(v))).collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn go_v_prints_maps_sorted_and_lists_space_separated() {
        let patch = json!({ "z": null, "a": { "n": 1, "f": 1.5, "big": 1e21 }, "l": ["x", true] });
        assert_eq!(go_v(&patch), "map[a:map[big:1e+21 f:1.5 n:1] l:[x true] z:<nil>]");
    }

    #[test]
    fn strict_refuses_a_decoded_body_with_400_and_a_patch_with_422_on_field_patch() {
        let paths = ["spec.a".to_string(), "b".to_string()];
        let body = run(Directive::Strict, &mut Vec::new(), || {
            unknown("Pod", "v1", &paths, || unreachable!("a body shows no object"))?;
            Err(ApiError::Internal("not reached".into()))
        });
        assert_eq!(
            body.err(),
            Some(ApiError::BadRequest(
                r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.a", unknown field "b""#
                    .into()
            ))
        );
        let patched = run(Directive::Strict, &mut Vec::new(), || {
            patching(Patched::Object);
            unknown("Pod", "v1", &paths[1..], || r#"{"b":1}"#.into())?;
            Err(ApiError::Internal("not reached".into()))
        });
        let Err(ApiError::Invalid { causes, .. }) = patched else {
            panic!("expected 422, got {patched:?}");
        };
        assert_eq!(causes[0].field, "patch");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: "{\"b\":1}": strict decoding error: unknown field "b""#
        );
    }
}
