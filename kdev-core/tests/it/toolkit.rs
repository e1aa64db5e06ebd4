//! The operator toolkit on kdev-testenv (and on a real cluster): the finalizer flow, owner
//! references with garbage collection, create-or-update and create-or-patch, server-side
//! apply, and the event recorder's series, spam filter and note limit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kdev_core::controller::Action;
use kdev_core::event::{self, EventType, Published, Recorder};
use kdev_core::finalizer::{self, Event, finalizer};
use kdev_core::object::{self, OperationResult};
use kdev_core::owner;
use kdev_testenv::TestEnv;
use kube_client::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube_client::{Api, Client};
use serde_json::json;

const FINALIZER: &str = "toolkit.kdev.dev/cleanup";

async fn setup() -> (TestEnv, String, Api<ConfigMap>) {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api = Api::namespaced(env.client(), &ns);
    (env, ns, api)
}

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c
}

/// Polls until `check` yields, for at most 60 s.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the outside thing is still busy")]
struct Busy;

/// A reconcile under the test finalizer whose clean-up fails while `fail_cleanup` holds.
async fn reconcile(
    api: &Api<ConfigMap>,
    obj: ConfigMap,
    fail_cleanup: bool,
    log: &Arc<parking_lot::Mutex<Vec<&'static str>>>,
) -> Result<Action, finalizer::Error<Busy>> {
    finalizer(api, FINALIZER, Arc::new(obj), |event| async move {
        match event {
            Event::Apply(_) => {
                log.lock().push("apply");
                Ok(Action::done())
            }
            Event::Cleanup(_) => {
                log.lock().push("cleanup");
                if fail_cleanup { Err(Busy) } else { Ok(Action::done()) }
            }
        }
    })
    .await
}

