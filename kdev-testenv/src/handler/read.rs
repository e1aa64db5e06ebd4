//! get and list, with selectors, pagination over a consistent snapshot and resourceVersion
//! semantics ([efficient detection of changes](https://kubernetes.io/docs/reference/using-api/api-concepts/#the-resourceversion-parameter)).

use std::sync::Arc;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Ctx, convert_out, object_response, render, render_metadata, table};
use crate::registry::{Resource, get_path};
use crate::schema::Cause;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjKey, Stored};

/// Objects of one resource in key order, shared between the pages of a list.
type Snapshot = Arc<Vec<Arc<Stored>>>;
use crate::wire::{self, Body};

/// GET of one object (or its `status` / `scale`).
pub(crate) fn get(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let stored = ctx
        .shared
        .state
        .lock()
        .get(ctx.storage(), ctx.ns(), ctx.name())
        .cloned()
        .ok_or_else(|| not_found(ctx))?;
    match ctx.route.subresource.as_deref() {
        Some("scale") => Ok(wire::json_value(StatusCode::OK, &scale_of(&ctx.res, &stored.value))),
        // kube-apiserver's `namespaces/finalize` only updates.
        Some("finalize") => Err(ApiError::MethodNotAllowed),
        _ => Ok(object_response(ctx, StatusCode::OK, &stored)),
    }
}

pub(crate) fn not_found(ctx: &Ctx) -> ApiError {
    ApiError::NotFound {
        qualified: ctx.res.qualified(),
        name: ctx.name().to_string(),
    }
}

