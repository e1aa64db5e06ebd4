//! Every built-in resource the server promises: created, read, listed and deleted through the
//! dynamic client, plus the per-type behaviour examples rely on.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube_client::Api;
use kube_client::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use super::{causes, code, eventually, setup};

/// (group, version, kind, plural, namespaced, a minimal valid body without metadata.name), for
/// namespace `ns`.
fn builtins(ns: &str) -> Vec<(&'static str, &'static str, &'static str, &'static str, bool, Value)> {
    let pod_spec = json!({ "containers": [{ "name": "c", "image": "busybox:1.36" }] });
    let template = json!({ "metadata": { "labels": { "app": "x" } }, "spec": pod_spec });
    let selector = json!({ "matchLabels": { "app": "x" } });
    vec![
        (
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            json!({ "data": { "a": "b" } }),
        ),
        ("", "v1", "Secret", "secrets", true, json!({ "data": { "a": "Yg==" } })),
        ("", "v1", "ServiceAccount", "serviceaccounts", true, json!({})),
        (
            "",
            "v1",
            "Service",
            "services",
            true,
            json!({ "spec": { "ports": [{ "port": 80 }] } }),
        ),
        ("", "v1", "Pod", "pods", true, json!({ "spec": pod_spec })),
        (
            "",
            "v1",
            "Event",
            "events",
            true,
            json!({ "involvedObject": { "kind": "Pod", "name": "p", "namespace": ns }, "reason": "Test", "message": "m", "type": "Normal" }),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            json!({ "spec": { "selector": selector, "template": template } }),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            json!({ "spec": { "selector": selector, "template": template } }),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            json!({ "spec": { "serviceName": "x", "selector": selector, "template": template } }),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            json!({ "spec": { "selector": selector, "template": template } }),
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            json!({ "spec": { "holderIdentity": "me", "leaseDurationSeconds": 15 } }),
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            json!({
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "kdev.dev/test", "reportingInstance": "t",
            "action": "Testing", "reason": "Test", "type": "Normal", "regarding": { "kind": "Pod", "name": "p", "namespace": ns }, "note": "n" }),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            json!({ "rules": [{ "verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"] }] }),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            json!({ "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r" },
                    "subjects": [{ "kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io" }] }),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            json!({ "rules": [{ "verbs": ["get"], "nonResourceURLs": ["/metrics"] }] }),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            json!({ "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r" },
                    "subjects": [{ "kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io" }] }),
        ),
        ("", "v1", "Node", "nodes", false, json!({})),
        ("", "v1", "Namespace", "namespaces", false, json!({})),
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            json!({ "webhooks": [] }),
        ),
        (
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            json!({ "webhooks": [] }),
        ),
    ]
}

#[tokio::test]
async fn every_builtin_resource_supports_create_get_list_and_delete() {
    let (env, ns) = setup().await;
    let suffix: String = (0..6).map(|_| fastrand::lowercase()).collect();
    for (group, version, kind, plural, namespaced, body) in builtins(&ns) {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(env.client(), &ns, &ar)
        } else {
            Api::all_with(env.client(), &ar)
        };
        let name = format!("kdev-{}-{suffix}", kind.to_ascii_lowercase());
        let mut obj = body.clone();
        obj["apiVersion"] = json!(ar.api_version);
        obj["kind"] = json!(kind);
        obj["metadata"] = json!({ "name": name });
        let obj: DynamicObject = serde_json::from_value(obj).expect("a dynamic object");
        if !namespaced {
            env.delete_on_drop(&ar, &name);
        }
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {plural}: {e}"));
        assert_eq!(created.metadata.name.as_deref(), Some(name.as_str()), "{plural}");
        api.get(&name).await.unwrap_or_else(|e| panic!("get {plural}: {e}"));
        let listed = api
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await;
        let listed = listed.unwrap_or_else(|e| panic!("list {plural}: {e}"));
        assert_eq!(listed.items.len(), 1, "{plural}");
        api.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {plural}: {e}"));
    }
}

#[tokio::test]
async fn secret_string_data_is_stored_base64_encoded_in_data() {
    let (env, ns) = setup().await;
    let api: Api<Secret> = Api::namespaced(env.client(), &ns);
    let s: Secret = serde_json::from_value(
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" },
        "stringData": { "password": "hunter2" } }),
    )
    .expect("a secret");
    let s = api.create(&PostParams::default(), &s).await.expect("create");
    assert_eq!(s.string_data, None);
    let data = s.data.expect("data");
    assert_eq!(data.get("password").map(|b| b.0.as_slice()), Some(&b"hunter2"[..]));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn a_service_gets_a_cluster_ip_and_default_ports() {
    let (env, ns) = setup().await;
    let api: Api<Service> = Api::namespaced(env.client(), &ns);
    let svc: Service = serde_json::from_value(
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] } }),
    )
    .expect("a service");
    let svc = api.create(&PostParams::default(), &svc).await.expect("create");
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok()));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    // A bare kube-apiserver never empties the test namespace: give the cluster IP back.
    api.delete("web", &DeleteParams::default()).await.expect("delete");
}

