//! A PUT to a missing object: a 404, unless the type's strategy creates on update
//! (`AllowCreateOnUpdate`: Leases, Services, Events in both groups), in which case the PUT is a
//! create, answered with 201 and watched as ADDED.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube_client::Api;
use kube_client::api::{WatchEvent, WatchParams};
use serde_json::{Value, json};

use super::{Raw, code, raw, setup};
use kdev_testenv::TestEnv;

/// A PUT of `body` to `path`, whatever it answers.
async fn put(env: &TestEnv, path: &str, body: &Value) -> Raw {
    let req = http::Request::put(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).expect("json"))
        .expect("a request");
    raw(env, req).await
}

fn lease(name: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name },
        "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 },
    })
}

fn lease_path(ns: &str, name: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}")
}

#[tokio::test]
async fn a_put_to_a_missing_lease_creates_it() {
    let (env, ns) = setup().await;
    let created = put(&env, &lease_path(&ns, "held"), &lease("held")).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let meta = &created.body["metadata"];
    assert_eq!(meta["name"], "held");
    assert_eq!(meta["namespace"], ns.as_str());
    for field in ["uid", "creationTimestamp", "resourceVersion"] {
        assert!(meta[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {meta}");
    }
    assert_eq!(created.body["spec"]["holderIdentity"], "a");
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let stored = leases.get("held").await.expect("stored");
    assert_eq!(stored.metadata.uid.as_deref(), meta["uid"].as_str());
    // Once it exists, the same PUT is an update, which for a Lease needs the resourceVersion.
    let again = put(&env, &lease_path(&ns, "held"), &lease("held")).await;
    assert_eq!((again.code, again.body["reason"].as_str()), (422, Some("Invalid")));
}

/// The storage layer drops a resourceVersion from an object it creates, so a stale copy of a
/// deleted Lease brings it back.
#[tokio::test]
async fn a_resource_version_in_a_create_by_put_is_ignored() {
    let (env, ns) = setup().await;
    let mut body = lease("stale");
    body["metadata"]["resourceVersion"] = json!("12345");
    let created = put(&env, &lease_path(&ns, "stale"), &body).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_ne!(created.body["metadata"]["resourceVersion"], "12345");
}

#[tokio::test]
async fn a_put_to_a_missing_service_creates_it_with_its_defaults() {
    let (env, ns) = setup().await;
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] },
    });
    let created = put(&env, &format!("/api/v1/namespaces/{ns}/services/web"), &body).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let services: Api<Service> = Api::namespaced(env.client(), &ns);
    let spec = services.get("web").await.expect("stored").spec.expect("a spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.is_some_and(|ip| !ip.is_empty()));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
}

#[tokio::test]
async fn a_put_to_a_missing_event_creates_it_in_either_group() {
    let (env, ns) = setup().await;
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": { "name": "core" },
        "involvedObject": { "kind": "Pod", "name": "p", "namespace": ns },
        "reason": "Tested", "message": "m", "type": "Normal",
    });
    let created = put(&env, &format!("/api/v1/namespaces/{ns}/events/core"), &core).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let v1 = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": { "name": "v1" },
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "kdev.dev/test", "reportingInstance": "test-1",
        "action": "Testing", "reason": "Tested", "type": "Normal", "note": "n",
        "regarding": { "apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns },
    });
    let path = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events/v1");
    let created = put(&env, &path, &v1).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["note"], "n");
}

