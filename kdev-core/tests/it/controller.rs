//! The controller runtime on kdev-testenv (and on a real cluster): every object reconciled,
//! errors retried with backoff, terminal errors not retried (also from inside the finalizer
//! helper), panics caught, one key never reconciled twice at once, owned and watched objects
//! mapped to requests, predicates, initial list at low priority, and the controller metrics.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kdev_core::controller::{self, Action, Context, Controller, Error, Reconciler, Request, predicate};
use kdev_core::finalizer::{Event, finalizer};
use kdev_core::workqueue;
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LABEL: &str = "controller-test";

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.metadata.labels = Some([(LABEL.to_string(), "yes".to_string())].into());
    c.data = Some([("v".to_string(), "0".to_string())].into());
    c
}

async fn setup() -> (TestEnv, String, Api<ConfigMap>) {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api = Api::namespaced(env.client(), &ns);
    (env, ns, api)
}

async fn create(api: &Api<ConfigMap>, names: &[&str]) {
    for n in names {
        api.create(&PostParams::default(), &cm(n)).await.expect("create");
    }
}

/// Polls until `check` holds, for at most 60 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a controller until the returned token is cancelled.
fn start<K, R>(c: &Controller<K, R>) -> (CancellationToken, tokio::task::JoinHandle<()>)
where
    K: controller::Object,
    K::Scope: 'static,
    R: Reconciler<K>,
{
    let stop = CancellationToken::new();
    let (c, s) = (c.clone(), stop.clone());
    let task = tokio::spawn(async move { c.run(s).await.expect("the controller runs") });
    (stop, task)
}

/// A reconciler that records every call and answers from a script.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
    missing: Arc<Mutex<Vec<String>>>,
    /// name → how many calls fail before one succeeds.
    failures: Arc<Mutex<BTreeMap<String, usize>>>,
    terminal: Arc<Mutex<HashSet<String>>>,
    panics: Arc<Mutex<HashSet<String>>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    overlaps: Arc<AtomicUsize>,
    delay: Option<Duration>,
}

impl Recorder {
    fn count(&self, name: &str) -> usize {
        self.calls.lock().iter().filter(|n| *n == name).count()
    }
}

impl Reconciler<ConfigMap> for Recorder {
    async fn reconcile(&self, obj: Arc<ConfigMap>, ctx: Context) -> Result<Action, Error> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        assert_eq!(ctx.request().name, name);
        assert!(!ctx.reconcile_id().is_empty());
        if !self.in_flight.lock().insert(name.clone()) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        self.calls.lock().push(name.clone());
        self.in_flight.lock().remove(&name);
        if self.panics.lock().remove(&name) {
            panic!("reconciling {name} panicked");
        }
        if self.terminal.lock().contains(&name) {
            return Err(Error::terminal(format!("{name} cannot be fixed by retrying")));
        }
        let mut failures = self.failures.lock();
        if let Some(left) = failures.get_mut(&name)
            && *left > 0
        {
            *left -= 1;
            return Err(Error::msg(format!("{name} failed, {left} failures left")));
        }
        Ok(Action::done())
    }

    async fn reconcile_missing(&self, ctx: Context) -> Result<Action, Error> {
        self.missing.lock().push(ctx.request().name.clone());
        Ok(Action::done())
    }
}

fn controller_of(api: &Api<ConfigMap>) -> controller::Builder<ConfigMap> {
    Controller::builder(api.clone()).with_predicate(predicate::filter(|c: &ConfigMap| {
        c.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL))
    }))
}

#[tokio::test]
async fn every_object_is_reconciled_and_deletes_reach_reconcile_missing() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["a", "b"]).await;
    let rec = Recorder::default();
    let c = controller_of(&api).build(rec.clone()).expect("build");
    assert_eq!(c.name(), "configmap");
    let (stop, task) = start(&c);
    eventually("the initial list", || rec.count("a") == 1 && rec.count("b") == 1).await;
    create(&api, &["c"]).await;
    eventually("the new object", || rec.count("c") == 1).await;
    api.delete("c", &DeleteParams::default()).await.expect("delete");
    eventually("the delete", || rec.missing.lock().contains(&"c".to_string())).await;
    stop.cancel();
    task.await.expect("the controller stops");
}

