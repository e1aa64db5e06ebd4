//! Request handling: from an HTTP request to a verb on a resource, and back to a response
//! ([API concepts](https://kubernetes.io/docs/reference/using-api/api-concepts/)).

mod admitted;
pub(crate) mod auth;
mod batch;
mod cluster_ips;
mod crd;
mod delete;
mod discovery;
mod event;
mod field_validation;
pub(crate) mod intercept;
mod lease;
mod node_ports;
mod options;
mod prepare;
mod read;
mod table;
mod typed;
mod watch;
mod webhook_configuration;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::registry::{Conversion, Resource};
use crate::request::{Query, Route, Target, parse_path};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{State, Stored};
use crate::wire::{self, Body};

/// One request on a resource endpoint, with everything the verbs need.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub route: Route,
    pub res: Arc<Resource>,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Ctx {
    /// The namespace of the request: the path's, or "" for cluster-scoped resources.
    pub fn ns(&self) -> &str {
        self.route.namespace.as_deref().unwrap_or("")
    }

    /// The storage key of the resource.
    pub fn storage(&self) -> &str {
        &self.res.storage
    }

    /// The version the client asked for.
    pub fn version(&self) -> &str {
        &self.route.version
    }

    /// The object's name from the path ("" for collections).
    pub fn name(&self) -> &str {
        self.route.name.as_deref().unwrap_or("")
    }

    /// Whether the client asked for a `Table` (kubectl's human-readable output).
    pub fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
    }

    /// The metadata-only shape the client asked for, if any: `Accept:
    /// application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (or `v1beta1`).
    pub fn metadata_as(&self) -> Option<MetadataAs> {
        let accept = self.headers.get(header::ACCEPT)?.to_str().ok()?;
        let first = accept.split(',').next()?;
        let (mut kind, mut group, mut version) = (None, None, None);
        for param in first.split(';').skip(1) {
            match param.trim().split_once('=') {
                Some(("as", v)) => kind = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        let list = match kind? {
            "PartialObjectMetadata" => false,
            "PartialObjectMetadataList" => true,
            _ => return None,
        };
        match (group?, version?) {
            ("meta.k8s.io", v @ ("v1" | "v1beta1")) => Some(MetadataAs {
                list,
                api_version: format!("meta.k8s.io/{v}"),
            }),
            _ => None,
        }
    }

    /// The field manager for writes: `fieldManager`, or the User-Agent's product name.
    pub fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => crate::patch::default_manager(
                self.headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("unknown"),
            ),
        }
    }

    /// Whether the request is a dry run (`dryRun=All`).
    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    /// Parses the JSON body (or YAML, when the content type says so).
    pub fn body_json(&self) -> Result<Value, ApiError> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct.starts_with("application/vnd.kubernetes.protobuf") || ct.starts_with("application/cbor") {
            return Err(ApiError::UnsupportedMediaType(
                "application/json, application/yaml (kdev-testenv does not speak protobuf or CBOR)".into(),
            ));
        }
        if ct.starts_with("application/yaml") {
            return serde_saphyr::from_slice(&self.body)
                .map_err(|e| ApiError::BadRequest(format!("the body of the request could not be decoded: {e}")));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("the body of the request could not be decoded: {e}")))
    }
}

/// A metadata-only response shape (`PartialObjectMetadata` or `PartialObjectMetadataList`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataAs {
    /// `PartialObjectMetadataList` was asked for.
    pub list: bool,
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub api_version: String,
}

/// An object reduced to its metadata, as kube-apiserver renders it for `as=PartialObjectMetadata`.
pub(crate) fn render_metadata(api_version: &str, stored: &Stored) -> Bytes {
    let partial = json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": stored.value.get("metadata").cloned().unwrap_or_else(|| json!({})),
    });
    Bytes::from(serde_json::to_vec(&partial).unwrap_or_default())
}

