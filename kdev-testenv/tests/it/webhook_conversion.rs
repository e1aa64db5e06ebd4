//! CRD conversion through a webhook (embedded server only: the webhook is served inside the test
//! process, which a real cluster cannot reach).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::api::{
    ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube_client::{Api, Client};
use serde_json::{Value, json};

use super::webhook_server::{Reply, WebhookServer, env_for, needs_local_webhooks, serve};
use kdev_testenv::TestEnv;

const GROUP: &str = "conv.example.com";

/// v1 keeps `spec.size`, v2 calls it `spec.replicas`; v1 is the storage version.
fn convert(review: &Value) -> Reply {
    let req = &review["request"];
    let desired = req["desiredAPIVersion"].as_str().unwrap_or("").to_string();
    let mut out = vec![];
    for o in req["objects"].as_array().into_iter().flatten() {
        if o["metadata"]["labels"]["fail"] == "yes" {
            return Reply::json(
                json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                "response": { "uid": req["uid"], "result": { "status": "Failure", "message": "cannot convert this one" } } }),
            );
        }
        let mut o = o.clone();
        if o["metadata"]["labels"]["drop"] == "uid" {
            // A webhook that builds fresh metadata and forgets the uid.
            o["metadata"] = json!({ "name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"] });
        }
        let spec = o["spec"].as_object().cloned().unwrap_or_default();
        let mut new_spec = serde_json::Map::new();
        for (k, v) in spec {
            let k = match (desired.as_str(), k.as_str()) {
                (d, "size") if d.ends_with("/v2") => "replicas".to_string(),
                (d, "replicas") if d.ends_with("/v1") => "size".to_string(),
                _ => k,
            };
            new_spec.insert(k, v);
        }
        o["spec"] = Value::Object(new_spec);
        o["apiVersion"] = json!(desired);
        out.push(o);
    }
    Reply::json(
        json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "response": { "uid": req["uid"], "convertedObjects": out, "result": { "status": "Success" } } }),
    )
}

fn version(name: &str, storage: bool, field: &str) -> Value {
    json!({
        "name": name, "served": true, "storage": storage,
        "schema": { "openAPIV3Schema": { "type": "object", "properties": {
            "spec": { "type": "object", "properties": { field: { "type": "integer" } } } } } },
    })
}

/// A server with the conversion webhook (and admission webhooks that allow everything), and
/// the CRD installed to convert through it.
async fn converting() -> (WebhookServer, TestEnv, String) {
    converting_versions(two_versions()).await
}

/// [`converting`] with the CRD in `versions`.
async fn converting_versions(versions: Value) -> (WebhookServer, TestEnv, String) {
    let hooks = serve(|path, review| match path {
        "/convert" => convert(review),
        _ => super::webhook_server::allow(review),
    })
    .await;
    let (env, ns) = env_for(&hooks).await;
    install_versions(
        &env,
        versions,
        json!({ "strategy": "Webhook", "webhook": {
            "clientConfig": hooks.service_config("/convert"), "conversionReviewVersions": ["v1"] } }),
    )
    .await;
    (hooks, env, ns)
}

async fn install(env: &TestEnv, conversion: Value) {
    install_versions(env, two_versions(), conversion).await;
}

/// v1 (stored, with `size`) and v2 (with `replicas`).
fn two_versions() -> Value {
    json!([version("v1", true, "size"), version("v2", false, "replicas")])
}

async fn install_versions(env: &TestEnv, versions: Value, conversion: Value) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{GROUP}") },
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": versions,
            "conversion": conversion,
        },
    }))
    .expect("a CRD");
    env.install_crd(&crd).await.expect("install the CRD");
}

fn widgets(client: &Client, version: &str, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version, "Widget"), "widgets");
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn widget(version: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{version}"), "kind": "Widget", "metadata": { "name": name }, "spec": spec,
    }))
    .expect("a widget")
}

