//! The manager on kdev-testenv (and on a real cluster): controllers share informers, the
//! probes and `/metrics` answer over HTTP, shutdown lets reconciles in flight finish, a
//! failing runnable stops the manager, the cached reader reads from the informers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kdev_core::controller::{Action, BuildError, Context, Error, Request};
use kdev_core::manager::{Manager, ManagerError};
use kdev_testenv::TestEnv;
use kube_client::Api;
use kube_client::api::PostParams;
use kube_core::Selector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

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

/// Polls until `check` holds, for at most 60 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A plain HTTP/1.1 GET: (status, body).
pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    status_and_body(&raw)
}

/// The status code and body of a raw HTTP/1.1 response.
pub(crate) fn status_and_body(raw: &str) -> (u16, String) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn manager(env: &TestEnv) -> Manager {
    Manager::builder(env.client())
        .http_addr("127.0.0.1:0".parse().expect("addr"))
        .handle_signals(false)
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .build()
}

fn spawn(m: &Manager) -> tokio::task::JoinHandle<Result<(), ManagerError>> {
    let m = m.clone();
    tokio::spawn(async move { m.run().await })
}

#[tokio::test]
async fn controllers_share_informers_and_the_probes_and_metrics_answer() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("a")).await.expect("create");
    let m = manager(&env);
    let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let f = first.clone();
    m.controller_for(api.clone())
        .named("first")
        .complete(move |_: Arc<ConfigMap>, _: Context| {
            f.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Error>(Action::done()) }
        })
        .expect("first");
    let s = second.clone();
    m.controller_for(api.clone())
        .named("second")
        .owns_with(Api::<Secret>::namespaced(env.client(), &ns), Default::default())
        .complete(move |_: Arc<ConfigMap>, _: Context| {
            s.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Error>(Action::done()) }
        })
        .expect("second");
    let dup = m
        .controller_for(api.clone())
        .named("first")
        .complete(|_: Arc<ConfigMap>, _: Context| async { Ok::<_, Error>(Action::done()) });
    assert!(matches!(dup, Err(BuildError::DuplicateName(n)) if n == "first"));
    // Two controllers over the same ConfigMaps, one also over Secrets: two informers.
    assert_eq!(m.factory().len(), 2);

    assert!(!m.is_leader(), "not before run");
    let run = spawn(&m);
    tokio::time::timeout(Duration::from_secs(10), m.elected())
        .await
        .expect("without leader election a running manager leads");
    eventually("both controllers reconcile", || {
        first.load(Ordering::SeqCst) >= 1 && second.load(Ordering::SeqCst) >= 1
    })
    .await;
    let addr = m.http_addr().expect("the listener is bound");
    eventually("ready", || m.ready()).await;
    assert_eq!(get(addr, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(get(addr, "/readyz").await, (200, "ok".to_string()));
    assert_eq!(get(addr, "/nothing").await.0, 404);
    // controller-runtime's healthz handler: one check by name, `verbose`, `exclude`.
    assert_eq!(get(addr, "/readyz/informers").await, (200, "ok".to_string()));
    assert_eq!(get(addr, "/healthz/ping").await, (200, "ok".to_string()));
    assert_eq!(get(addr, "/readyz/nope").await.0, 404);
    assert_eq!(
        get(addr, "/readyz?verbose").await,
        (
            200,
            "[+]informers ok\n[+]started ok\nhealthz check passed\n".to_string()
        )
    );
    m.add_ready_check("gate", || Err("closed".to_string()));
    assert_eq!(
        get(addr, "/readyz").await,
        (
            500,
            "[-]gate failed: closed\n[+]informers ok\n[+]started ok\nhealthz check failed\n".to_string()
        )
    );
    assert_eq!(
        get(addr, "/readyz/gate").await,
        (500, "internal server error: closed\n".to_string())
    );
    assert_eq!(get(addr, "/readyz?exclude=gate").await, (200, "ok".to_string()));
    assert_eq!(
        get(addr, "/readyz?exclude=gate&exclude=nope&verbose").await,
        (
            200,
            "[+]gate excluded: ok\n[+]informers ok\n[+]started ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\nhealthz check passed\n"
                .to_string()
        )
    );
    let (code, metrics) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        r#"controller_runtime_reconcile_total{controller="first",result="success"} "#,
        r#"controller_runtime_reconcile_total{controller="second",result="error"} 0"#,
        r#"controller_runtime_reconcile_errors_total{controller="first"} 0"#,
        r#"controller_runtime_terminal_reconcile_errors_total{controller="first"} 0"#,
        r#"controller_runtime_reconcile_panics_total{controller="first"} 0"#,
        r#"controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="first"}"#,
        r#"controller_runtime_max_concurrent_reconciles{controller="second"} 1"#,
        r#"controller_runtime_active_workers{controller="first"} 0"#,
        r#"workqueue_adds_total{name="first",controller="first"}"#,
        r#"workqueue_depth{name="second",controller="second",priority="#,
        r#"workqueue_work_duration_seconds_count{name="first",controller="first"}"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

#[tokio::test]
async fn shutdown_lets_reconciles_in_flight_finish_and_takes_no_new_work() {
    let (env, _ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("slow")).await.expect("create");
    let m = manager(&env);
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, f) = (started.clone(), finished.clone());
    m.controller_for(api.clone())
        .complete(move |_: Arc<ConfigMap>, _: Context| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(Action::done())
            }
        })
        .expect("controller");
    let run = spawn(&m);
    eventually("the reconcile to start", || started.load(Ordering::SeqCst) == 1).await;
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the reconcile in flight finished");
    api.create(&PostParams::default(), &cm("after")).await.expect("create");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "no reconcile after shutdown");
}