/// Serves one HTTP request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let armed = shared.faults_armed.load(std::sync::atomic::Ordering::Acquire);
    let latency = if armed {
        shared.faults.lock().latency()
    } else {
        std::time::Duration::ZERO
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.config.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return wire::error(&ApiError::TooLarge(shared.config.max_body)),
    };
    let query = Query::parse(parts.uri.query());
    let mut warnings = Vec::new();
    let result = dispatch(
        shared.clone(),
        &parts.method,
        parts.uri.path(),
        query,
        parts.headers,
        body,
        &mut warnings,
    )
    .await;
    shared.refresh_registry();
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => wire::error(&e),
    };
    for w in warning_headers(&warnings) {
        if let Ok(v) = http::HeaderValue::from_bytes(w.as_bytes()) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// The `Warning` headers for a response's warnings, as kube-apiserver's warning recorder writes
/// them: empty and repeated texts and texts with control characters are dropped, and once the
/// headers pass 4096 bytes every warning is cut to 256 characters.
pub(crate) fn warning_headers(warnings: &[String]) -> Vec<String> {
    const TOTAL_LIMIT: usize = 4 * 1024;
    const PER_WARNING_LIMIT: usize = 256;
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<&str> = warnings
        .iter()
        .map(String::as_str)
        .filter(|t| !t.is_empty() && seen.insert(*t))
        .collect();
    let header = |text: &str| {
        if text.chars().any(char::is_control) {
            return None;
        }
        let mut quoted = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        Some(format!("299 - {quoted}"))
    };
    let whole: Vec<String> = texts.iter().filter_map(|t| header(t)).collect();
    if whole.iter().map(String::len).sum::<usize>() <= TOTAL_LIMIT {
        return whole;
    }
    texts
        .iter()
        .filter_map(|t| header(&t.chars().take(PER_WARNING_LIMIT).collect::<String>()))
        .collect()
}

async fn dispatch(
    shared: Arc<Shared>,
    method: &Method,
    path: &str,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let target = parse_path(path)?;
    let route = match target {
        Target::Resource(route) => route,
        other => {
            if method != Method::GET {
                return Err(ApiError::MethodNotAllowed);
            }
            return discovery::serve(&shared, other, &headers);
        }
    };
    shared.refresh_registry();
    let res = shared
        .registry
        .read()
        .get(&route.group, &route.version, &route.plural)
        .cloned()
        .ok_or(ApiError::NoRoute)?;
    if route.namespace.is_some() && !res.namespaced {
        return Err(ApiError::NoRoute);
    }
    let watch = route.watch_prefix || query.flag("watch");
    let verb = match (method, route.name.is_some()) {
        (&Method::GET, true) if watch => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Err(ApiError::MethodNotAllowed),
    };
    // Across namespaces, kube-apiserver serves a namespaced resource for list and watch only: a
    // create or a collection delete there is 405, never a write to every namespace.
    if res.namespaced && route.namespace.is_none() && matches!(verb, "create" | "deletecollection") {
        return Err(ApiError::MethodNotAllowed);
    }
    // Reviews, bindings and token requests are only created.
    let create_only = res.review || matches!(route.subresource.as_deref(), Some("binding" | "token"));
    if create_only && verb != "create" {
        return Err(ApiError::MethodNotAllowed);
    }
    if verb == "deletecollection" && !res.serves_delete_collection() {
        return Err(ApiError::MethodNotAllowed);
    }
    // `ValidateCreateOptions` and its kin. A patch of a type the resource does not serve is
    // refused (415) before its options are read.
    let write = match verb {
        "create" => Some(options::Write::Create),
        "update" => Some(options::Write::Update),
        "patch" => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::patch::PatchType::from_content_type)
            .filter(|t| {
                *t != crate::patch::PatchType::StrategicMerge
                    || (res.strategic && route.subresource.as_deref() != Some("scale"))
            })
            .map(options::Write::Patch),
        _ => None,
    };
    if let Some(write) = write {
        options::validate(&query, write)?;
    }
    let resource_name = match &route.subresource {
        Some(sub) => format!("{}/{sub}", route.plural),
        None => route.plural.clone(),
    };
    if shared.faults_armed.load(std::sync::atomic::Ordering::Acquire)
        && let Some(err) = shared.faults.lock().check(verb, &resource_name)
    {
        return Err(err);
    }
    if let Some(sub) = &route.subresource {
        let served = match sub.as_str() {
            "status" => res.status,
            "scale" => res.scale.is_some(),
            "binding" => res.binding,
            "finalize" => res.plural == "namespaces",
            "token" => res.plural == "serviceaccounts",
            _ => false,
        };
        if !served {
            return Err(ApiError::NoRoute);
        }
    }
    let warning = res
        .crd
        .as_ref()
        .and_then(|c| c.get(&route.version))
        .and_then(|v| v.deprecation_warning.clone());
    let ctx = Ctx {
        shared,
        route,
        res,
        query,
        headers,
        body,
    };
    if let Some(m) = ctx.metadata_as() {
        // kube-apiserver answers lists only as PartialObjectMetadataList, and single objects
        // (including watch events) only as PartialObjectMetadata.
        let list = verb == "list" || verb == "deletecollection";
        if m.list != list {
            let (asked, got) = if m.list {
                ("PartialObjectMetadataList", "an object")
            } else {
                ("PartialObjectMetadata", "a list")
            };
            return Err(ApiError::NotAcceptable(format!(
                "only the following media types are accepted: you requested {asked}, but the requested object is {got} ({}/{})",
                ctx.res.group, ctx.res.kind
            )));
        }
    }
    if let Some(w) = warning {
        warnings.push(w);
    }
    if let Some(w) = batch::delete_warning(&ctx, verb) {
        warnings.push(w.to_string());
    }
    admitted::serve(&ctx, verb, warnings).await
}

