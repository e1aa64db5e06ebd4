//! Discovery (`/api`, `/apis`, group and resource lists, aggregated discovery), `/version`,
//! and the OpenAPI v3 index kubectl reads to learn which query parameters are supported
//! ([discovery API](https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api)).

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::registry::Resource;
use crate::request::Target;
use crate::server::Shared;
use crate::status::ApiError;
use crate::wire::{self, Body};

/// The Kubernetes version the server reports.
pub(crate) const MINOR: &str = "36";

pub(crate) fn serve(shared: &Shared, target: Target, headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    shared.refresh_registry();
    let registry = shared.registry.read().clone();
    let reg = &*registry;
    let body = match target {
        Target::Version => json!({
            "major": "1", "minor": MINOR, "emulationMajor": "1", "emulationMinor": MINOR,
            "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
            "gitVersion": format!("v1.{MINOR}.0-kdev-testenv"), "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none (kdev-testenv is written in Rust)",
            "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
        Target::Health => return Ok(text("ok")),
        Target::Api | Target::Apis => {
            let core = target == Target::Api;
            if let Some(v) = aggregated_version(accept) {
                let items: Vec<Value> = reg
                    .groups()
                    .into_iter()
                    .filter(|(g, _)| g.is_empty() == core)
                    .map(|(g, versions)| {
                        let versions: Vec<Value> = versions
                            .iter()
                            .map(|ver| {
                                let resources: Vec<Value> = reg
                                    .in_group_version(&g, ver)
                                    .map(|r| aggregated_resource(r, ver))
                                    .collect();
                                json!({ "version": ver, "resources": resources, "freshness": "Current" })
                            })
                            .collect();
                        json!({ "metadata": { "name": g, "creationTimestamp": null }, "versions": versions })
                    })
                    .collect();
                let body = json!({ "kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{v}"),
                                   "metadata": {}, "items": items });
                let mut resp = wire::json_value(StatusCode::OK, &body);
                let ct = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
                if let Ok(ct) = HeaderValue::from_str(&ct) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                return Ok(resp);
            }
            if core {
                json!({ "kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": shared.config.addr.to_string() }] })
            } else {
                let groups: Vec<Value> = reg
                    .groups()
                    .into_iter()
                    .filter(|(g, _)| !g.is_empty())
                    .map(|(g, v)| api_group(&g, &v))
                    .collect();
                json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
            }
        }
        Target::Group(g) => {
            let found = reg.groups().into_iter().find(|(name, _)| *name == g && !g.is_empty());
            match found {
                Some((g, v)) => {
                    let mut group = api_group(&g, &v);
                    group["kind"] = json!("APIGroup");
                    group["apiVersion"] = json!("v1");
                    group
                }
                None => return Err(ApiError::NoRoute),
            }
        }
        Target::GroupVersion(g, v) => {
            let resources: Vec<Value> = reg.in_group_version(&g, &v).flat_map(|r| legacy_resources(r)).collect();
            if resources.is_empty() {
                return Err(ApiError::NoRoute);
            }
            let gv = if g.is_empty() { v.clone() } else { format!("{g}/{v}") };
            json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
        }
        Target::OpenApiV3 => {
            let mut paths = serde_json::Map::new();
            for (g, versions) in reg.groups() {
                for v in versions {
                    let p = if g.is_empty() {
                        format!("api/{v}")
                    } else {
                        format!("apis/{g}/{v}")
                    };
                    paths.insert(
                        p.clone(),
                        json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", reg.generation()) }),
                    );
                }
            }
            json!({ "paths": paths })
        }
        Target::OpenApiV3Doc(g, v) => {
            let resources: Vec<&std::sync::Arc<Resource>> = reg.in_group_version(&g, &v).collect();
            if resources.is_empty() {
                return Err(ApiError::NoRoute);
            }
            openapi_doc(&g, &v, &resources)
        }
        Target::OpenApiV2 | Target::Resource(_) => return Err(ApiError::NoRoute),
    };
    Ok(wire::json_value(StatusCode::OK, &body))
}

fn text(s: &'static str) -> Response<Body> {
    let mut resp = Response::new(wire::full(s));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The aggregated discovery version the client accepts first (`v2` or `v2beta1`), if any.
fn aggregated_version(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|media| {
        let media = media.replace(' ', "");
        if !media.contains("as=APIGroupDiscoveryList") || !media.contains("g=apidiscovery.k8s.io") {
            return None;
        }
        if media.contains("v=v2beta1") {
            Some("v2beta1")
        } else if media.contains("v=v2") {
            Some("v2")
        } else {
            None
        }
    })
}