async fn setup() -> Option<(WebhookServer, TestEnv, String)> {
    if !needs_local_webhooks() {
        return None;
    }
    Some(converting().await)
}

#[tokio::test]
async fn objects_written_in_one_version_are_stored_in_the_storage_version_and_read_in_any() {
    let Some((hooks, env, ns)) = setup().await else {
        return;
    };
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    let created = v2
        .create(&PostParams::default(), &widget("v2", "a", json!({ "replicas": 3 })))
        .await
        .expect("create in v2");
    assert_eq!(
        created.types.as_ref().map(|t| t.api_version.as_str()),
        Some("conv.example.com/v2")
    );
    assert_eq!(created.data["spec"], json!({ "replicas": 3 }));

    let stored = v1.get("a").await.expect("get v1");
    assert_eq!(
        stored.data["spec"],
        json!({ "size": 3 }),
        "stored in v1, the storage version"
    );
    let read = v2.get("a").await.expect("get v2");
    assert_eq!(read.data["spec"], json!({ "replicas": 3 }));

    let review = &hooks.calls_to("/convert")[0];
    assert_eq!(review["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(review["kind"], "ConversionReview");
    assert_eq!(review["request"]["desiredAPIVersion"], "conv.example.com/v1");
    assert!(review["request"]["uid"].is_string());
    assert_eq!(review["request"]["objects"][0]["spec"], json!({ "replicas": 3 }));

    // Writes in the storage version and reads in it never call the webhook.
    let before = hooks.calls_to("/convert").len();
    v1.create(&PostParams::default(), &widget("v1", "b", json!({ "size": 7 })))
        .await
        .expect("create in v1");
    v1.get("b").await.expect("get v1");
    assert_eq!(hooks.calls_to("/convert").len(), before);

    let list = v2.list(&Default::default()).await.expect("list v2");
    let mut specs: Vec<Value> = list.items.iter().map(|o| o.data["spec"].clone()).collect();
    specs.sort_by_key(|s| s["replicas"].as_i64());
    assert_eq!(specs, [json!({ "replicas": 3 }), json!({ "replicas": 7 })]);
    assert!(
        list.items
            .iter()
            .all(|o| o.types.as_ref().is_some_and(|t| t.api_version == "conv.example.com/v2"))
    );
}

#[tokio::test]
async fn patches_and_updates_in_a_served_version_go_through_the_webhook() {
    let Some((_hooks, env, ns)) = setup().await else {
        return;
    };
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    v1.create(&PostParams::default(), &widget("v1", "a", json!({ "size": 1 })))
        .await
        .expect("create");
    let patched = v2
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
        )
        .await
        .expect("merge patch in v2");
    assert_eq!(patched.data["spec"], json!({ "replicas": 4 }));
    assert_eq!(v1.get("a").await.expect("get").data["spec"], json!({ "size": 4 }));

    let mut current = v2.get("a").await.expect("get v2");
    current.data["spec"] = json!({ "replicas": 9 });
    v2.replace("a", &PostParams::default(), &current)
        .await
        .expect("update in v2");
    assert_eq!(v1.get("a").await.expect("get").data["spec"], json!({ "size": 9 }));

    let applied = v2
        .patch(
            "a",
            &PatchParams::apply("tester").force(),
            &Patch::Apply(
                json!({ "apiVersion": format!("{GROUP}/v2"), "kind": "Widget", "metadata": { "name": "a" },
                "spec": { "replicas": 2 } }),
            ),
        )
        .await
        .expect("apply in v2");
    assert_eq!(applied.data["spec"], json!({ "replicas": 2 }));
    assert_eq!(v1.get("a").await.expect("get").data["spec"], json!({ "size": 2 }));
}

#[tokio::test]
async fn watches_in_a_served_version_see_converted_objects() {
    let Some((_hooks, env, ns)) = setup().await else {
        return;
    };
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    let events = v2.watch(&WatchParams::default(), "0").await.expect("watch v2");
    futures::pin_mut!(events);
    v1.create(&PostParams::default(), &widget("v1", "w", json!({ "size": 5 })))
        .await
        .expect("create");
    let added = loop {
        match events
            .try_next()
            .await
            .expect("an event")
            .expect("the watch stays open")
        {
            WatchEvent::Added(o) => break o,
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(added.data["spec"], json!({ "replicas": 5 }));
    assert_eq!(
        added.types.map(|t| t.api_version),
        Some("conv.example.com/v2".to_string())
    );
    drop(events.next());
}

#[tokio::test]
async fn a_failed_conversion_fails_the_request() {
    let Some((_hooks, env, ns)) = setup().await else {
        return;
    };
    let v2 = widgets(&env.client(), "v2", &ns);
    let mut w = widget("v2", "bad", json!({ "replicas": 1 }));
    w.metadata.labels = Some([("fail".to_string(), "yes".to_string())].into());
    match v2.create(&PostParams::default(), &w).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 500);
            assert_eq!(
                s.message,
                "conversion webhook for conv.example.com/v2, Kind=Widget failed: cannot convert this one"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // A converted object must keep its uid (name and namespace too).
    let v1 = widgets(&env.client(), "v1", &ns);
    let mut w = widget("v1", "fresh-metadata", json!({ "size": 1 }));
    w.metadata.labels = Some([("drop".to_string(), "uid".to_string())].into());
    v1.create(&PostParams::default(), &w)
        .await
        .expect("the storage version needs no conversion");
    match v2.get("fresh-metadata").await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 500);
            assert!(
                s.message.starts_with(
                    "conversion webhook for conv.example.com/v1, Kind=Widget returned invalid object: \
                     must have the same UID: "
                ),
                "{}",
                s.message
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_conversion_webhook_fails_reads_in_other_versions_only() {
    if !needs_local_webhooks() {
        return;
    }
    let env = TestEnv::embedded(kdev_testenv::Config::default())
        .await
        .expect("server");
    let ns = env.namespace().await.expect("namespace");
    install(
        &env,
        json!({ "strategy": "Webhook", "webhook": {
            "clientConfig": { "url": "https://127.0.0.1:1/convert" }, "conversionReviewVersions": ["v1"] } }),
    )
    .await;
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    v1.create(&PostParams::default(), &widget("v1", "a", json!({ "size": 1 })))
        .await
        .expect("the storage version needs no conversion");
    match v2.get("a").await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 500);
            assert!(
                s.message.contains("Post \"https://127.0.0.1:1/convert?timeout=30s\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_equivalent_match_sends_the_object_in_the_version_the_rule_names() {
    if !needs_local_webhooks() {
        return;
    }
    let (hooks, env, ns) = converting().await;
    let hook = |name: &str, path: &str, policy: &str| {
        json!({
            "name": name, "clientConfig": hooks.client_config(path), "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "matchPolicy": policy,
            "rules": [{ "operations": ["CREATE"], "apiGroups": [GROUP], "apiVersions": ["v1"], "resources": ["widgets"] }],
        })
    };
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(env.client());
    let cfg = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": "widgets" },
        "webhooks": [hook("equivalent.example.com", "/equivalent", "Equivalent"), hook("exact.example.com", "/exact", "Exact")],
    }))
    .expect("configuration");
    configs.create(&PostParams::default(), &cfg).await.expect("create");
    let v2 = widgets(&env.client(), "v2", &ns);
    v2.create(&PostParams::default(), &widget("v2", "e", json!({ "replicas": 6 })))
        .await
        .expect("create in v2");
    assert!(
        hooks.calls_to("/exact").is_empty(),
        "an Exact rule for v1 does not match a v2 request"
    );
    let req = &hooks.calls_to("/equivalent")[0]["request"];
    assert_eq!(
        req["kind"],
        json!({ "group": GROUP, "version": "v1", "kind": "Widget" })
    );
    assert_eq!(
        req["requestKind"],
        json!({ "group": GROUP, "version": "v2", "kind": "Widget" })
    );
    assert_eq!(req["requestResource"]["version"], "v2");
    assert_eq!(req["object"]["apiVersion"], "conv.example.com/v1");
    assert_eq!(req["object"]["spec"], json!({ "size": 6 }));
}

/// Versions whose schemas differ beyond the field's name: v1 (storage) bounds `size` and lets
/// `mode` and `status.phase` be any string; v2 defaults `mode`, limits it and `status.phase` to
/// enums and forbids lowering `replicas` (a transition rule). Each has its printer column.
fn strict_versions() -> Value {
    let schema = |spec: Value, phase: Value| {
        json!({ "openAPIV3Schema": { "type": "object", "properties": {
            "spec": spec,
            "status": { "type": "object", "properties": { "phase": phase } } } } })
    };
    json!([
        {
            "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
            "schema": schema(
                json!({ "type": "object", "properties": {
                    "size": { "type": "integer", "maximum": 5 }, "mode": { "type": "string" } } }),
                json!({ "type": "string" }),
            ),
            "additionalPrinterColumns": [{ "name": "Size", "type": "integer", "jsonPath": ".spec.size" }],
        },
        {
            "name": "v2", "served": true, "storage": false, "subresources": { "status": {} },
            "schema": schema(
                json!({ "type": "object",
                    "x-kubernetes-validations": [{
                        "rule": "!has(oldSelf.replicas) || (has(self.replicas) && self.replicas >= oldSelf.replicas)",
                        "message": "replicas may not decrease" }],
                    "properties": {
                        "replicas": { "type": "integer" },
                        "mode": { "type": "string", "enum": ["fast", "slow"], "default": "fast" } } }),
                json!({ "type": "string", "enum": ["Ready", "Pending"] }),
            ),
            "additionalPrinterColumns": [{ "name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas" }],
        },
    ])
}

async fn setup_strict() -> Option<(WebhookServer, TestEnv, String)> {
    if !needs_local_webhooks() {
        return None;
    }
    Some(converting_versions(strict_versions()).await)
}

fn api_status<T: std::fmt::Debug>(result: Result<T, kube_client::Error>) -> kube_client::core::Status {
    match result {
        Err(kube_client::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_in_a_served_version_is_defaulted_and_validated_in_that_version_before_it_is_converted() {
    let Some((hooks, env, ns)) = setup_strict().await else {
        return;
    };
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    let refused = api_status(
        v2.create(
            &PostParams::default(),
            &widget("v2", "bad", json!({ "replicas": 1, "mode": "medium" })),
        )
        .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    // v2's enum, and v2's CEL rule left unchecked because of it (v1 has neither).
    assert_eq!(
        refused.message,
        r#"Widget.conv.example.com "bad" is invalid: [spec.mode: Unsupported value: "medium": supported values: "fast", "slow", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#
    );
    assert!(
        hooks.calls_to("/convert").is_empty(),
        "an invalid object never reaches the conversion webhook"
    );

    // v2's default applies; v1's bound on `size` does not (the converted object is not
    // validated again).
    let created = v2
        .create(&PostParams::default(), &widget("v2", "a", json!({ "replicas": 7 })))
        .await
        .expect("valid in v2");
    assert_eq!(created.data["spec"], json!({ "replicas": 7, "mode": "fast" }));
    let managed = created.metadata.managed_fields.unwrap_or_default();
    assert_eq!(
        managed.first().and_then(|m| m.api_version.as_deref()),
        Some("conv.example.com/v2"),
        "fields are managed in the version they were written in"
    );
    assert_eq!(
        v1.get("a").await.expect("get v1").data["spec"],
        json!({ "size": 7, "mode": "fast" })
    );
    // A dry run is validated in v2 the same way and stores nothing.
    let dry = v2
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &widget("v2", "dry", json!({ "replicas": 9 })),
        )
        .await
        .expect("dry run");
    assert_eq!(dry.data["spec"], json!({ "replicas": 9, "mode": "fast" }));
    assert!(v1.get_opt("dry").await.expect("get").is_none());
}

#[tokio::test]
async fn an_update_in_a_served_version_sees_the_stored_object_in_that_version() {
    let Some((_hooks, env, ns)) = setup_strict().await else {
        return;
    };
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    v1.create(&PostParams::default(), &widget("v1", "a", json!({ "size": 3 })))
        .await
        .expect("create in the storage version");
    let mut current = v2.get("a").await.expect("get v2");
    assert_eq!(current.data["spec"], json!({ "replicas": 3 }));

    // v2's transition rule compares with the stored object converted to v2.
    current.data["spec"] = json!({ "replicas": 2 });
    let refused = api_status(v2.replace("a", &PostParams::default(), &current).await);
    assert_eq!(refused.code, 422);
    assert!(
        refused
            .message
            .starts_with(r#"Widget.conv.example.com "a" is invalid: spec: "#)
            && refused.message.ends_with("replicas may not decrease"),
        "{}",
        refused.message
    );
    let refused = api_status(
        v2.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await,
    );
    assert_eq!(refused.code, 422, "{}", refused.message);

    // A valid update is defaulted in v2 and stored in v1, whose bound it need not meet.
    let patched = v2
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 6 } })),
        )
        .await
        .expect("merge patch in v2");
    assert_eq!(patched.data["spec"], json!({ "replicas": 6, "mode": "fast" }));
    assert_eq!(
        v1.get("a").await.expect("get v1").data["spec"],
        json!({ "size": 6, "mode": "fast" })
    );

    // The status is validated against v2's status schema.
    let refused = api_status(
        v2.patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Bogus" } })),
        )
        .await,
    );
    assert!(
        refused.message.starts_with(
            r#"Widget.conv.example.com "a" is invalid: [status.phase: Unsupported value: "Bogus": supported values: "Ready", "Pending", "#
        ),
        "{}",
        refused.message
    );
    v2.patch_status(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Ready" } })),
    )
    .await
    .expect("a valid status");
    assert_eq!(
        v1.get("a").await.expect("get v1").data["status"],
        json!({ "phase": "Ready" })
    );
}