#[tokio::test]
async fn binding_a_pod_sets_its_node_once() {
    let (env, ns) = setup().await;
    let api: Api<Pod> = Api::namespaced(env.client(), &ns);
    let pod: Pod = serde_json::from_value(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
        "spec": { "schedulerName": "kdev-test-scheduler", "containers": [{ "name": "c", "image": "busybox:1.36" }] } }))
    .expect("a pod");
    api.create(&PostParams::default(), &pod).await.expect("create");
    let binding = |node: &str| json!({ "apiVersion": "v1", "kind": "Binding", "metadata": { "name": "p" }, "target": { "apiVersion": "v1", "kind": "Node", "name": node } });
    let client = env.client();
    let bind = |node: &str| {
        let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/p/binding"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&binding(node)).expect("json"))
            .expect("a request");
        client.request_text(req)
    };
    bind("node-a").await.expect("bind");
    let p = api.get("p").await.expect("get");
    assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("node-a"));
    match bind("node-b").await {
        Err(kube_client::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("a second binding must conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn node_status_is_a_subresource() {
    let (env, _ns) = setup().await;
    let api: Api<Node> = Api::all(env.client());
    let name = format!(
        "kdev-node-{}",
        (0..6).map(|_| fastrand::lowercase()).collect::<String>()
    );
    let node: Node =
        serde_json::from_value(json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": name } }))
            .expect("a node");
    env.delete_on_drop(&ApiResource::erase::<Node>(&()), &name);
    api.create(&PostParams::default(), &node).await.expect("create");
    let status = json!({ "status": { "capacity": { "cpu": "4" } } });
    let n = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("patch status");
    assert_eq!(
        n.status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("cpu").map(|q| q.0.clone()))
            .as_deref(),
        Some("4")
    );
    api.delete(&name, &DeleteParams::default()).await.expect("delete");
}

#[tokio::test]
async fn events_written_through_events_k8s_io_are_read_through_core_v1() {
    let (env, ns) = setup().await;
    let v1: Api<EventV1> = Api::namespaced(env.client(), &ns);
    let ev: EventV1 = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": { "name": "e1" },
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "kdev.dev/test", "reportingInstance": "t",
        "action": "Reconciling", "reason": "Started", "type": "Normal", "note": "hello",
        "regarding": { "apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns }
    }))
    .expect("an event");
    v1.create(&PostParams::default(), &ev).await.expect("create");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(env.client(), &ns);
    let got = core.get("e1").await.expect("the same event through core/v1");
    assert_eq!(got.message.as_deref(), Some("hello"));
    assert_eq!(got.involved_object.name.as_deref(), Some("p"));
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=p"))
        .await
        .expect("list by involved object");
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn deletecollection_deletes_the_selected_objects_only() {
    let (env, ns) = setup().await;
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(env.client(), &ns);
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut cm = super::configmap(name);
        cm.metadata.labels = Some([("team".to_string(), team.to_string())].into());
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("team=x"))
        .await
        .expect("deletecollection");
    let left: Vec<String> = api
        .list(&ListParams::default().labels("team"))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["c"]);
    assert_eq!(code(api.get("a").await), 404);
}

#[tokio::test]
async fn an_event_must_live_in_the_namespace_of_its_object() {
    let (env, ns) = setup().await;
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(env.client(), &ns);
    let v1: Api<EventV1> = Api::namespaced(env.client(), &ns);
    let old_style = |name: &str, object_ns: Option<&str>| {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event", "metadata": { "name": name },
            "involvedObject": { "kind": "Pod", "name": "p", "namespace": object_ns },
            "reason": "Test", "message": "m", "type": "Normal"
        }))
        .expect("an event")
    };
    let new_style = |name: &str, object_ns: Option<&str>| {
        serde_json::from_value(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": { "name": name },
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "kdev.dev/test",
            "reportingInstance": "t", "action": "Testing", "reason": "Test", "type": "Normal",
            "regarding": { "kind": "Pod", "name": "p", "namespace": object_ns }
        }))
        .expect("an event")
    };
    let pp = PostParams::default();
    for (what, result) in [
        (
            "old style, no object namespace",
            core.create(&pp, &old_style("a", None)).await.map(drop),
        ),
        (
            "old style, another namespace",
            core.create(&pp, &old_style("b", Some("elsewhere"))).await.map(drop),
        ),
        (
            "new style, no object namespace",
            v1.create(&pp, &new_style("c", None)).await.map(drop),
        ),
    ] {
        match result {
            Err(kube_client::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{what}: {s:?}");
                assert!(
                    s.message.contains("involvedObject.namespace")
                        && s.message.contains("does not match event.namespace"),
                    "{what}: {}",
                    s.message
                );
            }
            other => panic!("{what}: expected 422, got {other:?}"),
        }
    }
    core.create(&pp, &old_style("d", Some(&ns)))
        .await
        .expect("old style, same namespace");
    v1.create(&pp, &new_style("e", Some(&ns)))
        .await
        .expect("new style, same namespace");
}

/// A raw write of `body` to the ConfigMaps of `ns`: `POST` to the collection, or `method` to
/// `name` with `content_type`, with `query` appended.
fn configmap_request(
    ns: &str,
    method: &str,
    name: Option<&str>,
    query: &str,
    content_type: &str,
    body: &str,
) -> http::Request<Vec<u8>> {
    let path = match name {
        Some(name) => format!("/api/v1/namespaces/{ns}/configmaps/{name}{query}"),
        None => format!("/api/v1/namespaces/{ns}/configmaps{query}"),
    };
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.as_bytes().to_vec())
        .expect("a request")
}

fn unknown_warning(path: &str) -> String {
    format!(r#"299 - "unknown field \"{path}\"""#)
}

/// A ConfigMap named `name` with a top-level field and a metadata field its type does not know.
fn configmap_with_unknown_fields(name: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap", "bogus": 1,
        "metadata": { "name": name, "bogusMeta": "x" },
        "data": { "a": "b" },
    })
    .to_string()
}

