//! Lesson 7 — shared informers: one watch, a local indexed cache, handlers on their own threads,
//! listers, a late handler, and informers for any kind (dynamic, metadata-only) through the factory.
//!
//! Run it (no cluster needed):
//!
//! ```sh
//! cargo run -p kdev-examples --bin informer
//! ```
//!
//! The page that goes with it: `docs/informer.md`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kdev::informer::{Event, SharedInformerFactory};
use kdev::testenv::TestEnv;
use kube_client::Api;
use kube_client::api::{DeleteParams, GroupVersionKind, Patch, PatchParams, PostParams};
use kube_core::{Expression, Selector};
use parking_lot::Mutex;
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn pod(name: &str, node: &str, app: &str) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "labels": { "app": app } },
        "spec": { "nodeName": node, "containers": [{ "name": "c", "image": "busybox:1.36" }] }
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env = TestEnv::embedded(Default::default()).await?;
    let ns = env.namespace().await?;
    let pods: Api<Pod> = Api::namespaced(env.client(), &ns);
    pods.create(&PostParams::default(), &pod("web-1", "node-a", "web")?)
        .await?;
    pods.create(&PostParams::default(), &pod("db-1", "node-b", "db")?)
        .await?;

    println!("== 1. one informer, shared through the factory");
    let factory = SharedInformerFactory::new(env.client());
    let informer = factory.informer(pods.clone());
    let same = factory.informer(Api::<Pod>::namespaced(env.client(), &ns));
    informer.add_indexer("node", |p: &Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
    })?;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    informer.add_event_handler(
        move |ev| {
            let line = match ev {
                Event::Add { obj, .. } => format!("add {}", obj.metadata.name.clone().unwrap_or_default()),
                Event::Update { new, .. } => format!("update {}", new.metadata.name.clone().unwrap_or_default()),
                Event::Delete { obj, .. } => format!("delete {}", obj.metadata.name.clone().unwrap_or_default()),
            };
            seen.lock().push(line);
        },
        None,
    );
    factory.start();
    factory.wait_for_cache_sync(Duration::from_secs(30)).await?;
    let shared = match (informer.store().list().first(), same.store().list().first()) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    println!(
        "synced: {} pods cached; asking the factory again gave the same cache: {shared}",
        informer.store().len()
    );

    println!("\n== 2. events reach the handler on its own thread");
    pods.create(&PostParams::default(), &pod("web-2", "node-a", "web")?)
        .await?;
    pods.patch(
        "web-1",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "tier": "front" } } })),
    )
    .await?;
    pods.delete("db-1", &DeleteParams::default()).await?;
    for _ in 0..200 {
        if log.lock().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("handler saw: {}", log.lock().join(", "));

    println!("\n== 3. listers read the cache, never the server");
    let lister = informer.lister().namespaced(&ns);
    let web = Selector::from(Expression::Equal("app".into(), "web".into()));
    let mut names: Vec<String> = lister
        .list(&web)
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    println!("app=web: {}", names.join(", "));
    let on_a: Vec<String> = lister
        .by_index("node", "node-a")?
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    println!("on node-a (by index): {} pod(s)", on_a.len());

    println!("\n== 4. a late handler first gets the whole cache");
    let late: Arc<Mutex<usize>> = Arc::default();
    let count = late.clone();
    let registration = informer.add_event_handler(
        move |ev| {
            if let Event::Add { initial: true, .. } = ev {
                *count.lock() += 1
            }
        },
        None,
    );
    // The registration knows when its own handler has handled the replay (client-go's
    // per-handler HasSynced); the informer itself synced long ago.
    registration.wait_for_sync(Duration::from_secs(30)).await?;
    println!("the late handler was replayed {} cached pod(s)", *late.lock());

    println!("\n== 5. a dynamic informer for any kind, found through discovery");
    let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
    let dynamic = factory.dynamic_informer(&gvk, Some(&ns)).await?;
    factory.start();
    factory.wait_for_cache_sync(Duration::from_secs(30)).await?;
    println!("dynamic ConfigMap informer cached {} object(s)", dynamic.store().len());

    println!("\n== 6. a metadata-only informer: names, labels and owners, never specs");
    // The server answers `PartialObjectMetadata`: the cache holds no spec and no status, which
    // is all a controller needs to know which pods exist and who owns them.
    let pod_meta = factory.metadata_informer(pods.clone());
    factory.start();
    factory.wait_for_cache_sync(Duration::from_secs(30)).await?;
    for p in pod_meta.store().list() {
        let kind = p.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        println!(
            "{kind} {} labels={:?}",
            p.metadata.name.clone().unwrap_or_default(),
            p.metadata.labels.clone().unwrap_or_default()
        );
    }

    factory.shutdown().await;
    println!("lesson complete");
    Ok(())
}