#[tokio::test]
async fn a_table_in_a_served_version_has_that_versions_columns() {
    let Some((_hooks, env, ns)) = setup_strict().await else {
        return;
    };
    let v2 = widgets(&env.client(), "v2", &ns);
    v2.create(&PostParams::default(), &widget("v2", "a", json!({ "replicas": 3 })))
        .await
        .expect("create in v2");
    let table = |path: String| {
        let client = env.client();
        async move {
            let req = http::Request::get(path)
                .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .body(Vec::new())
                .expect("a request");
            client.request::<Value>(req).await.expect("a Table")
        }
    };
    let base = format!("/apis/{GROUP}/v2/namespaces/{ns}/widgets");
    for t in [table(format!("{base}/a")).await, table(base.clone()).await] {
        assert_eq!(t["kind"], "Table");
        let columns: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Name", "Replicas", "Age"]);
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["rows"][0]["cells"][1], 3);
    }
}

#[tokio::test]
async fn a_conversion_for_an_admission_webhook_that_fails_is_an_internal_error() {
    if !needs_local_webhooks() {
        return;
    }
    let (hooks, env, ns) = converting().await;
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(env.client());
    let cfg = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": "widgets" },
        "webhooks": [{
            "name": "v1-only.example.com", "clientConfig": hooks.client_config("/validate"), "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "failurePolicy": "Ignore",
            "rules": [{ "operations": ["CREATE"], "apiGroups": [GROUP], "apiVersions": ["v1"], "resources": ["widgets"] }],
        }],
    }))
    .expect("configuration");
    configs.create(&PostParams::default(), &cfg).await.expect("create");
    let v2 = widgets(&env.client(), "v2", &ns);
    let mut w = widget("v2", "bad", json!({ "replicas": 1 }));
    w.metadata.labels = Some([("fail".to_string(), "yes".to_string())].into());
    let s = api_status(v2.create(&PostParams::default(), &w).await);
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        s.message,
        "Internal error occurred: conversion webhook for conv.example.com/v2, Kind=Widget failed: cannot convert this one"
    );
    assert!(hooks.calls_to("/validate").is_empty());
}