/// Creates the ConfigMap `name` with unknown fields, with the default `fieldValidation`.
async fn create_with_unknown_fields(env: &kdev_testenv::TestEnv, ns: &str, name: &str) -> super::Raw {
    let body = configmap_with_unknown_fields(name);
    super::raw(env, configmap_request(ns, "POST", None, "", "application/json", &body)).await
}

/// Unknown fields of a built-in object are dropped, as kube-apiserver's typed decoder drops
/// them: with a warning each by default and under `Warn`, silently under `Ignore`; `Strict`
/// refuses the create with 400.
#[tokio::test]
async fn unknown_fields_of_a_created_builtin_object_follow_field_validation() {
    let (env, ns) = setup().await;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ApiResource::erase::<ConfigMap>(&()));
    let both = [unknown_warning("bogus"), unknown_warning("metadata.bogusMeta")];
    for (name, query, warnings) in [
        ("default", "", both.to_vec()),
        ("warn", "?fieldValidation=Warn", both.to_vec()),
        ("ignore", "?fieldValidation=Ignore", vec![]),
    ] {
        let req = configmap_request(
            &ns,
            "POST",
            None,
            query,
            "application/json",
            &configmap_with_unknown_fields(name),
        );
        let answer = super::raw(&env, req).await;
        assert_eq!(answer.code, 201, "{name}: {:?}", answer.body);
        assert_eq!(answer.warnings, warnings, "{name}");
        assert!(answer.body.get("bogus").is_none(), "{name}: {}", answer.body);
        let stored = api.get(name).await.expect("created");
        let stored = serde_json::to_value(&stored).expect("json");
        assert!(stored.get("bogus").is_none(), "{name}: {stored}");
        assert!(stored["metadata"].get("bogusMeta").is_none(), "{name}: {stored}");
        assert_eq!(stored["data"], json!({ "a": "b" }), "{name}");
    }

    let req = configmap_request(
        &ns,
        "POST",
        None,
        "?fieldValidation=Strict",
        "application/json",
        &configmap_with_unknown_fields("strict"),
    );
    let answer = super::raw(&env, req).await;
    assert_eq!((answer.code, answer.body["reason"].as_str()), (400, Some("BadRequest")));
    let message = answer.body["message"].as_str().unwrap_or("");
    assert!(
        message.ends_with(
            r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus", unknown field "metadata.bogusMeta""#
        ),
        "{message}"
    );
    assert_eq!(code(api.get("strict").await), 404, "nothing was created");

    // The warnings are recorded as the body is decoded, before validation fails.
    let answer = create_with_unknown_fields(&env, &ns, "Not_A_Name").await;
    assert_eq!(answer.code, 422, "{}", answer.body);
    assert_eq!(answer.warnings, both);
}

