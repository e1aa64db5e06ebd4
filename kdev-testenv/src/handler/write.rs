//! create, update and patch, with the `status`, `scale` and `binding` subresources
//! (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`, `pkg/endpoints/handlers`).

use std::sync::Arc;

use http::{Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{Ctx, cluster_ips, convert_in, delete, intercept, node_ports, object_response, prepare, read};
use crate::meta;
use crate::registry::Resource;
use crate::schema::{Cause, go_json};
use crate::status::ApiError;
use crate::store::{State, Stored};
use crate::wire::{self, Body};

/// The update handler's `checkName`, before anything is looked up: the body names the object
/// the URL names, and its namespace (if any) is the request's.
fn check_put_name(ctx: &Ctx, obj: &Value) -> Result<(), ApiError> {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (name, ns) = (text("/metadata/name"), text("/metadata/namespace"));
    if name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({} based on URL) was undeterminable: name must be provided",
            ctx.name()
        )));
    }
    if name != ctx.name() {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    if !ctx.ns().is_empty() && !ns.is_empty() && ns != ctx.ns() {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the object ({ns}) does not match the namespace on the request ({})",
            ctx.ns()
        )));
    }
    Ok(())
}

/// A PUT to a missing object of a type whose strategy allows it (`AllowCreateOnUpdate`) takes
/// the create path (`Store.Update`): defaults, validation, admission as a CREATE, a new uid and
/// creationTimestamp. A resourceVersion in the body is dropped, as the storage layer drops it
/// from any object it writes.
fn create_on_update(ctx: &Ctx, st: &mut State, mut obj: Value) -> Result<Arc<Stored>, ApiError> {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let prepared = prepare_create(&ctx.res, ctx.version(), ctx.ns(), obj, Some(&ctx.manager()))?;
    commit_create(st, &ctx.res, ctx.ns(), prepared, ctx.dry_run())
}

/// The 409 of a write whose uid precondition fails, worded as the storage layer words it
/// (`storage.NewInvalidObjError` under `Preconditions.Check`, then `InterpretUpdateError`);
/// `current` is the stored object's uid, empty when there is none.
fn uid_precondition_failed(res: &Resource, ns: &str, name: &str, uid: &str, current: &str) -> ApiError {
    ApiError::Conflict {
        qualified: res.qualified(),
        name: name.to_string(),
        detail: format!(
            "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition \
             failed: UID in precondition: {uid}, UID in object meta: {current}",
            etcd_key(res, ns, name)
        ),
    }
}

/// The etcd key kube-apiserver keeps an object under (`/registry/<prefix>/<namespace>/<name>`),
/// which its storage errors print.
fn etcd_key(res: &Resource, ns: &str, name: &str) -> String {
    let prefix = match (res.group.as_str(), res.plural.as_str()) {
        _ if res.crd.is_some() => format!("{}/{}", res.group, res.plural),
        ("", "services") => "services/specs".to_string(),
        ("", "nodes") => "minions".to_string(),
        ("apiextensions.k8s.io", plural) => format!("apiextensions.k8s.io/{plural}"),
        (_, plural) => plural.to_string(),
    };
    if res.namespaced {
        format!("/registry/{prefix}/{ns}/{name}")
    } else {
        format!("/registry/{prefix}/{name}")
    }
}

/// POST to a collection (or `pods/{name}/binding`). Warnings (unknown fields under `Warn`) are
/// added to `warnings`, also when the create fails; so for update and patch.
pub(crate) fn create(ctx: &Ctx, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let directive = super::field_validation::directive(ctx, "CreateOptions")?;
    super::field_validation::run(directive, warnings, || create_unvalidated(ctx))
}

fn create_unvalidated(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    match ctx.route.subresource.as_deref() {
        Some("binding") => return binding(ctx),
        Some("token") => return super::auth::token_request(ctx),
        Some(_) => return Err(ApiError::MethodNotAllowed),
        None if ctx.res.review && ctx.route.name.is_none() => return super::auth::review(ctx),
        None => {}
    }
    if ctx.route.name.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    if ctx.res.namespaced && ctx.route.namespace.is_none() {
        return Err(ApiError::NoRoute);
    }
    let obj = ctx.body_json()?;
    check_type_meta(&ctx.res, ctx.version(), &obj)?;
    let prepared = prepare_create(&ctx.res, ctx.version(), ctx.ns(), obj, Some(&ctx.manager()))?;
    let stored = commit_create(
        &mut ctx.shared.state.lock(),
        &ctx.res,
        ctx.ns(),
        prepared,
        ctx.dry_run(),
    )?;
    Ok(object_response(ctx, StatusCode::CREATED, &stored))
}

/// PUT of an object, its `status` or its `scale`.
pub(crate) fn update(ctx: &Ctx, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let directive = super::field_validation::directive(ctx, "UpdateOptions")?;
    super::field_validation::run(directive, warnings, || update_unvalidated(ctx))
}

