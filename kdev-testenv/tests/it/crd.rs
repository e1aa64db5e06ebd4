//! CustomResourceDefinitions: establishment, discovery, schema validation, defaulting,
//! pruning, subresources, versions, and deletion of a CRD's resources.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube_client::discovery::Discovery;
use kube_client::{Api, Client};
use serde_json::{Value, json};

use super::{code, eventually, setup, unique_group};

/// A CRD `widgets.<group>` with a unique group per test, so tests on one cluster never collide.
fn crd(group: &str, scope: &str) -> CustomResourceDefinition {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": { "type": "integer", "minimum": 1, "maximum": 10 },
                    "color": { "type": "string", "enum": ["red", "blue"], "default": "red" },
                    "replicas": { "type": "integer" }
                }
            },
            "status": { "type": "object", "properties": { "ready": { "type": "boolean" }, "replicas": { "type": "integer" } } }
        }
    });
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{group}") },
        "spec": {
            "group": group, "scope": scope,
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wg"] },
            "versions": [
                { "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": schema },
                  "subresources": { "status": {}, "scale": { "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas" } } },
                { "name": "v1beta1", "served": true, "storage": false, "schema": { "openAPIV3Schema": schema },
                  "subresources": { "status": {} } }
            ]
        }
    }))
    .expect("a valid CRD")
}

/// Installs `crd`; on a real cluster `env` deletes it when dropped, also after a failure.
async fn install(env: &kdev_testenv::TestEnv, crd: &CustomResourceDefinition) {
    env.install_crd(crd).await.expect("install the CRD");
}

async fn uninstall(client: &Client, group: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(&format!("widgets.{group}"), &DeleteParams::default()).await;
}

fn widgets(client: &Client, group: &str, version: &str, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, "Widget"), "widgets");
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn widget(group: &str, version: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({ "apiVersion": format!("{group}/{version}"), "kind": "Widget", "metadata": { "name": name }, "spec": spec }))
        .expect("a widget")
}

/// Sets the schema of `spec.<name>` in every version of `def`.
fn set_spec_property(def: &mut CustomResourceDefinition, name: &str, property: Value) {
    for v in &mut def.spec.versions {
        let mut schema = serde_json::to_value(&v.schema).expect("json");
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"][name] = property.clone();
        v.schema = serde_json::from_value(schema).expect("schema");
    }
}

/// Applies `change` to the installed CRD of `group` and writes it back.
async fn change_crd(client: &Client, group: &str, change: impl FnOnce(&mut CustomResourceDefinition)) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("widgets.{group}");
    let mut current = crds.get(&name).await.expect("get the CRD");
    change(&mut current);
    crds.replace(&name, &PostParams::default(), &current)
        .await
        .expect("update the CRD");
}

