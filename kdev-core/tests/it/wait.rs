//! `wait::await_condition`: it returns once the condition holds, on the listed object or a
//! later change, through a broken watch and a 410 Gone, and fails for a kind not served.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::wait::{await_condition, conditions};
use kdev_testenv::{Failure, TestEnv};
use kube_client::Api;
use kube_client::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;

async fn setup() -> (TestEnv, Api<ConfigMap>) {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api = Api::namespaced(env.client(), &ns);
    (env, api)
}

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c
}

fn labelled(value: &'static str) -> impl Fn(Option<&ConfigMap>) -> bool {
    move |c| {
        c.and_then(|c| c.metadata.labels.as_ref())
            .and_then(|l| l.get("stage"))
            .is_some_and(|v| v == value)
    }
}

async fn set_stage(api: &Api<ConfigMap>, name: &str, stage: &str) {
    let patch = json!({ "metadata": { "labels": { "stage": stage } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

const LIMIT: Duration = Duration::from_secs(60);

/// What a spawned wait returned, within [`LIMIT`].
async fn outcome(waiting: tokio::task::JoinHandle<Result<Option<ConfigMap>, kube_client::Error>>) -> Option<ConfigMap> {
    tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("in time")
        .expect("joined")
        .expect("no error")
}

#[tokio::test]
async fn a_condition_already_true_returns_the_listed_object() {
    let (_env, api) = setup().await;
    let created = api.create(&PostParams::default(), &cm("now")).await.expect("create");
    let found = tokio::time::timeout(LIMIT, await_condition(api, "now", conditions::exists()))
        .await
        .expect("in time")
        .expect("no error")
        .expect("the object");
    assert_eq!(found.metadata.uid, created.metadata.uid);
}

#[tokio::test]
async fn the_wait_sees_an_object_created_and_changed_later() {
    let (_env, api) = setup().await;
    let waiting = tokio::spawn(await_condition(api.clone(), "later", labelled("done")));
    api.create(&PostParams::default(), &cm("later")).await.expect("create");
    set_stage(&api, "later", "working").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the condition does not hold yet");
    set_stage(&api, "later", "done").await;
    let found = outcome(waiting).await.expect("the object");
    assert_eq!(found.metadata.labels.unwrap()["stage"], "done");
}

#[tokio::test]
async fn is_deleted_waits_for_the_finalizers_to_go() {
    let (_env, api) = setup().await;
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["test.kdev.dev/hold".into()]);
    let created = api.create(&PostParams::default(), &held).await.expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    api.delete("held", &DeleteParams::default()).await.expect("delete");
    let waiting = tokio::spawn(await_condition(api.clone(), "held", conditions::is_deleted(&uid)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a finalizer keeps the object");
    let release = json!({ "metadata": { "finalizers": null } });
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("release");
    let found = outcome(waiting).await;
    assert!(found.is_none());
}

/// Fault injection (the embedded server only): the watch breaks, then the history it would
/// resume from is lost (410 Gone); the wait lists again and still sees the change.
#[tokio::test]
async fn the_wait_survives_a_broken_watch_and_a_410() {
    let (env, api) = setup().await;
    if !env.faults().supported() {
        eprintln!("skipping: this test breaks watches, which only the embedded server can do");
        return;
    }
    api.create(&PostParams::default(), &cm("flaky")).await.expect("create");
    let waiting = tokio::spawn(await_condition(api.clone(), "flaky", labelled("done")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.faults().drop_watches().expect("drop");
    set_stage(&api, "flaky", "working").await;
    env.faults()
        .fail(Failure::new(500).verb("watch").resource("configmaps"))
        .expect("plan");
    env.faults().drop_watches().expect("drop");
    set_stage(&api, "flaky", "done").await;
    env.faults().compact_history().expect("compact");
    let found = outcome(waiting).await.expect("the object");
    assert_eq!(found.metadata.labels.unwrap()["stage"], "done");
}

#[tokio::test]
async fn a_kind_the_server_does_not_serve_is_an_error() {
    let (env, _api) = setup().await;
    let gvk = GroupVersionKind::gvk("nothing.kdev.dev", "v1", "Nothing");
    let api: Api<DynamicObject> = Api::all_with(env.client(), &ApiResource::from_gvk(&gvk));
    let err = tokio::time::timeout(LIMIT, await_condition(api, "x", conditions::exists()))
        .await
        .expect("in time")
        .expect_err("not served");
    assert!(matches!(&err, kube_client::Error::Api(s) if s.code == 404), "{err:?}");
}