/// The paths of unknown fields inside lists carry the item's index, as kube-apiserver's strict
/// decoder prints them.
#[tokio::test]
async fn an_unknown_field_in_a_list_item_is_named_with_its_index() {
    let (env, ns) = setup().await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
        "spec": { "containers": [
            { "name": "a", "image": "busybox:1.36" },
            { "name": "b", "image": "busybox:1.36", "imagePullPolcy": "Always" },
        ] },
    });
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods?fieldValidation=Strict"))
        .header("content-type", "application/json")
        .body(pod.to_string().into_bytes())
        .expect("a request");
    let answer = super::raw(&env, req).await;
    assert_eq!(answer.code, 400, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap_or("");
    assert!(
        message.ends_with(r#"strict decoding error: unknown field "spec.containers[1].imagePullPolcy""#),
        "{message}"
    );
}

/// A PUT decodes its body as a create does.
#[tokio::test]
async fn unknown_fields_of_an_updated_builtin_object_follow_field_validation() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &super::configmap("cm"))
        .await
        .expect("create");
    let put = |query: &str| {
        configmap_request(
            &ns,
            "PUT",
            Some("cm"),
            query,
            "application/json",
            &configmap_with_unknown_fields("cm"),
        )
    };

    let answer = super::raw(&env, put("?fieldValidation=Strict")).await;
    assert_eq!(answer.code, 400, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap_or("");
    assert!(
        message.ends_with(r#"strict decoding error: unknown field "bogus", unknown field "metadata.bogusMeta""#),
        "{message}"
    );
    assert_eq!(
        api.get("cm").await.expect("still there").data,
        super::configmap("cm").data,
        "unchanged"
    );

    let answer = super::raw(&env, put("")).await;
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert_eq!(
        answer.warnings,
        [unknown_warning("bogus"), unknown_warning("metadata.bogusMeta")]
    );
    assert!(answer.body.get("bogus").is_none(), "{}", answer.body);

    let answer = super::raw(&env, put("?fieldValidation=Ignore")).await;
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    assert!(answer.body.get("bogus").is_none(), "{}", answer.body);
}

/// JSON, merge and strategic merge patches decode the patched object: its unknown fields are
/// warned about and dropped, or refused under `Strict` with 422 on field `patch`.
#[tokio::test]
async fn unknown_fields_a_patch_adds_to_a_builtin_object_follow_field_validation() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &super::configmap("cm"))
        .await
        .expect("create");
    let patches = [
        ("application/merge-patch+json", r#"{"bogus": 1, "data": {"k2": "v2"}}"#),
        (
            "application/strategic-merge-patch+json",
            r#"{"bogus": 1, "data": {"k2": "v2"}}"#,
        ),
        (
            "application/json-patch+json",
            r#"[{"op": "add", "path": "/bogus", "value": 1}, {"op": "add", "path": "/data/k2", "value": "v2"}]"#,
        ),
    ];
    for (content_type, body) in patches {
        let patch = |query: &str| configmap_request(&ns, "PATCH", Some("cm"), query, content_type, body);

        let answer = super::raw(&env, patch("?fieldValidation=Strict")).await;
        assert_eq!(
            (answer.code, answer.body["reason"].as_str()),
            (422, Some("Invalid")),
            "{content_type}: {}",
            answer.body
        );
        let message = answer.body["message"].as_str().unwrap_or("");
        assert!(
            message.contains("patch: Invalid value: ")
                && message.ends_with(r#"strict decoding error: unknown field "bogus""#),
            "{content_type}: {message}"
        );
        assert_eq!(answer.body["details"]["causes"][0]["field"], "patch", "{content_type}");

        let answer = super::raw(&env, patch("")).await;
        assert_eq!(answer.code, 200, "{content_type}: {}", answer.body);
        assert_eq!(answer.warnings, [unknown_warning("bogus")], "{content_type}");
        assert!(answer.body.get("bogus").is_none(), "{content_type}: {}", answer.body);
        assert_eq!(answer.body["data"]["k2"], "v2", "{content_type}");

        let answer = super::raw(&env, patch("?fieldValidation=Ignore")).await;
        assert_eq!(answer.code, 200, "{content_type}: {}", answer.body);
        assert!(answer.warnings.is_empty(), "{content_type}: {:?}", answer.warnings);

        let stored = serde_json::to_value(api.get("cm").await.expect("there")).expect("json");
        assert!(stored.get("bogus").is_none(), "{content_type}: {stored}");
        api.patch(
            "cm",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k2": null } })),
        )
        .await
        .expect("reset");
    }
}

/// A write through an admission webhook keeps the unknown-field warnings of its decoding, ahead
/// of the webhook's own; fields a mutating webhook adds that the type does not know are dropped
/// silently, as kube-apiserver decodes a webhook's patched object.
#[tokio::test]
async fn unknown_field_warnings_survive_admission_webhooks() {
    use super::webhook_server::{Reply, answer, deny, env_for, needs_local_webhooks, patch, serve};
    if !needs_local_webhooks() {
        return;
    }
    let hooks = serve(|path, review| match path {
        "/mutate" => patch(review, json!([{ "op": "add", "path": "/fromWebhook", "value": 1 }])),
        _ if review["request"]["name"] == "denied" => deny(review, "not this one"),
        _ => Reply::json(answer(
            review,
            json!({ "allowed": true, "warnings": ["from the webhook"] }),
        )),
    })
    .await;
    let (env, ns) = env_for(&hooks).await;
    let hook = |name: &str, path: &str| {
        json!({
            "name": name, "clientConfig": hooks.client_config(path), "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"] }],
        })
    };
    let configuration = |kind: &str, webhook: Value| {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": { "name": "fields" }, "webhooks": [webhook],
        })
    };
    let mutating: Api<DynamicObject> = Api::all_with(
        env.client(),
        &ApiResource::erase::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(&()),
    );
    let validating: Api<DynamicObject> = Api::all_with(
        env.client(),
        &ApiResource::erase::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>(&()),
    );
    let pp = PostParams::default();
    let m = configuration("MutatingWebhookConfiguration", hook("mutate.example.com", "/mutate"));
    mutating
        .create(&pp, &serde_json::from_value(m).expect("a configuration"))
        .await
        .expect("create the mutating configuration");
    let v = configuration("ValidatingWebhookConfiguration", hook("warn.example.com", "/warn"));
    validating
        .create(&pp, &serde_json::from_value(v).expect("a configuration"))
        .await
        .expect("create the validating configuration");

    let answer = create_with_unknown_fields(&env, &ns, "cm").await;
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(
        answer.warnings,
        [
            unknown_warning("bogus"),
            unknown_warning("metadata.bogusMeta"),
            r#"299 - "from the webhook""#.to_string()
        ]
    );
    assert!(answer.body.get("bogus").is_none(), "{}", answer.body);
    assert!(answer.body.get("fromWebhook").is_none(), "{}", answer.body);

    let put = configmap_request(
        &ns,
        "PUT",
        Some("cm"),
        "",
        "application/json",
        &configmap_with_unknown_fields("cm"),
    );
    let answer = super::raw(&env, put).await;
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert_eq!(
        answer.warnings.first(),
        Some(&unknown_warning("bogus")),
        "{:?}",
        answer.warnings
    );

    let req = configmap_request(
        &ns,
        "POST",
        None,
        "?fieldValidation=Strict",
        "application/json",
        &configmap_with_unknown_fields("strict"),
    );
    assert_eq!(super::raw(&env, req).await.code, 400);
}

/// Server-side apply converts the applied configuration to its typed form before anything else:
/// a field the type does not know fails the apply, whatever `fieldValidation` says, with the
/// plain error kube-apiserver answers with 500 (kubernetes/kubernetes#122480).
#[tokio::test]
async fn server_side_apply_refuses_fields_the_builtin_type_does_not_know() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let applied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nbogus: 1\ndata:\n  a: b\n";
    for query in ["?fieldManager=test", "?fieldManager=test&fieldValidation=Ignore"] {
        let req = configmap_request(&ns, "PATCH", Some("cm"), query, "application/apply-patch+yaml", applied);
        let answer = super::raw(&env, req).await;
        assert_eq!(answer.code, 500, "{query}: {}", answer.body);
        let message = answer.body["message"].as_str().unwrap_or("");
        assert_eq!(
            message,
            "failed to create typed patch object (/cm; /v1, Kind=ConfigMap): .bogus: field not declared in schema",
            "{query}"
        );
    }
    assert_eq!(code(api.get("cm").await), 404, "nothing was created");
}