#[tokio::test]
async fn finalizer_keeps_the_object_until_cleanup_succeeds() {
    let (_env, _ns, api) = setup().await;
    let log = Arc::default();
    let created = api.create(&PostParams::default(), &cm("guarded")).await.unwrap();

    // 1. Alive without the finalizer: it is added, then Apply runs.
    assert_eq!(reconcile(&api, created, false, &log).await.unwrap(), Action::done());
    let live = api.get("guarded").await.unwrap();
    assert!(finalizer::has_finalizer(&live.metadata, FINALIZER));
    assert_eq!(*log.lock(), ["apply"]);

    // 2. Alive with the finalizer: only Apply.
    assert_eq!(
        reconcile(&api, live.clone(), false, &log).await.unwrap(),
        Action::done()
    );
    assert_eq!(api.get("guarded").await.unwrap().metadata.finalizers.unwrap().len(), 1);

    // A stale object cannot add the finalizer over a newer write: 409, nothing clobbered.
    let mut labelled = live.clone();
    labelled.metadata.labels = Some([("v".to_string(), "2".to_string())].into());
    api.replace("guarded", &PostParams::default(), &labelled).await.unwrap();
    let mut stale = live.clone();
    stale.metadata.finalizers = None;
    let err = reconcile(&api, stale, false, &log).await.unwrap_err();
    assert!(
        matches!(&err, finalizer::Error::AddFinalizer { source: kube_client::Error::Api(s), .. } if s.code == 409),
        "{err:?}"
    );

    // 3. Deleted, clean-up fails: the error comes back, the finalizer and the object stay.
    api.delete("guarded", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("guarded").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let err = reconcile(&api, deleting, true, &log).await.unwrap_err();
    assert!(matches!(err, finalizer::Error::Cleanup(Busy)));
    let still = api.get("guarded").await.unwrap();
    assert!(finalizer::has_finalizer(&still.metadata, FINALIZER));

    // 4. Clean-up succeeds: the finalizer is removed and the API server deletes the object.
    assert_eq!(reconcile(&api, still, false, &log).await.unwrap(), Action::done());
    eventually("the object to be gone", || async {
        api.get_opt("guarded").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(*log.lock(), ["apply", "apply", "cleanup", "cleanup"]);
}

/// A clean-up that writes the object (a condition saying it runs, as the operator-sdk tutorial
/// does) changes its resourceVersion; the finalizer is still removed in the same reconcile.
#[tokio::test]
async fn a_cleanup_that_writes_the_object_still_removes_its_finalizer() {
    let (_env, _ns, api) = setup().await;
    let log = Arc::default();
    let created = api.create(&PostParams::default(), &cm("busy-cleanup")).await.unwrap();
    assert_eq!(reconcile(&api, created, false, &log).await.unwrap(), Action::done());
    api.delete("busy-cleanup", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("busy-cleanup").await.unwrap();

    let out = finalizer(&api, FINALIZER, Arc::new(deleting), |event| {
        let api = api.clone();
        async move {
            if let Event::Cleanup(_) = event {
                let mark = json!({ "metadata": { "annotations": { "cleanup": "running" } } });
                api.patch("busy-cleanup", &PatchParams::default(), &Patch::Merge(&mark))
                    .await?;
            }
            Ok::<_, kube_client::Error>(Action::done())
        }
    })
    .await;
    assert_eq!(out.unwrap(), Action::done());
    eventually("the object to be gone", || async {
        api.get_opt("busy-cleanup").await.unwrap().is_none().then_some(())
    })
    .await;
}

/// The finalizer list changed after the object was read: the removal fails (422) instead of
/// writing a stale list, and the retry on the fresh object removes only ours.
#[tokio::test]
async fn a_finalizer_list_changed_meanwhile_fails_the_removal_until_retried() {
    let (_env, _ns, api) = setup().await;
    let log = Arc::default();
    let mut obj = cm("shared-finalizers");
    obj.metadata.finalizers = Some(vec![
        "someone.else/first".into(),
        FINALIZER.into(),
        "someone.else/last".into(),
    ]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("shared-finalizers", &DeleteParams::default()).await.unwrap();
    let read = api.get("shared-finalizers").await.unwrap();

    // Another controller removes its finalizer: ours moves from index 1 to 0.
    let rest = json!({ "metadata": { "finalizers": [FINALIZER, "someone.else/last"] } });
    api.patch("shared-finalizers", &PatchParams::default(), &Patch::Merge(&rest))
        .await
        .unwrap();
    let err = reconcile(&api, read, false, &log).await.unwrap_err();
    assert!(
        matches!(&err, finalizer::Error::RemoveFinalizer { source: kube_client::Error::Api(s), .. } if s.code == 422),
        "{err:?}"
    );
    let fresh = api.get("shared-finalizers").await.unwrap();
    assert_eq!(
        fresh.metadata.finalizers.as_deref().unwrap(),
        [FINALIZER, "someone.else/last"]
    );

    assert_eq!(reconcile(&api, fresh, false, &log).await.unwrap(), Action::done());
    let after = api.get("shared-finalizers").await.unwrap();
    assert_eq!(after.metadata.finalizers.as_deref().unwrap(), ["someone.else/last"]);
    assert_eq!(*log.lock(), ["cleanup", "cleanup"]);
    // Let it go.
    let none = json!({ "metadata": { "finalizers": null } });
    api.patch("shared-finalizers", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .unwrap();
}

/// An object without a uid (made by hand) cannot have its finalizer removed safely: that is
/// found before the clean-up runs, not after it on every retry.
#[tokio::test]
async fn bad_input_fails_before_the_cleanup_runs() {
    let (_env, _ns, api) = setup().await;
    let mut obj = cm("hand-made");
    obj.metadata.resource_version = Some("1".into());
    obj.metadata.finalizers = Some(vec![FINALIZER.into()]);
    obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    let log = Arc::default();
    let err = reconcile(&api, obj, false, &log).await.unwrap_err();
    assert!(matches!(err, finalizer::Error::NoUid(_)), "{err:?}");
    assert!(log.lock().is_empty(), "the clean-up did not run");
}

#[tokio::test]
async fn finalizer_does_nothing_for_an_object_deleted_without_it() {
    let (_env, _ns, api) = setup().await;
    let mut other = cm("other-finalizer");
    other.metadata.finalizers = Some(vec!["someone.else/keep".into()]);
    api.create(&PostParams::default(), &other).await.unwrap();
    api.delete("other-finalizer", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("other-finalizer").await.unwrap();
    let log = Arc::default();
    assert_eq!(reconcile(&api, deleting, false, &log).await.unwrap(), Action::done());
    assert!(log.lock().is_empty());
    let still = api.get("other-finalizer").await.unwrap();
    assert_eq!(still.metadata.finalizers.as_deref().unwrap(), ["someone.else/keep"]);
    // Let it go.
    api.patch(
        "other-finalizer",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn controller_reference_refuses_a_second_controller_and_the_gc_deletes_the_child() {
    let (env, _ns, api) = setup().await;
    let owner_a = api.create(&PostParams::default(), &cm("owner-a")).await.unwrap();
    let owner_b = api.create(&PostParams::default(), &cm("owner-b")).await.unwrap();

    let mut child = cm("child");
    child.metadata.namespace = owner_a.metadata.namespace.clone();
    owner::set_controller_reference(&owner_a, &mut child).unwrap();
    let err = owner::set_controller_reference(&owner_b, &mut child).unwrap_err();
    assert!(matches!(&err, owner::Error::AlreadyOwned { existing, .. } if existing.name == "owner-a"));
    let child = api.create(&PostParams::default(), &child).await.unwrap();
    let r = owner::get_controller_of(&child.metadata).unwrap();
    assert_eq!(
        (r.name.as_str(), r.uid.as_str()),
        ("owner-a", owner_a.metadata.uid.as_deref().unwrap())
    );

    if !env.has_controller_manager().await {
        eprintln!("skipping the garbage collection: it needs kube-controller-manager, which this cluster does not run");
        return;
    }
    api.delete("owner-a", &DeleteParams::background()).await.unwrap();
    eventually("the garbage collector to delete the child", || async {
        api.get_opt("child").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_update_creates_updates_leaves_unchanged_and_retries_conflicts() {
    let (_env, _ns, api) = setup().await;
    let set = |k: &'static str, v: &'static str| {
        move |cm: &mut ConfigMap| {
            cm.data.get_or_insert_default().insert(k.into(), v.into());
            Ok::<_, std::convert::Infallible>(())
        }
    };
    let (r, created) = object::create_or_update(&api, "settings", set("a", "1")).await.unwrap();
    assert_eq!(r, OperationResult::Created);
    let (r, same) = object::create_or_update(&api, "settings", set("a", "1")).await.unwrap();
    assert_eq!(r, OperationResult::Unchanged);
    assert_eq!(same.metadata.resource_version, created.metadata.resource_version);
    let (r, updated) = object::create_or_update(&api, "settings", set("a", "2")).await.unwrap();
    assert_eq!(r, OperationResult::Updated);
    assert_eq!(updated.data.unwrap()["a"], "2");

    // A concurrent writer gets in between the first read and the replace: the replace fails
    // with 409 and the read-mutate-replace runs again on the fresh object.
    let calls = AtomicU32::new(0);
    let writer = api.clone();
    let (r, merged) = object::create_or_update(&api, "settings", |cm: &mut ConfigMap| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let patch = Patch::Merge(json!({"data": {"other": "x"}}));
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(writer.patch("settings", &PatchParams::default(), &patch))
            })
            .unwrap();
        }
        cm.data.get_or_insert_default().insert("b".into(), "3".into());
        Ok::<_, std::convert::Infallible>(())
    })
    .await
    .unwrap();
    assert_eq!(r, OperationResult::Updated);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let data = merged.data.unwrap();
    assert_eq!(
        (data["a"].as_str(), data["b"].as_str(), data["other"].as_str()),
        ("2", "3", "x")
    );

    // The closure may not rename the object.
    let err = object::create_or_update(&api, "settings", |cm: &mut ConfigMap| {
        cm.metadata.name = Some("renamed".into());
        Ok::<_, std::convert::Infallible>(())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, object::Error::NameChanged { .. }));
}

/// A namespaced `Widget` CRD with a status subresource, in a group unique to this test. On a
/// real cluster `env` deletes it when dropped, also when the test fails half-way.
async fn install_widgets(env: &TestEnv) -> (String, ApiResource) {
    let group = super::unique_group();
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                    "spec": { "type": "object", "properties": { "size": { "type": "integer" } } },
                    "status": { "type": "object", "properties": {
                        "ready": { "type": "boolean" }, "phase": { "type": "string" } } }
                } } }
            }]
        }
    }))
    .unwrap();
    env.install_crd(&crd).await.unwrap();
    let name = format!("widgets.{group}");
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    (name, ar)
}

