//! PATCH: JSON patch, merge patch, strategic merge patch, server-side apply.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube_client::Api;
use kube_client::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::{code, configmap, setup};

fn deployment(containers: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": containers } } }
    }))
    .expect("a valid deployment")
}

/// A JSON patch (RFC 6902) of the ConfigMap `a`, sent as a raw request.
async fn json_patch(
    env: &kdev_testenv::TestEnv,
    ns: &str,
    ops: serde_json::Value,
) -> Result<ConfigMap, kube_client::Error> {
    let req = http::Request::patch(format!("/api/v1/namespaces/{ns}/configmaps/a"))
        .header("Content-Type", "application/json-patch+json")
        .body(serde_json::to_vec(&ops).expect("json"))
        .expect("a request");
    env.client().request::<ConfigMap>(req).await
}

#[tokio::test]
async fn a_json_patch_applies_its_operations_in_order() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let ops = json!([
        { "op": "add", "path": "/data/extra", "value": "1" },
        { "op": "replace", "path": "/data/key", "value": "changed" },
        { "op": "remove", "path": "/data/extra" },
    ]);
    let cm = json_patch(&env, &ns, ops).await.expect("patch");
    assert_eq!(cm.data, Some([("key".to_string(), "changed".to_string())].into()));
}

#[tokio::test]
async fn a_failed_json_patch_test_is_invalid_and_changes_nothing() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let before = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let ops = json!([
        { "op": "test", "path": "/data/key", "value": "other" },
        { "op": "replace", "path": "/data/key", "value": "changed" },
    ]);
    assert_eq!(code(json_patch(&env, &ns, ops).await), 422);
    assert_eq!(
        api.get("a").await.expect("get").metadata.resource_version,
        before.metadata.resource_version
    );
}

#[tokio::test]
async fn a_merge_patch_with_null_removes_a_key() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let cm = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "key": null, "new": "v" } })),
        )
        .await
        .expect("patch");
    assert_eq!(cm.data, Some([("new".to_string(), "v".to_string())].into()));
}

#[tokio::test]
async fn a_strategic_merge_patch_merges_containers_by_name() {
    let (env, ns) = setup().await;
    let api: Api<Deployment> = Api::namespaced(env.client(), &ns);
    api.create(
        &PostParams::default(),
        &deployment(json!([{ "name": "web", "image": "nginx:1.26" }, { "name": "sidecar", "image": "envoy:1" }])),
    )
    .await
    .expect("create");
    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } } } });
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("patch");
    let spec = d.spec.template.spec.expect("pod spec");
    let images: Vec<(String, Option<String>)> = spec.containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(
        images,
        [
            ("web".to_string(), Some("nginx:1.27".to_string())),
            ("sidecar".to_string(), Some("envoy:1".to_string()))
        ]
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_updates_and_records_the_manager() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let applied =
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": { "a": "1" } });
    let pp = PatchParams::apply("kdev-test");
    let cm = api
        .patch("cfg", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply creates");
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kdev-test"]);
    let applied =
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": { "b": "2" } });
    let cm = api
        .patch("cfg", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply updates");
    // The field the manager no longer applies is removed.
    assert_eq!(cm.data, Some([("b".to_string(), "2".to_string())].into()));
}

#[tokio::test]
async fn server_side_apply_conflicts_with_another_manager_unless_forced() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mine = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": { "a": "1" } });
    api.patch("cfg", &PatchParams::apply("first"), &Patch::Apply(&mine))
        .await
        .expect("first apply");
    let theirs =
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": { "a": "2" } });
    match api
        .patch("cfg", &PatchParams::apply("second"), &Patch::Apply(&theirs))
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("conflict with \"first\""), "{}", s.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let cm = api
        .patch("cfg", &PatchParams::apply("second").force(), &Patch::Apply(&theirs))
        .await
        .expect("forced");
    assert_eq!(cm.data.and_then(|d| d.get("a").cloned()).as_deref(), Some("2"));
}

#[tokio::test]
async fn a_manager_applying_a_value_already_set_shares_its_ownership() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let with = |value: &str| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" }, "data": { "a": value } });
    api.patch("cfg", &PatchParams::apply("first"), &Patch::Apply(with("1")))
        .await
        .expect("first apply");
    let cm = api
        .patch("cfg", &PatchParams::apply("second"), &Patch::Apply(with("1")))
        .await
        .expect("the same value, from a second manager");
    let mut managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    managers.sort();
    assert_eq!(managers, ["first", "second"], "both own data.a");
    match api
        .patch("cfg", &PatchParams::apply("first"), &Patch::Apply(with("2")))
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(s.message.contains("conflict with \"second\""), "{}", s.message);
        }
        other => panic!("a co-owner's value changed without a conflict: {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_patch_type_is_unsupported_media_type() {
    let (env, ns) = setup().await;
    api_create_and_raw_patch(&env, &ns).await;
}