/// Sets up what a fresh cluster has: the four system namespaces, their default service
/// accounts, and the `default/kubernetes` Service kube-apiserver keeps for itself (the first
/// address of the default service range, port 443 to the API server's usual 6443).
pub(crate) fn bootstrap(state: &mut State) {
    let Some(res) = state.registry.get_any_version("", "namespaces").cloned() else {
        return;
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
        let _ = write::create_object(state, &res, "v1", "", obj, Some("kube-apiserver"), false);
    }
    if let Some(services) = state.registry.get_any_version("", "services").cloned() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "kubernetes", "namespace": "default",
                          "labels": { "component": "apiserver", "provider": "kubernetes" } },
            "spec": { "type": "ClusterIP", "clusterIP": "10.96.0.1",
                      "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443 }] },
        });
        let _ = write::create_object(state, &services, "v1", "default", obj, Some("kube-apiserver"), false);
    }
}

/// The object in the version the client asked for.
pub(crate) fn render(res: &Resource, version: &str, stored: &Stored) -> Bytes {
    if res.conversion == Conversion::None
        && stored.value.get("apiVersion").and_then(Value::as_str) == Some(res.api_version(version).as_str())
    {
        return stored.json.clone();
    }
    Bytes::from(serde_json::to_vec(&convert_out(res, version, &stored.value)).unwrap_or_default())
}

/// The object converted from its storage form to `version`.
pub(crate) fn convert_out(res: &Resource, version: &str, stored: &Value) -> Value {
    let mut v = match res.conversion {
        Conversion::None => stored.clone(),
        Conversion::EventsV1 => prepare::core_event_to_v1(stored),
    };
    let api_version = res.api_version(version);
    // An object written before its CRD changed storage version is still kept in the old one.
    let converted = stored.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str());
    if converted && res.conversion_webhook.is_some() {
        // Only the conversion webhook can convert it: it is handed on as it is kept, and the
        // request's conversion (`webhook::conversion::to_version`) sends it there.
        return v;
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
    }
    if converted {
        prune_to_version(res, version, &mut v);
    }
    v
}

/// The object converted from `version` to its storage form.
pub(crate) fn convert_in(res: &Resource, obj: Value) -> Value {
    // Only a custom resource has per-version schemas to prune by.
    let from_other_version = res.crd.is_some()
        && obj.get("apiVersion").and_then(Value::as_str) != Some(res.api_version(&res.storage_version).as_str());
    let mut v = match res.conversion {
        Conversion::None => obj,
        Conversion::EventsV1 => prepare::v1_event_to_core(&obj),
    };
    if let Some(m) = v.as_object_mut() {
        let api_version = match res.conversion {
            Conversion::EventsV1 => "v1".to_string(),
            Conversion::None => res.api_version(&res.storage_version),
        };
        m.insert("apiVersion".into(), Value::String(api_version));
    }
    if from_other_version {
        prune_to_version(res, &res.storage_version, &mut v);
    }
    v
}

/// Drops from a custom resource just converted to `version` what that version's schema does not
/// specify. kube-apiserver does this after every conversion between versions, whatever the
/// strategy (its storage codec's `schemaCoercingConverter`): with strategy `None`, a field only
/// one version declares does not survive being stored in, or read as, another.
pub(crate) fn prune_to_version(res: &Resource, version: &str, obj: &mut Value) {
    if let Some(schema) = crd_schema(res, version) {
        schema.prune(obj);
    }
}

/// The structural schema of `version` when `res` is a custom resource.
pub(crate) fn crd_schema<'a>(res: &'a Resource, version: &str) -> Option<&'a crate::schema::Schema> {
    res.crd
        .as_ref()
        .and_then(|c| c.get(version))
        .and_then(|v| v.schema.as_deref())
}

/// An object response in the requested version (or as a Table).
pub(crate) fn object_response(ctx: &Ctx, code: StatusCode, stored: &Stored) -> Response<Body> {
    if let Some(m) = ctx.metadata_as() {
        return wire::json(code, render_metadata(&m.api_version, stored));
    }
    if ctx.wants_table() {
        let obj = convert_out(&ctx.res, ctx.version(), &stored.value);
        return wire::json_value(
            code,
            &table::table(&ctx.res, ctx.version(), &[obj], &stored.rv.to_string(), None),
        );
    }
    wire::json(code, render(&ctx.res, ctx.version(), stored))
}

#[cfg(test)]
mod tests {
    use super::warning_headers;

    #[test]
    fn warnings_are_deduplicated_filtered_and_cut_once_they_pass_the_limit() {
        let w = |texts: &[&str]| warning_headers(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert_eq!(w(&["a", "", "a", "b\nc", "d"]), ["299 - \"a\"", "299 - \"d\""]);
        let long = "x".repeat(1000);
        let many: Vec<String> = (0..5).map(|i| format!("{i}{long}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let headers = w(&refs);
        assert_eq!(headers.len(), 5);
        // 256 characters between the quotes.
        assert!(
            headers.iter().all(|h| h.len() == "299 - \"\"".len() + 256),
            "{headers:?}"
        );
        assert_eq!(
            w(&[&long]),
            [format!("299 - \"{long}\"")],
            "one long warning fits the total"
        );
    }
}