#[tokio::test]
async fn errors_are_retried_with_backoff_and_terminal_errors_are_not() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["flaky", "doomed"]).await;
    let rec = Recorder::default();
    rec.failures.lock().insert("flaky".into(), 3);
    rec.terminal.lock().insert("doomed".into());
    let mut registry = Registry::default();
    let metrics = controller::Metrics::register(&mut registry);
    let queue_metrics = workqueue::Metrics::register(&mut registry);
    let c = controller_of(&api)
        .named("retry-test")
        .metrics(&metrics, &queue_metrics)
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    // Three failures, then success: four calls (backoff 5, 10, 20 ms).
    eventually("the flaky object to succeed", || rec.count("flaky") == 4).await;
    eventually("the doomed object", || rec.count("doomed") == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rec.count("flaky"), 4, "no call after success");
    assert_eq!(rec.count("doomed"), 1, "a terminal error is not retried");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        r#"controller_runtime_reconcile_total{controller="retry-test",result="success"} 1"#,
        r#"controller_runtime_reconcile_total{controller="retry-test",result="error"} 4"#,
        r#"controller_runtime_reconcile_total{controller="retry-test",result="requeue_after"} 0"#,
        r#"controller_runtime_reconcile_errors_total{controller="retry-test"} 4"#,
        r#"controller_runtime_terminal_reconcile_errors_total{controller="retry-test"} 1"#,
        r#"controller_runtime_reconcile_panics_total{controller="retry-test"} 0"#,
        r#"controller_runtime_max_concurrent_reconciles{controller="retry-test"} 1"#,
        r#"controller_runtime_active_workers{controller="retry-test"} 0"#,
        r#"controller_runtime_reconcile_time_seconds_count{controller="retry-test"} 5"#,
        r#"workqueue_adds_total{name="retry-test",controller="retry-test"}"#,
        r#"workqueue_retries_total{name="retry-test",controller="retry-test"} 3"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    stop.cancel();
    task.await.expect("the controller stops");
}

const FINALIZER: &str = "controller-test.kdev.dev/cleanup";

/// A reconciler that runs under [`finalizer`] and answers with `controller::Error` from inside
/// the closure: `doomed` has an invalid spec (terminal on Apply), `stuck` cannot be cleaned up
/// (terminal on Cleanup), `flaky` fails `failures` times on Apply before it succeeds.
#[derive(Clone, Default)]
struct Guarded {
    /// `name step` per closure call.
    calls: Arc<Mutex<Vec<String>>>,
    failures: Arc<AtomicUsize>,
}

impl Guarded {
    fn count(&self, call: &str) -> usize {
        self.calls.lock().iter().filter(|c| *c == call).count()
    }
}

impl Reconciler<ConfigMap> for Guarded {
    async fn reconcile(&self, obj: Arc<ConfigMap>, ctx: Context) -> Result<Action, Error> {
        let ns = ctx.request().namespace.clone().expect("namespaced");
        let api: Api<ConfigMap> = Api::namespaced(ctx.client().clone(), &ns);
        let action = finalizer(&api, FINALIZER, obj, |event| async move {
            let (obj, step) = match event {
                Event::Apply(obj) => (obj, "apply"),
                Event::Cleanup(obj) => (obj, "cleanup"),
            };
            let name = obj.metadata.name.clone().unwrap_or_default();
            self.calls.lock().push(format!("{name} {step}"));
            match (name.as_str(), step) {
                ("doomed", "apply") | ("stuck", "cleanup") => {
                    Err(Error::terminal(format!("{name}: {step} cannot be fixed by retrying")))
                }
                ("flaky", "apply")
                    if self
                        .failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok() =>
                {
                    Err(Error::msg(format!("{name}: busy")))
                }
                _ => Ok(Action::done()),
            }
        })
        .await?;
        Ok(action)
    }
}