fn update_unvalidated(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let obj = ctx.body_json()?;
    let sub = ctx.route.subresource.as_deref();
    let mut st = ctx.shared.state.lock();
    if sub == Some("scale") {
        let old = st
            .get(ctx.storage(), ctx.ns(), ctx.name())
            .cloned()
            .ok_or_else(|| read::not_found(ctx))?;
        let new = apply_scale(ctx, &old, &obj)?;
        let stored = update_object(
            &mut st,
            &ctx.res,
            ctx.version(),
            ctx.ns(),
            ctx.name(),
            new,
            Some(&ctx.manager()),
            sub,
            ctx.dry_run(),
        )?;
        return Ok(wire::json_value(
            StatusCode::OK,
            &read::scale_of(&ctx.res, &stored.value),
        ));
    }
    check_type_meta(&ctx.res, ctx.version(), &obj)?;
    check_put_name(ctx, &obj)?;
    // kube-apiserver's `AllowUnconditionalUpdate`: a PUT of these kinds must say which version
    // it replaces (a patch need not; it applies to the current object).
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    // A PUT's uid is a precondition (`DefaultUpdatedObjectInfo.Preconditions`): a copy of an object
    // since deleted and re-created does not overwrite its successor. The storage checks it against
    // the object it finds, or, for a missing one, against an empty object (no uid) before it
    // decides between a 404 and a create: a uid to a missing object is a 409 whatever the type.
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let existing = st.get(ctx.storage(), ctx.ns(), ctx.name()).map(|s| s.uid().to_string());
    let creates = existing.is_none() && sub.is_none() && ctx.res.allows_create_on_update();
    let current = existing.as_deref().unwrap_or("");
    if !uid.is_empty() && uid != current {
        return Err(uid_precondition_failed(&ctx.res, ctx.ns(), ctx.name(), uid, current));
    }
    if creates {
        let stored = create_on_update(ctx, &mut st, obj)?;
        drop(st);
        return Ok(object_response(ctx, StatusCode::CREATED, &stored));
    }
    // kube-apiserver's `Store.Update` answers 404 for a missing object before it looks at the
    // resourceVersion, and names the resource, not the kind, in the 422 (kubernetes#18526).
    if rv.is_empty() && !ctx.res.allows_unconditional_update() && existing.is_some() {
        return Err(ApiError::Invalid {
            kind: ctx.res.plural.clone(),
            group: ctx.res.group.clone(),
            name: ctx.name().to_string(),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        });
    }
    let stored = update_object(
        &mut st,
        &ctx.res,
        ctx.version(),
        ctx.ns(),
        ctx.name(),
        obj,
        Some(&ctx.manager()),
        sub,
        ctx.dry_run(),
    )?;
    drop(st);
    Ok(object_response(ctx, StatusCode::OK, &stored))
}

/// PATCH: JSON patch, merge patch, strategic merge patch, or server-side apply.
pub(crate) fn patch(ctx: &Ctx, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let directive = super::field_validation::directive(ctx, "PatchOptions")?;
    super::field_validation::run(directive, warnings, || patch_unvalidated(ctx))
}