/// A conversion webhook that answers as the first object's `answer` label says (and converts
/// as [`convert`] otherwise).
fn answer_as_labelled(review: &Value) -> Reply {
    let req = &review["request"];
    let objects = req["objects"].as_array().cloned().unwrap_or_default();
    let label = objects
        .first()
        .and_then(|o| o["metadata"]["labels"]["answer"].as_str())
        .unwrap_or("");
    let reply = |response: Value| {
        Reply::json(
            json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response }),
        )
    };
    let converted = || {
        let body = convert(review).body;
        body["response"]["convertedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let success = |objects: Vec<Value>| {
        reply(json!({ "uid": req["uid"], "convertedObjects": objects, "result": { "status": "Success" } }))
    };
    match label {
        "failure" => reply(json!({ "uid": req["uid"], "result": { "status": "Failure" } })),
        "no-response" => Reply::json(json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview" })),
        "wrong-uid" => reply(json!({ "uid": "nope", "result": { "status": "Success" } })),
        "two" => {
            let mut objects = converted();
            objects.extend(converted());
            success(objects)
        }
        "wrong-version" | "wrong-kind" | "no-kind" | "number-label" => {
            let mut objects = converted();
            let o = &mut objects[0];
            match label {
                "wrong-version" => o["apiVersion"] = json!("conv.example.com/v2"),
                "wrong-kind" => o["kind"] = json!("Gadget"),
                "no-kind" => {
                    o.as_object_mut().expect("an object").remove("kind");
                }
                _ => o["metadata"]["labels"]["n"] = json!(1),
            }
            success(objects)
        }
        _ => convert(review),
    }
}

#[tokio::test]
async fn a_failed_conversion_is_worded_as_kube_apiserver_words_it() {
    if !needs_local_webhooks() {
        return;
    }
    let hooks = serve(|path, review| match path {
        "/convert" => answer_as_labelled(review),
        _ => super::webhook_server::allow(review),
    })
    .await;
    let (env, ns) = env_for(&hooks).await;
    install(
        &env,
        json!({ "strategy": "Webhook", "webhook": {
            "clientConfig": hooks.service_config("/convert"), "conversionReviewVersions": ["v1"] } }),
    )
    .await;
    let v1 = widgets(&env.client(), "v1", &ns);
    let v2 = widgets(&env.client(), "v2", &ns);
    let labelled = |version: &str, name: &str, label: &str| {
        let spec = if version == "v1" {
            json!({ "size": 1 })
        } else {
            json!({ "replicas": 1 })
        };
        let mut w = widget(version, name, spec);
        w.metadata.labels = Some([("answer".to_string(), label.to_string())].into());
        w
    };
    // A write in v2 is converted to the storage version, v1: the object converted is a v2 Widget.
    let written = "conversion webhook for conv.example.com/v2, Kind=Widget";
    let cases = [
        (
            "failure",
            format!("{written} failed: response.result.status was 'Failure', not 'Success'"),
        ),
        ("no-response", format!("{written} failed: no response provided")),
        ("two", format!("{written} returned 2 objects, expected 1")),
        (
            "wrong-version",
            format!(
                "{written} returned invalid object at index 0: invalid groupVersion \
                 (expected conv.example.com/v1, received conv.example.com/v2)"
            ),
        ),
        (
            "wrong-kind",
            format!("{written} returned invalid object at index 0: invalid kind (expected Widget, received Gadget)"),
        ),
        (
            "number-label",
            format!(
                "{written} returned invalid metadata: metadata.labels[n] must be a string, but is int64 in converted object"
            ),
        ),
    ];
    for (label, message) in cases {
        let s = api_status(v2.create(&PostParams::default(), &labelled("v2", label, label)).await);
        assert_eq!((s.code, s.message.as_str()), (500, message.as_str()), "{label}");
    }
    let s = api_status(
        v2.create(&PostParams::default(), &labelled("v2", "wrong-uid", "wrong-uid"))
            .await,
    );
    let sent = hooks.calls_to("/convert").last().expect("a review")["request"]["uid"].clone();
    assert_eq!(
        s.message,
        format!("{written} failed: expected response.uid={sent}, got \"nope\"")
    );
    // An object without a kind does not decode: the decoder's error, as it is.
    let s = api_status(
        v2.create(&PostParams::default(), &labelled("v2", "no-kind", "no-kind"))
            .await,
    );
    assert!(s.message.starts_with("Object 'Kind' is missing in '{"), "{}", s.message);

    // A read converts each stored object on its own, a list's too: the message names the
    // stored object's version and kind, never the list's.
    v1.create(&PostParams::default(), &labelled("v1", "stored", "failure"))
        .await
        .expect("the storage version needs no conversion");
    let read = "conversion webhook for conv.example.com/v1, Kind=Widget failed: \
                response.result.status was 'Failure', not 'Success'";
    assert_eq!(api_status(v2.get("stored").await).message, read);
    assert_eq!(api_status(v2.list(&Default::default()).await).message, read);
}

#[tokio::test]
async fn objects_kept_in_an_old_storage_version_are_converted_by_the_webhook_until_rewritten() {
    let Some((hooks, env, ns)) = setup().await else {
        return;
    };
    let (v1, v2) = (widgets(&env.client(), "v1", &ns), widgets(&env.client(), "v2", &ns));
    v1.create(&PostParams::default(), &widget("v1", "old", json!({ "size": 3 })))
        .await
        .expect("create in v1");

    // v2 becomes the storage version; `old` stays kept in v1.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let name = format!("widgets.{GROUP}");
    let mut crd = crds.get(&name).await.expect("get the CRD");
    for v in &mut crd.spec.versions {
        v.storage = v.name == "v2";
    }
    crds.replace(&name, &PostParams::default(), &crd)
        .await
        .expect("switch the storage version");

    // Read in the storage version, it still needs the webhook: v1 → v2.
    let before = hooks.calls_to("/convert").len();
    let read = v2.get("old").await.expect("get in v2");
    assert_eq!(read.data["spec"], json!({ "replicas": 3 }));
    let calls = hooks.calls_to("/convert");
    assert_eq!(calls.len(), before + 1);
    let review = &calls[before]["request"];
    assert_eq!(review["desiredAPIVersion"], "conv.example.com/v2");
    assert_eq!(review["objects"][0]["apiVersion"], "conv.example.com/v1");

    // Written back unchanged (a storage version migration's write), it is kept in v2 now.
    let rewritten = v2.replace("old", &PostParams::default(), &read).await.expect("rewrite");
    assert_ne!(rewritten.metadata.resource_version, read.metadata.resource_version);
    assert_eq!(rewritten.data["spec"], json!({ "replicas": 3 }));
    let before = hooks.calls_to("/convert").len();
    assert_eq!(
        v2.get("old").await.expect("get in v2").data["spec"],
        json!({ "replicas": 3 })
    );
    assert_eq!(
        hooks.calls_to("/convert").len(),
        before,
        "no conversion for an object kept in v2"
    );
    assert_eq!(
        v1.get("old").await.expect("get in v1").data["spec"],
        json!({ "size": 3 })
    );
}