#[tokio::test]
async fn an_established_crd_is_discoverable_and_serves_its_resources() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    // A real API server publishes a new group's discovery a moment after Established.
    let discovery = eventually("the CRD's group to be discoverable", || async {
        match Discovery::new(env.client()).filter(&[group.as_str()]).run().await {
            Ok(d) => d.get(&group).is_some().then_some(d),
            Err(e) => {
                // Shown with the test's output should it time out.
                eprintln!("discovery of {group} failed, trying again: {e}");
                None
            }
        }
    })
    .await;
    let g = discovery.get(&group).expect("the CRD's group is discoverable");
    assert_eq!(g.preferred_version_or_latest(), "v1");
    let api = widgets(&env.client(), &group, "v1", &ns);
    let w = api
        .create(
            &PostParams::default(),
            &widget(&group, "v1", "w1", json!({ "size": 3 })),
        )
        .await
        .expect("create");
    assert_eq!(w.metadata.generation, Some(1));
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn custom_resources_are_validated_defaulted_and_pruned() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    match api
        .create(
            &PostParams::default(),
            &widget(&group, "v1", "big", json!({ "size": 11 })),
        )
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(s.message.contains("spec.size"), "{}", s.message);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    match api
        .create(&PostParams::default(), &widget(&group, "v1", "nosize", json!({})))
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.size: Required value"), "{}", s.message);
            // Without CEL rules in the schema there is nothing to report as skipped.
            assert!(
                !s.message.contains("validation rules were not checked"),
                "{}",
                s.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(
        code(
            api.create(
                &PostParams::default(),
                &widget(&group, "v1", "green", json!({ "size": 1, "color": "green" }))
            )
            .await
        ),
        422
    );
    let w = api
        .create(
            &PostParams::default(),
            &widget(&group, "v1", "ok", json!({ "size": 2, "unknown": true })),
        )
        .await
        .expect("create");
    assert_eq!(
        w.data["spec"],
        json!({ "size": 2, "color": "red" }),
        "defaulted and pruned"
    );
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn the_status_subresource_of_a_custom_resource_is_separate() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 2 })))
        .await
        .expect("create");
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "ready": true } })),
        )
        .await
        .expect("patch main");
    assert!(
        w.data.get("status").is_none_or(|s| s.get("ready").is_none()),
        "status ignored on the main endpoint"
    );
    let w = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "ready": true } })),
        )
        .await
        .expect("patch status");
    assert_eq!(w.data["status"]["ready"], json!(true));
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "a status change does not bump the generation"
    );
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn every_served_version_reads_the_same_objects() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    widgets(&env.client(), &group, "v1", &ns)
        .create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 2 })))
        .await
        .expect("create");
    let old = widgets(&env.client(), &group, "v1beta1", &ns)
        .get("w")
        .await
        .expect("get through v1beta1");
    assert_eq!(old.types.map(|t| t.api_version), Some(format!("{group}/v1beta1")));
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn cluster_scoped_custom_resources_have_no_namespace() {
    let (env, _ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Cluster")).await;
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    let api: Api<DynamicObject> = Api::all_with(env.client(), &ar);
    let w = api
        .create(
            &PostParams::default(),
            &widget(&group, "v1", "global", json!({ "size": 1 })),
        )
        .await
        .expect("create");
    assert_eq!(w.metadata.namespace, None);
    api.delete("global", &DeleteParams::default()).await.expect("delete");
    uninstall(&env.client(), &group).await;
}

/// kubebuilder's best-known install failure: a list-map key that is neither required nor
/// defaulted.
#[tokio::test]
async fn a_list_map_key_must_be_required_or_defaulted() {
    let (env, _ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    set_spec_property(
        &mut def,
        "ports",
        json!({
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": { "type": "object", "properties": { "name": { "type": "string" }, "port": { "type": "integer" } } }
        }),
    );
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    match crds.create(&PostParams::default(), &def).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains(
                    "properties[ports].items.properties[name].default: Required value: this property is in \
                     x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
                "{}",
                s.message
            );
        }
        other => {
            uninstall(&env.client(), &group).await;
            panic!("expected Invalid, got {other:?}");
        }
    }
}

