//! `fieldValidation` for the fields a custom resource's schema does not know: `Strict` refuses
//! the write (400 BadRequest, `strict decoding error: unknown field "spec.x"`), `Warn` (the
//! default) drops them with a `Warning` header each, `Ignore` drops them silently — as
//! kube-apiserver does when it decodes a custom resource and prunes it.
//!
//! The directive is set for one synchronous write verb on this thread ([`run`]); the pruning
//! step deep inside the verb reports what it dropped ([`unknown`]).

use std::cell::RefCell;

use http::{Response, header};

use super::Ctx;
use crate::schema::Cause;
use crate::status::ApiError;
use crate::wire::Body;

/// What to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    Ignore,
    Warn,
    Strict,
}

struct Scope {
    directive: Directive,
    warnings: Vec<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// The request's `fieldValidation` (`Warn` when absent), refused as `ValidateFieldValidation`
/// refuses an unknown value (422 on the write's options kind).
pub(crate) fn directive(ctx: &Ctx, options_kind: &str) -> Result<Directive, ApiError> {
    match ctx.query.get("fieldValidation").unwrap_or("") {
        "" | "Warn" => Ok(Directive::Warn),
        "Ignore" => Ok(Directive::Ignore),
        "Strict" => Ok(Directive::Strict),
        other => Err(ApiError::Invalid {
            kind: options_kind.into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
            causes: vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                ),
                field: "fieldValidation".into(),
            }],
        }),
    }
}

/// Runs the write `f` with `directive` in force and adds a `Warning` header for every unknown
/// field it dropped under `Warn`.
pub(crate) fn run(
    directive: Directive,
    f: impl FnOnce() -> Result<Response<Body>, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let outer = CURRENT.with(|c| {
        c.borrow_mut().replace(Scope {
            directive,
            warnings: Vec::new(),
        })
    });
    let result = f();
    let scope = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    let mut resp = result?;
    for w in super::warning_headers(&scope.map(|s| s.warnings).unwrap_or_default()) {
        if let Ok(v) = http::HeaderValue::from_bytes(w.as_bytes()) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(resp)
}

/// Reports the unknown fields dropped from a `kind` object written in `version`: an error under
/// `Strict`, warnings under `Warn`; nothing outside a [`run`] (the server's own writes).
pub(crate) fn unknown(kind: &str, version: &str, paths: &[String]) -> Result<(), ApiError> {
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
            Directive::Strict => Err(ApiError::BadRequest(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                each.collect::<Vec<_>>().join(", ")
            ))),
        }
    })
}