fn patch_unvalidated(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let sub = ctx.route.subresource.as_deref();
    if sub == Some("finalize") {
        // kube-apiserver's `namespaces/finalize` only updates.
        return Err(ApiError::MethodNotAllowed);
    }
    let manager = ctx.manager();
    let now = meta::now();
    let api_version = ctx.res.api_version(ctx.version());
    let mut st = ctx.shared.state.lock();
    let old = st.get(ctx.storage(), ctx.ns(), ctx.name()).cloned();

    if content_type == "application/apply-patch+yaml" {
        // `fieldManager` is there: `options::validate` requires it of an apply.
        let applied: Value = serde_saphyr::from_slice(&ctx.body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::BadRequest("apply patch must be an object".into()));
        }
        check_type_meta(&ctx.res, ctx.version(), &applied)?;
        let force = ctx.query.flag("force");
        let live = old
            .as_ref()
            .map(|o| intercept::old_in(&ctx.res, ctx.version(), o))
            .transpose()?;
        let crd_schema = ctx
            .res
            .crd
            .as_ref()
            .and_then(|c| c.get(ctx.version()))
            .map(|v| v.apply.clone());
        let schema =
            crd_schema.unwrap_or_else(|| Arc::new(crate::patch::Schema::for_kind(&ctx.res.group, &ctx.res.kind)));
        let reset = reset_fields(&ctx.res, sub);
        let reset: Vec<&str> = reset.iter().map(String::as_str).collect();
        let writer = crate::patch::Writer::new(&manager, &api_version, &now)
            .through(sub)
            .resetting(&reset);
        let mut merged = crate::patch::apply_as(&schema, live.as_ref(), &applied, force, &writer)
            .map_err(|e| patch_error(&ctx.res, ctx.name(), e))?;
        // Server-side apply converts the applied object to its typed form whatever
        // `fieldValidation` says, and a field the type or the CRD's schema does not declare
        // fails that conversion: a 500 (kubernetes/kubernetes#122480, #139253).
        let unknown = match super::crd_schema(&ctx.res, ctx.version()) {
            _ if sub == Some("scale") => None,
            Some(crd) => {
                let mut known = merged.clone();
                crd.prune(&mut known);
                Some(super::typed::Unknown::with_known(known))
            }
            None if ctx.res.crd.is_none() => {
                super::typed::Unknown::of(&ctx.res.group, ctx.version(), &ctx.res.kind, &merged)
            }
            None => None,
        };
        if let Some(unknown) = unknown {
            let paths = unknown.apply_paths(&merged, &schema);
            if !paths.is_empty() {
                return Err(not_declared(&ctx.res, ctx.version(), &applied, &paths));
            }
        }
        if old.is_none() {
            // The patcher's `applyPatch`: an object to create cannot name a uid, since no object
            // of that uid exists. A resourceVersion it may name: the create that follows is the
            // update path's (`Store.Update` creating), which never looks at it, and the new
            // object gets a resourceVersion of its own.
            let uid = merged.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            if !uid.is_empty() {
                return Err(ApiError::Conflict {
                    qualified: ctx.res.qualified(),
                    name: ctx.name().to_string(),
                    detail: format!(
                        "uid mismatch: the provided object specified uid {uid}, and no existing object was found"
                    ),
                });
            }
            if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
        }
        check_name(ctx, &merged)?;
        let (code, stored) = match old {
            None if sub.is_none() => (
                StatusCode::CREATED,
                create_object(&mut st, &ctx.res, ctx.version(), ctx.ns(), merged, None, ctx.dry_run())?,
            ),
            None => return Err(read::not_found(ctx)),
            Some(_) => (
                StatusCode::OK,
                update_object(
                    &mut st,
                    &ctx.res,
                    ctx.version(),
                    ctx.ns(),
                    ctx.name(),
                    merged,
                    None,
                    sub,
                    ctx.dry_run(),
                )?,
            ),
        };
        drop(st);
        return Ok(object_response(ctx, code, &stored));
    }

    let old = old.ok_or_else(|| read::not_found(ctx))?;
    // kube-apiserver's patch handler refuses unknown fields of the patched object with 422 on
    // field `patch` (`jsonPatcher.applyPatchToCurrentObject`), custom resources included.
    let body = ctx.body_json()?;
    if sub != Some("scale") {
        super::field_validation::patching(if content_type == "application/strategic-merge-patch+json" {
            super::field_validation::Patched::Strategic(body.clone())
        } else {
            super::field_validation::Patched::Object
        });
    }
    let doc = if sub == Some("scale") {
        read::scale_of(&ctx.res, &old.value)
    } else {
        intercept::old_in(&ctx.res, ctx.version(), &old)?
    };
    let doc = match content_type.as_str() {
        "application/json-patch+json" => {
            if super::field_validation::directive(ctx, "PatchOptions")? != super::field_validation::Directive::Ignore
                && let Some(why) = strict_json_patch_error(&body)
            {
                return Err(ApiError::BadRequest(format!("error decoding patch: {why}")));
            }
            crate::patch::json_patch(&doc, &body)
        }
        "application/merge-patch+json" => crate::patch::merge_patch(&doc, &body),
        "application/strategic-merge-patch+json" => {
            if !ctx.res.strategic || sub == Some("scale") {
                return Err(ApiError::UnsupportedMediaType(
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                ));
            }
            crate::patch::strategic_merge_patch(&ctx.res.group, &ctx.res.kind, &doc, &body)
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json"
                    .into(),
            ));
        }
    }
    .map_err(|e| patch_error(&ctx.res, ctx.name(), e))?;
    if sub != Some("scale") {
        check_name(ctx, &doc)?;
    }
    if sub == Some("scale") {
        let new = apply_scale(ctx, &old, &doc)?;
        let stored = update_object(
            &mut st,
            &ctx.res,
            ctx.version(),
            ctx.ns(),
            ctx.name(),
            new,
            Some(&manager),
            sub,
            ctx.dry_run(),
        )?;
        return Ok(wire::json_value(
            StatusCode::OK,
            &read::scale_of(&ctx.res, &stored.value),
        ));
    }
    let stored = update_object(
        &mut st,
        &ctx.res,
        ctx.version(),
        ctx.ns(),
        ctx.name(),
        doc,
        Some(&manager),
        sub,
        ctx.dry_run(),
    )?;
    drop(st);
    Ok(object_response(ctx, StatusCode::OK, &stored))
}

/// Server-side apply of a built-in object with fields its type does not know, whatever the
/// `fieldValidation`: the applied configuration does not convert to its typed form, a plain error
/// kube-apiserver answers with 500 and no reason (`structuredmerge.go`, `ObjectToTyped`).
fn not_declared(res: &Resource, version: &str, applied: &Value, paths: &[String]) -> ApiError {
    let text = |pointer: &str| applied.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let errors: Vec<String> = paths
        .iter()
        .map(|p| format!("{p}: field not declared in schema"))
        .collect();
    let errors = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    ApiError::Status {
        code: 500,
        reason: String::new(),
        message: format!(
            "failed to create typed patch object ({}/{}; {}/{version}, Kind={}): {errors}",
            text("/metadata/namespace"),
            text("/metadata/name"),
            res.group,
            res.kind
        ),
        details: None,
    }
}

/// Why a JSON patch does not decode into kube-apiserver's `[]jsonPatchOp` (`op`, `path` and
/// `from` strings, any `value`), which its patch handler tries first under `Warn` and `Strict`
/// field validation: Go's text, or `None` when it decodes.
fn strict_json_patch_error(body: &Value) -> Option<String> {
    use crate::patch::go_json_type;
    let items = match body {
        Value::Array(items) => items,
        Value::Null => return None,
        other => {
            return Some(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                go_json_type(other)
            ));
        }
    };
    for item in items {
        let Value::Object(op) = item else {
            if item.is_null() {
                continue;
            }
            return Some(format!(
                "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                go_json_type(item)
            ));
        };
        for (key, value) in op {
            if matches!(key.as_str(), "op" | "path" | "from") && !value.is_string() && !value.is_null() {
                return Some(format!(
                    "json: cannot unmarshal {} into Go struct field jsonPatchOp.{key} of type string",
                    go_json_type(value)
                ));
            }
        }
    }
    None
}