#[tokio::test]
async fn an_invalid_crd_is_rejected() {
    let (env, _ns) = setup().await;
    let group = unique_group("t");
    let mut bad = crd(&group, "Namespaced");
    for v in &mut bad.spec.versions {
        v.storage = true;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    match crds.create(&PostParams::default(), &bad).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message
                    .contains("must have exactly one version marked as storage version"),
                "{}",
                s.message
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_resources_and_stops_serving_them() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 2 })))
        .await
        .expect("create");
    uninstall(&env.client(), &group).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let name = format!("widgets.{group}");
    eventually("the CRD to go", || async {
        crds.get_opt(&name).await.ok().filter(Option::is_none)
    })
    .await;
    eventually("the resource to stop being served", || async {
        matches!(api.get("w").await, Err(kube_client::Error::Api(s)) if s.code == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_merges_map_lists_of_custom_resources_by_key() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    set_spec_property(
        &mut def,
        "ports",
        json!({
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" }, "port": { "type": "integer" } } }
        }),
    );
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let apply = |manager: &'static str, port: Value| {
        let api = api.clone();
        let obj = json!({ "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": { "name": "w" },
                          "spec": { "size": 1, "ports": [port] } });
        async move { api.patch("w", &PatchParams::apply(manager), &Patch::Apply(&obj)).await }
    };
    apply("a", json!({ "name": "http", "port": 80 }))
        .await
        .expect("first manager");
    let w = apply("b", json!({ "name": "https", "port": 443 }))
        .await
        .expect("second manager");
    let names: Vec<&str> = w.data["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["http", "https"], "each manager owns its own list entry");
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn a_crd_without_list_kind_or_singular_gets_them_defaulted() {
    let (env, _ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    def.spec.names.list_kind = None;
    def.spec.names.singular = None;
    install(&env, &def).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let got = crds.get(&format!("widgets.{group}")).await.expect("get");
    assert_eq!(got.spec.names.list_kind.as_deref(), Some("WidgetList"));
    assert_eq!(got.spec.names.singular.as_deref(), Some("widget"));
    uninstall(&env.client(), &group).await;
}

/// A mutating webhook sees a custom resource as kube-apiserver has decoded it: pruned and
/// defaulted by its schema, not as the client sent it (embedded server only: the webhook is
/// served inside the test process).
#[tokio::test]
async fn a_mutating_webhook_sees_a_custom_resource_pruned_and_defaulted() {
    use super::webhook_server::{allow, env_for, needs_local_webhooks, serve};
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    if !needs_local_webhooks() {
        return;
    }
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Value>::new()));
    let record = seen.clone();
    let hooks = serve(move |_path, review| {
        record.lock().push(review["request"]["object"]["spec"].clone());
        allow(review)
    })
    .await;
    let (env, ns) = env_for(&hooks).await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let config = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": format!("decoded.{group}") },
        "webhooks": [{
            "name": format!("decoded.{group}"), "clientConfig": hooks.client_config("/decoded"),
            "rules": [{ "operations": ["CREATE"], "apiGroups": [group.clone()], "apiVersions": ["v1"], "resources": ["widgets"] }],
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
        }],
    }))
    .expect("a configuration");
    configs
        .create(&PostParams::default(), &config)
        .await
        .expect("create configuration");
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(
        &PostParams::default(),
        &widget(&group, "v1", "seen", json!({ "size": 2, "junk": true })),
    )
    .await
    .expect("create");
    assert_eq!(
        seen.lock().as_slice(),
        [json!({ "size": 2, "color": "red" })],
        "the unknown field pruned and the default applied before the webhook"
    );
}

/// `(manager, operation, subresource)` of each managed fields entry that owns `field` (a top-level
/// `f:` element such as `f:status`).
fn owners_of(obj: &DynamicObject, field: &str) -> Vec<(String, String, String)> {
    let mut owners: Vec<(String, String, String)> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.fields_v1.as_ref().is_some_and(|f| f.0.get(field).is_some()))
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.subresource.clone().unwrap_or_default(),
            )
        })
        .collect();
    owners.sort();
    owners
}

#[tokio::test]
async fn server_side_apply_through_status_is_its_own_managed_fields_entry() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let object = |body: Value| {
        let mut obj = json!({ "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": { "name": "w" } });
        obj.as_object_mut()
            .expect("an object")
            .extend(body.as_object().cloned().unwrap_or_default());
        obj
    };
    api.patch(
        "w",
        &PatchParams::apply("ctl"),
        &Patch::Apply(object(json!({ "spec": { "size": 2 } }))),
    )
    .await
    .expect("apply the spec");
    let w = api
        .patch_status(
            "w",
            &PatchParams::apply("ctl"),
            &Patch::Apply(object(json!({ "status": { "ready": true } }))),
        )
        .await
        .expect("apply the status");
    assert_eq!(w.data["status"]["ready"], json!(true));
    assert_eq!(w.data["spec"]["size"], json!(2), "a status apply leaves the spec alone");
    assert_eq!(owners_of(&w, "f:spec"), [("ctl".into(), "Apply".into(), String::new())]);
    assert_eq!(
        owners_of(&w, "f:status"),
        [("ctl".into(), "Apply".into(), "status".into())]
    );

    // Another manager changing the status conflicts with the status entry, unless it forces.
    let theirs = object(json!({ "status": { "ready": false } }));
    match api
        .patch_status("w", &PatchParams::apply("other"), &Patch::Apply(&theirs))
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(
                s.message.contains(r#"conflict with "ctl" with subresource "status""#),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let w = api
        .patch_status("w", &PatchParams::apply("other").force(), &Patch::Apply(&theirs))
        .await
        .expect("a forced status apply");
    assert_eq!(w.data["status"]["ready"], json!(false));
    assert_eq!(
        owners_of(&w, "f:status"),
        [("other".into(), "Apply".into(), "status".into())]
    );

    // The spec cannot be set through /status, so it cannot conflict there either.
    let w = api
        .patch_status(
            "w",
            &PatchParams::apply("other"),
            &Patch::Apply(object(json!({ "spec": { "size": 5 }, "status": { "ready": false } }))),
        )
        .await
        .expect("a status apply that names the spec");
    assert_eq!(w.data["spec"]["size"], json!(2));
    assert_eq!(owners_of(&w, "f:spec"), [("ctl".into(), "Apply".into(), String::new())]);
    uninstall(&env.client(), &group).await;
}

#[tokio::test]
async fn writes_to_an_object_with_a_status_subresource_never_own_its_status() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let applied = json!({ "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": { "name": "w" },
                          "spec": { "size": 1 }, "status": { "ready": true } });
    let w = api
        .patch("w", &PatchParams::apply("ctl"), &Patch::Apply(&applied))
        .await
        .expect("apply");
    assert!(
        w.data.get("status").is_none_or(|s| s.get("ready").is_none()),
        "{:?}",
        w.data
    );
    assert_eq!(owners_of(&w, "f:status"), []);

    // A merge patch of the status records an Update entry for the status subresource.
    let pp = PatchParams {
        field_manager: Some("status-writer".into()),
        ..PatchParams::default()
    };
    let w = api
        .patch_status("w", &pp, &Patch::Merge(json!({ "status": { "replicas": 3 } })))
        .await
        .expect("patch the status");
    assert_eq!(
        owners_of(&w, "f:status"),
        [("status-writer".into(), "Update".into(), "status".into())]
    );
    assert_eq!(owners_of(&w, "f:spec"), [("ctl".into(), "Apply".into(), String::new())]);
    uninstall(&env.client(), &group).await;
}

