//! The reflector on kdev-testenv (and on a real cluster with `KDEV_TEST_KUBECONFIG`): the first
//! sync, following changes, resuming after dropped watches, relisting after 410, and converging
//! under churn with faults.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev_core::reflector::{Backoff, Config, ListWatch, Reflector, Status};
use kdev_core::store::{self, Store};
use kdev_testenv::{Failure, TestEnv};
use kube_client::Api;
use kube_client::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn cm(name: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.metadata.labels = Some([("reflector-test".to_string(), "yes".to_string())].into());
    c.data = Some([("v".to_string(), value.to_string())].into());
    c
}

/// A quick backoff so that fault tests recover in milliseconds rather than seconds.
fn fast() -> Config {
    Config::default().backoff(Backoff::new(
        Duration::from_millis(10),
        Duration::from_millis(200),
        Duration::from_secs(120),
    ))
}

struct Running {
    store: Store<ConfigMap>,
    status: Status,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn start(api: Api<ConfigMap>, config: Config) -> Running {
    let (store, writer) = store::store::<ConfigMap>();
    let lw = ListWatch::new(api).labels("reflector-test=yes");
    let reflector = Reflector::new(lw, writer, config);
    let status = reflector.status();
    let stop = CancellationToken::new();
    tokio::spawn(reflector.run(stop.clone()));
    Running { store, status, stop }
}

/// name → (resourceVersion, data) of what the server holds, from a fresh list.
async fn server_state(api: &Api<ConfigMap>) -> BTreeMap<String, (String, Option<BTreeMap<String, String>>)> {
    api.list(&ListParams::default().labels("reflector-test=yes"))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                (c.metadata.resource_version.clone().unwrap_or_default(), c.data),
            )
        })
        .collect()
}

fn store_state(store: &Store<ConfigMap>) -> BTreeMap<String, (String, Option<BTreeMap<String, String>>)> {
    store
        .list()
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                (c.metadata.resource_version.clone().unwrap_or_default(), c.data.clone()),
            )
        })
        .collect()
}

/// Waits until the store holds exactly what the server holds, object by object.
async fn converge(api: &Api<ConfigMap>, store: &Store<ConfigMap>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let want = server_state(api).await;
        if store_state(store) == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let have = store_state(store);
            let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
            let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
            let stale: Vec<_> = want
                .iter()
                .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
                .map(|(k, _)| k)
                .collect();
            panic!("the store did not converge: missing {missing:?}, extra {extra:?}, stale {stale:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup() -> (TestEnv, Api<ConfigMap>) {
    let env = TestEnv::start().await.expect("test environment");
    let ns = env.namespace().await.expect("namespace");
    let api = Api::namespaced(env.client(), &ns);
    (env, api)
}

#[tokio::test]
async fn a_reflector_lists_then_follows_every_change() {
    let (_env, api) = setup().await;
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n, "1")).await.expect("create");
    }
    let r = start(api.clone(), Config::default());
    converge(&api, &r.store).await;
    assert_eq!(r.status.lists(), 1);
    api.create(&PostParams::default(), &cm("d", "1")).await.expect("create");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "v": "2" } })),
    )
    .await
    .expect("patch");
    api.delete("b", &DeleteParams::default()).await.expect("delete");
    converge(&api, &r.store).await;
    assert!(!r.status.last_resource_version().is_empty());
}

#[tokio::test]
async fn a_paginated_list_works_when_streaming_lists_are_off() {
    let (_env, api) = setup().await;
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), "1"))
            .await
            .expect("create");
    }
    let r = start(api.clone(), Config::default().streaming_lists(false).page_size(2));
    converge(&api, &r.store).await;
    assert_eq!(r.status.lists(), 1);
}

#[tokio::test]
async fn after_a_dropped_watch_the_reflector_resumes_without_relisting() {
    let (env, api) = setup().await;
    if !env.faults().supported() {
        eprintln!("skipping: this test drops watches, which only the embedded server can do");
        return;
    }
    let r = start(api.clone(), fast());
    api.create(&PostParams::default(), &cm("a", "1")).await.expect("create");
    converge(&api, &r.store).await;
    let watches = r.status.watches();
    env.faults().drop_watches().expect("drop");
    api.create(&PostParams::default(), &cm("b", "1")).await.expect("create");
    converge(&api, &r.store).await;
    assert_eq!(r.status.lists(), 1, "no relist after a dropped watch");
    assert!(r.status.watches() > watches, "a new watch was opened");
}

