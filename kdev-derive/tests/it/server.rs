//! The generated CRD on an API server: the structural-schema check accepts it, and every
//! validation it carries rejects an object that breaks it with 422 (on the embedded server and,
//! with `KDEV_TEST_KUBECONFIG`, on a real cluster).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{DeleteParams, DynamicObject, PostParams};
use kube_core::crd::v1::CustomResourceExt;
use serde_json::{Value, json};

use crate::resource::WebApp;

async fn established(crds: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..300 {
        let crd = crds.get(name).await.expect("get the CRD");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never became Established");
}

fn object(name: &str, spec: Value) -> WebApp {
    let mut base = json!({ "image": "nginx:1.27", "ports": [{ "name": "http", "port": 80 }] });
    if let (Value::Object(base), Value::Object(spec)) = (&mut base, spec) {
        base.extend(spec);
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": base })).expect("a WebApp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_crd_is_accepted_and_each_validation_rejects_a_bad_object() {
    let env = TestEnv::start().await.expect("a cluster");
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = WebApp::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    let _ = crds.delete(&name, &DeleteParams::default()).await;
    for _ in 0..100 {
        if crds.get_opt(&name).await.expect("get the CRD").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("the CRD is structural and accepted");
    established(&crds, &name).await;

    let ns = env.namespace().await.expect("a namespace");
    let apps: Api<WebApp> = Api::namespaced(client.clone(), &ns);
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &WebApp::api_resource());
    let good: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "derive.kdev.dev/v1", "kind": "WebApp", "metadata": { "name": "good" },
        "spec": { "image": "nginx:1.27", "ports": [{ "name": "http", "port": 80 }], "ratio": 0.5, "step": 10, "target": 8080 }
    }))
    .expect("an object");
    dynamic
        .create(&PostParams::default(), &good)
        .await
        .expect("a valid object is accepted");
    let typed = apps.get("good").await.expect("read back as a WebApp");
    assert_eq!(
        typed.spec.replicas, 1,
        "the default from #[kdev(default = 1)] is applied"
    );
    apps.create(&PostParams::default(), &object("typed", json!({})))
        .await
        .expect("a typed object is accepted");

    let mut cases = vec![
        ("minimum", json!({ "replicas": -1 })),
        ("maximum", json!({ "replicas": 11 })),
        ("exclusive-minimum", json!({ "ratio": 0.0 })),
        ("exclusive-maximum", json!({ "ratio": 1.0 })),
        ("multiple-of", json!({ "step": 7 })),
        ("min-length", json!({ "image": "ab" })),
        ("max-length", json!({ "image": "a".repeat(65) })),
        ("pattern", json!({ "image": "NGINX!" })),
        ("enum", json!({ "tier": "huge" })),
        ("min-items", json!({ "ports": [] })),
        (
            "max-items",
            json!({ "ports": [
            { "name": "a", "port": 1 }, { "name": "b", "port": 2 }, { "name": "c", "port": 3 }, { "name": "d", "port": 4 }
        ] }),
        ),
        (
            "list-map-keys",
            json!({ "ports": [{ "name": "a", "port": 1 }, { "name": "a", "port": 2 }] }),
        ),
        ("list-set", json!({ "hosts": ["a.example", "a.example"] })),
        ("min-properties", json!({ "labels": {} })),
        ("max-properties", json!({ "labels": { "a": "1", "b": "2", "c": "3" } })),
    ];
    if env.is_embedded() {
        println!("skipping the CEL rule case: kdev-testenv accepts CEL rules without evaluating them");
    } else {
        cases.push(("cel", json!({ "replicas": 6, "tier": "small" })));
    }
    for (case, spec) in cases {
        let bad = object(&format!("bad-{case}"), json!({}));
        let mut wire = serde_json::to_value(&bad).expect("serialize");
        if let (Some(Value::Object(s)), Value::Object(spec)) = (wire.get_mut("spec"), spec) {
            s.extend(spec);
        }
        let raw: DynamicObject = serde_json::from_value(wire).expect("an object");
        let result = dynamic.create(&PostParams::default(), &raw).await;
        match result {
            Err(kube_client::Error::Api(status)) => assert_eq!(status.code, 422, "{case}: {status:?}"),
            other => panic!("{case}: expected 422, got {other:?}"),
        }
    }
    crds.delete(&name, &DeleteParams::default())
        .await
        .expect("delete the CRD");
}