/// Patterns are Go regular expressions: `\d` is ASCII, and a brace that repeats nothing is a
/// literal.
#[tokio::test]
async fn schema_patterns_are_go_regular_expressions() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    set_spec_property(&mut def, "code", json!({ "type": "string", "pattern": r"^\d+$" }));
    set_spec_property(&mut def, "braces", json!({ "type": "string", "pattern": "^a{}$" }));
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(
        &PostParams::default(),
        &widget(
            &group,
            "v1",
            "ascii",
            json!({ "size": 1, "code": "12", "braces": "a{}" }),
        ),
    )
    .await
    .expect("ASCII digits and a literal brace match");
    let arabic = widget(&group, "v1", "arabic", json!({ "size": 1, "code": "١٢" }));
    assert_eq!(code(api.create(&PostParams::default(), &arabic).await), 422);
    uninstall(&env.client(), &group).await;
}

/// String formats are checked as kube-apiserver's strfmt checks them: a URI is what Go's
/// `url.ParseRequestURI` accepts, ISBNs and card numbers carry a valid check digit, and an
/// unknown format accepts anything.
#[tokio::test]
async fn string_formats_are_checked_as_kube_apiserver_checks_them() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    for (name, format) in [
        ("link", "uri"),
        ("book", "isbn"),
        ("card", "creditcard"),
        ("ssn", "ssn"),
        ("shade", "rgbcolor"),
        // Format names are compared without their dashes, as go-openapi compares them.
        ("spare", "credit-card"),
        // Checked since Kubernetes 1.34.
        ("label", "k8s-short-name"),
        ("note", "no-such-format"),
    ] {
        set_spec_property(&mut def, name, json!({ "type": "string", "format": format }));
    }
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let good = json!({
        "size": 1, "link": "https://example.com/a?b=c", "book": "978-0321751041",
        "card": "4111 1111 1111 1111", "ssn": "123-45-6789", "shade": "rgb(0, 128, 255)",
        "spare": "4111111111111111", "label": "web-1", "note": "anything"
    });
    api.create(&PostParams::default(), &widget(&group, "v1", "good", good))
        .await
        .expect("well-formed values are accepted");
    let bad = json!({
        "size": 1, "link": "example.com", "book": "978-0321751042",
        "card": "4111 1111 1111 1112", "ssn": "123456789", "shade": "rgb(256,0,0)",
        "spare": "4111111111111112", "label": "Web_1"
    });
    match api
        .create(&PostParams::default(), &widget(&group, "v1", "bad", bad))
        .await
    {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            for want in [
                r#"spec.link in body must be of type uri: "example.com""#,
                r#"spec.book in body must be of type isbn: "978-0321751042""#,
                r#"spec.card in body must be of type creditcard: "4111 1111 1111 1112""#,
                r#"spec.ssn in body must be of type ssn: "123456789""#,
                r#"spec.shade in body must be of type rgbcolor: "rgb(256,0,0)""#,
                r#"spec.spare in body must be of type credit-card: "4111111111111112""#,
                r#"spec.label in body must be of type k8s-short-name: "Web_1""#,
            ] {
                assert!(s.message.contains(want), "{want} in {}", s.message);
            }
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    uninstall(&env.client(), &group).await;
}