/// `finalizer::Error<controller::Error>` converts with `?`, and a terminal error returned by
/// the closure stays terminal on the way to the controller (as a `reconcile.TerminalError`
/// wrapped by a helper in controller-runtime).
#[tokio::test]
async fn a_terminal_error_from_inside_the_finalizer_closure_is_not_retried() {
    let (_env, _ns, api) = setup().await;
    for name in ["doomed", "stuck", "flaky"] {
        // Created with the finalizer, so adding it causes no extra reconcile to count.
        let mut obj = cm(name);
        obj.metadata.finalizers = Some(vec![FINALIZER.into()]);
        api.create(&PostParams::default(), &obj).await.expect("create");
    }
    let rec = Guarded::default();
    rec.failures.store(3, Ordering::SeqCst);
    let mut registry = Registry::default();
    let metrics = controller::Metrics::register(&mut registry);
    let queue_metrics = workqueue::Metrics::register(&mut registry);
    let c = controller_of(&api)
        .named("finalizer-test")
        .metrics(&metrics, &queue_metrics)
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    // An ordinary error from the closure is still retried: three failures, then success.
    eventually("the flaky object to succeed", || rec.count("flaky apply") == 4).await;
    eventually("the doomed and stuck objects", || {
        rec.count("doomed apply") >= 1 && rec.count("stuck apply") >= 1
    })
    .await;
    api.delete("stuck", &DeleteParams::default()).await.expect("delete");
    eventually("the stuck object's clean-up", || rec.count("stuck cleanup") >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rec.count("flaky apply"), 4, "no call after success");
    assert_eq!(rec.count("doomed apply"), 1, "a terminal Apply error is not retried");
    assert_eq!(rec.count("stuck apply"), 1);
    assert_eq!(rec.count("stuck cleanup"), 1, "a terminal Cleanup error is not retried");
    let stuck = api.get("stuck").await.expect("a failed clean-up keeps the object");
    assert_eq!(stuck.metadata.finalizers.as_deref(), Some(&[FINALIZER.to_string()][..]));

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        r#"controller_runtime_reconcile_total{controller="finalizer-test",result="success"} 2"#,
        r#"controller_runtime_reconcile_total{controller="finalizer-test",result="error"} 5"#,
        r#"controller_runtime_reconcile_errors_total{controller="finalizer-test"} 5"#,
        r#"controller_runtime_terminal_reconcile_errors_total{controller="finalizer-test"} 2"#,
        r#"workqueue_retries_total{name="finalizer-test",controller="finalizer-test"} 3"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    stop.cancel();
    task.await.expect("the controller stops");
    // Let them go.
    for name in ["doomed", "stuck", "flaky"] {
        let unguard = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        api.patch(name, &PatchParams::default(), &unguard)
            .await
            .expect("remove the finalizer");
    }
}

#[tokio::test]
async fn a_panic_is_caught_counted_and_retried() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["boom", "fine"]).await;
    let rec = Recorder::default();
    rec.panics.lock().insert("boom".into());
    let mut registry = Registry::default();
    let metrics = controller::Metrics::register(&mut registry);
    let queue_metrics = workqueue::Metrics::register(&mut registry);
    let c = controller_of(&api)
        .named("panic-test")
        .metrics(&metrics, &queue_metrics)
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    eventually("the retry after the panic", || {
        rec.count("boom") == 2 && rec.count("fine") == 1
    })
    .await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains(r#"controller_runtime_reconcile_panics_total{controller="panic-test"} 1"#));
    stop.cancel();
    task.await.expect("the controller survives a panicking reconcile");
}

/// Log output, shared with the subscriber that writes it.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_reconcile_error_names_its_object_when_only_errors_are_logged() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .finish();
    // While only one subscriber is registered, tracing asks the subscriber of the thread that
    // first reaches a span whether it is wanted, and another test's thread would turn it off
    // for good; with a second one registered it asks every registered subscriber.
    let _second = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(std::io::sink).finish());
    // The test's runtime has one thread, which runs the controller's tasks too.
    let _logging = tracing::subscriber::set_default(subscriber);
    let (_env, ns, api) = setup().await;
    create(&api, &["flaky"]).await;
    let rec = Recorder::default();
    rec.failures.lock().insert("flaky".into(), 1);
    let c = controller_of(&api).named("log-test").build(rec.clone()).expect("build");
    let (stop, task) = start(&c);
    eventually("the retry after the error", || rec.count("flaky") == 2).await;
    stop.cancel();
    task.await.expect("the controller stops");
    let text = String::from_utf8_lossy(&logs.0.lock()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("reconciler error"))
        .unwrap_or_else(|| panic!("no error line in {text:?}"));
    for field in [
        "controller=log-test",
        &format!("namespace={ns}"),
        "name=flaky",
        "reconcile_id=",
    ] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
}