/// kube-apiserver's `checkName` for a patched object: its name must be the URL's, and its
/// namespace, when it has one, the URL's.
fn check_name(ctx: &Ctx, obj: &Value) -> Result<(), ApiError> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name != ctx.name() {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    if !ns.is_empty() && !ctx.ns().is_empty() && ns != ctx.ns() {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the object ({ns}) does not match the namespace on the URL ({})",
            ctx.ns()
        )));
    }
    Ok(())
}

pub(crate) fn patch_error(res: &Resource, name: &str, e: crate::patch::Error) -> ApiError {
    use crate::patch::Error as E;
    match e {
        E::Conflicts(conflicts) => ApiError::ApplyConflict {
            qualified: res.qualified(),
            name: name.to_string(),
            message: crate::patch::conflicts_message(&conflicts),
            causes: conflicts
                .into_iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.owner()),
                    field: c.field,
                })
                .collect(),
        },
        // `applyJSPatch`: any operation that cannot be applied is a generic 422, whose message
        // says nothing of which (`NewGenericServerResponse`, with empty details).
        E::JsonPatchOperation(_) | E::JsonPatchTest(_) | E::JsonPatchApply(_) => ApiError::Status {
            code: 422,
            reason: "Invalid".into(),
            message: "the server rejected our request due to an error in our request".into(),
            details: Some(json!({})),
        },
        E::TooManyOperations(got) => ApiError::Status {
            code: 413,
            reason: "RequestEntityTooLarge".into(),
            message: format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {}, got {got}",
                crate::patch::MAX_JSON_PATCH_OPERATIONS
            ),
            details: None,
        },
        other => match other.status_code() {
            422 => ApiError::Invalid {
                kind: res.kind.clone(),
                group: res.group.clone(),
                name: name.to_string(),
                causes: vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: other.to_string(),
                    field: String::new(),
                }],
            },
            415 => ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            ),
            500 => ApiError::Internal(other.to_string()),
            _ => ApiError::BadRequest(other.to_string()),
        },
    }
}

/// The object with the Scale's `spec.replicas` written to its replicas path.
fn apply_scale(ctx: &Ctx, old: &Stored, scale: &Value) -> Result<Value, ApiError> {
    let paths = ctx.res.scale.as_ref().ok_or(ApiError::NoRoute)?;
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::Invalid {
            kind: "Scale".into(),
            group: "autoscaling".into(),
            name: ctx.name().to_string(),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        });
    }
    if let Some(rv) = scale.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        && !rv.is_empty()
        && rv != old.rv.to_string()
    {
        return Err(conflict(&ctx.res, ctx.name()));
    }
    let mut new = intercept::old_in(&ctx.res, ctx.version(), old)?;
    set_path(&mut new, &paths.spec_replicas, json!(replicas));
    Ok(new)
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let Some(m) = cur.as_object_mut() else { return };
        cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(last.to_string(), value);
    }
}

/// POST `pods/{name}/binding`: assigns the pod to a node, once.
fn binding(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let b = ctx.body_json()?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::Invalid {
            kind: "Binding".into(),
            group: String::new(),
            name: ctx.name().to_string(),
            causes: vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        });
    }
    let mut st = ctx.shared.state.lock();
    let old = st
        .get(ctx.storage(), ctx.ns(), ctx.name())
        .cloned()
        .ok_or_else(|| read::not_found(ctx))?;
    if let Some(cur) = old
        .value
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::Conflict {
            qualified: "pods".into(),
            name: ctx.name().to_string(),
            detail: format!("pod {} is already assigned to node \"{cur}\"", ctx.name()),
        });
    }
    let mut new = old.value.clone();
    new["spec"]["nodeName"] = json!(node);
    let cond =
        json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now() });
    match new["status"]["conditions"].as_array_mut() {
        Some(c) => {
            c.retain(|x| x["type"] != "PodScheduled");
            c.push(cond);
        }
        None => new["status"]["conditions"] = json!([cond]),
    }
    let key = (ctx.ns().to_string(), ctx.name().to_string());
    st.put(ctx.storage(), key, new);
    Ok(wire::json_value(
        StatusCode::CREATED,
        &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
    ))
}

/// The body's apiVersion and kind must name this endpoint's type.
pub(crate) fn check_type_meta(res: &Resource, version: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON object".into(),
        ));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::BadRequest(format!("Object 'Kind' is missing in '{obj}'")));
    }
    let expected = res.api_version(version);
    if av != expected {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if kind != res.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.kind
        )));
    }
    Ok(())
}

fn invalid(res: &Resource, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: res.kind.clone(),
        group: res.group.clone(),
        name: name.to_string(),
        causes,
    }
}

/// Whether `res` is core/v1 Services, whose node ports are allocated on writes.
fn is_service(res: &Resource) -> bool {
    res.group.is_empty() && res.plural == "services"
}

/// The error of a Service write whose cluster IP or node ports could not be allocated.
fn refused(res: &Resource, name: &str, why: node_ports::Refused) -> ApiError {
    match why {
        node_ports::Refused::Invalid(cause) => invalid(res, name, vec![cause]),
        node_ports::Refused::Full(message) => ApiError::Internal(message),
    }
}