/// Validation ratcheting (GA in Kubernetes 1.33): after a schema is tightened, an object that
/// breaks it can still be updated as long as the offending value stays as it was.
#[tokio::test]
async fn an_update_keeps_a_value_a_tightened_schema_refuses() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let size = |max: i64| json!({ "type": "integer", "minimum": 1, "maximum": max });
    let mut def = crd(&group, "Namespaced");
    set_spec_property(&mut def, "size", size(100));
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(
        &PostParams::default(),
        &widget(&group, "v1", "big", json!({ "size": 20 })),
    )
    .await
    .expect("create within the first schema");

    change_crd(&env.client(), &group, |def| set_spec_property(def, "size", size(10))).await;
    eventually("the tightened schema to apply", || async {
        let probe = widget(&group, "v1", "probe", json!({ "size": 20 }));
        (code(api.create(&PostParams::default(), &probe).await) == 422).then_some(())
    })
    .await;

    let labelled = json!({ "metadata": { "labels": { "seen": "yes" } } });
    api.patch("big", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .expect("an update that leaves spec.size alone is ratcheted");
    api.patch_status(
        "big",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "ready": true } })),
    )
    .await
    .expect("a status write is ratcheted too");
    let bigger = json!({ "spec": { "size": 30 } });
    assert_eq!(
        code(api.patch("big", &PatchParams::default(), &Patch::Merge(&bigger)).await),
        422,
        "a changed value is validated"
    );
    uninstall(&env.client(), &group).await;
}

/// Defaults added to a schema apply to objects stored before, as they are read.
#[tokio::test]
async fn a_new_default_applies_to_objects_stored_before() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let before = api
        .create(
            &PostParams::default(),
            &widget(&group, "v1", "old", json!({ "size": 1 })),
        )
        .await
        .expect("create");
    change_crd(&env.client(), &group, |def| {
        set_spec_property(def, "mode", json!({ "type": "string", "default": "fast" }));
    })
    .await;
    let read = eventually("the new default on the stored object", || async {
        let w = api.get("old").await.ok()?;
        (w.data["spec"]["mode"] == json!("fast")).then_some(w)
    })
    .await;
    assert_eq!(
        read.metadata.resource_version, before.metadata.resource_version,
        "defaulting on read writes nothing"
    );
    uninstall(&env.client(), &group).await;
}

