//! Typed validators and defaulters and raw handlers, through the server.

use k8s_openapi::api::core::v1::Pod;
use kdev_webhook::Server;
use kdev_webhook::admission::{Defaulter, Request, Response, StatusCause, Validator, Verdict};
use kdev_webhook::tls::ServingCert;
use serde_json::{Value, json};

use crate::support::{self, Ca, Conn, Running, pod, review};

struct Policy;

fn images(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.image.as_deref())
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

impl Validator<Pod> for Policy {
    async fn validate_create(&self, req: &Request, pod: &Pod) -> Verdict {
        let verdict = match images(pod).find(|i| i.ends_with(":latest")) {
            Some(image) => {
                Verdict::deny(format!("image {image} uses the :latest tag")).with_warning("pin images by digest")
            }
            None => Verdict::allow(),
        };
        let verdict = if images(pod).any(|i| !i.contains('@')) {
            verdict.with_warning("image not pinned by digest")
        } else {
            verdict
        };
        verdict
            .with_audit_annotation("dry-run", req.dry_run.to_string())
            .with_audit_annotation("user", req.user_info.username.clone().unwrap_or_default())
    }

    async fn validate_update(&self, _req: &Request, old: &Pod, new: &Pod) -> Verdict {
        if label(old, "tier") != label(new, "tier") {
            Verdict::deny("the tier label is immutable")
                .with_code(422)
                .with_reason("Invalid")
        } else {
            Verdict::allow()
        }
    }

    async fn validate_delete(&self, _req: &Request, pod: &Pod) -> Verdict {
        if label(pod, "protected") == Some("true") {
            Verdict::deny("protected pods cannot be deleted")
        } else {
            Verdict::allow()
        }
    }
}

struct Defaults;

impl Defaulter<Pod> for Defaults {
    async fn set_defaults(&self, req: &Request, pod: &mut Pod) -> Verdict {
        if images(pod).any(|i| i == "forbidden") {
            return Verdict::deny("forbidden image");
        }
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.entry("team".into()).or_insert_with(|| "platform".into());
        // A removal of the defaulter's own, which the patch must carry.
        labels.remove("drop-me");
        if req.dry_run {
            labels.insert("dry-run".into(), "true".into());
        }
        if let Some(spec) = pod.spec.as_mut() {
            for c in &mut spec.containers {
                c.image_pull_policy.get_or_insert_with(|| "IfNotPresent".into());
            }
        }
        Verdict::allow().with_warning("defaulted")
    }
}

async fn raw(req: Request) -> Response {
    match req.kind.kind.as_str() {
        "ConfigMap" => {
            let patch = serde_json::from_value(json!([{"op": "add", "path": "/data/seen", "value": "yes"}])).unwrap();
            Response::allowed()
                .with_patch(&patch)
                .with_audit_annotation("kind", "ConfigMap")
        }
        "Panic" => panic!("a handler bug"),
        other => Response::denied(format!("{other} is not handled")).with_warning("raw"),
    }
}

async fn setup() -> (Running, Conn) {
    let ca = Ca::new();
    let leaf = ca.leaf();
    let tls = ServingCert::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let running = support::start(
        Server::builder()
            .validating("/validate", Policy)
            .mutating("/mutate", Defaults)
            .raw_mutating("/raw", raw)
            .tls(tls),
    )
    .await;
    let conn = support::connect(running.addr, &ca.pem).await;
    (running, conn)
}