/// A namespace's spec.finalizers change only through `/finalize`, its name label always
/// matches its name, and its phase is Active until it is deleted (`namespaceStrategy`).
#[tokio::test]
async fn namespace_updates_keep_the_finalizers_the_name_label_and_a_valid_phase() {
    use k8s_openapi::api::core::v1::Namespace;
    let (env, _ns) = setup().await;
    let namespaces: Api<Namespace> = Api::all(env.client());
    let name = format!("kdev-ns-{}", (0..8).map(|_| fastrand::lowercase()).collect::<String>());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    namespaces.create(&PostParams::default(), &ns).await.expect("create");
    let finalizers = |ns: &Namespace| ns.spec.as_ref().and_then(|s| s.finalizers.clone());
    let name_label = |ns: &Namespace| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/metadata.name").cloned())
    };

    let patched = namespaces
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { "kubernetes.io/metadata.name": "other", "team": "a" } },
                "spec": { "finalizers": [] },
            })),
        )
        .await
        .expect("patch");
    assert_eq!(finalizers(&patched), Some(vec!["kubernetes".to_string()]));
    assert_eq!(name_label(&patched), Some(name.clone()));
    assert_eq!(
        patched
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("a")
    );

    let terminating = namespaces
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Terminating" } })),
        )
        .await;
    assert_eq!(code(terminating), 422, "only a deleted namespace may be Terminating");

    // `/finalize` is where the namespace controller removes its finalizer.
    let mut current = namespaces.get(&name).await.expect("get");
    current.spec.get_or_insert_default().finalizers = Some(Vec::new());
    let finalized = namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &current)
        .await
        .expect("finalize");
    assert_eq!(finalizers(&finalized).unwrap_or_default(), Vec::<String>::new());

    // Namespaces have no collection delete (the selector matches nothing, to be safe anyway),
    // and discovery does not offer one.
    let all = namespaces
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("kdev.dev/matches-nothing=true"),
        )
        .await;
    assert_eq!(code(all), 405);
    let core: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList = env
        .client()
        .request(http::Request::get("/api/v1").body(Vec::new()).expect("request"))
        .await
        .expect("discovery");
    let verbs = core
        .resources
        .iter()
        .find(|r| r.name == "namespaces")
        .map(|r| r.verbs.clone())
        .expect("namespaces are served");
    assert!(!verbs.iter().any(|v| v == "deletecollection"), "{verbs:?}");

    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
}

/// A built-in object with a value of the wrong type is refused as kube-apiserver's decoder
/// refuses it: 400 on create and update, 422 on field `patch` for a patch; a number for a
/// quantity is read as the quantity, as Go reads it.
#[tokio::test]
async fn a_value_of_the_wrong_type_is_refused_when_decoded() {
    use k8s_openapi::api::apps::v1::Deployment;
    let (env, ns) = setup().await;
    let deployments: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let body = |replicas: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "c", "image": "busybox:1.36",
                        "resources": { "limits": { "cpu": 1, "memory": "64Mi" } } }] },
                },
            },
        })
    };
    let dynamic = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", "Deployment"), "deployments");
    let raw: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &dynamic);
    let refused = raw
        .create(
            &PostParams::default(),
            &serde_json::from_value(body(json!("3"))).expect("object"),
        )
        .await;
    match refused {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
            assert!(
                s.message
                    .starts_with(r#"Deployment in version "v1" cannot be handled as a Deployment: "#),
                "{}",
                s.message
            );
            assert!(s.message.contains("spec.replicas"), "{}", s.message);
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // `cpu: 1` is the quantity "1" to Go's decoder.
    let created = raw
        .create(
            &PostParams::default(),
            &serde_json::from_value(body(json!(2))).expect("object"),
        )
        .await
        .expect("a number for a quantity decodes");
    assert_eq!(created.data["spec"]["replicas"], 2);
    let limits = &created.data["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
    assert_eq!(limits["cpu"], "1", "stored as Go writes the quantity back");
    assert!(deployments.get("web").await.is_ok(), "readable as its type");

    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": "5" } })),
        )
        .await;
    match patched {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
            let causes = s.details.map(|d| d.causes).unwrap_or_default();
            assert_eq!(causes.len(), 1, "{causes:?}");
            assert_eq!(causes[0].field, "patch");
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let kept = deployments.get("web").await.expect("get");
    assert_eq!(kept.spec.replicas, Some(2), "nothing was stored");
}

/// The fields kube-apiserver keeps once set: an immutable ConfigMap's data, a Secret's type, a
/// workload's selector.
#[tokio::test]
async fn immutable_fields_of_built_in_objects_are_refused_on_update() {
    use k8s_openapi::api::apps::v1::Deployment;
    let (env, ns) = setup().await;
    let pp = PostParams::default();
    let maps: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let mut cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "frozen" }, "data": { "a": "1" }, "immutable": true,
    }))
    .expect("configmap");
    maps.create(&pp, &cm).await.expect("create");
    cm.data = Some([("a".to_string(), "2".to_string())].into());
    let refused = maps.replace("frozen", &pp, &cm).await;
    assert_eq!(
        causes("changed data of an immutable ConfigMap", refused),
        [(
            "data".to_string(),
            "Forbidden: field is immutable when `immutable` is set".to_string()
        )]
    );
    let unfrozen = maps
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "immutable": false })),
        )
        .await;
    assert_eq!(
        causes("an immutable ConfigMap made mutable", unfrozen)[0].0,
        "immutable"
    );

    let secrets: Api<Secret> = Api::namespaced(env.client(), &ns);
    let secret: Secret =
        serde_json::from_value(json!({ "metadata": { "name": "s" }, "stringData": { "a": "b" } })).expect("secret");
    secrets.create(&pp, &secret).await.expect("create");
    let retyped = secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({ "type": "example.com/other" })),
        )
        .await;
    assert_eq!(
        causes("a changed type", retyped),
        [(
            "type".to_string(),
            r#"Invalid value: "example.com/other": field is immutable"#.to_string()
        )]
    );
    // A replace that leaves the type out keeps the default, Opaque.
    let mut current = secrets.get("s").await.expect("get");
    current.type_ = None;
    secrets
        .replace("s", &pp, &current)
        .await
        .expect("the type defaults to Opaque again");

    let deployments: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web", "tier": "front" } },
                          "spec": { "containers": [{ "name": "c", "image": "busybox:1.36" }] } },
        },
    }))
    .expect("deployment");
    deployments.create(&pp, &deployment).await.expect("create");
    let reselected = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "selector": { "matchLabels": { "tier": "front" } } } })),
        )
        .await;
    assert_eq!(
        causes("a changed selector", reselected),
        [(
            "spec.selector".to_string(),
            r#"Invalid value: {"matchLabels":{"app":"web","tier":"front"}}: field is immutable"#.to_string()
        )]
    );
}