/// Unknown fields of a custom resource: `fieldValidation=Strict` refuses them, the default
/// (`Warn`) drops them with a warning.
#[tokio::test]
async fn unknown_fields_are_refused_under_strict_and_warned_about_by_default() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let typo = widget(&group, "v1", "typo", json!({ "size": 1, "colour": "red" }));
    let post = |query: &str| {
        http::Request::post(format!("/apis/{group}/v1/namespaces/{ns}/widgets{query}"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&typo).expect("json"))
            .expect("a request")
    };
    match env.client().request_text(post("?fieldValidation=Strict")).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 400, "{s:?}");
            assert!(
                s.message
                    .ends_with(r#"cannot be handled as a Widget: strict decoding error: unknown field "spec.colour""#),
                "{}",
                s.message
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let answer = super::raw(&env, post("")).await;
    assert_eq!(answer.code, 201);
    assert_eq!(answer.warnings, [r#"299 - "unknown field \"spec.colour\"""#]);
    let stored = api.get("typo").await.expect("created");
    assert!(stored.data["spec"].get("colour").is_none(), "pruned");

    // A patch is refused as kube-apiserver's patch handler refuses it: 422 on field `patch`.
    let strict = PatchParams::default().validation_strict();
    let patch = json!({ "spec": { "sise": 2 } });
    match api.patch("typo", &strict, &Patch::Merge(&patch)).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
            assert!(
                s.message
                    .contains(r#"strict decoding error: unknown field "spec.sise""#),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let kept = api.get("typo").await.expect("kept");
    assert_eq!(
        kept.metadata.resource_version, stored.metadata.resource_version,
        "unchanged"
    );
    uninstall(&env.client(), &group).await;
}

/// Server-side apply converts the applied object to its schema's typed form whatever
/// `fieldValidation` says: a field the schema does not declare fails with kube-apiserver's 500
/// (kubernetes/kubernetes#139253), and nothing is written.
#[tokio::test]
async fn server_side_apply_refuses_fields_the_schema_does_not_declare() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let mut applied = widget(&group, "v1", "w", json!({ "size": 1, "bogus": true }));
    applied.metadata.namespace = Some(ns.clone());
    for params in [PatchParams::apply("ctl"), PatchParams::apply("ctl").validation_ignore()] {
        match api.patch("w", &params, &Patch::Apply(&applied)).await {
            Err(kube_client::Error::Api(s)) => {
                assert_eq!(s.code, 500, "{s:?}");
                assert_eq!(
                    s.message,
                    format!(
                        "failed to create typed patch object ({ns}/w; {group}/v1, Kind=Widget): .spec.bogus: field not \
                         declared in schema"
                    )
                );
            }
            other => panic!("expected 500, got {other:?}"),
        }
    }
    assert_eq!(code(api.get("w").await), 404, "nothing was created");
    applied.data["spec"] = json!({ "size": 1 });
    api.patch("w", &PatchParams::apply("ctl"), &Patch::Apply(&applied))
        .await
        .expect("an apply of declared fields");
    uninstall(&env.client(), &group).await;
}

/// `TestEnv::install_crd` creates, or replaces, a CRD and returns once the API server serves it.
#[tokio::test]
async fn install_crd_creates_or_replaces_and_waits_until_established() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    let installed = env.install_crd(&def).await.expect("install");
    let established = |c: &CustomResourceDefinition| {
        c.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    };
    assert!(established(&installed));
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 2 })))
        .await
        .expect("the kind is served at once");

    set_spec_property(&mut def, "mode", json!({ "type": "string", "default": "fast" }));
    let replaced = env.install_crd(&def).await.expect("install again");
    assert!(established(&replaced));
    let schema = serde_json::to_value(&replaced.spec.versions[0].schema).expect("json");
    assert_eq!(
        schema.pointer("/openAPIV3Schema/properties/spec/properties/mode/default"),
        Some(&json!("fast")),
        "the second install replaced the first"
    );

    let mut broken = crd(&unique_group("t"), "Namespaced");
    broken.spec.scope = "Everywhere".into();
    match env.install_crd(&broken).await {
        Err(kdev_testenv::Error::Crd {
            source: kube_client::Error::Api(s),
            ..
        }) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("expected a refused CRD, got {other:?}"),
    }
    uninstall(&env.client(), &group).await;
}

/// A CRD of `group` named `<plural>.<group>` whose names are `names` (plural, kind, ...).
fn named_crd(group: &str, names: Value) -> CustomResourceDefinition {
    let mut def = serde_json::to_value(crd(group, "Namespaced")).expect("json");
    def["metadata"]["name"] = json!(format!("{}.{group}", names["plural"].as_str().expect("a plural")));
    def["spec"]["names"] = names;
    serde_json::from_value(def).expect("a valid CRD")
}