#[tokio::test]
async fn a_failing_runnable_stops_the_manager_with_its_error() {
    let (env, _ns, _api) = setup().await;
    let m = manager(&env);
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    m.add_runnable("patient", false, move |stop| async move {
        stop.cancelled().await;
        s.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    m.add_runnable("broken", false, |_stop| async { Err("it broke".into()) });
    let err = m.run().await.expect_err("the runnable's error");
    assert!(
        matches!(&err, ManagerError::Runnable { name, .. } if name == "broken"),
        "{err}"
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "the other runnable was stopped");
    assert!(matches!(m.run().await, Err(ManagerError::AlreadyStarted)));
}

#[tokio::test]
async fn the_cache_reads_from_informers() {
    let (env, ns, api) = setup().await;
    api.create(&PostParams::default(), &cm("cached")).await.expect("create");
    let m = manager(&env);
    let cache = m.cache();
    let got: Arc<ConfigMap> = cache
        .get(Some(&ns), "cached")
        .await
        .expect("synced")
        .expect("the object");
    assert_eq!(got.metadata.name.as_deref(), Some("cached"));
    let again: Arc<ConfigMap> = cache.get(Some(&ns), "cached").await.expect("synced").expect("again");
    assert!(Arc::ptr_eq(&got, &again), "reads hand out the cached object");
    let all: Vec<Arc<ConfigMap>> = cache.list(Some(&ns), &Selector::default()).await.expect("list");
    assert!(all.iter().any(|c| c.metadata.name.as_deref() == Some("cached")));
    assert!(
        cache
            .get::<ConfigMap>(Some(&ns), "missing")
            .await
            .expect("synced")
            .is_none()
    );
    let _ = Request::namespaced(ns, "cached");
    m.factory().shutdown().await;
}

#[tokio::test]
async fn a_namespaced_cache_reads_one_namespace_through_informers_it_shares() {
    let (env, ns, api) = setup().await;
    let other = env.namespace().await.expect("a second namespace");
    api.create(&PostParams::default(), &cm("here")).await.expect("create");
    Api::<ConfigMap>::namespaced(env.client(), &other)
        .create(&PostParams::default(), &cm("there"))
        .await
        .expect("create");
    let m = manager(&env);
    let cache = m.cache().namespaced(&ns);
    assert_eq!(cache.namespace(), ns);
    let here: Arc<ConfigMap> = cache.get("here").await.expect("synced").expect("the object");
    assert!(
        cache.get::<ConfigMap>("there").await.expect("synced").is_none(),
        "another namespace is not cached"
    );
    let names: Vec<String> = cache
        .list::<ConfigMap>(&Selector::default())
        .await
        .expect("list")
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["here"]);
    // One informer, of this namespace only, shared with whoever asks for the same Api.
    assert_eq!(m.factory().len(), 1);
    let shared = m.factory().informer(Api::<ConfigMap>::namespaced(env.client(), &ns));
    assert_eq!(m.factory().len(), 1);
    assert!(shared.has_synced());
    let same = shared.lister().namespaced(&ns).get("here").expect("cached");
    assert!(Arc::ptr_eq(&here, &same), "the same cache");
    assert!(shared.lister().namespaced(&other).get("there").is_none());
    m.factory().shutdown().await;
}

fn labelled(name: &str, app: &str) -> ConfigMap {
    let mut c = cm(name);
    c.metadata.labels = Some([("kdev.test/app".to_string(), app.to_string())].into());
    c
}

/// An index the manager adds covers every informer of its type: the cluster-wide one and a
/// namespace's, made before or after the index (controller-runtime's `IndexField` with
/// `MatchingFields`), and a reconcile reads it through its context's cache.
#[tokio::test]
async fn a_manager_index_covers_every_informer_of_its_type() {
    let (env, ns, api) = setup().await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(&PostParams::default(), &labelled(name, app))
            .await
            .expect("create");
    }
    let m = manager(&env);
    let by_app = |c: &ConfigMap| -> Vec<String> {
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kdev.test/app"))
            .map(|app| vec![app.clone()])
            .unwrap_or_default()
    };
    // An informer made before the index gets it too.
    let namespaced = m.cache().namespaced(&ns);
    namespaced
        .list::<ConfigMap>(&Selector::default())
        .await
        .expect("synced");
    m.add_indexer::<ConfigMap>("app", by_app).expect("a new index");
    let err = m
        .add_indexer::<ConfigMap>("app", by_app)
        .expect_err("the name is taken");
    assert!(
        matches!(err, kdev_core::store::Error::IndexerConflict(ref n) if n == "app"),
        "{err}"
    );

    let names = |objects: Vec<Arc<ConfigMap>>| {
        let mut names: Vec<String> = objects.iter().filter_map(|c| c.metadata.name.clone()).collect();
        names.sort();
        names
    };
    let here = namespaced.by_index::<ConfigMap>("app", "web").await.expect("indexed");
    assert_eq!(names(here), ["a", "b"]);
    // The cluster-wide informer, made after the index.
    let everywhere = m
        .cache()
        .by_index::<ConfigMap>(Some(&ns), "app", "db")
        .await
        .expect("indexed");
    assert_eq!(names(everywhere), ["c"]);
    match m.cache().by_index::<ConfigMap>(Some(&ns), "nope", "x").await {
        Err(e @ kdev_core::manager::CacheError::UnknownIndex { .. }) => {
            assert_eq!(e.to_string(), "the cache of ConfigMap has no index \"nope\"");
        }
        other => panic!("expected UnknownIndex, got {other:?}"),
    }

    // A reconcile reads the same index through its context.
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let record = seen.clone();
    m.controller_for(api.clone())
        .complete(move |obj: Arc<ConfigMap>, ctx: Context| {
            let record = record.clone();
            async move {
                let app = obj
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kdev.test/app"))
                    .cloned();
                let ns = obj.metadata.namespace.clone().unwrap_or_default();
                let siblings = ctx
                    .cache()
                    .namespaced(&ns)
                    .by_index::<ConfigMap>("app", app.as_deref().unwrap_or_default())
                    .await
                    .map_err(Error::retry)?;
                record
                    .lock()
                    .push((obj.metadata.name.clone().unwrap_or_default(), siblings.len()));
                Ok::<_, Error>(Action::done())
            }
        })
        .expect("controller");
    let run = spawn(&m);
    eventually("three reconciles", || {
        seen.lock()
            .iter()
            .filter(|(n, _)| ["a", "b", "c"].contains(&n.as_str()))
            .count()
            >= 3
    })
    .await;
    let mut got: Vec<(String, usize)> = seen
        .lock()
        .iter()
        .filter(|(n, _)| ["a", "b", "c"].contains(&n.as_str()))
        .cloned()
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, [("a".to_string(), 2), ("b".to_string(), 2), ("c".to_string(), 1)]);
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