/// ConfigMaps, Deployments and custom resources (as most types) are only replaced by a PUT.
#[tokio::test]
async fn a_put_to_a_missing_config_map_or_deployment_is_not_found() {
    let (env, ns) = setup().await;
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cm" } });
    let missing = put(&env, &format!("/api/v1/namespaces/{ns}/configmaps/cm"), &cm).await;
    assert_eq!((missing.code, missing.body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(missing.body["message"], r#"configmaps "cm" not found"#);
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" },
        "spec": { "selector": { "matchLabels": { "app": "d" } },
                  "template": { "metadata": { "labels": { "app": "d" } },
                                "spec": { "containers": [{ "name": "c", "image": "nginx" }] } } },
    });
    let missing = put(&env, &format!("/apis/apps/v1/namespaces/{ns}/deployments/d"), &deploy).await;
    assert_eq!(missing.code, 404, "{}", missing.body);
}

#[tokio::test]
async fn a_create_by_put_is_watched_as_added() {
    let (env, ns) = setup().await;
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let mut events = leases.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
    let created = put(&env, &lease_path(&ns, "watched"), &lease("watched")).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let added = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match events.try_next().await.expect("no watch error") {
                Some(WatchEvent::Bookmark(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("an event in time");
    match added {
        Some(WatchEvent::Added(l)) => assert_eq!(l.metadata.name.as_deref(), Some("watched")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dry_run_create_by_put_stores_nothing() {
    let (env, ns) = setup().await;
    let path = format!("{}?dryRun=All", lease_path(&ns, "dry"));
    let created = put(&env, &path, &lease("dry")).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert!(created.body["metadata"]["uid"].as_str().is_some());
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    assert_eq!(code(leases.get("dry").await), 404);
}

/// A create by PUT is validated as a create: the name follows the type's rule.
#[tokio::test]
async fn a_create_by_put_is_validated_as_a_create() {
    let (env, ns) = setup().await;
    let refused = put(&env, &lease_path(&ns, "Not_Valid"), &lease("Not_Valid")).await;
    assert_eq!((refused.code, refused.body["reason"].as_str()), (422, Some("Invalid")));
    let causes = &refused.body["details"]["causes"];
    assert_eq!(causes[0]["field"], "metadata.name", "{causes}");
    assert!(
        causes[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(r#"Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain"#)),
        "{causes}"
    );
}

/// A uid in the body is a precondition the storage checks against what it finds, an empty object
/// for a missing one, before it decides between a create and a 404: the PUT conflicts, whether
/// the type creates on update (a Lease) or not (a ConfigMap); without a uid, a missing ConfigMap
/// is simply not found.
#[tokio::test]
async fn a_put_with_a_uid_to_a_missing_object_conflicts() {
    let (env, ns) = setup().await;
    let mut body = lease("ghost");
    body["metadata"]["uid"] = json!("6b1e4a43-6f2c-4b55-9d7e-2c8f3f0d9a11");
    let refused = put(&env, &lease_path(&ns, "ghost"), &body).await;
    assert_eq!((refused.code, refused.body["reason"].as_str()), (409, Some("Conflict")));
    let message = refused.body["message"].as_str().unwrap_or("");
    assert!(
        message.contains(
            "Precondition failed: UID in precondition: 6b1e4a43-6f2c-4b55-9d7e-2c8f3f0d9a11, UID in object meta: "
        ),
        "{message}"
    );
    let mut cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "ghost", "uid": "6b1e4a43-6f2c-4b55-9d7e-2c8f3f0d9a11" },
    });
    let path = format!("/api/v1/namespaces/{ns}/configmaps/ghost");
    let refused = put(&env, &path, &cm).await;
    assert_eq!(
        (refused.code, refused.body["reason"].as_str()),
        (409, Some("Conflict")),
        "{}",
        refused.body
    );
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Precondition failed: UID in precondition: 6b1e4a43")),
        "{}",
        refused.body
    );
    cm["metadata"].as_object_mut().map(|m| m.remove("uid"));
    let missing = put(&env, &path, &cm).await;
    assert_eq!(missing.code, 404, "{}", missing.body);
}

/// The update handler's `checkName` runs first: the body must name the object.
#[tokio::test]
async fn a_put_without_a_name_is_a_bad_request() {
    let (env, ns) = setup().await;
    let mut body = lease("x");
    body["metadata"] = json!({});
    let refused = put(&env, &lease_path(&ns, "unnamed"), &body).await;
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(
        refused.body["message"],
        "the name of the object (unnamed based on URL) was undeterminable: name must be provided"
    );
    let mut body = lease("elsewhere");
    body["metadata"]["namespace"] = json!("kdev-some-other-namespace");
    let refused = put(&env, &lease_path(&ns, "elsewhere"), &body).await;
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(
        refused.body["message"],
        format!(
            "the namespace of the object (kdev-some-other-namespace) does not match the namespace on the request ({ns})"
        )
    );
}