#[tokio::test]
async fn requeue_after_brings_the_key_back() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["poll"]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let c = controller_of(&api)
        .build(move |_: Arc<ConfigMap>, _: Context| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, Error>(if n < 2 {
                    Action::requeue_after(Duration::from_millis(20))
                } else {
                    Action::done()
                })
            }
        })
        .expect("build");
    let (stop, task) = start(&c);
    eventually("two requeues", || calls.load(Ordering::SeqCst) == 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    stop.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn one_key_is_never_reconciled_twice_at_once() {
    let (_env, _ns, api) = setup().await;
    let names: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    create(&api, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let rec = Recorder {
        delay: Some(Duration::from_millis(15)),
        ..Recorder::default()
    };
    let c = controller_of(&api)
        .max_concurrent_reconciles(4)
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    // Many updates to the same few keys while reconciles are slow.
    for round in 0..8 {
        for n in &names {
            let patch = json!({ "data": { "v": round.to_string() } });
            api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("patch");
        }
    }
    eventually("the last updates", || names.iter().all(|n| rec.count(n) >= 2)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rec.overlaps.load(Ordering::SeqCst),
        0,
        "a key was reconciled twice at once"
    );
    stop.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn owned_and_watched_objects_map_to_their_requests() {
    let (env, ns, api) = setup().await;
    create(&api, &["parent", "target"]).await;
    let parent = api.get("parent").await.expect("parent");
    let rec = Recorder::default();
    let secrets: Api<Secret> = Api::namespaced(env.client(), &ns);
    let c = controller_of(&api)
        .owns_with(secrets.clone(), kdev_core::controller::Predicate::all())
        .watches_with(
            secrets.clone(),
            |s: &Secret| {
                s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("points-to"))
                    .map(|t| Request::namespaced(s.metadata.namespace.clone().unwrap_or_default(), t.clone()))
                    .into_iter()
                    .collect()
            },
            kdev_core::controller::Predicate::all(),
        )
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    eventually("the initial list", || {
        rec.count("parent") == 1 && rec.count("target") == 1
    })
    .await;

    let mut child = Secret::default();
    child.metadata.name = Some("child".into());
    child.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "parent".into(),
        uid: parent.metadata.uid.clone().expect("uid"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    secrets.create(&PostParams::default(), &child).await.expect("child");
    eventually("the owner's reconcile", || rec.count("parent") == 2).await;

    let mut pointer = Secret::default();
    pointer.metadata.name = Some("pointer".into());
    pointer.metadata.annotations = Some([("points-to".to_string(), "target".to_string())].into());
    secrets.create(&PostParams::default(), &pointer).await.expect("pointer");
    eventually("the mapped reconcile", || rec.count("target") == 2).await;
    stop.cancel();
    task.await.expect("stops");
}

/// controller-runtime's `SyncPeriod`: an unchanged object is reconciled again about every
/// period; a controller without one reconciles it once.
#[tokio::test]
async fn a_sync_period_reconciles_unchanged_objects_again() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["a"]).await;
    let (synced, once) = (Recorder::default(), Recorder::default());
    let periodic = controller_of(&api)
        .named("periodic")
        .sync_period(Some(Duration::from_secs(1)))
        .build(synced.clone())
        .expect("build");
    let plain = controller_of(&api).named("plain").build(once.clone()).expect("build");
    let (stop_periodic, periodic_task) = start(&periodic);
    let (stop_plain, plain_task) = start(&plain);
    eventually("the initial list", || synced.count("a") == 1 && once.count("a") == 1).await;
    eventually("two replays", || synced.count("a") >= 3).await;
    assert_eq!(once.count("a"), 1, "no sync period, no replay");
    stop_periodic.cancel();
    stop_plain.cancel();
    periodic_task.await.expect("stops");
    plain_task.await.expect("stops");
}

/// A controller without a sync period replays at its factory's default resync period; one
/// whose sync period is zero never replays.
#[tokio::test]
async fn a_factory_default_resync_replays_unless_the_sync_period_is_zero() {
    let (env, _ns, api) = setup().await;
    create(&api, &["a"]).await;
    let factory =
        Arc::new(kdev_core::informer::SharedInformerFactory::new(env.client()).default_resync(Duration::from_secs(1)));
    let of = |name: &str| {
        Controller::with_factory(api.clone(), factory.clone())
            .named(name)
            .with_predicate(predicate::filter(|c: &ConfigMap| {
                c.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL))
            }))
    };
    let (defaulted, never) = (Recorder::default(), Recorder::default());
    let inheriting = of("inheriting").build(defaulted.clone()).expect("build");
    let opted_out = of("opted-out")
        .sync_period(Some(Duration::ZERO))
        .build(never.clone())
        .expect("build");
    let (stop_inheriting, inheriting_task) = start(&inheriting);
    let (stop_opted_out, opted_out_task) = start(&opted_out);
    eventually("the initial list", || {
        defaulted.count("a") == 1 && never.count("a") == 1
    })
    .await;
    eventually("two replays", || defaulted.count("a") >= 3).await;
    assert_eq!(never.count("a"), 1, "a zero sync period, no replay");
    stop_inheriting.cancel();
    stop_opted_out.cancel();
    inheriting_task.await.expect("stops");
    opted_out_task.await.expect("stops");
    factory.shutdown().await;
}