/// A StatefulSet's spec may change only in the fields kube-apiserver lets change; a replace
/// built afresh, without the defaults, is no change.
#[tokio::test]
async fn a_stateful_set_spec_changes_only_where_kube_apiserver_allows() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let (env, ns) = setup().await;
    let sets: Api<StatefulSet> = Api::namespaced(env.client(), &ns);
    let body = |service: &str, replicas: i32| -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": { "name": "db" },
            "spec": {
                "serviceName": service, "replicas": replicas,
                "selector": { "matchLabels": { "app": "db" } },
                "template": { "metadata": { "labels": { "app": "db" } },
                              "spec": { "containers": [{ "name": "c", "image": "busybox:1.36" }] } },
            },
        }))
        .expect("statefulset")
    };
    sets.create(&PostParams::default(), &body("db", 1))
        .await
        .expect("create");
    // An unconditional replace (no resourceVersion, which StatefulSets allow): on a cluster the
    // StatefulSet controller writes the status after the create, so the create's version would
    // already be stale.
    let scaled = sets
        .replace("db", &PostParams::default(), &body("db", 3))
        .await
        .expect("replicas may change, and the defaults left out are no change");
    let renamed = sets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "serviceName": "other" } })),
        )
        .await;
    let causes = causes("a changed serviceName", renamed);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].0, "spec");
    assert!(
        causes[0]
            .1
            .starts_with("Forbidden: updates to statefulset spec for fields other than 'replicas'"),
        "{}",
        causes[0].1
    );
    assert_eq!(scaled.spec.replicas, Some(3));
}

/// A NodePort Service gets a node port for each port, and the traffic policy default.
#[tokio::test]
async fn a_node_port_service_gets_its_node_ports() {
    let (env, ns) = setup().await;
    let services: Api<Service> = Api::namespaced(env.client(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "np" },
        "spec": { "type": "NodePort", "selector": { "app": "x" }, "ports": [{ "port": 80 }, { "name": "b", "port": 81 }] },
    }))
    .expect("service");
    let svc = services.create(&PostParams::default(), &svc).await.expect("create");
    let spec = svc.spec.clone().expect("spec");
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    let node_ports: Vec<i32> = spec
        .ports
        .clone()
        .expect("ports")
        .iter()
        .map(|p| p.node_port.expect("a node port"))
        .collect();
    assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)), "{node_ports:?}");

    // A replace built afresh, without the allocated values, keeps them (`patchAllocatedValues`).
    let mut fresh: Service = serde_json::from_value(json!({
        "metadata": { "name": "np" },
        "spec": { "type": "NodePort", "selector": { "app": "y" }, "ports": [{ "port": 80 }, { "name": "b", "port": 81 }] },
    }))
    .expect("service");
    fresh.metadata.resource_version = svc.metadata.resource_version.clone();
    let replaced = services
        .replace("np", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    let kept = replaced.spec.expect("spec");
    assert_eq!(kept.cluster_ip, spec.cluster_ip, "the cluster IP is kept");
    let kept_ports: Vec<Option<i32>> = kept.ports.expect("ports").iter().map(|p| p.node_port).collect();
    assert_eq!(kept_ports, node_ports.iter().copied().map(Some).collect::<Vec<_>>());

    // A ClusterIP Service turned into a NodePort one gets node ports then.
    let plain: Service = serde_json::from_value(json!({
        "metadata": { "name": "plain" },
        "spec": { "selector": { "app": "x" }, "ports": [{ "port": 80 }] },
    }))
    .expect("service");
    services.create(&PostParams::default(), &plain).await.expect("create");
    let turned = services
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "type": "NodePort" } })),
        )
        .await
        .expect("patch");
    let port = turned.spec.and_then(|s| s.ports).expect("ports")[0].node_port;
    assert!(port.is_some_and(|p| (30000..=32767).contains(&p)), "{port:?}");
    // A bare kube-apiserver never empties the test namespace: give the node ports back.
    for name in ["np", "plain"] {
        services.delete(name, &DeleteParams::default()).await.expect("delete");
    }
}