#[tokio::test]
async fn create_or_patch_sends_the_object_and_the_status_separately() {
    let (env, ns, _) = setup().await;
    let (crd_name, ar) = install_widgets(&env).await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client(), &ns, &ar);
    let new = DynamicObject::new("w", &ar).within(&ns);
    let size = |n: i64| {
        move |w: &mut DynamicObject| {
            w.data["spec"] = json!({ "size": n });
            Ok::<_, std::convert::Infallible>(())
        }
    };
    // The CRD may take a moment to be served after it is established (real clusters).
    let (r, _) = eventually("the widget to be created", || async {
        object::create_or_patch_from(&widgets, new.clone(), size(1)).await.ok()
    })
    .await;
    assert_eq!(r, OperationResult::Created);
    let (r, _) = object::create_or_patch_from(&widgets, new.clone(), size(1))
        .await
        .unwrap();
    assert_eq!(r, OperationResult::Unchanged);

    let (r, w) = object::create_or_patch_from(&widgets, new.clone(), |w: &mut DynamicObject| {
        w.data["status"] = json!({ "phase": "Starting" });
        Ok::<_, std::convert::Infallible>(())
    })
    .await
    .unwrap();
    assert_eq!(r, OperationResult::UpdatedStatusOnly);
    assert_eq!(w.data["status"]["phase"], "Starting");

    let (r, w) = object::create_or_patch_from(&widgets, new.clone(), |w: &mut DynamicObject| {
        w.data["spec"]["size"] = json!(2);
        w.data["status"]["ready"] = json!(true);
        Ok::<_, std::convert::Infallible>(())
    })
    .await
    .unwrap();
    assert_eq!(r, OperationResult::UpdatedStatus);
    assert_eq!(
        (w.data["spec"]["size"].as_i64(), w.data["status"]["ready"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        w.data["status"]["phase"], "Starting",
        "a merge patch keeps unchanged status fields"
    );

    let (r, _) = object::create_or_patch_from(&widgets, new.clone(), size(3))
        .await
        .unwrap();
    assert_eq!(r, OperationResult::Updated);

    let w = object::patch_status(&widgets, "w", &json!({ "phase": "Running" }))
        .await
        .unwrap();
    assert_eq!(
        (w.data["status"]["phase"].as_str(), w.data["spec"]["size"].as_i64()),
        (Some("Running"), Some(3))
    );
    assert_eq!(
        w.data["status"]["ready"],
        json!(true),
        "patch_status keeps what it does not name"
    );

    // patch_status_from makes the status exactly the one given: `ready` goes.
    let w = object::patch_status_from(&widgets, &w, &json!({ "phase": "Stopped" }))
        .await
        .unwrap();
    assert_eq!(w.data["status"], json!({ "phase": "Stopped" }));
    let rv = w.metadata.resource_version.clone();
    let same = object::patch_status_from(&widgets, &w, &json!({ "phase": "Stopped" }))
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, rv, "an unchanged status sends nothing");

    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    crds.delete(&crd_name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn apply_reports_conflicts_between_managers_unless_forced() {
    let (_env, _ns, api) = setup().await;
    let mut desired = cm("applied");
    desired.data = Some([("color".to_string(), "blue".to_string())].into());
    let first = object::apply(&api, &desired, "manager-a", false).await.unwrap();
    assert_eq!(first.data.unwrap()["color"], "blue");

    desired.data = Some([("color".to_string(), "red".to_string())].into());
    let err = object::apply(&api, &desired, "manager-b", false).await.unwrap_err();
    assert!(
        matches!(&err, object::Error::Write { source: kube_client::Error::Api(s), .. } if s.code == 409),
        "{err:?}"
    );
    let taken = object::apply(&api, &desired, "manager-b", true).await.unwrap();
    assert_eq!(taken.data.unwrap()["color"], "red");
}

/// The events `recorder` wrote into `ns`.
async fn events_of(client: &Client, ns: &str, controller: &str) -> Vec<KubeEvent> {
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), ns);
    let mut list = events.list(&ListParams::default()).await.unwrap().items;
    list.retain(|e| e.reporting_controller.as_deref() == Some(controller));
    list.sort_by_key(|e| e.metadata.name.clone());
    list
}