fn conflict(res: &Resource, name: &str) -> ApiError {
    ApiError::Conflict {
        qualified: res.qualified(),
        name: name.to_string(),
        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the object must be a JSON object".into()))?;
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

/// An object as kube-apiserver has it once decoded, before admission (mutating webhooks see it
/// so): a custom resource pruned and defaulted by its schema (a webhook's patch is pruned and
/// defaulted again by [`admit`]), a built-in object without the fields its type does not know;
/// either without the empty maps and lists of its metadata, which `ObjectMeta` drops.
/// Decoding is where kube-apiserver finds unknown fields (`fieldValidation`).
fn as_decoded(res: &Resource, version: &str, mut obj: Value) -> Result<Value, ApiError> {
    if let Some(schema) = super::crd_schema(res, version) {
        // A refused patch shows the patched object as it came, unknown fields included.
        let patched = super::field_validation::shows_object().then(|| obj.to_string());
        let unknown = schema.prune_reporting(&mut obj);
        super::field_validation::unknown(&res.kind, version, &unknown, || patched.unwrap_or_default())?;
        schema.default(&mut obj);
    } else if res.crd.is_none() {
        let sent = super::field_validation::shows_object().then(|| obj.to_string());
        let decoded = match super::typed::go_decode(&res.group, version, &res.kind, &mut obj) {
            Ok(unknown) => unknown,
            Err(why) => {
                let shown = sent.clone().unwrap_or_else(|| obj.to_string());
                super::field_validation::undecodable(&res.kind, version, &why, || shown)?;
                None
            }
        };
        if let Some(unknown) = decoded {
            let paths = unknown.paths(&obj);
            if !paths.is_empty() {
                let shown = sent.unwrap_or_else(|| obj.to_string());
                super::field_validation::unknown(&res.kind, version, &paths, || shown)?;
                unknown.drop_from(&mut obj);
            }
        }
    }
    meta::drop_empty_metadata(&mut obj);
    Ok(obj)
}

/// Schema pruning, defaulting and validation for custom resources; type checks for built-ins;
/// name, label and annotation checks for all.
fn admit(
    res: &Resource,
    version: &str,
    obj: &mut Value,
    creating: bool,
    old: Option<&Value>,
    sub: Option<&str>,
) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut causes: Vec<Cause> = Vec::new();
    if creating {
        // `ValidateObjectMetaAccessor`: the prefix, then the name made from it.
        let generate = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !generate.is_empty() {
            for detail in meta::check_generate_name(generate, res.name_rule) {
                causes.push(Cause::invalid_str("metadata.generateName", generate, &detail));
            }
        }
        for detail in meta::check_name(&name, res.name_rule) {
            causes.push(Cause::invalid_str("metadata.name", &name, &detail));
        }
    }
    if let Some(m) = obj.get("metadata").and_then(Value::as_object) {
        causes.extend(meta::check_labels_and_annotations(m));
        if prepare::core_object_meta(res) {
            causes.extend(meta::check_kube_finalizers(m));
        }
    }
    if let Some(schema) = super::crd_schema(res, version) {
        schema.prune(obj);
        schema.default(obj);
        let mut found = schema.validate(obj);
        // Validation ratcheting (GA in 1.33): an update keeps a value that broke a schema
        // tightened since it was written.
        if let Some(old) = old {
            found.retain(|c| !ratcheted(c, old, obj));
        }
        causes.extend(found);
        let rules = schema.validate_rules(obj, old, &causes);
        causes.extend(rules);
    } else {
        causes.extend(prepare::validate(res, obj, old.is_some()));
        if let Some(old) = old {
            causes.extend(prepare::validate_update(res, old, obj));
        }
    }
    if res.group == "apiextensions.k8s.io" {
        causes.extend(crate::schema::validate_crd(obj));
        if sub.is_none() {
            causes.extend(crate::schema::validate_stored_versions(obj));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(res, &name, causes))
    }
}

/// Whether a schema error of an update is ratcheted away: the value it is about is the same as
/// before. A missing required field is judged by the object that misses it, an item of a list by
/// the whole list (kube-apiserver correlates map-list items by key; here any list change counts).
fn ratcheted(cause: &Cause, old: &Value, new: &Value) -> bool {
    let mut segments = field_segments(&cause.field);
    if cause.reason == "FieldValueRequired" {
        segments.pop();
    }
    if let Some(first_index) = segments.iter().position(|s| matches!(s, Segment::Index(_))) {
        segments.truncate(first_index);
    }
    value_at(old, &segments) == value_at(new, &segments)
}

fn value_at<'a>(mut v: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    for s in segments {
        v = match s {
            Segment::Key(k) => v.get(k.as_str())?,
            Segment::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

enum Segment {
    Key(String),
    Index(usize),
}

/// The steps of a `field.Path` as kube prints it: `spec.ports[0].name`, `spec.labels[a.b]`.
fn field_segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').unwrap_or(inner.len());
            let key = &inner[..end];
            out.push(match key.parse() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(key.to_string()),
            });
            rest = inner.get(end + 1..).unwrap_or("");
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Segment::Key(rest[..end].to_string()));
            rest = &rest[end..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        }
    }
    out
}

/// An object ready to be stored: named, stamped, defaulted, validated, in storage form.
pub(crate) struct Prepared {
    obj: Value,
    name: String,
    /// The generateName prefix, when the name was generated (and may be generated again).
    generated: Option<String>,
    /// For a Service: what it asked for, allocated when it is stored.
    service: Option<ServiceAsks>,
}