/// A cluster IP belongs to one Service: asking for a taken one is refused, a Service's IP
/// never changes, a headless Service holds none, and a deleted Service's IP is free again.
#[tokio::test]
async fn a_cluster_ip_belongs_to_one_service_at_a_time() {
    let (env, ns) = setup().await;
    let services: Api<Service> = Api::namespaced(env.client(), &ns);
    let service = |name: &str, ip: Option<&str>| -> Service {
        let mut spec = json!({ "selector": { "app": "x" }, "ports": [{ "port": 80 }] });
        if let Some(ip) = ip {
            spec["clusterIP"] = json!(ip);
        }
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("service")
    };
    let ip_of = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.cluster_ip.clone())
            .expect("a cluster IP")
    };

    // Twenty Services that ask for nothing get twenty different IPs.
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..20 {
        let created = services
            .create(&PostParams::default(), &service(&format!("auto-{i}"), None))
            .await
            .expect("create");
        ips.insert(ip_of(&created));
    }
    assert_eq!(ips.len(), 20, "{ips:?}");

    // Another Service's IP is refused.
    let taken = ips.first().cloned().expect("an IP");
    let refused = causes(
        "a taken IP",
        services
            .create(&PostParams::default(), &service("copy", Some(&taken)))
            .await,
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "spec.clusterIPs");
    assert!(
        refused[0].1.ends_with(&format!(
            "failed to allocate IP {taken}: provided IP is already allocated"
        )),
        "{}",
        refused[0].1
    );

    // A Service keeps its IP: changing it is refused.
    let other = ips.last().cloned().expect("an IP");
    let moved = causes(
        "a changed IP",
        services
            .patch(
                "auto-0",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "clusterIP": other, "clusterIPs": [other] } })),
            )
            .await,
    );
    assert!(
        moved
            .iter()
            .any(|(field, message)| field == "spec.clusterIPs[0]" && message.ends_with("may not change once set")),
        "{moved:?}"
    );

    // ... also when the update names `clusterIP` alone.
    let moved_alone = causes(
        "a changed clusterIP",
        services
            .patch(
                "auto-0",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "clusterIP": other } })),
            )
            .await,
    );
    assert!(
        moved_alone
            .iter()
            .any(|(field, message)| field == "spec.clusterIPs[0]" && message.ends_with("may not change once set")),
        "{moved_alone:?}"
    );

    // A headless Service holds no IP.
    let headless = services
        .create(&PostParams::default(), &service("headless", Some("None")))
        .await
        .expect("create");
    assert_eq!(ip_of(&headless), "None");

    // Once its Service is gone, or has become an ExternalName, an IP can be asked for again.
    let free_again = |name: &'static str, ip: String| {
        let services = services.clone();
        async move {
            eventually(&format!("{ip} to be free"), || async {
                match services.create(&PostParams::default(), &service(name, Some(&ip))).await {
                    Ok(created) => Some(created),
                    Err(kube_client::Error::Api(s)) if s.message.contains("already allocated") => None,
                    Err(other) => panic!("creating {name} with {ip}: {other:?}"),
                }
            })
            .await
        }
    };
    let deleted = ip_of(&services.get("auto-0").await.expect("get"));
    services
        .delete("auto-0", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(ip_of(&free_again("reuse", deleted.clone()).await), deleted);
    let renamed = ip_of(&services.get("auto-1").await.expect("get"));
    let external = services
        .patch(
            "auto-1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "type": "ExternalName", "externalName": "example.com" } })),
        )
        .await
        .expect("to ExternalName");
    let spec = external.spec.expect("spec");
    assert_eq!(
        (spec.cluster_ip, spec.cluster_ips),
        (None, None),
        "the IP fields are dropped"
    );
    assert_eq!(ip_of(&free_again("reuse-2", renamed.clone()).await), renamed);

    // A bare kube-apiserver never empties the test namespace: give the IPs back.
    let names = (1..20)
        .map(|i| format!("auto-{i}"))
        .chain(["headless".into(), "reuse".into(), "reuse-2".into()]);
    for name in names {
        services.delete(&name, &DeleteParams::default()).await.expect("delete");
    }
}

/// `kubectl get` columns as kube-apiserver's printers give them, `-o wide` ones at priority 1.
#[tokio::test]
async fn service_tables_have_kubectl_s_columns() {
    let (env, ns) = setup().await;
    let services: Api<Service> = Api::namespaced(env.client(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "type": "NodePort", "selector": { "app": "web" }, "ports": [{ "port": 80 }] },
    }))
    .expect("service");
    let svc = services.create(&PostParams::default(), &svc).await.expect("create");
    let request = http::Request::get(format!("/api/v1/namespaces/{ns}/services"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("request");
    let table = env.send(request).await.expect("send").json();
    let columns: Vec<(String, i64)> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [
        ("Name", 0),
        ("Type", 0),
        ("Cluster-IP", 0),
        ("External-IP", 0),
        ("Port(s)", 0),
        ("Age", 0),
        ("Selector", 1),
    ];
    assert_eq!(columns, expected.map(|(n, p)| (n.to_string(), p)).to_vec(), "{table}");
    let description = |i: usize| {
        table["columnDefinitions"][i]["description"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        description(0).starts_with("Name must be unique within a namespace."),
        "{}",
        description(0)
    );
    assert!(
        description(5).starts_with("CreationTimestamp is a timestamp"),
        "{}",
        description(5)
    );
    let spec = svc.spec.expect("spec");
    let node_port = spec.ports.expect("ports")[0].node_port.expect("a node port");
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "web");
    assert_eq!(cells[1], "NodePort");
    assert_eq!(cells[2], json!(spec.cluster_ip.expect("a cluster IP")));
    assert_eq!(cells[3], "<none>");
    assert_eq!(cells[4], json!(format!("80:{node_port}/TCP")));
    assert_eq!(cells[6], "app=web");
    // A bare kube-apiserver never empties the test namespace: give the node port back.
    services.delete("web", &DeleteParams::default()).await.expect("delete");
}

/// kube-apiserver keeps a `kubernetes` Service in `default` for itself.
#[tokio::test]
async fn the_api_server_has_its_own_service() {
    let (env, _ns) = setup().await;
    let services: Api<Service> = Api::namespaced(env.client(), "default");
    let svc = services.get("kubernetes").await.expect("the kubernetes Service");
    let labels = svc.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("component").map(String::as_str), Some("apiserver"));
    let spec = svc.spec.expect("spec");
    let ports = spec.ports.expect("ports");
    assert_eq!((ports[0].name.as_deref(), ports[0].port), (Some("https"), 443));
    assert!(spec.cluster_ip.is_some_and(|ip| !ip.is_empty()));
}