/// Counts the end of a runnable's work, whether it returns or is aborted.
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn election_config() -> kdev_core::leader_election::Config {
    kdev_core::leader_election::Config::default()
        .lease_duration(Duration::from_secs(3))
        .renew_deadline(Duration::from_secs(2))
        .retry_period(Duration::from_millis(300))
}

/// [`election_config`] on the embedded server; client-go's defaults (15 s / 10 s / 2 s) on a
/// real cluster, where one Lease update slower than 2 s would make the leader step down.
fn lease_election_config(env: &TestEnv) -> kdev_core::leader_election::Config {
    if env.is_embedded() {
        election_config()
    } else {
        kdev_core::leader_election::Config::default()
    }
}

/// Two managers on one Lease: only the leader runs its leader-only runnables; when it shuts
/// down it releases the Lease and the other takes over; `/metrics` shows who leads.
#[tokio::test]
async fn only_the_leading_manager_runs_leader_only_work() {
    use kdev_core::leader_election::{LeaderElector, LeaseLock};
    let (env, ns, _api) = setup().await;
    let started: Vec<_> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let always = Arc::new(AtomicUsize::new(0));
    let managers: Vec<Manager> = (0..2)
        .map(|i| {
            let lock = LeaseLock::new(env.client(), &ns, "managers", format!("manager-{i}"));
            let elector = LeaderElector::new(lock, lease_election_config(&env)).expect("valid");
            let m = Manager::builder(env.client())
                .http_addr("127.0.0.1:0".parse().expect("addr"))
                .handle_signals(false)
                .leader_election(elector)
                .build();
            let count = started[i].clone();
            m.add_runnable("leader-only", true, move |stop| async move {
                count.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
                Ok(())
            });
            let always = always.clone();
            m.add_runnable("everywhere", false, move |stop| async move {
                always.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
                Ok(())
            });
            m
        })
        .collect();
    let runs: Vec<_> = managers.iter().map(spawn).collect();
    let total = |s: &[Arc<AtomicUsize>]| s.iter().map(|c| c.load(Ordering::SeqCst)).sum::<usize>();
    eventually("one manager to lead", || total(&started) == 1).await;
    eventually("both managers to run the other runnable", || {
        always.load(Ordering::SeqCst) == 2
    })
    .await;
    let leader = usize::from(started[1].load(Ordering::SeqCst) == 1);
    // `elected` completes for the leader; the other does not lead.
    tokio::time::timeout(Duration::from_secs(10), managers[leader].elected())
        .await
        .expect("the leader is elected");
    assert!(managers[leader].is_leader());
    assert!(!managers[1 - leader].is_leader());
    let addr = managers[leader].http_addr().expect("bound");
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("leader_election_master_status{name=\"managers\"} 1"),
        "{metrics}"
    );
    let (code, body) = get(addr, "/healthz?verbose").await;
    assert_eq!(code, 200, "{body}");
    // Still only one after a few renewals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(total(&started), 1);

    managers[leader].shutdown_token().cancel();
    let mut runs = runs;
    runs.remove(leader).await.expect("join").expect("a clean stop");
    assert!(!managers[leader].is_leader(), "the lease was released");
    eventually("the other manager to take over", || {
        started[1 - leader].load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::timeout(Duration::from_secs(60), managers[1 - leader].elected())
        .await
        .expect("the other is elected");
    let other = &managers[1 - leader];
    let (_, metrics) = get(other.http_addr().expect("bound"), "/metrics").await;
    assert!(
        metrics.contains("leader_election_master_status{name=\"managers\"} 1"),
        "{metrics}"
    );
    other.shutdown_token().cancel();
    runs.remove(0).await.expect("join").expect("a clean stop");
}

/// A manager that can no longer renew its lease stops its leader-only work and exits with
/// `LeaderElectionLost`, as controller-runtime's does.
#[tokio::test]
async fn a_lost_lease_stops_the_manager() {
    use kdev_core::leader_election::{LeaderElector, MemoryLock};
    let (env, _ns, _api) = setup().await;
    let lock = MemoryLock::new("lost", "only");
    let elector = LeaderElector::new(lock.clone(), election_config()).expect("valid");
    let m = Manager::builder(env.client())
        .handle_signals(false)
        .leader_election(elector)
        .build();
    let (running, stopped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, s) = (running.clone(), stopped.clone());
    m.add_runnable("leader-only", true, move |stop| async move {
        let _ended = Ended(s);
        r.fetch_add(1, Ordering::SeqCst);
        stop.cancelled().await;
        Ok(())
    });
    let run = spawn(&m);
    eventually("leading", || running.load(Ordering::SeqCst) == 1).await;
    lock.set_failing(true);
    let result = run.await.expect("join");
    assert!(matches!(result, Err(ManagerError::LeaderElectionLost)), "{result:?}");
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "the leader-only work has ended");
}