/// What a new Service asked for before defaults filled in the rest.
struct ServiceAsks {
    /// Its ports' node ports, one per port (0: none).
    node_ports: Vec<u64>,
    /// Its primary cluster IP (`None` for none; `"None"` for a headless Service).
    cluster_ip: Option<String>,
}

/// The part of a create that needs no lock: names, metadata, defaults, validation and
/// managedFields, so that concurrent creates only serialize on storing.
pub(crate) fn prepare_create(
    res: &Resource,
    version: &str,
    ns: &str,
    obj: Value,
    manager: Option<&str>,
) -> Result<Prepared, ApiError> {
    let mut obj = intercept::at_object(None, as_decoded(res, version, obj)?)?;
    let stamp = intercept::stamp();
    let m = meta_mut(&mut obj)?;
    if res.namespaced {
        let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    if m.get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::Internal(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let given = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let generate = m.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
    let (name, generated) = match (given.is_empty(), generate.is_empty()) {
        (false, _) => (given, None),
        (true, false) => (
            stamp
                .as_ref()
                .map_or_else(|| meta::generated_name(&generate), |s| s.name.clone()),
            Some(generate),
        ),
        (true, true) => {
            return Err(invalid(
                res,
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
    };
    m.insert("name".into(), json!(name));
    match &stamp {
        Some(stamp) => {
            m.insert("uid".into(), json!(stamp.uid));
            m.insert("creationTimestamp".into(), json!(stamp.created));
        }
        None => {
            m.insert("uid".into(), json!(meta::uid()));
            m.insert("creationTimestamp".into(), json!(meta::now()));
        }
    }
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        m.remove(k);
    }
    if manager.is_some() {
        m.remove("managedFields");
    }
    if res.generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    let service = is_service(res).then(|| ServiceAsks {
        node_ports: node_ports::requested(&obj["spec"]),
        cluster_ip: cluster_ips::primary(&obj["spec"]),
    });
    prepare::on_create(res, &mut obj);
    admit(res, version, &mut obj, true, None, None)?;
    if let Some(manager) = manager {
        record_update(res, version, None, &mut obj, manager, None);
    }
    intercept::before_store(&obj)?;
    Ok(Prepared {
        obj: convert_in(res, obj),
        name,
        generated,
        service,
    })
}

/// The part of a create under the lock: the namespace must exist and not be terminating, the
/// name must be free; then the object is stored and the post-create hooks run.
pub(crate) fn commit_create(
    st: &mut State,
    res: &Arc<Resource>,
    ns: &str,
    prepared: Prepared,
    dry_run: bool,
) -> Result<Arc<Stored>, ApiError> {
    let Prepared {
        mut obj,
        mut name,
        generated,
        service,
    } = prepared;
    if res.namespaced {
        match st.get("/namespaces", "", ns) {
            None => {
                return Err(ApiError::NotFound {
                    qualified: "namespaces".into(),
                    name: ns.to_string(),
                });
            }
            Some(n) if n.value.pointer("/metadata/deletionTimestamp").is_some() => {
                return Err(ApiError::Forbidden {
                    qualified: res.qualified(),
                    name: name.clone(),
                    message: format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is \
                         being terminated",
                        res.qualified()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    if let Some(prefix) = generated {
        for _ in 0..8 {
            if st.get(&res.storage, ns, &name).is_none() {
                break;
            }
            name = meta::generated_name(&prefix);
        }
        meta_mut(&mut obj)?.insert("name".into(), json!(name));
    }
    // kube-apiserver allocates a Service's cluster IP, then its node ports (`BeginCreate`),
    // before it stores it, also on a dry run, which checks them without keeping them.
    if let Some(asks) = service
        && let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object())
    {
        let ips = if dry_run {
            Default::default()
        } else {
            cluster_ips::taken(st, &res.storage, None)
        };
        cluster_ips::allocate_on_create(spec, asks.cluster_ip.as_deref(), &ips).map_err(|r| refused(res, &name, r))?;
        let taken = node_ports::taken(st, &res.storage, None);
        node_ports::allocate_on_create(spec, &asks.node_ports, taken, dry_run).map_err(|r| refused(res, &name, r))?;
    }
    if let Some(existing) = st.get(&res.storage, ns, &name) {
        return Err(ApiError::AlreadyExists {
            qualified: res.qualified(),
            deleting: existing.value.pointer("/metadata/deletionTimestamp").is_some(),
            name,
        });
    }
    if dry_run {
        return Ok(Stored::unstored(obj));
    }
    let stored = st.put(&res.storage, (ns.to_string(), name), obj);
    delete::after_create(st, res, &stored);
    Ok(stored)
}

/// Creates an object under the lock (bootstrap, and apply creating an object).
pub(crate) fn create_object(
    st: &mut State,
    res: &Arc<Resource>,
    version: &str,
    ns: &str,
    obj: Value,
    manager: Option<&str>,
    dry_run: bool,
) -> Result<Arc<Stored>, ApiError> {
    let prepared = prepare_create(res, version, ns, obj, manager)?;
    commit_create(st, res, ns, prepared, dry_run)
}

/// Replaces an object (or its status) under the lock, with kube-apiserver's update rules.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_object(
    st: &mut State,
    res: &Arc<Resource>,
    version: &str,
    ns: &str,
    name: &str,
    new: Value,
    manager: Option<&str>,
    sub: Option<&str>,
    dry_run: bool,
) -> Result<Arc<Stored>, ApiError> {
    let old = st
        .get(&res.storage, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound {
            qualified: res.qualified(),
            name: name.to_string(),
        })?;
    let body_name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = new.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    if res.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        ));
    }
    if let Some(rv) = new.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        && !rv.is_empty()
        && rv != old.rv.to_string()
    {
        return Err(conflict(res, name));
    }
    // A patch cannot change the uid (`ValidateObjectMetaUpdate`); a PUT's was checked as a
    // precondition before.
    if let Some(uid) = new.pointer("/metadata/uid").and_then(Value::as_str)
        && !uid.is_empty()
        && uid != old.uid()
    {
        return Err(invalid(
            res,
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                // A `types.UID`, a named string type, prints as JSON.
                message: format!("Invalid value: {}: field is immutable", go_json(&json!(uid))),
                field: "metadata.uid".into(),
            }],
        ));
    }
    // `rest.BeforeUpdate` keeps a deletion timestamp and grace period once set, but one set by
    // an update of a live object reaches `ValidateObjectMetaUpdate`, which refuses it.
    if old.value.pointer("/metadata/deletionTimestamp").is_none() {
        let mut causes = Vec::new();
        if let Some(ts) = new.pointer("/metadata/deletionTimestamp").filter(|v| !v.is_null()) {
            let shown = ts.as_str().map_or_else(|| ts.to_string(), String::from);
            causes.push(Cause::invalid_str(
                "metadata.deletionTimestamp",
                &shown,
                "field is immutable",
            ));
        }
        if let Some(grace) = new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .filter(|v| !v.is_null())
        {
            causes.push(Cause::invalid(
                "metadata.deletionGracePeriodSeconds",
                grace,
                "field is immutable",
            ));
        }
        if !causes.is_empty() {
            return Err(invalid(res, name, causes));
        }
    }
    let mut new = intercept::at_object(Some(&old), as_decoded(res, version, new)?)?;
    let old_served = intercept::old_in(res, version, &old)?;
    let old_meta = old_served.get("metadata").cloned().unwrap_or_else(|| json!({}));
    match sub {
        Some("status") => {
            // The status and the managed fields (which track this write) come through; for a
            // built-in type, the metadata too, but for what its status strategy resets.
            let status = new.get("status").cloned();
            let managed = new.pointer("/metadata/managedFields").cloned();
            let metadata = new.get("metadata").cloned().filter(|_| res.crd.is_none());
            new = old_served.clone();
            if let Some(m) = new.as_object_mut() {
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
                if let Some(Value::Object(mut metadata)) = metadata {
                    for k in status_resets_metadata(res) {
                        match old_meta.get(*k) {
                            Some(v) => metadata.insert((*k).to_string(), v.clone()),
                            None => metadata.remove(*k),
                        };
                    }
                    m.insert("metadata".into(), Value::Object(metadata));
                }
            }
            let m = meta_mut(&mut new)?;
            match managed {
                Some(mf) => m.insert("managedFields".into(), mf),
                None => m.remove("managedFields"),
            };
        }
        _ if res.status => {
            if let Some(m) = new.as_object_mut() {
                match old_served.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
        }
        _ => {}
    }
    let m = meta_mut(&mut new)?;
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match old_meta.get(k) {
            Some(v) => m.insert(k.to_string(), v.clone()),
            None => m.remove(k),
        };
    }
    m.remove("selfLink");
    // A write without managed fields (or with an empty list) keeps the stored ones; an apply
    // (`manager` is `None`) computed its own, and none left means none (its manager's entry
    // went empty and is removed, as structured-merge-diff removes empty managers).
    let keeps_managed = manager.is_some()
        && m.get("managedFields")
            .is_none_or(|mf| mf.is_null() || mf.as_array().is_some_and(Vec::is_empty));
    if keeps_managed {
        match old_meta.get("managedFields") {
            Some(mf) => m.insert("managedFields".into(), mf.clone()),
            None => m.remove("managedFields"),
        };
    }
    if old_meta.get("deletionTimestamp").is_some() {
        let had: Vec<&Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        // `ValidateNoNewFinalizers` names them as a sorted set.
        let mut added: Vec<&str> = m
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|now| {
                now.iter()
                    .filter(|f| !had.contains(f))
                    .filter_map(Value::as_str)
                    .collect()
            })
            .unwrap_or_default();
        added.sort_unstable();
        added.dedup();
        if !added.is_empty() {
            let detail = format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                meta::go_string_slice(&added)
            );
            return Err(invalid(
                res,
                name,
                vec![Cause::forbidden("metadata.finalizers", &detail)],
            ));
        }
    }
    if is_service(res)
        && sub.is_none()
        && let (Some(spec), Some(old_spec)) = (new.get_mut("spec"), old_served.get("spec"))
        && spec.is_object()
    {
        let asked_ip = cluster_ips::primary(spec);
        prepare::service_defaults(spec, Some(old_spec));
        // `BeginUpdate`: a cluster IP for a Service that was an ExternalName, and node ports
        // the Service did not hold, are allocated now.
        let ips = if dry_run {
            Default::default()
        } else {
            cluster_ips::taken(st, &res.storage, Some((ns, name)))
        };
        cluster_ips::allocate_on_update(spec, old_spec, asked_ip.as_deref(), &ips)
            .map_err(|r| refused(res, name, r))?;
        let taken = node_ports::taken(st, &res.storage, Some((ns, name)));
        node_ports::allocate_on_update(spec, old_spec, taken, dry_run).map_err(|r| refused(res, name, r))?;
    }
    if res.group.is_empty() && res.plural == "namespaces" {
        // `namespaceStrategy`: spec.finalizers change only through `/finalize` (the status is
        // kept above), and the name label always matches the name.
        if sub != Some("finalize")
            && let Some(spec) = new
                .as_object_mut()
                .map(|m| m.entry("spec").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
        {
            match old_served.pointer("/spec/finalizers") {
                Some(f) => spec.insert("finalizers".into(), f.clone()),
                None => spec.remove("finalizers"),
            };
        }
        let labels = &mut meta_mut(&mut new)?.entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }
    prepare::on_update(res, &mut new, &old_served, sub);
    admit(res, version, &mut new, false, Some(&old_served), sub)?;
    // kube-apiserver skips a write whose encoding is the bytes already stored. A custom resource
    // is compared in its storage form: one stored in a version that is no longer the storage
    // version encodes differently, so a no-op update rewrites it in the new one (how a storage
    // version migration works), and one written back from a version that lacks some of its
    // fields loses them.
    let unchanged = if res.crd.is_some() {
        same_content(&old.value, &convert_in(res, new.clone()))
    } else {
        same_content(&old_served, &new)
    };
    if unchanged {
        intercept::before_store(&old_served)?;
        return Ok(old);
    }
    if res.generation && sub != Some("status") && prepare::spec_changed(res, &old_served, &new) {
        let g = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta_mut(&mut new)?.insert("generation".into(), json!(g));
    }
    if let Some(manager) = manager {
        record_update(res, version, Some(&old_served), &mut new, manager, sub);
    }
    intercept::before_store(&new)?;
    let new = convert_in(res, new);
    if dry_run {
        return Ok(Stored::new(new, old.rv));
    }
    let key = (ns.to_string(), name.to_string());
    let stored = st.put(&res.storage, key.clone(), new);
    Ok(delete::after_update(st, res, stored))
}

/// Stores a custom resource its caller converted to the storage version through the CRD's
/// conversion webhook, after the write defaulted and validated it in the request's version
/// (kube-apiserver does not validate it again in the storage version). `old_rv` is the
/// resourceVersion of the object it replaces (`None` for a new object), and `generated` the
/// generateName prefix of a generated name. `None` when the object changed since: the write
/// starts over.
pub(crate) fn commit_converted(
    st: &mut State,
    res: &Arc<Resource>,
    ns: &str,
    obj: Value,
    old_rv: Option<u64>,
    generated: Option<String>,
    dry_run: bool,
) -> Result<Option<Arc<Stored>>, ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(old_rv) = old_rv else {
        let prepared = Prepared {
            obj,
            name,
            generated,
            service: None,
        };
        return commit_create(st, res, ns, prepared, dry_run).map(Some);
    };
    let Some(old) = st.get(&res.storage, ns, &name).filter(|o| o.rv == old_rv).cloned() else {
        return Ok(None);
    };
    if same_content(&old.value, &obj) {
        return Ok(Some(old));
    }
    if dry_run {
        return Ok(Some(Stored::new(obj, old.rv)));
    }
    let stored = st.put(&res.storage, (ns.to_string(), name), obj);
    Ok(Some(delete::after_update(st, res, stored)))
}