#[tokio::test]
async fn identical_events_become_one_event_with_a_series() {
    let (env, ns, api) = setup().await;
    let target = api.create(&PostParams::default(), &cm("noisy")).await.unwrap();
    let controller = "toolkit.kdev.dev/series";
    let recorder = Recorder::new(env.client(), controller).unwrap();
    let regarding = event::reference(&target);
    let outcomes: Vec<_> = (0..3)
        .map(|_| {
            recorder.publish(
                &regarding,
                None,
                EventType::Warning,
                "Failed",
                "Sync",
                "cannot reach the backend",
            )
        })
        .collect();
    assert_eq!(outcomes[0], Published::Created);
    assert!(outcomes[1..].iter().all(|p| *p == Published::Series));
    // The short form is the same event.
    assert_eq!(
        recorder.warning(&target, "Failed", "Sync", "cannot reach the backend"),
        Published::Series
    );
    // A different note is a different event.
    recorder.normal(&target, "Synced", "Sync", "in sync");
    recorder.flush().await;

    let events = events_of(&env.client(), &ns, controller).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let failed = events.iter().find(|e| e.reason.as_deref() == Some("Failed")).unwrap();
    assert_eq!(failed.series.as_ref().map(|s| s.count), Some(4));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.note.as_deref(), Some("cannot reach the backend"));
    assert_eq!(
        failed.reporting_instance.as_deref(),
        Some(recorder.reporting_instance())
    );
    assert_eq!(
        failed.regarding.as_ref().and_then(|r| r.uid.clone()),
        target.metadata.uid
    );
    assert!(failed.metadata.name.as_deref().unwrap().starts_with("noisy."));
    let synced = events.iter().find(|e| e.reason.as_deref() == Some("Synced")).unwrap();
    assert!(synced.series.is_none());
    let stats = recorder.stats();
    assert_eq!((stats.created, stats.failed), (2, 0));
}