/// controller-runtime's `ByObject` label selector: the others are neither reconciled nor
/// cached, and an object whose label goes away is reconciled as deleted.
#[tokio::test]
async fn selectors_keep_other_objects_out_of_the_cache_and_the_queue() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["a", "b"]).await;
    let team = |name: &str, team: &str| {
        let patch = json!({ "metadata": { "labels": { "team": team } } });
        let api = api.clone();
        let name = name.to_string();
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("label")
        }
    };
    team("a", "x").await;
    team("b", "y").await;
    let rec = Recorder::default();
    let c = Controller::builder(api.clone())
        .selectors(&format!("{LABEL}=yes,team=x"), "")
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    eventually("a", || rec.count("a") == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rec.count("b"), 0, "b is not selected");
    let cached: Vec<String> = c
        .store()
        .list()
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(cached, ["a"], "only the selected objects are cached");
    // b joins the selection, a leaves it.
    team("b", "x").await;
    eventually("b", || rec.count("b") == 1).await;
    team("a", "y").await;
    eventually("a reconciled as gone", || rec.missing.lock().contains(&"a".to_string())).await;
    assert!(c.store().get(Some(api.namespace().expect("namespaced")), "a").is_none());
    stop.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn predicates_filter_updates() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["a"]).await;
    let rec = Recorder::default();
    // ConfigMaps have no generation: with generation_changed, only creates and deletes pass,
    // unless the labels change.
    let c = controller_of(&api)
        .with_predicate(predicate::generation_changed() | predicate::labels_changed())
        .build(rec.clone())
        .expect("build");
    let (stop, task) = start(&c);
    eventually("the initial list", || rec.count("a") == 1).await;
    let data = json!({ "data": { "v": "1" } });
    api.patch("a", &PatchParams::default(), &Patch::Merge(&data))
        .await
        .expect("patch");
    let label = json!({ "metadata": { "labels": { "tier": "x" } } });
    api.patch("a", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("patch");
    eventually("the label change", || rec.count("a") == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rec.count("a"), 2, "the data change was filtered out");
    stop.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn a_reconcile_timeout_abandons_and_retries() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["slow"]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let c = controller_of(&api)
        .reconcile_timeout(Duration::from_millis(50))
        .build(move |_: Arc<ConfigMap>, _: Context| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<_, Error>(Action::done())
            }
        })
        .expect("build");
    let (stop, task) = start(&c);
    eventually("the retry after the timeout", || calls.load(Ordering::SeqCst) == 2).await;
    stop.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn real_changes_overtake_the_initial_list() {
    let (_env, _ns, api) = setup().await;
    let initial: Vec<String> = (0..20).map(|i| format!("initial-{i:02}")).collect();
    create(&api, &initial.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let (g, o) = (gate.clone(), order.clone());
    let c = controller_of(&api)
        .build(move |cm: Arc<ConfigMap>, _: Context| {
            let (g, o) = (g.clone(), o.clone());
            async move {
                // The first reconcile waits until the test has queued a real change.
                if o.lock().is_empty() {
                    g.acquire().await.expect("gate").forget();
                }
                o.lock().push(cm.metadata.name.clone().unwrap_or_default());
                Ok::<_, Error>(Action::done())
            }
        })
        .expect("build");
    let (stop, task) = start(&c);
    // One initial object is being reconciled (blocked), the other 19 wait in the queue.
    eventually("the initial list queued", || c.queue_len() == 19).await;
    create(&api, &["fresh"]).await;
    eventually("the fresh object queued", || c.queue_len() == 20).await;
    gate.add_permits(1);
    eventually("everything reconciled", || order.lock().len() == 21).await;
    assert_eq!(order.lock()[1], "fresh", "order: {:?}", order.lock());
    stop.cancel();
    task.await.expect("stops");
}

#[test]
fn invalid_builds_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = TestEnv::start().await.expect("env");
        let api: Api<ConfigMap> = Api::all(env.client());
        let noop = |_: Arc<ConfigMap>, _: Context| async { Ok::<_, Error>(Action::done()) };
        assert!(matches!(
            Controller::builder(api.clone())
                .max_concurrent_reconciles(0)
                .build(noop),
            Err(controller::BuildError::NoWorkers)
        ));
        assert!(matches!(
            Controller::builder(api.clone()).named("Bad Name").build(noop),
            Err(controller::BuildError::InvalidName(_))
        ));
        // "Never", spelled as the longest period: no overflow once jittered.
        Controller::builder(api)
            .sync_period(Some(Duration::MAX))
            .build(noop)
            .expect("a sync period as long as can be");
    });
}