/// Gives `manager` an Update entry in managedFields for what it changed through `sub` (CRD list
/// types included).
fn record_update(
    res: &Resource,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    sub: Option<&str>,
) {
    let (now, api_version) = (meta::now(), res.api_version(version));
    let schema = match res.crd.as_ref().and_then(|c| c.get(version)) {
        Some(v) => v.apply.clone(),
        None => Arc::new(crate::patch::Schema::for_kind(&res.group, &res.kind)),
    };
    let writer = crate::patch::Writer::new(manager, &api_version, &now).through(sub);
    crate::patch::record_update_as(&schema, old, new, &writer);
}

/// The metadata fields a built-in type's status strategy keeps from the stored object
/// (`PrepareForUpdate`: a pod's owner references, a Deployment's labels); the rest of the
/// metadata a `/status` write may change, as kube-apiserver lets it.
fn status_resets_metadata(res: &Resource) -> &'static [&'static str] {
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => &["ownerReferences"],
        ("apps", "deployments") => &["labels"],
        _ => &[],
    }
}

/// The fields a write through `sub` cannot set, which its managed fields leave out (the
/// strategies' `GetResetFields`): `status` on an object with a status subresource; through the
/// status subresource the `spec`, and the metadata [`status_resets_metadata`] names.
fn reset_fields(res: &Resource, sub: Option<&str>) -> Vec<String> {
    match sub {
        Some("status") => std::iter::once("spec".to_string())
            .chain(status_resets_metadata(res).iter().map(|f| format!("metadata.{f}")))
            .collect(),
        None if res.status => vec!["status".to_string()],
        _ => Vec::new(),
    }
}

/// Equal apart from resourceVersion and the times of managed fields: such a write changes nothing
/// (kube-apiserver skips a write whose only change is a managed-fields timestamp). A change of
/// ownership alone is a change.
fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                    entry.remove("time");
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}
