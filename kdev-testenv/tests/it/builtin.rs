//! Every built-in resource the server promises: created, read, listed and deleted through the
//! dynamic client, plus the per-type behaviour examples rely on.

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube_client::Api;
use kube_client::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use super::{code, setup};

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
