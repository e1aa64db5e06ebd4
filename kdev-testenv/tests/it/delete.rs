//! DELETE as kube-apiserver answers it: `DeleteOptions` from the body (dry runs included) and
//! their validation, the propagation finalizers, the answer's shape and code, and the verbs the
//! all-namespaces path refuses.

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube_client::Api;
use kube_client::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::{code, configmap, eventually, held, needs_controllers, raw, release, setup};

/// A raw DELETE of `path` with `options` as its body: the status code and the decoded answer.
async fn raw_delete(env: &kdev_testenv::TestEnv, path: &str, options: Value) -> (u16, Value) {
    let req = http::Request::delete(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&options).expect("json"))
        .expect("a request");
    let answer = raw(env, req).await;
    (answer.code, answer.body)
}

#[tokio::test]
async fn a_dry_run_delete_changes_nothing() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    // kube-client sends `dryRun` in the DeleteOptions body, as client-go and kubectl do.
    let dry = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete("a", &dry).await.expect("a dry-run delete");
    api.get("a").await.expect("still there after a dry-run delete");
    api.delete_collection(&dry, &ListParams::default())
        .await
        .expect("a dry-run collection delete");
    api.get("a")
        .await
        .expect("still there after a dry-run collection delete");
}

#[tokio::test]
async fn invalid_delete_options_are_refused_as_invalid() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let path = format!("/api/v1/namespaces/{ns}/configmaps/a");
    for (options, field) in [
        (json!({ "propagationPolicy": "Sideways" }), "propagationPolicy"),
        (
            json!({ "propagationPolicy": "Orphan", "orphanDependents": true }),
            "propagationPolicy",
        ),
        (json!({ "dryRun": ["Some"] }), "dryRun"),
    ] {
        let (code, status) = raw_delete(&env, &path, options.clone()).await;
        assert_eq!(code, 422, "{options}: {status}");
        assert_eq!(status["details"]["kind"], json!("DeleteOptions"), "{status}");
        assert_eq!(status["details"]["causes"][0]["field"], json!(field), "{status}");
    }
    api.get("a").await.expect("none of them deleted anything");
}

#[tokio::test]
async fn a_service_account_delete_answers_with_the_object() {
    let (env, ns) = setup().await;
    let api: Api<ServiceAccount> = Api::namespaced(env.client(), &ns);
    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "robot" } })).expect("an account");
    api.create(&PostParams::default(), &sa).await.expect("create");
    let answer = api.delete("robot", &DeleteParams::default()).await.expect("delete");
    let gone = answer.left().expect("the ServiceAccount, not a Status");
    assert_eq!(gone.metadata.name.as_deref(), Some("robot"));
}

#[tokio::test]
async fn a_foreground_or_orphan_delete_answers_with_the_object_marked_with_its_finalizer() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for (name, params, finalizer) in [
        ("fg", DeleteParams::foreground(), "foregroundDeletion"),
        ("or", DeleteParams::orphan(), "orphan"),
    ] {
        api.create(&PostParams::default(), &configmap(name))
            .await
            .expect("create");
        // No dependents: the finalizer is set all the same, for the garbage collector to remove.
        let answer = api.delete(name, &params).await.expect("delete");
        let marked = answer.left().expect("the object marked for deletion, not a Status");
        assert!(marked.metadata.deletion_timestamp.is_some(), "{marked:?}");
        assert_eq!(marked.metadata.finalizers, Some(vec![finalizer.to_string()]));
    }
    if !needs_controllers(&env).await {
        return;
    }
    for name in ["fg", "or"] {
        eventually("the garbage collector to finish the delete", || async {
            api.get_opt(name).await.ok().and_then(|o| o.is_none().then_some(()))
        })
        .await;
    }
}

#[tokio::test]
async fn a_cascading_delete_asked_the_deprecated_way_is_accepted_while_finalizers_hold_the_object() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    api.create(&PostParams::default(), &held("held")).await.expect("create");
    let path = format!("/api/v1/namespaces/{ns}/configmaps/held");
    let (code, marked) = raw_delete(&env, &path, json!({ "orphanDependents": false })).await;
    assert_eq!(code, 202, "{marked}");
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    release(&api, "held").await;
}

#[tokio::test]
async fn a_failed_delete_precondition_names_both_versions() {
    let (env, ns) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    let cm = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");
    let stale = DeleteParams {
        preconditions: Some(kube_client::api::Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    match api.delete("a", &stale).await {
        Err(kube_client::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            let rv = cm.metadata.resource_version.unwrap_or_default();
            assert!(
                s.message.contains(&format!(
                    "the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv})"
                )),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn the_all_namespaces_path_refuses_creates_and_collection_deletes() {
    let (env, _ns) = setup().await;
    let all: Api<ConfigMap> = Api::all(env.client());
    // A selector matching nothing, so that no server could do harm here.
    let nothing = ListParams::default().labels("kdev.dev/never-set=x");
    assert_eq!(
        code(all.delete_collection(&DeleteParams::default(), &nothing).await),
        405
    );
    assert_eq!(
        code(all.create(&PostParams::default(), &configmap("nowhere")).await),
        405
    );
}