#[tokio::test]
async fn validator_allows_a_create_and_echoes_the_uid() {
    let (_server, mut conn) = setup().await;
    let answer = conn
        .admit(
            "/validate",
            &review("uid-1", "CREATE", Some(pod("nginx@sha256:abc", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "uid-1");
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("warnings").is_none(), "{answer}");
    assert_eq!(answer["auditAnnotations"]["user"], "alice");
    assert_eq!(answer["auditAnnotations"]["dry-run"], "false");
}

#[tokio::test]
async fn validator_denies_a_create_with_reason_code_and_warnings() {
    let (_server, mut conn) = setup().await;
    let answer = conn
        .admit(
            "/validate",
            &review("uid-2", "CREATE", Some(pod("nginx:latest", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "uid-2");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 403);
    assert_eq!(answer["status"]["reason"], "Forbidden");
    assert_eq!(answer["status"]["message"], "image nginx:latest uses the :latest tag");
    assert_eq!(
        answer["warnings"],
        json!(["pin images by digest", "image not pinned by digest"])
    );
}

#[tokio::test]
async fn validator_sees_old_and_new_objects_on_update() {
    let (_server, mut conn) = setup().await;
    let old = pod("nginx:1", json!({"tier": "web"}));
    let same = pod("nginx:2", json!({"tier": "web"}));
    let changed = pod("nginx:2", json!({"tier": "db"}));
    let answer = conn
        .admit(
            "/validate",
            &review("u", "UPDATE", Some(same), Some(old.clone()), false),
        )
        .await;
    assert_eq!(answer["allowed"], true);
    let answer = conn
        .admit("/validate", &review("u", "UPDATE", Some(changed), Some(old), false))
        .await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 422);
    assert_eq!(answer["status"]["reason"], "Invalid");
    assert_eq!(answer["status"]["message"], "the tier label is immutable");
}

#[tokio::test]
async fn validator_checks_a_delete_against_the_old_object() {
    let (_server, mut conn) = setup().await;
    let protected = pod("nginx:1", json!({"protected": "true"}));
    let answer = conn
        .admit("/validate", &review("d1", "DELETE", None, Some(protected), false))
        .await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["message"], "protected pods cannot be deleted");
    let plain = pod("nginx:1", json!({}));
    let answer = conn
        .admit("/validate", &review("d2", "DELETE", None, Some(plain), false))
        .await;
    assert_eq!(answer["uid"], "d2");
    assert_eq!(answer["allowed"], true);
}

#[tokio::test]
async fn validator_without_the_object_its_operation_needs_is_denied_with_400() {
    let (_server, mut conn) = setup().await;
    let answer = conn
        .admit(
            "/validate",
            &review("m", "UPDATE", Some(pod("a:1", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "m");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 400);
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(message.contains("oldObject is missing"), "{message}");
}

#[tokio::test]
async fn typed_validator_denies_connect_with_400() {
    let (_server, mut conn) = setup().await;
    let answer = conn
        .admit("/validate", &review("c", "CONNECT", None, None, false))
        .await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 400);
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_denied_with_400_and_the_decode_error() {
    let (_server, mut conn) = setup().await;
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 7}});
    for path in ["/validate", "/mutate"] {
        let answer = conn
            .admit(path, &review("bad-obj", "CREATE", Some(bad.clone()), None, false))
            .await;
        assert_eq!(answer["uid"], "bad-obj");
        assert_eq!(answer["allowed"], false);
        assert_eq!(answer["status"]["code"], 400);
        assert_eq!(answer["status"]["reason"], "BadRequest");
        let message = answer["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("decoding the request's object failed: "),
            "{message}"
        );
        assert!(message.contains("invalid type"), "{message}");
    }
}

fn apply(original: &Value, answer: &Value) -> Value {
    use base64::Engine as _;
    assert_eq!(answer["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &patch.0).unwrap();
    doc
}

#[tokio::test]
async fn defaulter_patch_applied_to_the_original_yields_the_mutated_object() {
    let (_server, mut conn) = setup().await;
    let mut original = pod("nginx:1", json!({"app": "web"}));
    // A field Pod does not know and an explicit null Pod drops: the patch leaves them alone.
    original["spec"]["futureField"] = json!({"x": 1});
    original["spec"]["nodeName"] = Value::Null;
    original["metadata"]["labels"]["drop-me"] = json!("yes");
    let answer = conn
        .admit("/mutate", &review("p1", "CREATE", Some(original.clone()), None, false))
        .await;
    assert_eq!(answer["uid"], "p1");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["warnings"], json!(["defaulted"]));
    let mut expected = original.clone();
    expected["metadata"]["labels"] = json!({"app": "web", "team": "platform"});
    expected["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    assert_eq!(apply(&original, &answer), expected);
}

#[tokio::test]
async fn defaulter_sees_dry_run() {
    let (_server, mut conn) = setup().await;
    let original = pod("nginx:1", json!({"team": "x"}));
    let answer = conn
        .admit("/mutate", &review("p2", "CREATE", Some(original.clone()), None, true))
        .await;
    let patched = apply(&original, &answer);
    assert_eq!(patched["metadata"]["labels"], json!({"team": "x", "dry-run": "true"}));
}

#[tokio::test]
async fn defaulter_sends_no_patch_when_nothing_changes_and_none_on_delete() {
    let (_server, mut conn) = setup().await;
    let mut done = pod("nginx:1", json!({"team": "x"}));
    done["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    let answer = conn
        .admit(
            "/mutate",
            &review("p3", "UPDATE", Some(done.clone()), Some(done.clone()), false),
        )
        .await;
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none(), "{answer}");
    assert!(answer.get("patchType").is_none(), "{answer}");
    let answer = conn
        .admit("/mutate", &review("p4", "DELETE", None, Some(done), false))
        .await;
    assert_eq!(answer["uid"], "p4");
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none(), "{answer}");
}

#[tokio::test]
async fn defaulter_denial_carries_no_patch() {
    let (_server, mut conn) = setup().await;
    let answer = conn
        .admit(
            "/mutate",
            &review("p5", "CREATE", Some(pod("forbidden", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["message"], "forbidden image");
    assert!(answer.get("patch").is_none(), "{answer}");
}

#[tokio::test]
async fn raw_handler_answers_any_kind_with_its_own_patch() {
    let (_server, mut conn) = setup().await;
    let mut cm = review(
        "r1",
        "CREATE",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})),
        None,
        false,
    );
    cm["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let answer = conn.admit("/raw", &cm).await;
    assert_eq!(answer["uid"], "r1");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["auditAnnotations"]["kind"], "ConfigMap");
    let patched = apply(&cm["request"]["object"], &answer);
    assert_eq!(patched["data"]["seen"], "yes");

    let answer = conn
        .admit("/raw", &review("r2", "CREATE", Some(pod("a", json!({}))), None, false))
        .await;
    assert_eq!(answer["uid"], "r2");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["message"], "Pod is not handled");
    assert_eq!(answer["warnings"], json!(["raw"]));
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_denial_and_the_connection_stays_open() {
    let (_server, mut conn) = setup().await;
    let mut panics = review("boom", "CREATE", Some(json!({})), None, false);
    panics["request"]["kind"]["kind"] = json!("Panic");
    let answer = conn.admit("/raw", &panics).await;
    assert_eq!(answer["uid"], "boom");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["code"], 500);
    let answer = conn
        .admit(
            "/validate",
            &review("after", "CREATE", Some(pod("a@sha256:1", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "after");
}

#[tokio::test]
async fn a_v1beta1_review_is_answered_in_v1beta1() {
    let (_server, mut conn) = setup().await;
    let mut old = review("b1", "CREATE", Some(pod("a@sha256:1", json!({}))), None, false);
    old["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, body) = conn.post("/validate", &old).await;
    assert_eq!(status, 200);
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(body["response"]["uid"], "b1");
}

/// A raw handler that sets `patch` by hand and no `patchType`.
async fn patch_without_type(_req: Request) -> Response {
    let mut response = Response::allowed();
    response.patch = Some(br#"[{"op":"add","path":"/data/seen","value":"yes"}]"#.to_vec());
    response
}

#[tokio::test]
async fn a_mutating_raw_handlers_patch_is_sent_with_its_patch_type() {
    let webhooks = Server::builder()
        .raw_mutating("/mutate", patch_without_type)
        .build_in_process()
        .unwrap();
    let cm = review(
        "r1",
        "CREATE",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})),
        None,
        false,
    );
    let answer = webhooks.call("/mutate", serde_json::to_vec(&cm).unwrap().into()).await;
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    let answer = &answer["response"];
    assert_eq!(answer["allowed"], true, "{answer}");
    // `apply` checks patchType is JSONPatch, which kube-apiserver requires with a patch.
    assert_eq!(apply(&cm["request"]["object"], answer)["data"]["seen"], "yes");
}

#[tokio::test]
async fn a_validating_raw_handlers_response_is_sent_as_it_is_even_with_a_patch() {
    // As controller-runtime does: kube-apiserver counts the patch as a failed call, which the
    // webhook's failurePolicy then decides (refused under Fail, admitted under Ignore).
    let webhooks = Server::builder()
        .raw("/validate", patch_without_type)
        .raw("/with-patch", raw)
        .build_in_process()
        .unwrap();
    let mut cm = review(
        "r1",
        "CREATE",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})),
        None,
        false,
    );
    cm["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    for (path, patch_type) in [("/validate", None), ("/with-patch", Some("JSONPatch"))] {
        let answer = webhooks.call(path, serde_json::to_vec(&cm).unwrap().into()).await;
        assert_eq!(answer.status(), 200);
        let answer: Value = serde_json::from_slice(answer.body()).unwrap();
        let answer = &answer["response"];
        assert_eq!(answer["uid"], "r1");
        assert_eq!(answer["allowed"], true, "{answer}");
        assert!(answer.get("status").is_none(), "{answer}");
        assert!(answer["patch"].is_string(), "{answer}");
        assert_eq!(answer.get("patchType").and_then(Value::as_str), patch_type, "{answer}");
    }
}

