//! Admission webhooks, called as kube-apiserver calls them (embedded server only: the webhooks are
//! served inside the test process, which a real cluster cannot reach).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube_client::Api;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::webhook_server::{Reply, WebhookServer, allow, answer, deny, env_for, needs_local_webhooks, patch, serve};
use super::{configmap, setup};
use kdev_testenv::TestEnv;

fn rule(operations: Value, resources: Value) -> Value {
    json!({ "operations": operations, "apiGroups": [""], "apiVersions": ["v1"], "resources": resources })
}

fn hook(name: &str, client_config: Value, rules: Value) -> Value {
    json!({
        "name": name,
        "clientConfig": client_config,
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    })
}

async fn mutating(env: &TestEnv, name: &str, webhooks: Vec<Value>) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let cfg = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": name }, "webhooks": webhooks,
    }))
    .expect("a configuration");
    api.create(&PostParams::default(), &cfg)
        .await
        .expect("create configuration");
}

async fn validating(env: &TestEnv, name: &str, webhooks: Vec<Value>) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client());
    let cfg = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": name }, "webhooks": webhooks,
    }))
    .expect("a configuration");
    api.create(&PostParams::default(), &cfg)
        .await
        .expect("create configuration");
}

fn status(r: Result<impl std::fmt::Debug, kube_client::Error>) -> kube_client::core::Status {
    match r {
        Err(kube_client::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn labelled(name: &str, labels: Value) -> ConfigMap {
    let mut cm = configmap(name);
    cm.metadata.labels = serde_json::from_value(labels).expect("labels");
    cm
}

async fn setup_with(
    handler: impl Fn(&str, &Value) -> Reply + Send + Sync + 'static,
) -> Option<(WebhookServer, TestEnv, String)> {
    if !needs_local_webhooks() {
        return None;
    }
    let hooks = serve(handler).await;
    let (env, ns) = env_for(&hooks).await;
    Some((hooks, env, ns))
}

#[tokio::test]
async fn a_validating_webhook_sees_the_review_kube_apiserver_sends_and_its_denial_fails_the_request() {
    let Some((hooks, env, ns)) = setup_with(|_, review| {
        if review["request"]["object"]["metadata"]["name"] == "forbidden" {
            deny(review, "names like that are not allowed")
        } else {
            allow(review)
        }
    })
    .await
    else {
        return;
    };
    validating(
        &env,
        "policy",
        vec![hook(
            "names.example.com",
            hooks.client_config("/validate"),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let fine = api
        .create(&PostParams::default(), &configmap("fine"))
        .await
        .expect("allowed");
    let mut generated = configmap("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let generated = api.create(&PostParams::default(), &generated).await.expect("allowed");
    let s = status(api.create(&PostParams::default(), &configmap("forbidden")).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "admission webhook \"names.example.com\" denied the request: names like that are not allowed"
    );
    assert!(
        api.get_opt("forbidden").await.expect("get").is_none(),
        "a denied object is not stored"
    );

    let reviews = hooks.calls_to("/validate");
    assert_eq!(reviews.len(), 3);
    let r = &reviews[0];
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    let req = &r["request"];
    assert!(!req["uid"].as_str().unwrap_or("").is_empty());
    assert_eq!(
        req["kind"],
        json!({ "group": "", "version": "v1", "kind": "ConfigMap" })
    );
    assert_eq!(
        req["resource"],
        json!({ "group": "", "version": "v1", "resource": "configmaps" })
    );
    assert_eq!(req["requestKind"], req["kind"]);
    assert_eq!(req["requestResource"], req["resource"]);
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(
        (req["name"].as_str(), req["namespace"].as_str()),
        (Some("fine"), Some(ns.as_str()))
    );
    assert_eq!(req["object"]["data"]["key"], "value");
    // Validating webhooks see the object as it is stored: its uid and timestamp, and the name
    // generated for a generateName.
    assert_eq!(req["object"]["metadata"]["uid"].as_str(), fine.metadata.uid.as_deref());
    let created = fine.metadata.creation_timestamp.map(|t| json!(t));
    assert_eq!(Some(&req["object"]["metadata"]["creationTimestamp"]), created.as_ref());
    let generated_review = &reviews[1]["request"];
    assert_eq!(generated_review["name"].as_str(), generated.metadata.name.as_deref());
    assert_eq!(
        generated_review["object"]["metadata"]["uid"].as_str(),
        generated.metadata.uid.as_deref()
    );
    assert!(req["oldObject"].is_null());
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["options"]["kind"], "CreateOptions");
    assert_eq!(req["options"]["apiVersion"], "meta.k8s.io/v1");
    assert!(req["userInfo"]["username"].is_string());
    assert!(req.get("subResource").is_none());
    // The configured path is called, with kube-apiserver's timeout parameter.
    assert!(hooks.calls.lock()[0].0.ends_with("/validate?timeout=10s"));
}

#[tokio::test]
async fn mutating_webhooks_run_in_configuration_order_each_seeing_the_previous_patch() {
    let Some((hooks, env, ns)) = setup_with(|path, review| {
        let seen = review["request"]["object"]["metadata"]["labels"].clone();
        let step = path.trim_start_matches('/').to_string();
        let mut ops = vec![];
        if seen.is_null() {
            ops.push(json!({ "op": "add", "path": "/metadata/labels", "value": {} }));
        }
        ops.push(json!({ "op": "add", "path": format!("/metadata/labels/{step}"), "value": seen.as_object().map_or(0, |m| m.len()).to_string() }));
        patch(review, Value::Array(ops))
    })
    .await
    else {
        return;
    };
    let cm_rule = json!([rule(json!(["CREATE"]), json!(["configmaps"]))]);
    // Created in reverse order: configurations are called by name, webhooks in their order.
    mutating(
        &env,
        "b-config",
        vec![hook(
            "third.example.com",
            hooks.client_config("/third"),
            cm_rule.clone(),
        )],
    )
    .await;
    mutating(
        &env,
        "a-config",
        vec![
            hook("first.example.com", hooks.client_config("/first"), cm_rule.clone()),
            hook("second.example.com", hooks.client_config("/second"), cm_rule.clone()),
        ],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let created = api
        .create(&PostParams::default(), &configmap("m"))
        .await
        .expect("create");
    assert_eq!(hooks.paths(), ["/first", "/second", "/third"]);
    let stored = api.get("m").await.expect("get");
    let labels = stored.metadata.labels.expect("labels");
    assert_eq!(labels.get("first").map(String::as_str), Some("0"));
    assert_eq!(labels.get("second").map(String::as_str), Some("1"));
    assert_eq!(labels.get("third").map(String::as_str), Some("2"));
    assert_eq!(created.metadata.labels.map(|l| l.len()), Some(3));
}

#[tokio::test]
async fn an_if_needed_webhook_is_called_again_when_a_later_one_changes_the_object() {
    let Some((hooks, env, ns)) = setup_with(|path, review| match path {
        "/later" if review["request"]["object"]["metadata"]["labels"]["later"].is_null() => patch(
            review,
            json!([{ "op": "add", "path": "/metadata/labels", "value": { "later": "yes" } }]),
        ),
        _ => allow(review),
    })
    .await
    else {
        return;
    };
    let cm_rule = json!([rule(json!(["CREATE"]), json!(["configmaps"]))]);
    let mut if_needed = hook(
        "if-needed.example.com",
        hooks.client_config("/if-needed"),
        cm_rule.clone(),
    );
    if_needed["reinvocationPolicy"] = json!("IfNeeded");
    let never = hook("never.example.com", hooks.client_config("/never"), cm_rule.clone());
    mutating(&env, "a", vec![if_needed, never]).await;
    mutating(
        &env,
        "b",
        vec![hook("later.example.com", hooks.client_config("/later"), cm_rule)],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("r"))
        .await
        .expect("create");
    assert_eq!(hooks.paths(), ["/if-needed", "/never", "/later", "/if-needed"]);
    let again = &hooks.calls_to("/if-needed")[1];
    assert_eq!(again["request"]["object"]["metadata"]["labels"]["later"], "yes");
}

#[tokio::test]
async fn failure_policy_decides_what_an_unreachable_webhook_means() {
    let Some((_hooks, env, ns)) = setup_with(|_, review| allow(review)).await else {
        return;
    };
    // Nothing listens on port 1.
    let dead = json!({ "url": "https://127.0.0.1:1/hook" });
    let mut ignore = hook(
        "ignore.example.com",
        dead.clone(),
        json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
    );
    ignore["failurePolicy"] = json!("Ignore");
    validating(&env, "ignore", vec![ignore]).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("Ignore fails open");

    let mut fail = hook(
        "fail.example.com",
        dead,
        json!([rule(json!(["UPDATE"]), json!(["configmaps"]))]),
    );
    fail["failurePolicy"] = json!("Fail");
    validating(&env, "fail", vec![fail]).await;
    let s = status(
        api.replace("a", &PostParams::default(), &api.get("a").await.expect("get"))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    assert!(
        s.message.starts_with(
            "Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/hook?timeout=10s\": "
        ),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn a_webhook_slower_than_its_timeout_fails_the_call() {
    let Some((hooks, env, ns)) = setup_with(|_, review| Reply {
        delay: Some(Duration::from_secs(3)),
        ..allow(review)
    })
    .await
    else {
        return;
    };
    let mut slow = hook(
        "slow.example.com",
        hooks.client_config("/slow"),
        json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
    );
    slow["timeoutSeconds"] = json!(1);
    validating(&env, "slow", vec![slow.clone()]).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let s = status(api.create(&PostParams::default(), &configmap("a")).await);
    assert_eq!(s.code, 500);
    assert!(
        s.message.contains("?timeout=1s\": context deadline exceeded"),
        "{}",
        s.message
    );
    assert!(hooks.calls.lock()[0].0.ends_with("timeout=1s"));
}

#[tokio::test]
async fn dry_runs_reach_only_webhooks_without_side_effects() {
    let Some((hooks, env, ns)) = setup_with(|_, review| {
        patch(
            review,
            json!([{ "op": "add", "path": "/metadata/labels", "value": { "mutated": "yes" } }]),
        )
    })
    .await
    else {
        return;
    };
    mutating(
        &env,
        "pure",
        vec![hook(
            "pure.example.com",
            hooks.client_config("/pure"),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = api.create(&dry, &configmap("dry")).await.expect("dry run");
    assert_eq!(
        answered.metadata.labels.and_then(|l| l.get("mutated").cloned()),
        Some("yes".into())
    );
    assert!(
        api.get_opt("dry").await.expect("get").is_none(),
        "a dry run stores nothing"
    );
    let req = &hooks.calls_to("/pure")[0]["request"];
    assert_eq!(req["dryRun"], true);
    assert_eq!(req["options"]["dryRun"], json!(["All"]));

    // A webhook with side effects cannot be configured through admissionregistration.k8s.io/v1,
    // so no configured webhook ever refuses a dry run; NoneOnDryRun is called like None.
    let mut effects = hook(
        "effects.example.com",
        hooks.client_config("/effects"),
        json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
    );
    effects["sideEffects"] = json!("Some");
    let configs: Api<MutatingWebhookConfiguration> = Api::all(env.client());
    let cfg: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": "effects" }, "webhooks": [effects],
    }))
    .expect("a configuration");
    let s = status(configs.create(&PostParams::default(), &cfg).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    effects["sideEffects"] = json!("NoneOnDryRun");
    mutating(&env, "effects", vec![effects]).await;
    api.create(&dry, &configmap("dry")).await.expect("dry run");
    assert_eq!(hooks.calls_to("/effects").len(), 1);
    assert_eq!(hooks.calls_to("/effects")[0]["request"]["dryRun"], true);
}

#[tokio::test]
async fn selectors_pick_namespaces_and_objects() {
    let Some((hooks, env, ns)) = setup_with(|_, review| allow(review)).await else {
        return;
    };
    let mut by_ns = hook(
        "by-namespace.example.com",
        hooks.client_config("/ns"),
        json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
    );
    by_ns["namespaceSelector"] = json!({ "matchLabels": { "team": "a" } });
    let mut by_obj = hook(
        "by-object.example.com",
        hooks.client_config("/obj"),
        json!([rule(json!(["*"]), json!(["*"]))]),
    );
    by_obj["objectSelector"] = json!({ "matchExpressions": [{ "key": "watched", "operator": "Exists" }] });
    validating(&env, "selectors", vec![by_ns, by_obj]).await;

    let namespaces: Api<Namespace> = Api::all(env.client());
    let mut team = Namespace::default();
    team.metadata.name = Some(format!("{ns}-team"));
    team.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .expect("namespace");
    let team_ns = format!("{ns}-team");

    let plain: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let teamed: Api<ConfigMap> = Api::namespaced(env.client(), &team_ns);
    plain
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    teamed
        .create(&PostParams::default(), &configmap("b"))
        .await
        .expect("create");
    assert_eq!(hooks.calls_to("/ns").len(), 1, "only the labelled namespace matches");
    assert_eq!(hooks.calls_to("/ns")[0]["request"]["namespace"], team_ns.as_str());
    assert!(hooks.calls_to("/obj").is_empty());

    plain
        .create(&PostParams::default(), &labelled("c", json!({ "watched": "1" })))
        .await
        .expect("create");
    assert_eq!(hooks.calls_to("/obj").len(), 1);
    // An update that removes the label still matches through the old object.
    let mut c = plain.get("c").await.expect("get");
    c.metadata.labels = None;
    plain.replace("c", &PostParams::default(), &c).await.expect("update");
    assert_eq!(hooks.calls_to("/obj").len(), 2);
    assert_eq!(hooks.calls_to("/obj")[1]["request"]["operation"], "UPDATE");
    // Namespaces are matched by their own labels, with the object selector too.
    let mut watched = Namespace::default();
    watched.metadata.name = Some(format!("{ns}-watched"));
    watched.metadata.labels = Some([("watched".to_string(), "1".to_string())].into());
    namespaces
        .create(&PostParams::default(), &watched)
        .await
        .expect("namespace");
    assert_eq!(hooks.calls_to("/obj").len(), 3);
    assert_eq!(hooks.calls_to("/obj")[2]["request"]["kind"]["kind"], "Namespace");
}

#[tokio::test]
async fn subresource_rules_match_status_writes_only() {
    let Some((hooks, env, ns)) = setup_with(|_, review| deny(review, "status is frozen")).await else {
        return;
    };
    validating(
        &env,
        "status",
        vec![hook(
            "status.example.com",
            hooks.client_config("/status"),
            json!([rule(json!(["UPDATE"]), json!(["pods/status"]))]),
        )],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" },
        "spec": { "containers": [{ "name": "c", "image": "nginx:1.27" }] },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create");
    pods.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
    )
    .await
    .expect("the main resource is not matched");
    let s = status(
        pods.patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Running" } })),
        )
        .await,
    );
    assert_eq!(s.code, 403);
    let req = &hooks.calls_to("/status")[0]["request"];
    assert_eq!(
        (req["subResource"].as_str(), req["requestSubResource"].as_str()),
        (Some("status"), Some("status"))
    );
    assert_eq!(req["object"]["kind"], "Pod");
    assert_eq!(req["oldObject"]["status"]["phase"], "Pending");
    assert_eq!(req["options"]["kind"], "UpdateOptions");
}

#[tokio::test]
async fn a_scale_write_sends_a_scale_and_its_patch_reaches_the_replicas() {
    let Some((hooks, env, ns)) = setup_with(|_, review| {
        patch(
            review,
            json!([{ "op": "replace", "path": "/spec/replicas", "value": 5 }]),
        )
    })
    .await
    else {
        return;
    };
    mutating(
        &env,
        "scale",
        vec![hook(
            "scale.example.com",
            hooks.client_config("/scale"),
            json!([{ "operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments/scale"] }]),
        )],
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(env.client(), &ns);
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "c", "image": "nginx:1.27" }] } } },
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &d).await.expect("create");
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .expect("scale");
    let stored = deployments.get("web").await.expect("get");
    assert_eq!(stored.spec.replicas, Some(5));
    let req = &hooks.calls_to("/scale")[0]["request"];
    assert_eq!(
        req["kind"],
        json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" })
    );
    assert_eq!(req["resource"]["resource"], "deployments");
    assert_eq!(req["subResource"], "scale");
    assert_eq!(req["object"]["spec"]["replicas"], 2);
    assert_eq!(req["oldObject"]["spec"]["replicas"], 1);
}

#[tokio::test]
async fn deletes_are_admitted_with_the_old_object_and_delete_options() {
    let Some((hooks, env, ns)) = setup_with(|path, review| match path {
        "/mutate" => patch(
            review,
            json!([{ "op": "add", "path": "/metadata/labels", "value": {} }]),
        ),
        _ if review["request"]["oldObject"]["metadata"]["name"] == "keep" => deny(review, "keep it"),
        _ => allow(review),
    })
    .await
    else {
        return;
    };
    validating(
        &env,
        "deletes",
        vec![hook(
            "deletes.example.com",
            hooks.client_config("/validate"),
            json!([rule(json!(["DELETE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for n in ["keep", "drop"] {
        api.create(&PostParams::default(), &configmap(n)).await.expect("create");
    }
    let s = status(api.delete("keep", &DeleteParams::default()).await);
    assert_eq!(s.code, 403);
    assert!(s.message.ends_with("denied the request: keep it"), "{}", s.message);
    api.delete("drop", &DeleteParams::foreground()).await.expect("delete");
    let req = &hooks.calls_to("/validate")[1]["request"];
    assert_eq!(req["operation"], "DELETE");
    assert!(req["object"].is_null());
    assert_eq!(req["oldObject"]["metadata"]["name"], "drop");
    assert_eq!(req["options"]["kind"], "DeleteOptions");
    assert_eq!(req["options"]["propagationPolicy"], "Foreground");

    // A mutating webhook cannot patch a delete.
    mutating(
        &env,
        "mutate-deletes",
        vec![hook(
            "mutate.example.com",
            hooks.client_config("/mutate"),
            json!([rule(json!(["DELETE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let s = status(api.delete("keep", &DeleteParams::default()).await);
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        "Internal error occurred: admission webhook \"mutate.example.com\" attempted to modify the object, which is not supported for this operation"
    );
}

#[tokio::test]
async fn warnings_bad_answers_and_custom_denials() {
    let Some((hooks, env, ns)) = setup_with(|path, review| match path {
        "/warn" => Reply::json(answer(
            review,
            // kube-apiserver drops the empty and the repeated warning.
            json!({ "allowed": true, "warnings": ["mind the gap", "", "and the \"quotes\"", "mind the gap"] }),
        )),
        "/bad-uid" => Reply::json(json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": { "uid": "someone-else", "allowed": true } })),
        "/bad-patch" => patch(review, json!([{ "op": "remove", "path": "/nowhere/at/all" }])),
        // Any patchType from a validating webhook is refused, even an empty one.
        "/patch-type" => Reply::json(answer(review, json!({ "allowed": true, "patchType": "" }))),
        "/invalid" => Reply::json(answer(
            review,
            json!({ "allowed": false,
            "status": { "code": 422, "reason": "Invalid", "message": "size must be even" } }),
        )),
        _ => allow(review),
    })
    .await
    else {
        return;
    };
    let on = |path: &str, name: &str| {
        let mut h = hook(
            name,
            hooks.client_config(path),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        );
        h["objectSelector"] = json!({ "matchLabels": { "case": path.trim_start_matches('/') } });
        h
    };
    mutating(&env, "m", vec![on("/bad-patch", "bad-patch.example.com")]).await;
    validating(
        &env,
        "v",
        vec![
            on("/warn", "warn.example.com"),
            on("/bad-uid", "bad-uid.example.com"),
            on("/patch-type", "patch-type.example.com"),
            on("/invalid", "invalid.example.com"),
        ],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);

    // Warnings come back as Warning headers; kube::Client does not expose them, so ask raw.
    let body = serde_json::to_vec(&labelled("w", json!({ "case": "warn" }))).expect("json");
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps"))
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let answer = super::raw(&env, req).await;
    assert_eq!(answer.code, 201);
    assert_eq!(
        answer.warnings,
        ["299 - \"mind the gap\"", "299 - \"and the \\\"quotes\\\"\""]
    );

    let s = status(
        api.create(&PostParams::default(), &labelled("u", json!({ "case": "bad-uid" })))
            .await,
    );
    assert_eq!(s.code, 500);
    assert!(
        s.message
            .ends_with("received invalid webhook response: expected response.uid=")
            || s.message
                .contains("received invalid webhook response: expected response.uid="),
        "{}",
        s.message
    );
    assert!(s.message.contains("got \"someone-else\""), "{}", s.message);

    let s = status(
        api.create(&PostParams::default(), &labelled("p", json!({ "case": "bad-patch" })))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));

    let s = status(
        api.create(&PostParams::default(), &labelled("t", json!({ "case": "patch-type" })))
            .await,
    );
    assert_eq!(s.code, 500);
    assert!(
        s.message
            .contains("validating webhook may not return response.patchType"),
        "{}",
        s.message
    );

    let s = status(
        api.create(&PostParams::default(), &labelled("i", json!({ "case": "invalid" })))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        s.message,
        "admission webhook \"invalid.example.com\" denied the request: size must be even"
    );
}

#[tokio::test]
async fn service_references_verify_the_certificate_for_the_service_name() {
    let Some((hooks, env, ns)) = setup_with(|_, review| deny(review, "reached through the service")).await else {
        return;
    };
    validating(
        &env,
        "svc",
        vec![hook(
            "svc.example.com",
            hooks.service_config("/svc"),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let s = status(api.create(&PostParams::default(), &configmap("a")).await);
    assert!(s.message.ends_with("reached through the service"), "{}", s.message);
    assert!(hooks.calls.lock()[0].0.starts_with("/svc?timeout="));

    // An unmapped service cannot be reached.
    let mut unmapped = hooks.service_config("/svc");
    unmapped["service"]["name"] = json!("elsewhere");
    let h = hook(
        "unmapped.example.com",
        unmapped,
        json!([rule(json!(["DELETE"]), json!(["configmaps"]))]),
    );
    validating(&env, "unmapped", vec![h]).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), "default");
    let s = status(configmaps.delete("kube-root-ca.crt", &DeleteParams::default()).await);
    assert!(s.message.contains("services \"elsewhere\" not found"), "{}", s.message);
}

#[tokio::test]
async fn a_wrong_ca_bundle_fails_the_handshake() {
    let Some((hooks, env, ns)) = setup_with(|_, review| allow(review)).await else {
        return;
    };
    let other = serve(|_, review| allow(review)).await;
    let mut cc = hooks.client_config("/x");
    cc["caBundle"] = json!(other.ca_bundle);
    validating(
        &env,
        "wrong-ca",
        vec![hook(
            "wrong-ca.example.com",
            cc,
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let s = status(api.create(&PostParams::default(), &configmap("a")).await);
    assert_eq!(s.code, 500);
    assert!(
        s.message.contains("failed calling webhook \"wrong-ca.example.com\""),
        "{}",
        s.message
    );
    assert!(s.message.contains("certificate"), "{}", s.message);
    assert!(hooks.calls.lock().is_empty());
}

#[tokio::test]
async fn match_conditions_skip_or_fail_by_policy() {
    let Some((hooks, env, ns)) = setup_with(|_, review| deny(review, "matched")).await else {
        return;
    };
    let mut h = hook(
        "cel.example.com",
        hooks.client_config("/cel"),
        json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
    );
    h["matchConditions"] = json!([
        { "name": "not-skipped", "expression": "object.metadata.name != 'skip-me'" },
        { "name": "is-create", "expression": "request.operation == 'CREATE'" },
    ]);
    validating(&env, "cel", vec![h]).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("skip-me"))
        .await
        .expect("skipped");
    assert_eq!(
        status(api.create(&PostParams::default(), &configmap("other")).await).code,
        403
    );
    assert_eq!(hooks.calls_to("/cel").len(), 1);

    let mut broken = hook(
        "broken.example.com",
        hooks.client_config("/broken"),
        json!([rule(json!(["UPDATE"]), json!(["configmaps"]))]),
    );
    broken["matchConditions"] = json!([{ "name": "oops", "expression": "object.no.such.field == 1" }]);
    validating(&env, "broken", vec![broken]).await;
    let cm = api.get("skip-me").await.expect("get");
    // A condition that cannot be evaluated fails closed (failurePolicy Fail) with a Forbidden
    // naming the object and the expression, and the webhook is not called.
    let s = status(api.replace("skip-me", &PostParams::default(), &cm).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{s:?}");
    assert!(
        s.message.starts_with(
            "configmaps \"skip-me\" is forbidden: expression 'object.no.such.field == 1' resulted in error: "
        ),
        "{}",
        s.message
    );
    assert!(hooks.calls_to("/broken").is_empty());
}

#[tokio::test]
async fn concurrent_writes_through_a_webhook_all_land() {
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    let Some((hooks, env, ns)) = setup_with(move |_, review| {
        *counter.lock() += 1;
        let n = review["request"]["object"]["data"]["n"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        patch(
            review,
            json!([{ "op": "add", "path": "/data/doubled", "value": format!("{n}{n}") }]),
        )
    })
    .await
    else {
        return;
    };
    mutating(
        &env,
        "c",
        vec![hook(
            "c.example.com",
            hooks.client_config("/c"),
            json!([rule(json!(["UPDATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("shared"))
        .await
        .expect("create");
    let writes = (0..8).map(|i| {
        let api = api.clone();
        async move {
            api.patch(
                "shared",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "n": i.to_string() } })),
            )
            .await
        }
    });
    for r in futures::future::join_all(writes).await {
        r.expect("every patch lands");
    }
    let cm = api.get("shared").await.expect("get");
    let data = cm.data.expect("data");
    let n = data.get("n").expect("n");
    assert_eq!(data.get("doubled"), Some(&format!("{n}{n}")));
    assert!(*seen.lock() >= 8);
}

#[tokio::test]
async fn no_webhook_is_called_without_configurations() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("plain"))
        .await
        .expect("create");
    api.delete("plain", &DeleteParams::default()).await.expect("delete");
}

#[tokio::test]
async fn garbage_from_a_webhook_is_a_clear_error_never_a_crash() {
    let garbage: Vec<(&str, u16, Value)> = vec![
        ("not-json", 200, json!("this is not a review")),
        ("array", 200, json!([1, 2, 3])),
        ("wrong-kind", 200, json!({ "apiVersion": "v1", "kind": "Status" })),
        (
            "no-response",
            200,
            json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview" }),
        ),
        ("http-500", 500, json!({ "message": "boom" })),
        ("http-404", 404, json!("nothing here")),
    ];
    let table: Vec<(String, u16, Value)> = garbage.iter().map(|(c, s, b)| (c.to_string(), *s, b.clone())).collect();
    let Some((hooks, env, ns)) = setup_with(move |path, review| {
        let case = path.trim_start_matches('/');
        if case == "bad-base64" {
            return Reply::json(answer(
                review,
                json!({ "allowed": true, "patch": "%%% not base64 %%%", "patchType": "JSONPatch" }),
            ));
        }
        match table.iter().find(|(c, _, _)| c == case) {
            Some((_, status, body)) => Reply {
                delay: None,
                status: *status,
                body: body.clone(),
            },
            None => allow(review),
        }
    })
    .await
    else {
        return;
    };
    let on = |case: &str| {
        let mut h = hook(
            &format!("{case}.example.com"),
            hooks.client_config(&format!("/{case}")),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        );
        h["objectSelector"] = json!({ "matchLabels": { "case": case } });
        h
    };
    validating(&env, "garbage", garbage.iter().map(|(c, _, _)| on(c)).collect()).await;
    mutating(&env, "garbage", vec![on("bad-base64")]).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for case in garbage.iter().map(|(c, _, _)| *c).chain(["bad-base64"]) {
        let s = status(
            api.create(&PostParams::default(), &labelled(case, json!({ "case": case })))
                .await,
        );
        assert_eq!(
            (s.code, s.reason.as_str()),
            (500, "InternalError"),
            "{case}: {}",
            s.message
        );
        assert!(
            s.message
                .contains(&format!("failed calling webhook \"{case}.example.com\"")),
            "{case}: {}",
            s.message
        );
    }
    let s = status(
        api.create(&PostParams::default(), &labelled("b", json!({ "case": "bad-base64" })))
            .await,
    );
    assert!(
        s.message.contains("received undecodable patch in webhook response"),
        "{}",
        s.message
    );
    // The server is still fine.
    api.create(&PostParams::default(), &configmap("after"))
        .await
        .expect("create");
}

#[tokio::test]
async fn a_create_in_a_missing_namespace_fails_before_any_webhook() {
    let Some((hooks, env, _ns)) = setup_with(|_, review| allow(review)).await else {
        return;
    };
    validating(
        &env,
        "any",
        vec![hook(
            "any.example.com",
            hooks.client_config("/any"),
            json!([rule(json!(["CREATE"]), json!(["configmaps"]))]),
        )],
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), "no-such-namespace");
    let s = status(api.create(&PostParams::default(), &configmap("a")).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"no-such-namespace\" not found")
    );
    assert!(hooks.calls.lock().is_empty());
}

#[tokio::test]
async fn collection_deletes_namespaces_and_review_versions_are_sent_as_kube_apiserver_sends_them() {
    let Some((hooks, env, ns)) = setup_with(|_, review| {
        // Answer in the version asked.
        let mut reply = answer(review, json!({ "allowed": true }));
        reply["apiVersion"] = review["apiVersion"].clone();
        Reply::json(reply)
    })
    .await
    else {
        return;
    };
    let mut deletes = hook(
        "deletes.example.com",
        hooks.client_config("/deletes"),
        json!([rule(json!(["DELETE"]), json!(["configmaps"]))]),
    );
    // The first version the webhook lists wins, not the newest.
    deletes["admissionReviewVersions"] = json!(["v1beta1", "v1"]);
    let namespaces = hook(
        "namespaces.example.com",
        hooks.client_config("/namespaces"),
        json!([rule(json!(["UPDATE"]), json!(["namespaces"]))]),
    );
    validating(&env, "shapes", vec![deletes, namespaces]).await;

    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &labelled(name, json!({ "set": "x" })))
            .await
            .expect("create");
    }
    api.delete_collection(
        &DeleteParams::default(),
        &kube_client::api::ListParams::default().labels("set=x"),
    )
    .await
    .expect("delete the collection");
    let reviews = hooks.calls_to("/deletes");
    assert_eq!(reviews.len(), 2);
    let mut old_names = Vec::new();
    for r in &reviews {
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1beta1");
        // Every object is admitted with the collection request's attributes.
        assert_eq!(r["request"]["name"].as_str().unwrap_or_default(), "", "{r}");
        assert_eq!(r["request"]["namespace"].as_str(), Some(ns.as_str()));
        old_names.push(r["request"]["oldObject"]["metadata"]["name"].clone());
    }
    assert_eq!(old_names, [json!("a"), json!("b")]);

    let nss: Api<Namespace> = Api::all(env.client());
    nss.patch(
        &ns,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "kdev.dev/seen": "yes" } } })),
    )
    .await
    .expect("label the namespace");
    let reviews = hooks.calls_to("/namespaces");
    assert_eq!(reviews.len(), 1);
    // A namespace's own requests carry its name as their namespace.
    assert_eq!(reviews[0]["request"]["namespace"].as_str(), Some(ns.as_str()));
    assert_eq!(reviews[0]["request"]["name"].as_str(), Some(ns.as_str()));
}

/// A PUT that creates a missing Service (`AllowCreateOnUpdate`) is admitted as a CREATE with
/// CreateOptions, and stored with what the mutating webhook added.
#[tokio::test]
async fn a_create_by_put_is_admitted_as_a_create() {
    let Some((hooks, env, ns)) = setup_with(|path, review| {
        if path.starts_with("/mutate") {
            patch(
                review,
                json!([{ "op": "add", "path": "/metadata/labels", "value": { "admitted": "yes" } }]),
            )
        } else {
            allow(review)
        }
    })
    .await
    else {
        return;
    };
    let rules = json!([rule(json!(["CREATE", "UPDATE"]), json!(["services"]))]);
    mutating(
        &env,
        "label",
        vec![hook("label.example.com", hooks.client_config("/mutate"), rules.clone())],
    )
    .await;
    validating(
        &env,
        "check",
        vec![hook("check.example.com", hooks.client_config("/validate"), rules)],
    )
    .await;
    let body = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" },
        "spec": { "ports": [{ "port": 80 }] },
    });
    let req = http::Request::put(format!("/api/v1/namespaces/{ns}/services/web"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("a request");
    let answer = super::raw(&env, req).await;
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(answer.body["metadata"]["labels"]["admitted"], "yes");
    for path in ["/mutate", "/validate"] {
        let reviews = hooks.calls_to(path);
        assert_eq!(reviews.len(), 1, "{path}");
        let req = &reviews[0]["request"];
        assert_eq!(req["operation"], "CREATE", "{path}");
        assert_eq!(req["options"]["kind"], "CreateOptions", "{path}");
        assert!(req["oldObject"].is_null(), "{path}");
    }
    let validated = &hooks.calls_to("/validate")[0]["request"]["object"];
    assert_eq!(validated["metadata"]["uid"], answer.body["metadata"]["uid"]);
}