/// The `autoscaling/v1` Scale of an object.
pub(crate) fn scale_of(res: &Resource, obj: &Value) -> Value {
    let paths = res.scale.as_ref();
    let spec = paths
        .and_then(|p| get_path(obj, &p.spec_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = paths
        .and_then(|p| get_path(obj, &p.status_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = paths
        .and_then(|p| p.label_selector.as_ref().map(|s| (p, s)))
        .and_then(|(p, s)| {
            let sel = get_path(obj, s)?;
            if p.selector_is_object {
                Some(selector_string(sel))
            } else {
                sel.as_str().map(String::from)
            }
        });
    let meta = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": spec },
        "status": { "replicas": status },
    });
    if let Some(sel) = selector {
        scale["status"]["selector"] = Value::String(sel);
    }
    scale
}

/// Renders a `metav1.LabelSelector` as the selector string Scale carries.
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// The selectors of a list or watch request, checked against what the resource supports.
pub(crate) struct Filter {
    pub ns: Option<String>,
    pub label: LabelSelector,
    pub field: FieldSelector,
}

impl Filter {
    pub(crate) fn from_ctx(ctx: &Ctx) -> Result<Self, ApiError> {
        let label =
            LabelSelector::parse(ctx.query.str("labelSelector")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let field =
            FieldSelector::parse(ctx.query.str("fieldSelector")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let field = if field.is_empty() {
            Ok(field)
        } else if ctx.res.crd.is_some() {
            let selectable: Vec<&str> = ctx.res.selectable_fields.iter().map(String::as_str).collect();
            field.for_custom_resource(ctx.res.namespaced, &selectable)
        } else {
            field.for_resource(&ctx.res.group, &ctx.res.plural)
        }
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Filter {
            ns: ctx.route.namespace.clone(),
            label,
            field,
        })
    }

    /// Whether an object (in storage form, converted to the served form for field lookups) matches.
    pub(crate) fn matches(&self, res: &Resource, version: &str, obj: &Value) -> bool {
        if self.ns.is_none() && self.is_empty() {
            return true;
        }
        if let Some(ns) = &self.ns
            && obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("") != ns
        {
            return false;
        }
        if !self
            .label
            .matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
        {
            return false;
        }
        if self.field.is_empty() {
            return true;
        }
        if res.conversion == crate::registry::Conversion::None {
            self.field.matches(obj)
        } else {
            self.field.matches(&convert_out(res, version, obj))
        }
    }

    fn is_empty(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }
}

/// The resourceVersion of a continue token that continues at the latest version, as
/// kube-apiserver hands out with a 410 for an expired token.
const LATEST: i64 = -1;

/// A continue token, as kube-apiserver's `storage.EncodeContinue`: unpadded URL-safe base64 of the
/// list's resourceVersion (or [`LATEST`]) and the key after the last one returned.
fn encode_continue(rv: i64, ns: &str, name: &str) -> String {
    let raw = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}\u{0}") });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

/// The resourceVersion and the last key of a continue token, refused as `storage.DecodeContinue`
/// refuses it.
fn decode_continue(token: &str) -> Result<(i64, String, String), ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("invalid continue token: continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| bad(&e.to_string()))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(&e.to_string()))?;
    match v["v"].as_str() {
        Some("meta.k8s.io/v1") => {}
        other => {
            return Err(bad(&format!(
                "server does not recognize this encoded version {}",
                other.unwrap_or_default()
            )));
        }
    }
    let rv = v["rv"].as_i64().unwrap_or(0);
    if rv == 0 || rv < LATEST {
        return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let start = v["start"].as_str().unwrap_or_default().trim_end_matches('\u{0}');
    if start.is_empty() {
        return Err(bad("encoded start key empty (version meta.k8s.io/v1)"));
    }
    let (ns, name) = start
        .split_once('/')
        .ok_or_else(|| bad("encoded start key is not a key"))?;
    Ok((rv, ns.to_string(), name.to_string()))
}

/// LIST of a collection.
pub(crate) fn list(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_ctx(ctx)?;
    let limit = ctx.query.uint("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let rv_param = ctx.query.str("resourceVersion");
    let rv_match = ctx.query.str("resourceVersionMatch");
    let cont = ctx.query.str("continue");
    // kube-apiserver's watch cache answers a `resourceVersion=0` list whole and ignores
    // `limit` (the cacher's computeListLimit): one page, no continue token. Informers list
    // this way first, so a test sees what a real cluster sends.
    let limit = limit.filter(|_| rv_param != "0" || !cont.is_empty());
    let options = list_option_causes(rv_param, rv_match, cont, ctx.query.get("sendInitialEvents").is_some());
    if !options.is_empty() {
        return Err(ApiError::Invalid {
            kind: "ListOptions".into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
            causes: options,
        });
    }
    if !cont.is_empty() && !rv_param.is_empty() && rv_param != "0" {
        return Err(ApiError::BadRequest(
            "specifying resource version is not allowed when using continue".into(),
        ));
    }

    let (page, list_rv, next, remaining) = {
        let mut st = ctx.shared.state.lock();
        let current = st.rv();
        let (items, list_rv, after): (Snapshot, u64, Option<ObjKey>) = if !cont.is_empty() {
            let (rv, ns, name) = decode_continue(cont)?;
            match u64::try_from(rv) {
                Ok(rv) => {
                    let items = st
                        .snapshot_at(ctx.storage(), rv)
                        .ok_or_else(|| ApiError::ContinueExpired {
                            token: encode_continue(LATEST, &ns, &name),
                        })?;
                    (items, rv, Some((ns, name)))
                }
                // The rest of the list, as it is now.
                Err(_) => (st.keep_snapshot(ctx.storage()), current, Some((ns, name))),
            }
        } else {
            let wanted: Option<u64> = match rv_param {
                "" | "0" => None,
                v => Some(
                    v.parse()
                        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v:?}")))?,
                ),
            };
            match (wanted, rv_match) {
                (Some(rv), "Exact") => {
                    if rv > current {
                        return Err(too_large(rv, current));
                    }
                    let items = st
                        .snapshot_at(ctx.storage(), rv)
                        .ok_or_else(|| ApiError::Expired(format!("too old resource version: {rv} ({current})")))?;
                    (items, rv, None)
                }
                (Some(rv), "" | "NotOlderThan") if rv > current => return Err(too_large(rv, current)),
                (_, "" | "NotOlderThan" | "Exact") => {
                    let items = if limit.is_some() {
                        st.keep_snapshot(ctx.storage())
                    } else {
                        Arc::new(st.list(ctx.storage(), filter.ns.as_deref()))
                    };
                    (items, current, None)
                }
                (_, other) => {
                    return Err(ApiError::BadRequest(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            }
        };
        let start = match &after {
            Some((ns, name)) => items.partition_point(|o| key_of(o) <= (ns.as_str(), name.as_str())),
            None => 0,
        };
        let mut page = Vec::new();
        let mut next = None;
        let mut idx = start;
        while idx < items.len() {
            let o = &items[idx];
            idx += 1;
            if !filter.matches(&ctx.res, ctx.version(), &o.value) {
                continue;
            }
            if limit.is_some_and(|l| page.len() >= l) {
                let last: &Arc<Stored> = page.last().unwrap_or(o);
                let (ns, name) = key_of(last);
                next = Some(encode_continue(list_rv.try_into().unwrap_or(i64::MAX), ns, name));
                idx -= 1;
                break;
            }
            page.push(o.clone());
        }
        let remaining = match (&next, filter.is_empty()) {
            (Some(_), true) => Some(
                items[idx..]
                    .iter()
                    .filter(|o| filter.matches(&ctx.res, ctx.version(), &o.value))
                    .count(),
            ),
            _ => None,
        };
        (page, list_rv, next, remaining)
    };

    if ctx.wants_table() {
        let objs: Vec<Value> = page
            .iter()
            .map(|o| convert_out(&ctx.res, ctx.version(), &o.value))
            .collect();
        return Ok(wire::json_value(
            StatusCode::OK,
            &table::table(&ctx.res, ctx.version(), &objs, &list_rv.to_string(), next.as_deref()),
        ));
    }
    let mut meta = json!({ "resourceVersion": list_rv.to_string() });
    if let Some(next) = &next {
        meta["continue"] = Value::String(next.clone());
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let metadata_as = ctx.metadata_as();
    let (list_kind, api_version) = match &metadata_as {
        Some(m) => ("PartialObjectMetadataList", m.api_version.clone()),
        None => (ctx.res.list_kind.as_str(), ctx.res.api_version(ctx.version())),
    };
    let head = format!("{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":[");
    let rendered: Vec<Bytes> = match &metadata_as {
        Some(m) => page.iter().map(|o| render_metadata(&m.api_version, o)).collect(),
        None => page.iter().map(|o| render(&ctx.res, ctx.version(), o)).collect(),
    };
    let size = head.len() + rendered.iter().map(|b| b.len() + 1).sum::<usize>() + 2;
    let mut buf = BytesMut::with_capacity(size);
    buf.put_slice(head.as_bytes());
    for (i, b) in rendered.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(b);
    }
    buf.put_slice(b"]}");
    Ok(wire::json(StatusCode::OK, buf.freeze()))
}

fn key_of(o: &Stored) -> (&str, &str) {
    let m = &o.value["metadata"];
    (m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""))
}

/// apimachinery's `ValidateListOptions` for a list (not a watch): what kube-apiserver answers
/// 422 Invalid `ListOptions` for.
fn list_option_causes(rv: &str, rv_match: &str, cont: &str, send_initial: bool) -> Vec<Cause> {
    let forbidden = |field: &str, detail: &str| Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    };
    let mut causes = Vec::new();
    if !rv_match.is_empty() {
        if rv.is_empty() {
            causes.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if !cont.is_empty() {
            causes.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if rv_match != "Exact" && rv_match != "NotOlderThan" {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {rv_match:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                ),
                field: "resourceVersionMatch".into(),
            });
        }
        if rv_match == "Exact" && rv == "0" {
            causes.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if send_initial {
        causes.push(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    causes
}

pub(crate) fn too_large(rv: u64, current: u64) -> ApiError {
    ApiError::Injected {
        code: 504,
        retry_after: Some(1),
        message: format!("Too large resource version: {rv}, current: {current}"),
    }
}