fn api_group(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({ "name": g, "versions": vs, "preferredVersion": preferred })
}

fn subresources(r: &Resource) -> Vec<(&'static str, String, String, String, Vec<&'static str>)> {
    let mut subs = Vec::new();
    if r.status {
        subs.push((
            "status",
            r.group.clone(),
            String::new(),
            r.kind.clone(),
            vec!["get", "patch", "update"],
        ));
    }
    if r.scale.is_some() {
        subs.push((
            "scale",
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ));
    }
    if r.binding {
        subs.push(("binding", String::new(), "v1".into(), "Binding".into(), vec!["create"]));
    }
    if r.group.is_empty() && r.plural == "serviceaccounts" {
        subs.push((
            "token",
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
            vec!["create"],
        ));
    }
    subs
}

/// The `storageVersionHash` of a resource's discovery entry (apiserver's `StorageVersionHash`):
/// the first 8 bytes of the SHA-256 of `group/version/kind` of its storage version, in base64. It
/// changes when the storage version does, which storage version migrators watch for.
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}"));
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

fn legacy_resources(r: &Resource) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs(),
    });
    // Reviews are never stored, so they have no storage version to hash.
    if !r.review {
        main["storageVersionHash"] = json!(storage_version_hash(&r.group, &r.storage_version, &r.kind));
    }
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    for (sub, group, version, kind, verbs) in subresources(r) {
        let mut s = json!({ "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs });
        if !version.is_empty() {
            s["group"] = json!(group);
            s["version"] = json!(version);
        }
        out.push(s);
    }
    out
}

fn aggregated_resource(r: &Resource, version: &str) -> Value {
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|(sub, group, v, kind, verbs)| {
            let v = if v.is_empty() { version.to_string() } else { v };
            json!({ "subresource": sub, "responseKind": { "group": group, "version": v, "kind": kind }, "verbs": verbs })
        })
        .collect();
    let mut out = json!({
        "resource": r.plural,
        "responseKind": { "group": r.group, "version": version, "kind": r.kind },
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        out["subresources"] = json!(subs);
    }
    out
}

/// An OpenAPI v3 document with one operation per verb and path, carrying the parameters and
/// `x-kubernetes-group-version-kind` kubectl checks before sending `fieldValidation`.
/// Schemas are left open (see the README's list of differences).
fn openapi_doc(g: &str, v: &str, resources: &[&std::sync::Arc<Resource>]) -> Value {
    let prefix = if g.is_empty() {
        format!("/api/{v}")
    } else {
        format!("/apis/{g}/{v}")
    };
    let query =
        |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let write_params = json!([query("dryRun"), query("fieldManager"), query("fieldValidation")]);
    let mut paths = serde_json::Map::new();
    for r in resources {
        let gvk = json!({ "group": g, "version": v, "kind": r.kind });
        let op = |action: &str, params: &Value| {
            json!({ "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params,
                    "responses": { "200": { "description": "OK" } } })
        };
        let base = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let mut patch_params = write_params.clone();
        if let Some(a) = patch_params.as_array_mut() {
            a.push(query("force"));
        }
        let mut collection = json!({ "get": op("list", &json!([])), "post": op("post", &write_params) });
        if r.serves_delete_collection() {
            collection["delete"] = op("deletecollection", &json!([]));
        }
        paths.insert(base.clone(), collection);
        paths.insert(
            format!("{base}/{{name}}"),
            json!({ "get": op("get", &json!([])), "put": op("put", &write_params), "patch": op("patch", &patch_params), "delete": op("delete", &json!([])) }),
        );
    }
    json!({ "openapi": "3.0.0", "info": { "title": "Kubernetes (kdev-testenv)", "version": format!("v1.{MINOR}.0") },
            "paths": paths, "components": { "schemas": {} } })
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_version_hashes_are_kube_apiservers() {
        // As `kubectl get --raw /apis/apps/v1` shows them.
        assert_eq!(super::storage_version_hash("apps", "v1", "Deployment"), "8aSe+NMegvE=");
        assert_ne!(
            super::storage_version_hash("example.com", "v1", "Widget"),
            super::storage_version_hash("example.com", "v2", "Widget")
        );
    }
}