/// A manager whose `run` future is dropped (a `select!` that another branch won, a timeout)
/// stops as a shut-down one does: its work is told to stop, the lease is released for another
/// replica, and the listener closes.
#[tokio::test]
async fn dropping_a_running_manager_releases_its_lease_and_stops_its_work() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kdev_core::leader_election::{LeaderElector, LeaseLock};
    let (env, ns, _api) = setup().await;
    let lock = LeaseLock::new(env.client(), &ns, "dropped", "only");
    let elector = LeaderElector::new(lock, lease_election_config(&env)).expect("valid");
    let m = Manager::builder(env.client())
        .http_addr("127.0.0.1:0".parse().expect("addr"))
        .handle_signals(false)
        .leader_election(elector)
        .build();
    let (leading, told) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (l, t) = (leading.clone(), told.clone());
    m.add_runnable("leader-only", true, move |stop| async move {
        l.fetch_add(1, Ordering::SeqCst);
        stop.cancelled().await;
        t.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    tokio::select! {
        result = m.run() => panic!("the manager stopped by itself: {result:?}"),
        () = eventually("leading", || leading.load(Ordering::SeqCst) == 1) => {}
    }
    let addr = m.http_addr().expect("bound");
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let mut released = false;
    for _ in 0..600 {
        let holder = leases
            .get("dropped")
            .await
            .expect("the lease")
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        if holder.is_empty() {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the lease was released");
    eventually("the listener to close", || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    })
    .await;
    assert!(matches!(m.run().await, Err(ManagerError::AlreadyStarted)));
}

/// A runnable, or a controller, added while the manager runs starts at once (leader-only ones
/// once leading); one added once it stops never runs.
#[tokio::test]
async fn a_runnable_added_to_a_running_manager_starts() {
    let (env, _ns, _api) = setup().await;
    let m = manager(&env);
    let run = spawn(&m);
    eventually("the manager to run", || m.http_addr().is_some()).await;
    let started = Arc::new(AtomicUsize::new(0));
    for needs_leader in [false, true] {
        let s = started.clone();
        m.add_runnable(format!("late-{needs_leader}"), needs_leader, move |stop| async move {
            s.fetch_add(1, Ordering::SeqCst);
            stop.cancelled().await;
            Ok(())
        });
    }
    eventually("both late runnables to start", || started.load(Ordering::SeqCst) == 2).await;
    m.shutdown_token().cancel();
    run.await.expect("join").expect("a clean stop");
    let s = started.clone();
    m.add_runnable("too-late", false, move |_| async move {
        s.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(started.load(Ordering::SeqCst), 2, "nothing starts after the stop");
}

/// An election that ends before this process ever led (here: the elector is already running
/// elsewhere) fails the manager instead of leaving its leader-only work waiting forever.
#[tokio::test]
async fn an_election_that_ends_without_leading_fails_the_manager() {
    use kdev_core::leader_election::{LeaderElector, MemoryLock};
    let (env, _ns, _api) = setup().await;
    let elector = LeaderElector::new(MemoryLock::new("twice", "only"), election_config()).expect("valid");
    let stop = CancellationToken::new();
    let other = elector.clone();
    let (s, leading) = (stop.clone(), Arc::new(AtomicUsize::new(0)));
    let l = leading.clone();
    let elsewhere = tokio::spawn(async move {
        other
            .run(s, move |_| async move {
                l.fetch_add(1, Ordering::SeqCst);
            })
            .await
    });
    eventually("the elector to lead elsewhere", || leading.load(Ordering::SeqCst) == 1).await;
    let m = Manager::builder(env.client())
        .handle_signals(false)
        .leader_election(elector)
        .build();
    let result = tokio::time::timeout(Duration::from_secs(30), m.run())
        .await
        .expect("it ends");
    assert!(
        matches!(&result, Err(ManagerError::Runnable { name, .. }) if name == "leader election"),
        "{result:?}"
    );
    stop.cancel();
    let _ = elsewhere.await;
}

/// A lease lost while the manager drains ends the grace period at once: another process may
/// lead by now, so the leader-only work must not run on.
#[tokio::test]
async fn a_lease_lost_while_draining_stops_the_leader_only_work_at_once() {
    use kdev_core::leader_election::{LeaderElector, MemoryLock};
    let (env, _ns, _api) = setup().await;
    let lock = MemoryLock::new("draining", "only");
    let elector = LeaderElector::new(lock.clone(), election_config()).expect("valid");
    let m = Manager::builder(env.client())
        .handle_signals(false)
        .graceful_shutdown_timeout(Duration::from_secs(600))
        .leader_election(elector)
        .build();
    let (running, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, e) = (running.clone(), ended.clone());
    m.add_runnable("stubborn", true, move |_stop| async move {
        let _ended = Ended(e);
        r.fetch_add(1, Ordering::SeqCst);
        // Ignores its stop token: only an abort ends it.
        std::future::pending::<()>().await;
        Ok(())
    });
    let run = spawn(&m);
    eventually("leading", || running.load(Ordering::SeqCst) == 1).await;
    m.shutdown_token().cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ended.load(Ordering::SeqCst), 0, "still draining");
    lock.set_failing(true);
    let result = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the manager stops well before its 600 s grace period")
        .expect("join");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(ended.load(Ordering::SeqCst), 1, "the work was aborted");
}

/// A manager's event recorders are shared by name and send what they hold before `run`
/// returns, so a controller's last events are not lost at shutdown.
#[tokio::test]
async fn the_manager_flushes_its_event_recorders_at_shutdown() {
    let (env, ns, api) = setup().await;
    let target = api.create(&PostParams::default(), &cm("noted")).await.expect("create");
    let m = manager(&env);
    let controller = "manager.kdev.dev/recorder";
    let recorder = m.event_recorder(controller).expect("a recorder");
    assert!(m.event_recorder("Not A Name").is_err(), "a name the API server refuses");
    let running = spawn(&m);
    eventually("the manager to run", || m.ready()).await;
    let regarding = kdev_core::event::reference(&target);
    for reason in ["First", "Last"] {
        m.event_recorder(controller).expect("the same recorder").publish(
            &regarding,
            None,
            kdev_core::event::EventType::Normal,
            reason,
            "Noted",
            "a note",
        );
    }
    m.shutdown_token().cancel();
    running.await.expect("join").expect("a clean stop");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client(), &ns);
    let mut reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some(controller))
        .filter_map(|e| e.reason)
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["First", "Last"]);
    assert_eq!(recorder.stats().created, 2, "one recorder behind both names");
}