async fn api_create_and_raw_patch(env: &kdev_testenv::TestEnv, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(env.client(), ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let req = http::Request::patch(format!("/api/v1/namespaces/{ns}/configmaps/a"))
        .header("Content-Type", "application/x-unknown-patch")
        .body(b"{}".to_vec())
        .expect("a request");
    match env.client().request_text(req).await {
        Err(kube_client::Error::Api(s)) => assert_eq!(s.code, 415),
        other => panic!("expected 415, got {other:?}"),
    }
}

/// A raw PATCH of the ConfigMap `a` with a query, a content type and a body; what came back.
async fn raw_patch(env: &kdev_testenv::TestEnv, ns: &str, query: &str, content_type: &str, body: &str) -> super::Raw {
    let req = http::Request::patch(format!("/api/v1/namespaces/{ns}/configmaps/a{query}"))
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
        .expect("a request");
    super::raw(env, req).await
}

#[tokio::test]
async fn a_merge_patch_removing_the_last_label_leaves_no_labels() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut cm = configmap("a");
    cm.metadata.labels = Some([("l".to_string(), "1".to_string())].into());
    api.create(&PostParams::default(), &cm).await.expect("create");
    let patch = json!({ "metadata": { "labels": { "l": null }, "finalizers": [] } });
    let cm = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    assert_eq!((cm.metadata.labels, cm.metadata.finalizers), (None, None));
    let stored = api.get("a").await.expect("get");
    assert_eq!(stored.metadata.labels, None);
}

#[tokio::test]
async fn force_and_an_overlong_field_manager_are_refused_as_patch_options() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let merge = "application/merge-patch+json";
    for force in ["true", "false"] {
        let answer = raw_patch(&env, &ns, &format!("?force={force}"), merge, "{}").await;
        assert_eq!(answer.code, 422, "{}", answer.body);
        assert_eq!(
            answer.body["message"],
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
    }
    let long = "m".repeat(129);
    let answer = raw_patch(&env, &ns, &format!("?fieldManager={long}"), merge, "{}").await;
    assert_eq!(answer.code, 422, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: "),
        "{message}"
    );
    // kube-client refuses such a manager itself: the create goes raw.
    let create = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps?fieldManager={long}"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&configmap("b")).expect("json"))
        .expect("a request");
    let answer = super::raw(&env, create).await;
    assert_eq!(answer.code, 422, "{}", answer.body);
    assert_eq!(answer.body["details"]["kind"], "CreateOptions");
    assert_eq!(answer.body["details"]["causes"][0]["field"], "fieldManager");
    let ok = raw_patch(&env, &ns, &format!("?fieldManager={}", "m".repeat(128)), merge, "{}").await;
    assert_eq!(ok.code, 200, "{}", ok.body);
}

#[tokio::test]
async fn a_json_patch_operation_that_cannot_apply_is_a_generic_invalid() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let json = "application/json-patch+json";
    for ops in [
        r#"[{"op": "frobnicate", "path": "/data"}]"#,
        r#"[{"op": "remove"}]"#,
        r#"[{"op": "test", "path": "/data/key", "value": "other"}]"#,
        r#"[{"op": "remove", "path": "/data/missing"}]"#,
    ] {
        let answer = raw_patch(&env, &ns, "", json, ops).await;
        assert_eq!(answer.code, 422, "{ops}: {}", answer.body);
        assert_eq!(answer.body["reason"], "Invalid", "{ops}");
        assert_eq!(
            answer.body["message"], "the server rejected our request due to an error in our request",
            "{ops}"
        );
        assert_eq!(answer.body["details"], json!({}), "{ops}");
    }
    let answer = raw_patch(&env, &ns, "", json, r#"{"op": "add"}"#).await;
    assert_eq!(
        (answer.code, &answer.body["reason"]),
        (400, &json!("BadRequest")),
        "{}",
        answer.body
    );
}