#[tokio::test]
async fn a_410_gone_makes_the_reflector_list_again() {
    let (env, api) = setup().await;
    if !env.faults().supported() {
        eprintln!("skipping: this test compacts the history, which only the embedded server can do");
        return;
    }
    let r = start(api.clone(), fast());
    api.create(&PostParams::default(), &cm("a", "1")).await.expect("create");
    converge(&api, &r.store).await;
    // Drop the watch and lose the history it would resume from: the next watch gets 410.
    env.faults()
        .fail(Failure::new(500).verb("watch").resource("configmaps"))
        .expect("plan");
    env.faults().drop_watches().expect("drop");
    api.create(&PostParams::default(), &cm("b", "1")).await.expect("create");
    env.faults().compact_history().expect("compact");
    api.delete("a", &DeleteParams::default()).await.expect("delete");
    converge(&api, &r.store).await;
    assert!(r.status.lists() >= 2, "lists: {}", r.status.lists());
}

#[tokio::test]
async fn the_store_converges_under_churn_with_faults_with_streaming_lists() {
    churn_with_faults(fast()).await;
}

#[tokio::test]
async fn the_store_converges_under_churn_with_faults_with_paginated_lists() {
    churn_with_faults(fast().streaming_lists(false).page_size(7)).await;
}

/// Thousands of creates, updates and deletes while watches are dropped, the history is
/// compacted (410 on the next watch), lists and watches fail with 500 and the server restarts;
/// then the store must hold exactly what a fresh list returns. On a real cluster only the
/// churn runs (no faults can be injected there).
async fn churn_with_faults(config: Config) {
    let (env, api) = setup().await;
    let faults = env.faults();
    if !faults.supported() {
        println!("a real cluster cannot inject faults: only the churn runs");
    }
    let r = start(api.clone(), config);
    let names: Vec<String> = (0..60).map(|i| format!("churn-{i}")).collect();
    for step in 0..1200u32 {
        let name = &names[fastrand::usize(..names.len())];
        match fastrand::u8(..3) {
            0 => {
                let _ = api.create(&PostParams::default(), &cm(name, &step.to_string())).await;
            }
            1 => {
                let patch = Patch::Merge(json!({ "data": { "v": step.to_string() } }));
                let _ = api.patch(name, &PatchParams::default(), &patch).await;
            }
            _ => {
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
        if faults.supported() {
            match step {
                150 | 450 | 900 => {
                    faults.drop_watches().expect("drop");
                }
                300 => faults.compact_history().expect("compact"),
                600 => {
                    faults
                        .fail(Failure::new(500).verb("watch").resource("configmaps").times(3))
                        .expect("plan");
                    faults
                        .fail(Failure::new(500).verb("list").resource("configmaps").times(2))
                        .expect("plan");
                    faults.drop_watches().expect("drop");
                }
                // Knock the watch down and keep it down briefly while writes go on, then lose the
                // history: the reflector is behind, so its next watch gets 410 and it relists.
                750 => {
                    faults
                        .fail(Failure::new(500).verb("watch").resource("configmaps").times(2))
                        .expect("plan");
                    faults.drop_watches().expect("drop");
                }
                760 => faults.compact_history().expect("compact"),
                1000 => env.restart().await.expect("restart"),
                _ => {}
            }
        }
    }
    if faults.supported() {
        // Planned failures the reflector did not happen to meet must not fail the check's own list.
        faults.clear().expect("clear");
    }
    converge(&api, &r.store).await;
    if faults.supported() {
        let (lists, watches, err) = (r.status.lists(), r.status.watches(), r.status.last_error());
        assert!(
            lists >= 2,
            "the faults forced a relist (lists: {lists}, watches: {watches}, last error: {err:?})"
        );
    }
}