fn condition(crd: &CustomResourceDefinition, type_: &str) -> Option<(String, String, String)> {
    let c = crd
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test]
async fn a_crd_whose_names_another_crd_of_its_group_has_is_not_established_until_they_are_free() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());

    // The same kind under another plural: kube-apiserver's naming controller refuses the kind.
    let gadgets = named_crd(
        &group,
        json!({ "plural": "gadgets", "singular": "gadget", "kind": "Widget", "listKind": "GadgetList" }),
    );
    match env.install_crd(&gadgets).await {
        Err(kdev_testenv::Error::CrdNotEstablished { reason, .. }) => assert_eq!(
            reason, r#"NamesAccepted is False (KindConflict): "Widget" is already in use"#,
            "{reason}"
        ),
        other => panic!("expected a names conflict, got {other:?}"),
    }
    let refused = crds.get(&format!("gadgets.{group}")).await.expect("the CRD is stored");
    assert_eq!(
        condition(&refused, "Established"),
        Some((
            "False".into(),
            "NotAccepted".into(),
            "not all names are accepted".into()
        ))
    );
    // The names that were free are granted; the kind is not.
    let accepted = refused
        .status
        .as_ref()
        .and_then(|s| s.accepted_names.as_ref())
        .expect("acceptedNames");
    assert_eq!(accepted.plural, "gadgets");
    assert_eq!(accepted.list_kind.as_deref(), Some("GadgetList"));
    assert_eq!(accepted.kind, "");
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "gadgets");
    let gadget_api: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ar);
    assert_eq!(
        code(gadget_api.list(&Default::default()).await),
        404,
        "a CRD not established is not served"
    );

    // A short name in use: refused, with the message of each refused name.
    let gizmos = named_crd(
        &group,
        json!({ "plural": "gizmos", "kind": "Gizmo", "shortNames": ["wg", "widget", "gz"] }),
    );
    match env.install_crd(&gizmos).await {
        Err(kdev_testenv::Error::CrdNotEstablished { reason, .. }) => assert_eq!(
            reason,
            r#"NamesAccepted is False (ShortNamesConflict): ["wg" is already in use, "widget" is already in use]"#,
        ),
        other => panic!("expected a short names conflict, got {other:?}"),
    }

    // Once the CRD holding the names is gone, both are accepted and served.
    uninstall(&env.client(), &group).await;
    for name in ["gadgets", "gizmos"] {
        let name = format!("{name}.{group}");
        eventually("the names to be accepted", || async {
            let c = crds.get(&name).await.ok()?;
            (condition(&c, "Established").map(|c| c.0) == Some("True".into())).then_some(())
        })
        .await;
    }
    eventually("the gadgets to be served", || async {
        gadget_api.list(&Default::default()).await.ok()
    })
    .await;
    for name in ["gadgets", "gizmos"] {
        let _ = crds.delete(&format!("{name}.{group}"), &DeleteParams::default()).await;
    }
}

/// A CRD may hand one of its own names to another of its fields: its old singular becomes a
/// short name once the new singular is granted.
#[tokio::test]
async fn a_crd_can_move_its_singular_into_its_short_names() {
    let (env, _ns) = setup().await;
    let group = unique_group("t");
    install(&env, &crd(&group, "Namespaced")).await;
    change_crd(&env.client(), &group, |c| {
        c.spec.names.singular = Some("wdg".into());
        c.spec.names.short_names = Some(vec!["wg".into(), "widget".into()]);
    })
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let name = format!("widgets.{group}");
    let accepted = eventually("the new names to be accepted", || async {
        let c = crds.get(&name).await.ok()?;
        let names = c.status.as_ref()?.accepted_names.clone()?;
        (names.singular.as_deref() == Some("wdg")
            && names.short_names.as_deref() == Some(&["wg".to_string(), "widget".to_string()][..]))
        .then_some(c)
    })
    .await;
    assert_eq!(
        condition(&accepted, "NamesAccepted").map(|c| c.0),
        Some("True".to_string())
    );
    uninstall(&env.client(), &group).await;
}

/// A quantity field as controller-gen writes it (int-or-string, `anyOf` integer or string, the
/// quantity pattern): a number or a quantity is stored, anything else refused.
#[tokio::test]
async fn a_quantity_field_takes_numbers_and_quantities_only() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = crd(&group, "Namespaced");
    set_spec_property(
        &mut def,
        "storage",
        json!({
            "anyOf": [{ "type": "integer" }, { "type": "string" }],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": true,
        }),
    );
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    let pp = PostParams::default();
    for (name, storage) in [("gi", json!("1Gi")), ("number", json!(5)), ("milli", json!("500m"))] {
        api.create(
            &pp,
            &widget(&group, "v1", name, json!({ "size": 1, "storage": storage })),
        )
        .await
        .unwrap_or_else(|e| panic!("{storage}: {e}"));
    }
    let refused = api
        .create(
            &pp,
            &widget(&group, "v1", "lots", json!({ "size": 1, "storage": "lots" })),
        )
        .await;
    assert_eq!(code(refused), 422);
    uninstall(&env.client(), &group).await;
}