/// A custom resource's spec whose `Option`s serialize as `null` (no `skip_serializing_if`), as
/// a spec derived without serde attributes does.
#[derive(serde::Serialize, serde::Deserialize)]
struct Thing {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: ThingSpec,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ThingSpec {
    a: Option<i32>,
    b: Option<String>,
    c: Option<bool>,
    nested: Option<Nested>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Nested {
    x: Option<i32>,
    y: Option<String>,
}

/// Changes nothing.
struct NoOp;

impl Defaulter<Thing> for NoOp {
    async fn set_defaults(&self, _req: &Request, _thing: &mut Thing) -> Verdict {
        Verdict::allow()
    }
}

/// Sets `spec.b`.
struct SetsB;

impl Defaulter<Thing> for SetsB {
    async fn set_defaults(&self, _req: &Request, thing: &mut Thing) -> Verdict {
        thing.spec.b.get_or_insert_with(|| "bee".into());
        Verdict::allow()
    }
}

/// Sets `spec.nested.y` (and `spec.nested` when it is missing).
struct SetsNestedY;

impl Defaulter<Thing> for SetsNestedY {
    async fn set_defaults(&self, _req: &Request, thing: &mut Thing) -> Verdict {
        let nested = thing.spec.nested.get_or_insert(Nested { x: None, y: None });
        nested.y.get_or_insert_with(|| "why".into());
        Verdict::allow()
    }
}

/// The patch a defaulter at `path` answers for a CREATE of `object`, as JSON (`None` for no
/// patch, then also without `patchType`).
async fn patch_for(webhooks: &kdev_webhook::server::InProcess, path: &str, object: Value) -> Option<Value> {
    use base64::Engine as _;
    let body = serde_json::to_vec(&review("t", "CREATE", Some(object), None, false)).unwrap();
    let answer = webhooks.call(path, body.into()).await;
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    let answer = &answer["response"];
    assert_eq!(answer["allowed"], true, "{answer}");
    let Some(patch) = answer.get("patch") else {
        assert!(answer.get("patchType").is_none(), "{answer}");
        return None;
    };
    assert_eq!(answer["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch.as_str().unwrap())
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn thing(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec})
}

#[tokio::test]
async fn a_defaulter_sends_only_its_own_changes_not_the_nulls_its_type_encodes() {
    let webhooks = Server::builder()
        .mutating_dynamic("/noop", NoOp)
        .mutating_dynamic("/sets-b", SetsB)
        .mutating_dynamic("/sets-nested-y", SetsNestedY)
        .build_in_process()
        .unwrap();

    // Nothing changed: no patch at all, whatever the request left out.
    for spec in [json!({"a": 1}), json!({}), json!({"a": null, "nested": {"x": 1}})] {
        assert_eq!(patch_for(&webhooks, "/noop", thing(spec.clone())).await, None, "{spec}");
    }

    // One field set that the request lacked: exactly one add.
    assert_eq!(
        patch_for(&webhooks, "/sets-b", thing(json!({"a": 1}))).await,
        Some(json!([{"op": "add", "path": "/spec/b", "value": "bee"}]))
    );
    // One field set that the request sent as null: a replace of that field only.
    assert_eq!(
        patch_for(&webhooks, "/sets-b", thing(json!({"a": 1, "b": null}))).await,
        Some(json!([{"op": "replace", "path": "/spec/b", "value": "bee"}]))
    );

    // Nested: a field added inside an object the request sent, an object added whole (without
    // the nulls of its `None`s) where the request had none.
    assert_eq!(
        patch_for(&webhooks, "/sets-nested-y", thing(json!({"nested": {"x": 1}}))).await,
        Some(json!([{"op": "add", "path": "/spec/nested/y", "value": "why"}]))
    );
    assert_eq!(
        patch_for(&webhooks, "/sets-nested-y", thing(json!({"a": 2}))).await,
        Some(json!([{"op": "add", "path": "/spec/nested", "value": {"y": "why"}}]))
    );
}

/// Removes the first container.
struct DropFirstContainer;

impl Defaulter<Pod> for DropFirstContainer {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        if let Some(spec) = pod.spec.as_mut() {
            spec.containers.remove(0);
        }
        Verdict::allow()
    }
}

/// Puts a sidecar first and pins the image of `app`.
struct PrependSidecar;

impl Defaulter<Pod> for PrependSidecar {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        if let Some(spec) = pod.spec.as_mut() {
            for c in &mut spec.containers {
                if c.name == "app" {
                    c.image = Some("app:2".into());
                }
            }
            let sidecar = k8s_openapi::api::core::v1::Container {
                name: "proxy".into(),
                image: Some("proxy:1".into()),
                ..Default::default()
            };
            spec.containers.insert(0, sidecar);
        }
        Verdict::allow()
    }
}

/// A pod with containers `app` and `log`, each with a field Pod does not know.
fn pod_with_unknown_container_fields() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [
            {"name": "app", "image": "app:1", "futureAppField": {"a": 1}},
            {"name": "log", "image": "log:1", "futureLogField": "l"},
        ]},
    })
}

