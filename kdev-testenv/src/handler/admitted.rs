//! Requests that call out to webhooks: writes through the admission chain (mutating webhooks,
//! then the server's defaults and validation, then validating webhooks, then storage, as
//! kube-apiserver orders them), and custom resources whose CRD converts through a webhook, read
//! and written in a version other than the storage version.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

use super::intercept::{self, Intercept, Stamp, Step};
use super::{Ctx, convert_out, delete, object_response, read, table, write};
use crate::registry::Resource;
use crate::server::Shared;
use crate::status::ApiError;
use crate::webhook::admission::{self, Attributes, Operation};
use crate::webhook::conversion;
use crate::wire::Body;

/// How often a write starts over when the object changed while webhooks were called.
const RETRIES: usize = 8;

/// Serves a verb, through the conversion webhook and the admission chain when they apply.
/// Webhook warnings are appended to `warnings`, also when the request fails.
pub(crate) async fn serve(ctx: &Ctx, verb: &str, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let sub = ctx.route.subresource.as_deref();
    if !conversion::needs_webhook(&ctx.res, ctx.version()) || sub == Some("scale") {
        return admit(ctx, verb, ctx.version(), warnings).await;
    }
    let storage = ctx.res.storage_version.clone();
    let request_version = ctx.version().to_string();
    let resp = match verb {
        "get" | "list" | "watch" | "delete" | "deletecollection" => {
            let inner = with_version(ctx, &storage, ctx.body.clone(), None);
            admit(&inner, verb, &request_version, warnings).await?
        }
        _ => write_converted(ctx, verb, warnings).await?,
    };
    // A Table is rendered from the objects once converted, with the request version's columns.
    let table = ctx.wants_table();
    convert_response(
        ctx.shared.clone(),
        ctx.res.clone(),
        request_version,
        resp,
        Shape {
            watch: verb == "watch",
            table,
        },
    )
    .await
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// The same request at another version with another body, answered as objects (a Table is
/// rendered after conversion).
fn with_version(ctx: &Ctx, version: &str, body: Bytes, content_type: Option<&'static str>) -> Ctx {
    let mut route = ctx.route.clone();
    route.version = version.to_string();
    let mut headers = ctx.headers.clone();
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    // What is served in the storage version is converted before it is rendered as a Table.
    if ctx.wants_table() {
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }
    Ctx {
        shared: ctx.shared.clone(),
        route,
        res: ctx.res.clone(),
        query: ctx.query.clone(),
        headers,
        body,
    }
}

/// Create, update and patch (of the object or its status) of a custom resource in a version the
/// conversion webhook serves, as kube-apiserver handles them (its CRD handler keeps each version's
/// objects in that version in memory): the stored object is converted to the request's version,
/// the write (patch, admission, pruning, defaults, validation with ratcheting and transition
/// rules) happens in that version, and its final object is converted to the storage version and
/// stored as it is, with the storage version's defaults (which kube-apiserver applies as it reads
/// the object back) but not validated again. The answer is in the storage version: the caller
/// converts it.
async fn write_converted(ctx: &Ctx, verb: &str, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let storage = ctx.res.storage_version.clone();
    let version = ctx.version().to_string();
    for _ in 0..RETRIES {
        let current = match verb {
            "create" => None,
            _ => ctx
                .shared
                .state
                .lock()
                .get(ctx.storage(), ctx.ns(), ctx.name())
                .cloned(),
        };
        let old = match current {
            Some(c) => {
                let stored = convert_out(&ctx.res, &storage, &c.value);
                Some((
                    c.rv,
                    conversion::one_to_version(&ctx.shared, &ctx.res, stored, &version).await?,
                ))
            }
            None => None,
        };
        let storing = Storing::Converted(old);
        let attempt = if admitting(ctx, verb) {
            admit_write(ctx, verb, &version, &storing, warnings).await?
        } else {
            prepare(ctx, verb, &storing, warnings)
        };
        let (candidate, finalized, old_rv) = match attempt {
            Attempt::Done(result) => return result,
            Attempt::Stale => continue,
            Attempt::Final {
                candidate,
                finalized,
                old_rv,
                ..
            } => (candidate, finalized, old_rv),
        };
        // A name made from generateName may be made again if it is taken when stored.
        let generated = candidate
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            .then(|| candidate.pointer("/metadata/generateName").and_then(Value::as_str))
            .flatten()
            .filter(|g| !g.is_empty())
            .map(str::to_owned);
        let mut obj = conversion::one_to_version(&ctx.shared, &ctx.res, finalized, &storage).await?;
        if let Some(schema) = super::crd_schema(&ctx.res, &storage) {
            schema.default(&mut obj);
        }
        let committed = write::commit_converted(
            &mut ctx.shared.state.lock(),
            &ctx.res,
            ctx.ns(),
            obj,
            old_rv,
            generated,
            ctx.dry_run(),
        )?;
        let Some(stored) = committed else {
            continue;
        };
        let code = match old_rv {
            Some(_) => StatusCode::OK,
            None => StatusCode::CREATED,
        };
        let inner = with_version(ctx, &storage, Bytes::new(), None);
        return Ok(object_response(&inner, code, &stored));
    }
    Err(conflict(&ctx.res, ctx.name()))
}

/// How a write's final object reaches storage.
enum Storing {
    /// The verb stores it.
    Directly,
    /// The caller converts it to the storage version and stores it; the verb sees this stored
    /// object (with its resourceVersion), converted to the request's version, as the one it
    /// replaces (`None`: there was none).
    Converted(Option<(u64, Value)>),
}

impl Storing {
    fn intercept(&self, step: Step) -> Intercept {
        match self {
            Storing::Directly => Intercept::new(step),
            Storing::Converted(old) => Intercept::new(step).converting(old.clone()),
        }
    }
}

/// What one attempt at a write came to.
enum Attempt {
    /// The verb answered: it stored the object, or failed.
    Done(Result<Response<Body>, ApiError>),
    /// The object changed under the write: start over.
    Stale,
    /// Admitted and ready to store.
    Final {
        /// The object the verb is to store (after mutating admission, before defaults).
        candidate: Value,
        /// The object defaulted and validated from it, as the validating webhooks saw it.
        finalized: Value,
        /// The resourceVersion of the object it replaces (`None` for a new object).
        old_rv: Option<u64>,
        /// What a new object must keep from its finalize.
        stamp: Option<Stamp>,
    },
}

/// A write without admission webhooks whose object the caller converts and stores: the verb
/// runs up to storing.
fn prepare(ctx: &Ctx, verb: &str, storing: &Storing, warnings: &mut Vec<String>) -> Attempt {
    let (result, i) = intercept::run(storing.intercept(Step::Prepare), || run(ctx, verb, warnings));
    if i.stale {
        return Attempt::Stale;
    }
    match (i.finalized, i.captured) {
        (Some(finalized), Some(captured)) => Attempt::Final {
            candidate: captured.obj,
            finalized,
            old_rv: captured.old.map(|o| o.rv),
            stamp: None,
        },
        _ => Attempt::Done(result),
    }
}

fn conflict(res: &Resource, name: &str) -> ApiError {
    ApiError::Conflict {
        qualified: res.qualified(),
        name: name.to_string(),
        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// The synchronous verb; the warnings of a write's decoding are added to `warnings`. A write run
/// again around the webhooks decodes the same body again: its repeated warnings are dropped with
/// the other repeated texts when the headers are written.
fn run(ctx: &Ctx, verb: &str, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    match verb {
        "get" => read::get(ctx),
        "list" => read::list(ctx),
        "watch" => super::watch::watch(ctx),
        "create" => write::create(ctx, warnings),
        "update" => write::update(ctx, warnings),
        "patch" => write::patch(ctx, warnings),
        "delete" => delete::delete(ctx),
        _ => delete::delete_collection(ctx),
    }
}

fn options(ctx: &Ctx, kind: &str) -> Value {
    let mut o = json!({ "kind": kind, "apiVersion": "meta.k8s.io/v1" });
    if ctx.dry_run() {
        o["dryRun"] = json!(["All"]);
    }
    if kind != "DeleteOptions" {
        o["fieldManager"] = json!(ctx.manager());
    }
    o
}

/// The `DeleteOptions` webhooks see: the body's when there is one, else the query's (as
/// kube-apiserver reads them).
fn delete_options(ctx: &Ctx) -> Value {
    // A body that does not decode fails the delete itself, with its 400.
    let mut o = delete::options_value(ctx)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    o["kind"] = json!("DeleteOptions");
    o["apiVersion"] = json!("meta.k8s.io/v1");
    o
}

fn attributes(ctx: &Ctx, op: Operation, request_version: &str, name: &str, options: Value) -> Attributes {
    // kube-apiserver's request info reads `/namespaces/{name}` as that namespace, so a review of
    // a namespace's update or delete carries its name as `namespace` too.
    let namespace = match (
        ctx.res.group.as_str(),
        ctx.res.plural.as_str(),
        ctx.route.name.as_deref(),
    ) {
        ("", "namespaces", Some(name)) => name.to_string(),
        _ => ctx.ns().to_string(),
    };
    Attributes {
        op,
        res: ctx.res.clone(),
        version: ctx.version().to_string(),
        request_version: request_version.to_string(),
        sub: ctx.route.subresource.clone().unwrap_or_default(),
        name: name.to_string(),
        namespace,
        dry_run: options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All")),
        options,
    }
}

/// Whether the verb goes through the admission chain.
fn admitting(ctx: &Ctx, verb: &str) -> bool {
    let writes = matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection");
    // Bindings, tokens and reviews skip the chain here; kube-apiserver admits them too (the
    // README lists the difference).
    let binding = matches!(ctx.route.subresource.as_deref(), Some("binding" | "token")) || ctx.res.review;
    // kube-apiserver never sends webhook configurations themselves to webhooks, so a broken
    // webhook cannot lock its own configuration.
    let configuration = ctx.res.group == "admissionregistration.k8s.io";
    writes && !binding && !configuration && admission::any_configured(&ctx.shared)
}

/// The verb with the admission chain around it (when any webhook is configured).
async fn admit(
    ctx: &Ctx,
    verb: &str,
    request_version: &str,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    if !admitting(ctx, verb) {
        return run(ctx, verb, warnings);
    }
    match verb {
        "delete" => delete_one(ctx, request_version, warnings).await,
        "deletecollection" => delete_many(ctx, request_version, warnings).await,
        _ => write_admitted(ctx, verb, request_version, warnings).await,
    }
}

async fn delete_one(ctx: &Ctx, request_version: &str, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    if ctx.route.subresource.is_some() {
        return run(ctx, "delete", warnings);
    }
    let old = ctx
        .shared
        .state
        .lock()
        .get(ctx.storage(), ctx.ns(), ctx.name())
        .cloned();
    let Some(old) = old else {
        return run(ctx, "delete", warnings);
    };
    let old = convert_out(&ctx.res, ctx.version(), &old.value);
    let attrs = attributes(ctx, Operation::Delete, request_version, ctx.name(), delete_options(ctx));
    admission::mutate(&ctx.shared, &attrs, None, Some(&old), warnings).await?;
    admission::validate(&ctx.shared, &attrs, None, Some(&old), warnings).await?;
    run(ctx, "delete", warnings)
}

async fn delete_many(ctx: &Ctx, request_version: &str, warnings: &mut Vec<String>) -> Result<Response<Body>, ApiError> {
    let filter = read::Filter::from_ctx(ctx)?;
    let targets: Vec<Value> = ctx
        .shared
        .state
        .lock()
        .list(ctx.storage(), ctx.route.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(&ctx.res, ctx.version(), &o.value))
        .map(|o| convert_out(&ctx.res, ctx.version(), &o.value))
        .collect();
    // kube-apiserver admits each object with the collection request's attributes: no name, the
    // request's namespace; only `oldObject` tells the objects apart.
    let attrs = attributes(ctx, Operation::Delete, request_version, "", delete_options(ctx));
    for old in targets {
        admission::mutate(&ctx.shared, &attrs, None, Some(&old), warnings).await?;
        admission::validate(&ctx.shared, &attrs, None, Some(&old), warnings).await?;
    }
    run(ctx, "deletecollection", warnings)
}

/// Replaces the replicas of `obj` by those of a (mutated) Scale.
fn with_scale(res: &Resource, mut obj: Value, scale: &Value) -> Value {
    let (Some(paths), Some(replicas)) = (res.scale.as_ref(), scale.pointer("/spec/replicas")) else {
        return obj;
    };
    let pointer = format!("/{}", paths.spec_replicas.trim_start_matches('.').replace('.', "/"));
    if let Some(slot) = obj.pointer_mut(&pointer) {
        *slot = replicas.clone();
    }
    obj
}

/// Create, update and patch: capture the incoming object, mutate it, finalize it (defaults and
/// validation), validate it, commit it (see [`intercept`]).
async fn write_admitted(
    ctx: &Ctx,
    verb: &str,
    request_version: &str,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    for _ in 0..RETRIES {
        let (candidate, old_rv, stamp) =
            match admit_write(ctx, verb, request_version, &Storing::Directly, warnings).await? {
                Attempt::Done(result) => return result,
                Attempt::Stale => continue,
                Attempt::Final {
                    candidate,
                    old_rv,
                    stamp,
                    ..
                } => (candidate, old_rv, stamp),
            };
        let step = Step::Commit { obj: candidate, old_rv };
        let (result, i) = intercept::run(Intercept::new(step).stamped(stamp), || run(ctx, verb, warnings));
        if i.stale {
            continue;
        }
        return result;
    }
    Err(conflict(&ctx.res, ctx.name()))
}

/// One attempt at an admitted write, up to its validating webhooks: capture the incoming object,
/// mutate it, finalize it (defaults and validation), validate it.
async fn admit_write(
    ctx: &Ctx,
    verb: &str,
    request_version: &str,
    storing: &Storing,
    warnings: &mut Vec<String>,
) -> Result<Attempt, ApiError> {
    let scale = ctx.route.subresource.as_deref() == Some("scale");
    let (result, i) = intercept::run(storing.intercept(Step::Capture), || run(ctx, verb, warnings));
    if i.stale {
        return Ok(Attempt::Stale);
    }
    let Some(captured) = i.captured else {
        return Ok(Attempt::Done(result));
    };
    let mut obj = captured.obj;
    let (op, kind) = match captured.old {
        Some(_) => (Operation::Update, "UpdateOptions"),
        None => (Operation::Create, "CreateOptions"),
    };
    if op == Operation::Create
        && ctx.res.namespaced
        && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.entry("namespace").or_insert_with(|| json!(ctx.ns()));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(ctx.name())
        .to_string();
    // kube-apiserver's NamespaceLifecycle plugin runs before the webhooks: a create in a
    // namespace that does not exist fails without calling them (the commit says why).
    if op == Operation::Create
        && ctx.res.namespaced
        && ctx.shared.state.lock().get("/namespaces", "", ctx.ns()).is_none()
    {
        if let Storing::Converted(_) = storing {
            return Ok(Attempt::Done(Err(ApiError::NotFound {
                qualified: "namespaces".into(),
                name: ctx.ns().to_string(),
            })));
        }
        let step = Step::Commit { obj, old_rv: None };
        return Ok(Attempt::Done(
            intercept::run(Intercept::new(step), || run(ctx, verb, warnings)).0,
        ));
    }
    let attrs = attributes(ctx, op, request_version, &name, options(ctx, kind));
    let old_rv = captured.old.as_ref().map(|o| o.rv);
    let old = match (&captured.old, storing) {
        (None, _) => None,
        (Some(o), Storing::Directly) => Some(convert_out(&ctx.res, ctx.version(), &o.value)),
        (Some(o), Storing::Converted(Some((rv, view)))) if *rv == o.rv => Some(view.clone()),
        (Some(_), Storing::Converted(_)) => return Ok(Attempt::Stale),
    };
    let old_view = match (&old, scale) {
        (Some(o), true) => Some(read::scale_of(&ctx.res, o)),
        (o, _) => o.clone(),
    };
    let view = if scale {
        read::scale_of(&ctx.res, &obj)
    } else {
        obj.clone()
    };
    let mutated = admission::mutate(&ctx.shared, &attrs, Some(view), old_view.as_ref(), warnings)
        .await?
        .unwrap_or(Value::Null);
    let mut candidate = if scale {
        with_scale(&ctx.res, obj, &mutated)
    } else {
        mutated
    };
    // kube-apiserver decodes the mutated object into its type again, without strictness: a
    // field a webhook added that a built-in type does not know is dropped silently (a custom
    // resource's is pruned by the write's own admission step).
    if ctx.res.crd.is_none()
        && let Some(unknown) = super::typed::Unknown::of(&ctx.res.group, ctx.version(), &ctx.res.kind, &candidate)
    {
        unknown.drop_from(&mut candidate);
    }
    let step = Step::Finalize {
        obj: candidate.clone(),
        old_rv,
    };
    let (result, i) = intercept::run(storing.intercept(step), || run(ctx, verb, warnings));
    if i.stale {
        return Ok(Attempt::Stale);
    }
    let Some(finalized) = i.finalized else {
        return Ok(Attempt::Done(result));
    };
    // A new object is committed with the name, uid and timestamp the validating webhooks
    // saw, and they see its generated name (kube-apiserver names it before validation).
    let stamp = (op == Operation::Create).then(|| Stamp::of(&finalized)).flatten();
    let mut attrs = attrs;
    if let Some(stamp) = &stamp {
        attrs.name.clone_from(&stamp.name);
    }
    let final_view = if scale {
        read::scale_of(&ctx.res, &finalized)
    } else {
        finalized.clone()
    };
    admission::validate(&ctx.shared, &attrs, Some(&final_view), old_view.as_ref(), warnings).await?;
    Ok(Attempt::Final {
        candidate,
        finalized,
        old_rv,
        stamp,
    })
}

/// What a converted response is to look like.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// A stream of watch events.
    watch: bool,
    /// Objects rendered as a `Table` once converted.
    table: bool,
}

/// Converts what a response carries (an object, a list's items, watch events) from the storage
/// version to `version` through the conversion webhook.
async fn convert_response(
    shared: Arc<Shared>,
    res: Arc<Resource>,
    version: String,
    resp: Response<Body>,
    shape: Shape,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = resp.into_parts();
    if shape.watch {
        let body = watch_body(shared, res, version, body, shape.table);
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    let converted = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => convert_value(&shared, &res, &version, v)
            .await?
            .map(|v| if shape.table { as_table(&res, &version, v) } else { v })
            .map(|v| to_bytes(&v)),
        Err(_) => None,
    };
    Ok(Response::from_parts(
        parts,
        crate::wire::full(converted.unwrap_or(bytes)),
    ))
}

/// An object or a list of `res` at `version` as the Table kube-apiserver renders for it, with
/// that version's printer columns.
fn as_table(res: &Resource, version: &str, v: Value) -> Value {
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    if v.get("kind").and_then(Value::as_str) == Some(res.list_kind.as_str()) {
        let (rv, next) = (text("/metadata/resourceVersion"), text("/metadata/continue"));
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let next = (!next.is_empty()).then_some(next.as_str());
        return table::table(res, version, items, &rv, next);
    }
    let rv = text("/metadata/resourceVersion");
    table::table(res, version, std::slice::from_ref(&v), &rv, None)
}

/// The value at `version` when it is an object or a list of `res` in the storage version.
async fn convert_value(
    shared: &Shared,
    res: &Resource,
    version: &str,
    mut v: Value,
) -> Result<Option<Value>, ApiError> {
    let storage_api = res.api_version(&res.storage_version);
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
    // An object may still be kept in an older storage version: any version of the group is
    // converted.
    let in_group = api.split_once('/').is_some_and(|(group, _)| group == res.group);
    if kind == res.kind && in_group {
        return Ok(Some(conversion::one_to_version(shared, res, v, version).await?));
    }
    if kind == res.list_kind && api == storage_api {
        let items = v
            .get_mut("items")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let items = conversion::to_version(shared, res, items, version).await?;
        v["items"] = Value::Array(items);
        v["apiVersion"] = json!(res.api_version(version));
        return Ok(Some(v));
    }
    Ok(None)
}

/// Watch events converted one by one; a failed conversion ends the watch with an ERROR event.
fn watch_body(shared: Arc<Shared>, res: Arc<Resource>, version: String, body: Body, table: bool) -> Body {
    use futures::StreamExt;
    let frames = http_body_util::BodyStream::new(body);
    let stream = futures::stream::unfold((frames, false), move |(mut frames, ended)| {
        let (shared, res, version) = (shared.clone(), res.clone(), version.clone());
        async move {
            if ended {
                return None;
            }
            let frame = match frames.next().await? {
                Ok(f) => f,
                Err(never) => match never {},
            };
            let Some(data) = frame.data_ref() else {
                return Some((Ok(frame), (frames, false)));
            };
            let Ok(mut event) = serde_json::from_slice::<Value>(data) else {
                return Some((Ok(frame), (frames, false)));
            };
            if matches!(event["type"].as_str(), Some("BOOKMARK")) {
                event["object"]["apiVersion"] = json!(res.api_version(&version));
                let line = format!("{event}\n");
                return Some((Ok(hyper::body::Frame::data(Bytes::from(line))), (frames, false)));
            }
            let object = event["object"].take();
            match convert_value(&shared, &res, &version, object.clone()).await {
                Ok(converted) => {
                    event["object"] = match converted {
                        Some(o) if table => as_table(&res, &version, o),
                        Some(o) => o,
                        None => object,
                    };
                    let line = format!("{event}\n");
                    Some((Ok(hyper::body::Frame::data(Bytes::from(line))), (frames, false)))
                }
                Err(e) => {
                    let line = format!("{}\n", json!({ "type": "ERROR", "object": e.to_status() }));
                    Some((Ok(hyper::body::Frame::data(Bytes::from(line))), (frames, true)))
                }
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}