/// Fault injection (embedded server only): once the manager is ready, an informer started later
/// by a cache read that cannot sync (as with a missing RBAC permission) fails only that read;
/// the replica stays ready.
#[tokio::test]
async fn a_cache_read_that_cannot_sync_does_not_make_a_ready_manager_unready() {
    use k8s_openapi::api::core::v1::Pod;
    let (env, _ns, api) = setup().await;
    let faults = env.faults();
    if !faults.supported() {
        eprintln!("skipped: fault injection needs the embedded API server");
        return;
    }
    let m = manager(&env);
    m.controller_for(api.clone())
        .named("ready-test")
        .complete(|_: Arc<ConfigMap>, _: Context| async { Ok::<_, Error>(Action::done()) })
        .expect("controller");
    let run = spawn(&m);
    eventually("ready", || m.ready()).await;

    for verb in ["list", "watch"] {
        faults
            .fail(
                kdev_testenv::Failure::new(403)
                    .verb(verb)
                    .resource("pods")
                    .times(u32::MAX),
            )
            .expect("inject");
    }
    let read = tokio::time::timeout(Duration::from_millis(500), m.cache().lister::<Pod>()).await;
    assert!(read.is_err(), "the pods informer cannot sync");
    assert!(m.factory().len() >= 2, "the pods informer was started and stays");
    assert!(m.ready(), "a later informer does not make the replica unready");
    let addr = m.http_addr().expect("bound");
    assert_eq!(get(addr, "/readyz").await.0, 200);

    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

/// A runnable that outlives the graceful shutdown timeout is abandoned, and `run` says so
/// (controller-runtime: "failed waiting for all runnables to end within grace period").
#[tokio::test]
async fn an_abandoned_shutdown_is_an_error_naming_what_still_ran() {
    let (env, _ns, _api) = setup().await;
    let m = Manager::builder(env.client())
        .handle_signals(false)
        .graceful_shutdown_timeout(Duration::from_millis(200))
        .build();
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (started.clone(), ended.clone());
    m.add_runnable("stubborn", false, move |_stop| async move {
        let _ended = Ended(e);
        s.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    });
    m.add_runnable("polite", false, |stop| async move {
        stop.cancelled().await;
        Ok(())
    });
    let run = spawn(&m);
    eventually("started", || started.load(Ordering::SeqCst) == 1).await;
    m.shutdown_token().cancel();
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the manager stops after its grace period")
        .expect("join");
    match result {
        Err(ManagerError::ShutdownTimeout { timeout, still_running }) => {
            assert_eq!(timeout, Duration::from_millis(200));
            assert_eq!(still_running, ["stubborn"]);
        }
        other => panic!("expected a shutdown timeout, got {other:?}"),
    }
    assert_eq!(ended.load(Ordering::SeqCst), 1, "the stubborn runnable was aborted");
}

/// Metrics and probes on listeners of their own, as kubebuilder's manifests expect them
/// (`:8080` and `:8081`).
#[tokio::test]
async fn metrics_and_probes_can_have_listeners_of_their_own() {
    let (env, _ns, _api) = setup().await;
    let m = Manager::builder(env.client())
        .handle_signals(false)
        .metrics_addr("127.0.0.1:0".parse().expect("addr"))
        .health_probe_addr("127.0.0.1:0".parse().expect("addr"))
        .build();
    let run = spawn(&m);
    eventually("ready", || m.ready()).await;
    assert_eq!(m.http_addr(), None, "no combined listener was asked for");
    let metrics = m.metrics_addr().expect("the metrics listener is bound");
    let probes = m.health_probe_addr().expect("the probe listener is bound");
    assert_ne!(metrics, probes);
    assert_eq!(get(metrics, "/metrics").await.0, 200);
    assert_eq!(get(metrics, "/readyz").await.0, 404);
    assert_eq!(get(probes, "/readyz").await, (200, "ok".to_string()));
    assert_eq!(get(probes, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(get(probes, "/metrics").await.0, 404);
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

/// Checks are keyed by name, as controller-runtime's: adding one again replaces it, and a
/// check named after a built-in one replaces the built-in.
#[tokio::test]
async fn a_check_added_under_a_taken_name_replaces_the_old_one() {
    let (env, _ns, _api) = setup().await;
    let m = manager(&env);
    m.add_health_check("ping", || Err("custom ping fails".into()));
    m.add_ready_check("db", || Err("first db check".into()));
    m.add_ready_check("db", || Ok(()));
    let run = spawn(&m);
    eventually("ready", || m.ready()).await;
    let addr = m.http_addr().expect("bound");
    assert_eq!(
        get(addr, "/healthz").await,
        (
            500,
            "[+]informers ok\n[-]ping failed: custom ping fails\nhealthz check failed\n".to_string()
        )
    );
    assert_eq!(
        get(addr, "/readyz?verbose").await,
        (
            200,
            "[+]db ok\n[+]informers ok\n[+]started ok\nhealthz check passed\n".to_string()
        )
    );
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}

/// An informer whose transform panics is dead: the manager's `/healthz` fails so the process
/// is restarted (client-go's informer would crash it), and `/readyz` fails too.
#[tokio::test]
async fn an_informer_that_failed_fails_the_liveness_probe() {
    let (env, ns, api) = setup().await;
    let m = Manager::builder(env.client())
        .http_addr("127.0.0.1:0".parse().expect("addr"))
        .handle_signals(false)
        .graceful_shutdown_timeout(Duration::from_secs(10))
        .transform::<ConfigMap>(move |cm| {
            // Only this test's poison: the controller watches every namespace, and on a bare
            // kube-apiserver an earlier run's namespace is never emptied.
            if cm.metadata.name.as_deref() == Some("poison") && cm.metadata.namespace.as_deref() == Some(ns.as_str()) {
                panic!("this transform cannot take poison");
            }
        })
        .build();
    m.controller::<ConfigMap>()
        .complete(|_cm: Arc<ConfigMap>, _ctx: Context| async { Ok::<_, Error>(Action::done()) })
        .expect("controller");
    let run = spawn(&m);
    eventually("ready", || m.ready()).await;
    let addr = m.http_addr().expect("bound");
    assert_eq!(get(addr, "/healthz").await, (200, "ok".to_string()));

    api.create(&PostParams::default(), &cm("poison")).await.expect("create");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (code, body) = loop {
        let (code, body) = get(addr, "/healthz/informers").await;
        if code != 200 || tokio::time::Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("this transform cannot take poison"), "{body}");
    assert_eq!(get(addr, "/readyz").await.0, 500);
    m.shutdown_token().cancel();
    run.await.expect("joined").expect("a clean stop");
}