async fn default_with(path: &str, webhooks: &kdev_webhook::server::InProcess, original: &Value) -> Value {
    let body = serde_json::to_vec(&review("u", "CREATE", Some(original.clone()), None, false)).unwrap();
    let answer = webhooks.call(path, body.into()).await;
    assert_eq!(answer.status(), 200);
    let answer: Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    apply(original, &answer["response"])
}

#[tokio::test]
async fn unknown_fields_stay_on_their_own_array_element_when_the_defaulter_removes_or_inserts_one() {
    let webhooks = Server::builder()
        .mutating("/drop-first", DropFirstContainer)
        .mutating("/prepend", PrependSidecar)
        .build_in_process()
        .unwrap();
    let original = pod_with_unknown_container_fields();

    let patched = default_with("/drop-first", &webhooks, &original).await;
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "log", "image": "log:1", "futureLogField": "l"}])
    );

    let patched = default_with("/prepend", &webhooks, &original).await;
    assert_eq!(
        patched["spec"]["containers"],
        json!([
            {"name": "proxy", "image": "proxy:1"},
            {"name": "app", "image": "app:2", "futureAppField": {"a": 1}},
            {"name": "log", "image": "log:1", "futureLogField": "l"},
        ])
    );
}

/// Field errors, as a kubebuilder webhook returns `apierrors.NewInvalid`.
struct Fields;