#[tokio::test]
async fn a_finished_series_starts_a_new_event() {
    let (env, ns, api) = setup().await;
    let target = api.create(&PostParams::default(), &cm("repeating")).await.unwrap();
    let controller = "toolkit.kdev.dev/finish";
    let mut config = event::Config::new(controller);
    config.series_finish = Duration::ZERO; // every series ends at once
    let recorder = Recorder::with_config(env.client(), config).unwrap();
    let regarding = event::reference(&target);
    for _ in 0..2 {
        let p = recorder.publish(&regarding, None, EventType::Normal, "Tick", "Tick", "same");
        assert_eq!(p, Published::Created);
    }
    recorder.flush().await;
    let events = events_of(&env.client(), &ns, controller).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.series.is_none()));
    assert_ne!(events[0].metadata.name, events[1].metadata.name);
}

#[tokio::test]
async fn the_spam_filter_drops_events_over_the_burst() {
    let (env, ns, api) = setup().await;
    let a = api.create(&PostParams::default(), &cm("spammed")).await.unwrap();
    let b = api.create(&PostParams::default(), &cm("quiet")).await.unwrap();
    let controller = "toolkit.kdev.dev/spam";
    let config = event::Config::new(controller).spam_filter(3, Duration::from_secs(300));
    let recorder = Recorder::with_config(env.client(), config).unwrap();
    let (ra, rb) = (event::reference(&a), event::reference(&b));
    let outcomes: Vec<_> = (0..5)
        .map(|i| recorder.publish(&ra, None, EventType::Normal, &format!("Step{i}"), "Step", ""))
        .collect();
    assert_eq!(outcomes.iter().filter(|p| **p == Published::Spam).count(), 2);
    assert_eq!(outcomes[3..], [Published::Spam, Published::Spam]);
    // Another object has its own bucket.
    assert_eq!(
        recorder.publish(&rb, None, EventType::Normal, "Step0", "Step", ""),
        Published::Created
    );
    recorder.shutdown().await;
    assert_eq!(
        recorder.publish(&rb, None, EventType::Normal, "Late", "Step", ""),
        Published::ShutDown
    );

    assert_eq!(events_of(&env.client(), &ns, controller).await.len(), 4);
    assert_eq!(recorder.stats().dropped_spam, 2);
}

#[tokio::test]
async fn long_notes_are_cut_to_the_api_limit() {
    let (env, ns, api) = setup().await;
    let target = api.create(&PostParams::default(), &cm("verbose")).await.unwrap();
    let controller = "toolkit.kdev.dev/notes";
    let recorder = Recorder::new(env.client(), controller).unwrap();
    let note = "ü".repeat(1500); // 3000 bytes
    recorder.publish(
        &event::reference(&target),
        None,
        EventType::Normal,
        "Long",
        "Describe",
        &note,
    );
    assert_eq!(
        recorder.publish(&event::reference(&target), None, EventType::Normal, "", "Describe", "x"),
        Published::Invalid
    );
    // The API server counts bytes: 65 two-byte characters are 130, over the 128 allowed.
    let wide = "é".repeat(65);
    assert_eq!(
        recorder.publish(
            &event::reference(&target),
            None,
            EventType::Normal,
            &wide,
            "Describe",
            "x"
        ),
        Published::Invalid
    );
    recorder.flush().await;
    let events = events_of(&env.client(), &ns, controller).await;
    assert_eq!(events.len(), 1);
    let stored = events[0].note.as_deref().unwrap();
    assert_eq!(stored.len(), event::NOTE_LIMIT);
    assert!(note.starts_with(stored));
}