#[tokio::test]
async fn a_namespaced_controller_watches_its_children_and_watched_kinds_in_its_namespace_only() {
    use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
    let (env, ns, api) = setup().await;
    let manager = kdev_core::manager::Manager::builder(env.client()).build();
    let _c = manager
        .controller_for(api.clone())
        .owns::<Secret>()
        .watches(|_: &ServiceAccount| Vec::new())
        .watches(|_: &Namespace| Vec::new())
        .build(Recorder::default())
        .expect("build");
    let factory = manager.factory();
    let informers = factory.len();
    assert_eq!(informers, 4, "ConfigMaps, Secrets, ServiceAccounts, Namespaces");
    // The children's and the watched namespaced kind's informers are those of the namespace
    // (a Role there is enough RBAC); the cluster-scoped kind's is cluster-wide.
    let _ = factory.informer(Api::<Secret>::namespaced(env.client(), &ns));
    let _ = factory.informer(Api::<ServiceAccount>::namespaced(env.client(), &ns));
    let _ = factory.informer(Api::<Namespace>::all(env.client()));
    assert_eq!(factory.len(), informers, "no new informer: they were already there");
    let _ = factory.informer(Api::<Secret>::all(env.client()));
    assert_eq!(factory.len(), informers + 1);
}

/// A rate limiter that panics: a bug outside the reconciler.
struct Broken;

impl workqueue::rate_limiter::RateLimiter<Request> for Broken {
    fn when(&self, _: &Request) -> Duration {
        panic!("the rate limiter is broken")
    }
    fn forget(&self, _: &Request) {}
    fn num_requeues(&self, _: &Request) -> u32 {
        0
    }
}

/// A worker that panics outside the reconciler stops the controller with an error that says
/// so, instead of leaving it without workers (and the key stuck) while it looks healthy.
#[tokio::test]
async fn a_worker_that_panics_outside_the_reconciler_stops_the_controller_with_an_error() {
    let (_env, _ns, api) = setup().await;
    create(&api, &["fails"]).await;
    let rec = Recorder::default();
    rec.failures.lock().insert("fails".into(), 1);
    let c = controller_of(&api)
        .rate_limiter(Broken)
        .max_concurrent_reconciles(2)
        .build(rec.clone())
        .expect("build");
    let result = tokio::time::timeout(Duration::from_secs(60), c.run(CancellationToken::new()))
        .await
        .expect("the controller stops");
    assert!(
        matches!(&result, Err(controller::RunError::WorkerPanicked { message, .. }) if message.contains("broken")),
        "{result:?}"
    );
}