impl Validator<Pod> for Fields {
    async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
        let mut causes = Vec::new();
        for (i, image) in images(pod).enumerate() {
            if image.ends_with(":latest") {
                let field = format!("spec.containers[{i}].image");
                causes.push(StatusCause::invalid(field, image, "must not use the :latest tag"));
            }
        }
        if label(pod, "team").is_none() {
            causes.push(StatusCause::required("metadata.labels[team]", ""));
        }
        if causes.is_empty() {
            Verdict::allow()
        } else {
            Verdict::invalid(causes)
        }
    }

    async fn validate_update(&self, _req: &Request, _old: &Pod, _new: &Pod) -> Verdict {
        Verdict::deny("pods are immutable here")
            .with_cause(StatusCause::forbidden("spec", "updates are not allowed"))
            .with_cause(StatusCause::not_supported(
                "metadata.labels[tier]",
                "gold",
                ["web", "db"],
            ))
    }
}

#[tokio::test]
async fn an_invalid_verdict_names_the_object_and_carries_every_cause() {
    let webhooks = Server::builder()
        .validating("/fields", Fields)
        .build_in_process()
        .unwrap();
    let send = |review: Value| {
        let webhooks = &webhooks;
        async move {
            let answer = webhooks
                .call("/fields", serde_json::to_vec(&review).unwrap().into())
                .await;
            let answer: Value = serde_json::from_slice(answer.body()).unwrap();
            answer["response"].clone()
        }
    };

    let one = send(review(
        "u1",
        "CREATE",
        Some(pod("nginx:latest", json!({"team": "a"}))),
        None,
        false,
    ))
    .await;
    assert_eq!(one["allowed"], false);
    let status = &one["status"];
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    // apimachinery's NewInvalid: one cause is printed bare.
    assert_eq!(
        status["message"],
        r#"Pod "web" is invalid: spec.containers[0].image: Invalid value: "nginx:latest": must not use the :latest tag"#
    );
    assert_eq!(
        status["details"],
        json!({
            "name": "web",
            "kind": "Pod",
            "causes": [{
                "reason": "FieldValueInvalid",
                "message": "Invalid value: \"nginx:latest\": must not use the :latest tag",
                "field": "spec.containers[0].image",
            }],
        })
    );

    // Several causes are listed in brackets.
    let two = send(review(
        "u2",
        "CREATE",
        Some(pod("nginx:latest", json!({}))),
        None,
        false,
    ))
    .await;
    assert_eq!(
        two["status"]["message"],
        r#"Pod "web" is invalid: [spec.containers[0].image: Invalid value: "nginx:latest": must not use the :latest tag, metadata.labels[team]: Required value]"#
    );
    let causes = two["status"]["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2);
    assert_eq!(
        causes[1],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.labels[team]"})
    );

    // A plain denial keeps its message and code, and gains the causes.
    let old = pod("nginx:1", json!({}));
    let update = send(review("u3", "UPDATE", Some(old.clone()), Some(old), false)).await;
    assert_eq!(update["status"]["code"], 403);
    assert_eq!(update["status"]["message"], "pods are immutable here");
    assert_eq!(
        update["status"]["details"],
        json!({"causes": [
            {"reason": "FieldValueForbidden", "message": "Forbidden: updates are not allowed", "field": "spec"},
            {"reason": "FieldValueNotSupported", "message": "Unsupported value: \"gold\": supported values: \"web\", \"db\"", "field": "metadata.labels[tier]"},
        ]})
    );

    let allowed = send(review(
        "u4",
        "CREATE",
        Some(pod("nginx:1", json!({"team": "a"}))),
        None,
        false,
    ))
    .await;
    assert_eq!(allowed["allowed"], true);
    assert!(allowed.get("status").is_none(), "{allowed}");
}

/// kubebuilder's `CronJobCustomDefaulter` carries its defaults as fields, with a `Default`:
/// `Type::default()` stays unambiguous with `Defaulter` in scope.
#[derive(Default)]
struct DefaultsAsFields {
    team: String,
}

impl Defaulter<Pod> for DefaultsAsFields {
    async fn set_defaults(&self, _req: &Request, pod: &mut Pod) -> Verdict {
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("team".into(), self.team.clone());
        Verdict::allow()
    }
}

#[test]
fn a_defaulter_may_implement_default_too() {
    let defaulter = DefaultsAsFields::default();
    assert!(defaulter.team.is_empty());
    let _ = Server::builder().mutating::<Pod, _>("/default", DefaultsAsFields { team: "a".into() });
}