/// A NodePort Service named `name` with ports 80 and 81, asking for `node_port` on port 80.
fn node_port_service(name: &str, node_port: Option<i32>) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "type": "NodePort", "selector": { "app": "x" },
            "ports": [{ "name": "a", "port": 80, "nodePort": node_port }, { "name": "b", "port": 81 }] },
    }))
    .expect("service")
}

fn node_ports_of(svc: &Service) -> Vec<i32> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    ports.iter().filter_map(|p| p.node_port).collect()
}

/// A node port belongs to one Service in the whole cluster: asking for one another Service holds
/// fails as kube-apiserver's allocator fails it (also on a dry run and on an update), assigned
/// ones never collide, and a deleted Service's ports are free again.
#[tokio::test]
async fn a_node_port_belongs_to_one_service() {
    let (env, ns) = setup().await;
    let services: Api<Service> = Api::namespaced(env.client(), &ns);
    let mut held = Vec::new();
    for i in 0..4 {
        let svc = services
            .create(&PostParams::default(), &node_port_service(&format!("auto-{i}"), None))
            .await
            .expect("create");
        held.extend(node_ports_of(&svc));
    }
    let mut distinct = held.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), held.len(), "assigned node ports collide: {held:?}");
    let taken = held[0];
    let already = format!("Invalid value: {taken}: provided port is already allocated");

    let asked = node_port_service("asks", Some(taken));
    let r = services.create(&PostParams::default(), &asked).await;
    assert_eq!(
        causes("a create asking for a held port", r),
        [("spec.ports[0].nodePort".to_string(), already.clone())]
    );
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let r = services.create(&dry, &asked).await;
    assert_eq!(
        causes("a dry run asking for a held port", r),
        [("spec.ports[0].nodePort".to_string(), already.clone())]
    );
    match services.create(&PostParams::default(), &asked).await {
        Err(kube_client::Error::Api(s)) => assert_eq!(
            s.message,
            format!("Service \"asks\" is invalid: spec.ports[0].nodePort: {already}")
        ),
        other => panic!("expected 422, got {other:?}"),
    }

    // An update may keep its own ports, but not take another Service's.
    let r = services
        .patch(
            "auto-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "ports": [{ "port": 80, "nodePort": taken }] } })),
        )
        .await;
    assert_eq!(
        causes("an update asking for a held port", r),
        [("spec.ports[0].nodePort".to_string(), already)]
    );
    let own = services
        .patch(
            "auto-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "selector": { "app": "y" } } })),
        )
        .await
        .expect("an update that keeps its node ports");
    assert_eq!(node_ports_of(&own), held[..2]);

    // Deleting the holder frees the port.
    services
        .delete("auto-0", &DeleteParams::default())
        .await
        .expect("delete");
    let created = eventually("the freed node port to be allocatable", || async {
        services.create(&PostParams::default(), &asked).await.ok()
    })
    .await;
    assert_eq!(node_ports_of(&created)[0], taken);
    // Give the ports back: on a bare kube-apiserver nothing empties the namespace.
    for name in ["auto-1", "auto-2", "auto-3", "asks"] {
        services.delete(name, &DeleteParams::default()).await.expect("delete");
    }
}

/// A Lease's spec is checked as kube-apiserver's `ValidateLeaseSpec` checks it, on create and on
/// update.
#[tokio::test]
async fn lease_durations_and_transitions_are_validated() {
    let (env, ns) = setup().await;
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let lease = |name: &str, spec: Value| -> Lease {
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("lease")
    };
    let r = leases
        .create(
            &PostParams::default(),
            &lease("bad", json!({ "leaseDurationSeconds": 0, "leaseTransitions": -1 })),
        )
        .await;
    assert_eq!(
        causes("a create with a zero duration", r),
        [
            (
                "spec.leaseDurationSeconds".to_string(),
                "Invalid value: 0: must be greater than 0".to_string()
            ),
            (
                "spec.leaseTransitions".to_string(),
                "Invalid value: -1: must be greater than or equal to 0".to_string()
            ),
        ]
    );
    let created = leases
        .create(
            &PostParams::default(),
            &lease(
                "good",
                json!({ "holderIdentity": "me", "leaseDurationSeconds": 15, "leaseTransitions": 0 }),
            ),
        )
        .await
        .expect("a valid Lease");
    let mut shorter = created.clone();
    shorter.spec.get_or_insert_with(Default::default).lease_duration_seconds = Some(-3);
    match leases.replace("good", &PostParams::default(), &shorter).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
            assert_eq!(
                s.message,
                "Lease.coordination.k8s.io \"good\" is invalid: spec.leaseDurationSeconds: Invalid value: -3: must be \
                 greater than 0"
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
}