/// A custom resource's Table: the CRD's printer columns, an undocumented one described by its
/// path as kube-apiserver's table convertor does.
#[tokio::test]
async fn a_custom_resource_table_describes_its_columns() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let mut def = serde_json::to_value(crd(&group, "Namespaced")).expect("json");
    def["spec"]["versions"][0]["additionalPrinterColumns"] =
        json!([{ "name": "Size", "type": "integer", "jsonPath": ".spec.size" }]);
    let def: CustomResourceDefinition = serde_json::from_value(def).expect("a CRD");
    install(&env, &def).await;
    let api = widgets(&env.client(), &group, "v1", &ns);
    api.create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 3 })))
        .await
        .expect("create");
    let request = http::Request::get(format!("/apis/{group}/v1/namespaces/{ns}/widgets"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("request");
    let table = env.send(request).await.expect("send").json();
    let size = &table["columnDefinitions"][1];
    assert_eq!(size["name"], "Size", "{table}");
    assert_eq!(
        size["description"],
        "Custom resource definition column (in JSONPath format): .spec.size"
    );
    assert_eq!(table["rows"][0]["cells"][1], 3);
    uninstall(&env.client(), &group).await;
}

/// Tests running at once may install the same CRD (a derived type has one fixed name): on a
/// real cluster, dropping one environment leaves the CRD to the others, and the last one
/// deletes it. (On the embedded server every environment has its own.)
#[tokio::test]
async fn environments_installing_one_crd_share_it_until_the_last_is_dropped() {
    let group = unique_group("t");
    let name = format!("widgets.{group}");
    let (first, _) = setup().await;
    let (second, ns) = setup().await;
    install(&first, &crd(&group, "Namespaced")).await;
    install(&second, &crd(&group, "Namespaced")).await;
    drop(first);

    let crds: Api<CustomResourceDefinition> = Api::all(second.client());
    let kept = crds.get(&name).await.expect("the CRD outlives the first environment");
    assert!(kept.metadata.deletion_timestamp.is_none());
    let api = widgets(&second.client(), &group, "v1", &ns);
    api.create(&PostParams::default(), &widget(&group, "v1", "w", json!({ "size": 2 })))
        .await
        .expect("the kind is still served");
    drop(second);

    let (third, _) = setup().await;
    let crds: Api<CustomResourceDefinition> = Api::all(third.client());
    eventually("the last environment to delete the CRD", || async {
        crds.get_opt(&name).await.ok().filter(Option::is_none)
    })
    .await;
}

/// A CRD of the same name still being deleted (its resources held by a finalizer) is waited
/// for and created afresh, not replaced: a replaced CRD would still be deleted.
#[tokio::test]
async fn installing_over_a_crd_being_deleted_waits_and_creates_it_afresh() {
    let (env, ns) = setup().await;
    let group = unique_group("t");
    let name = format!("widgets.{group}");
    let old = env.install_crd(&crd(&group, "Namespaced")).await.expect("install");
    // The clean-up finalizer comes with the first delete, not before (`REST.Delete`).
    assert_eq!(old.metadata.finalizers, None);
    let api = widgets(&env.client(), &group, "v1", &ns);
    let mut held = widget(&group, "v1", "held", json!({ "size": 2 }));
    held.metadata.finalizers = Some(vec!["test.kdev.dev/hold".into()]);
    api.create(&PostParams::default(), &held).await.expect("create");
    uninstall(&env.client(), &group).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let terminating = eventually("the CRD to be terminating", || async {
        crds.get(&name)
            .await
            .ok()
            .filter(|c| c.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert_eq!(
        terminating.metadata.finalizers.as_deref(),
        Some(&["customresourcecleanup.apiextensions.k8s.io".to_string()][..])
    );

    let wanted = crd(&group, "Namespaced");
    let install = env.install_crd(&wanted);
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let release = json!({ "metadata": { "finalizers": null } });
        api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
            .await
            .expect("release the finalizer");
    };
    let (installed, ()) = tokio::join!(install, release);
    let installed = installed.expect("installed afresh");
    assert_ne!(
        installed.metadata.uid, old.metadata.uid,
        "a new CRD, not the terminating one"
    );
    assert!(installed.metadata.deletion_timestamp.is_none());
    let live = crds.get(&name).await.expect("the new CRD stays");
    assert!(live.metadata.deletion_timestamp.is_none());
}