static_assertions::assert_impl_all!(Recorder: Send, Sync, Clone);
static_assertions::assert_impl_all!(finalizer::Error<Busy>: Send, Sync, std::error::Error);
static_assertions::assert_impl_all!(object::Error<Busy>: Send, Sync, std::error::Error);

/// The toolkit's futures can run on a multi-threaded runtime (inside `tokio::spawn`).
#[allow(dead_code)]
fn toolkit_futures_are_send(api: Api<ConfigMap>, recorder: Recorder, obj: Arc<ConfigMap>) {
    fn send<T: Send>(_: T) {}
    send(finalizer(&api, FINALIZER, obj.clone(), |_| async {
        Ok::<_, Busy>(Action::done())
    }));
    send(object::create_or_update(&api, "x", |_: &mut ConfigMap| {
        Ok::<_, Busy>(())
    }));
    send(object::create_or_patch(
        &api,
        "x",
        |_: &mut ConfigMap| Ok::<_, Busy>(()),
    ));
    send(object::patch_status(&api, "x", &json!({})));
    send(object::patch_status_from(&api, &obj, &json!({})));
    send(object::apply(&api, &obj, "m", false));
    send(recorder.flush());
    send(recorder.shutdown());
}

/// The API server refuses every `events.k8s.io/v1` Event whose `reportingController` is not
/// a qualified name: a recorder refuses such a name when made, not one event at a time.
#[tokio::test]
async fn a_recorder_refuses_a_reporting_controller_the_api_server_would_refuse() {
    let (env, _ns, _api) = setup().await;
    let long = format!("example.com/{}", "a".repeat(64));
    for bad in ["my controller", "Example.com/app", "example.com/", long.as_str()] {
        assert!(
            matches!(
                Recorder::new(env.client(), bad),
                Err(event::Error::InvalidController(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Recorder::new(env.client(), ""),
        Err(event::Error::EmptyController)
    ));
    for good in ["app-controller", "example.com/app-controller"] {
        assert!(Recorder::new(env.client(), good).is_ok(), "{good:?}");
    }
}

/// An Event about an object whose name is no DNS subdomain (a ClusterRole `system:...`) gets a
/// name the API server accepts, instead of being refused.
#[tokio::test]
async fn an_event_about_an_object_named_with_a_colon_is_written() {
    use k8s_openapi::api::core::v1::ObjectReference;
    let (env, _ns, _api) = setup().await;
    let controller = format!("toolkit.kdev.dev/colon-{}", fastrand::u32(..));
    let recorder = Recorder::new(env.client(), controller.as_str()).unwrap();
    let regarding = ObjectReference {
        api_version: Some("rbac.authorization.k8s.io/v1".into()),
        kind: Some("ClusterRole".into()),
        name: Some("system:kdev-test-role".into()),
        ..ObjectReference::default()
    };
    let published = recorder.publish(&regarding, None, EventType::Normal, "Checked", "Check", "x");
    assert_eq!(published, Published::Created);
    recorder.flush().await;
    let events = events_of(&env.client(), "default", &controller).await;
    assert_eq!(events.len(), 1, "written to the default namespace");
    let name = events[0].metadata.name.clone().unwrap_or_default();
    assert!(name.starts_with("system-kdev-test-role."), "{name}");
    let events_api: Api<KubeEvent> = Api::namespaced(env.client(), "default");
    let _ = events_api.delete(&name, &Default::default()).await;
}

/// A mutate closure may return the reconciler's own error, terminal ones included, and `?`
/// brings it back (terminal still) into the reconcile's result.
#[allow(dead_code)]
async fn a_mutate_closure_may_return_a_controller_error(
    api: Api<ConfigMap>,
) -> Result<(), kdev_core::controller::Error> {
    object::create_or_update(&api, "x", |_: &mut ConfigMap| {
        Err(kdev_core::controller::Error::terminal(
            "the spec asks for the impossible",
        ))
    })
    .await?;
    Ok(())
}
