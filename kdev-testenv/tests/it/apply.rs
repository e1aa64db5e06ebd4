//! Server-side apply: what a manager stops applying, creating through apply, and the order of
//! merged lists.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::Api;
use kube_client::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::{raw, release, setup};

fn configmap(body: Value) -> Value {
    let mut cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" } });
    if let (Some(cm), Value::Object(more)) = (cm.as_object_mut(), body) {
        cm.extend(more);
    }
    cm
}

fn managers(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Vec<String> {
    let mut out: Vec<String> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    out.sort();
    out
}

/// A raw apply of `body` to the ConfigMap `name` of `ns` by the manager `m`.
fn raw_apply(ns: &str, name: &str, body: &Value) -> http::Request<Vec<u8>> {
    http::Request::patch(format!("/api/v1/namespaces/{ns}/configmaps/{name}?fieldManager=m"))
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(body).expect("json"))
        .expect("a request")
}

#[tokio::test]
async fn a_sole_manager_applying_nothing_gives_up_its_fields_and_its_entry() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.patch(
        "cfg",
        &PatchParams::apply("a"),
        &Patch::Apply(configmap(json!({ "data": { "k": "v" } }))),
    )
    .await
    .expect("first apply");
    let cm = api
        .patch("cfg", &PatchParams::apply("a"), &Patch::Apply(configmap(json!({}))))
        .await
        .expect("an apply of nothing");
    assert_eq!(cm.data, None, "the field a stopped applying is gone");
    assert!(managers(&cm.metadata).is_empty(), "{:?}", cm.metadata.managed_fields);
    // Nobody owns data.k any more: another manager sets it without a conflict.
    let cm = api
        .patch(
            "cfg",
            &PatchParams::apply("b"),
            &Patch::Apply(configmap(json!({ "data": { "k": "z" } }))),
        )
        .await
        .expect("a second manager's apply does not conflict");
    assert_eq!(cm.data, Some([("k".to_string(), "z".to_string())].into()));
    assert_eq!(managers(&cm.metadata), ["b"]);
}

#[tokio::test]
async fn fields_a_manager_stops_applying_are_removed_not_left_empty() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let labelled = configmap(json!({ "metadata": { "name": "cfg", "labels": { "l": "1" } }, "data": { "k": "v" } }));
    api.patch("cfg", &PatchParams::apply("a"), &Patch::Apply(labelled))
        .await
        .expect("apply with a label");
    let cm = api
        .patch(
            "cfg",
            &PatchParams::apply("a"),
            &Patch::Apply(configmap(json!({ "data": { "k": "v" } }))),
        )
        .await
        .expect("apply without it");
    assert_eq!(cm.metadata.labels, None, "no `labels: {{}}` left behind");

    let deployments: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let deployment = |container: Value| {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
                "spec": { "selector": { "matchLabels": { "app": "web" } },
                          "template": { "metadata": { "labels": { "app": "web" } },
                                        "spec": { "containers": [container] } } } })
    };
    let with_env = json!({ "name": "main", "image": "nginx", "env": [{ "name": "X", "value": "1" }] });
    deployments
        .patch("web", &PatchParams::apply("a"), &Patch::Apply(deployment(with_env)))
        .await
        .expect("apply with env");
    let d = deployments
        .patch(
            "web",
            &PatchParams::apply("a"),
            &Patch::Apply(deployment(json!({ "name": "main", "image": "nginx" }))),
        )
        .await
        .expect("apply without env");
    let containers = d.spec.template.spec.map(|s| s.containers).unwrap_or_default();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].env, None, "no `env: []` left behind");
}

#[tokio::test]
async fn a_custom_resource_keeps_no_empty_list_its_manager_stopped_applying() {
    let (env, ns) = setup().await;
    let group = super::unique_group("t");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{group}") },
        "spec": { "group": group, "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{ "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": {
                "type": "object",
                "properties": { "spec": { "type": "object", "properties": {
                    "size": { "type": "integer" },
                    "items": { "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                               "items": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" } } } },
                    "tags": { "type": "array", "x-kubernetes-list-type": "set", "items": { "type": "string" } }
                } } } } } }]
        }
    }))
    .expect("a valid CRD");
    env.install_crd(&crd).await.expect("install the CRD");
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    let api: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ar);
    let widget = |spec: Value| json!({ "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": { "name": "w" }, "spec": spec });
    api.patch(
        "w",
        &PatchParams::apply("a"),
        &Patch::Apply(widget(json!({ "items": [{ "name": "x" }], "tags": ["a"] }))),
    )
    .await
    .expect("first apply");
    let w = api
        .patch(
            "w",
            &PatchParams::apply("a"),
            &Patch::Apply(widget(json!({ "size": 1 }))),
        )
        .await
        .expect("second apply");
    assert_eq!(w.data["spec"], json!({ "size": 1 }));
}

#[tokio::test]
async fn apply_creates_an_object_whose_configuration_names_a_resource_version() {
    let (env, ns) = setup().await;
    let body = json!({ "apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": { "name": "c9", "resourceVersion": "12345" }, "data": { "k": "v" } });
    let answer = raw(&env, raw_apply(&ns, "c9", &body)).await;
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(answer.body["data"], json!({ "k": "v" }));
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.get("c9").await.expect("created");
}

#[tokio::test]
async fn apply_refuses_to_create_an_object_whose_configuration_names_a_uid() {
    let (env, ns) = setup().await;
    let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c10", "uid": "abc" } });
    let answer = raw(&env, raw_apply(&ns, "c10", &body)).await;
    assert_eq!(
        (answer.code, &answer.body["reason"]),
        (409, &json!("Conflict")),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["message"],
        "Operation cannot be fulfilled on configmaps \"c10\": uid mismatch: the provided object specified uid abc, \
         and no existing object was found"
    );
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    assert!(api.get_opt("c10").await.expect("get").is_none(), "nothing created");
}

#[tokio::test]
async fn apply_puts_list_items_in_the_applied_order() {
    let (env, ns) = setup().await;
    let deployments: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let deployment = |containers: Value| {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
                "spec": { "selector": { "matchLabels": { "app": "web" } },
                          "template": { "metadata": { "labels": { "app": "web" } },
                                        "spec": { "containers": containers } } } })
    };
    deployments
        .patch(
            "web",
            &PatchParams::apply("a"),
            &Patch::Apply(deployment(json!([{ "name": "main", "image": "nginx" }]))),
        )
        .await
        .expect("first manager");
    let d = deployments
        .patch(
            "web",
            &PatchParams::apply("b"),
            &Patch::Apply(deployment(
                json!([{ "name": "sidecar", "image": "busybox" }, { "name": "main" }]),
            )),
        )
        .await
        .expect("second manager");
    let names: Vec<String> = d
        .spec
        .template
        .spec
        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    assert_eq!(names, ["sidecar", "main"]);

    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let with = |finalizers: [&str; 2]| configmap(json!({ "metadata": { "name": "cfg", "finalizers": finalizers } }));
    api.patch(
        "cfg",
        &PatchParams::apply("a"),
        &Patch::Apply(with(["example.com/a", "example.com/b"])),
    )
    .await
    .expect("first manager");
    let cm = api
        .patch(
            "cfg",
            &PatchParams::apply("b"),
            &Patch::Apply(with(["example.com/c", "example.com/b"])),
        )
        .await
        .expect("second manager");
    assert_eq!(
        cm.metadata.finalizers.unwrap_or_default(),
        ["example.com/a", "example.com/c", "example.com/b"]
    );
    release(&api, "cfg").await;
}
