//! Lesson 8 — a controller wired by hand, the client-go way: a reflector feeds a DeltaFIFO, a
//! loop pops it into an indexed store and queues keys on a rate-limited work queue, and workers
//! reconcile each key against the API server. client-go's `sample-controller` before the
//! framework does it for you.
//!
//! Run it (no cluster needed: without KUBECONFIG it starts kdev's embedded API server):
//!
//! ```sh
//! cargo run -p kdev-examples --bin controller_by_hand
//! KUBECONFIG=~/.kube/config cargo run -p kdev-examples --bin controller_by_hand   # a real cluster
//! ```
//!
//! The page that goes with it: `docs/controller_by_hand.md`.

use kdev_examples::{connect, create_namespace, delete_namespace, log_to_stderr};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev::delta_fifo::{self, Delta, DeltaFifo, DeltaType};
use kdev::object;
use kdev::reflector::{self, ListWatch, Reflector};
use kdev::store::{self, NAMESPACE_INDEX, Store, Writer};
use kdev::workqueue::WorkQueue;
use kube_client::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube_client::{Api, Client};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The controller watches ConfigMaps with this label and keeps a `<name>-mirror` copy of each.
const SELECTOR: &str = "example.com/mirror=true";
const WORKERS: usize = 2;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // `RUST_LOG=kdev_core::reflector=debug` adds the reflector's own log lines, on stderr.
    log_to_stderr("off");

    println!("== 1. a cluster and a namespace");
    // Keep the embedded server (if any) alive for the whole lesson: dropping it stops it.
    let (client, _embedded) = connect().await?;
    let ns = create_namespace(&client, "kdev-lesson").await?;

    let result = lesson(&client, &ns).await;
    delete_namespace(&client, &ns).await?;
    println!("deleted namespace {ns}");
    result?;
    println!("lesson complete");
    Ok(())
}

/// What the workers share: client-go's `Controller` struct in sample-controller.
struct Controller {
    client: Client,
    /// The indexed cache the pop loop fills (client-go's `Indexer`, read through a lister).
    cache: Store<ConfigMap>,
    /// Keys to reconcile (client-go's `workqueue.TypedRateLimitingInterface[string]`).
    queue: WorkQueue<String>,
    /// The deliberate transient failure of step 5: gamma's first two attempts fail.
    outage: AtomicU32,
    /// When each failed key was requeued, to show how long its backoff was.
    failed_at: Mutex<HashMap<String, Instant>>,
    /// Workers report each key they reconciled, so that the lesson can wait for them before
    /// reading the server. A real controller has no such channel.
    settled: mpsc::UnboundedSender<String>,
}

async fn lesson(client: &Client, ns: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in ["alpha", "beta"] {
        api.create(&PostParams::default(), &source(name, "hello")?).await?;
    }
    println!("created ConfigMaps alpha and beta labelled {SELECTOR}, before the controller starts");

    println!("\n== 2. wiring: reflector -> DeltaFIFO -> pop loop -> indexed store + workqueue");
    // The store's reader doubles as the FIFO's known objects, so that a relist finds the
    // deletions a broken watch missed.
    let (cache, writer) = store::store::<ConfigMap>();
    let fifo = Arc::new(DeltaFifo::new(
        delta_fifo::Config::default().known_objects(cache.clone()),
    ));
    let lw = ListWatch::new(api.clone()).labels(SELECTOR);
    println!("reflector: list, then watch {lw}");
    let reflector = Reflector::new(lw, fifo.clone(), reflector::Config::default());
    let stop = CancellationToken::new();
    let reflector = tokio::spawn(reflector.run(stop.clone()));
    let queue = WorkQueue::<String>::default();
    let pop_loop = tokio::spawn(pop_loop(fifo.clone(), writer, queue.clone()));

    // client-go: `cache.WaitForCacheSync(stopCh, informer.HasSynced)` before any worker starts.
    // Before the first list is in the cache, "not in the cache" means nothing.
    wait_for_cache_sync(&fifo).await?;
    println!(
        "synced (HasSynced): {} object(s) cached, {} key(s) queued; the workers start only now",
        cache.len(),
        queue.len()
    );

    println!("\n== 3. {WORKERS} workers reconcile the initial list");
    let (settled, mut reports) = mpsc::unbounded_channel();
    let ctl = Arc::new(Controller {
        client: client.clone(),
        cache: cache.clone(),
        queue: queue.clone(),
        outage: AtomicU32::new(2),
        failed_at: Mutex::default(),
        settled,
    });
    let workers: Vec<_> = (1..=WORKERS)
        .map(|id| {
            let ctl = ctl.clone();
            // client-go: `go wait.Until(c.runWorker, time.Second, stopCh)`.
            tokio::spawn(async move { while process_next_work_item(&ctl, id).await {} })
        })
        .collect();
    settle(&mut reports, &[&format!("{ns}/alpha"), &format!("{ns}/beta")]).await?;
    show_mirror(&api, "alpha").await?;
    show_mirror(&api, "beta").await?;

    println!("\n== 4. an update reaches the mirror through the watch");
    api.patch(
        "alpha",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "greeting": "bonjour" } })),
    )
    .await?;
    settle(&mut reports, &[&format!("{ns}/alpha")]).await?;
    show_mirror(&api, "alpha").await?;
    // Any change queues the key; the reconcile compares states and finds nothing to do.
    println!("an annotation on alpha changes, its data does not:");
    api.patch(
        "alpha",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { "note": "not data" } } })),
    )
    .await?;
    settle(&mut reports, &[&format!("{ns}/alpha")]).await?;

    println!("\n== 5. a transient failure, retried with backoff");
    println!("the default controller rate limiter: 5 ms for a key's first retry, doubling with each failure");
    api.create(&PostParams::default(), &source("gamma", "hallo")?).await?;
    settle(&mut reports, &[&format!("{ns}/gamma")]).await?;
    show_mirror(&api, "gamma").await?;

    println!("\n== 6. a delete: the key is queued, the cache no longer has the object, the worker cleans up");
    api.delete("beta", &DeleteParams::default()).await?;
    settle(&mut reports, &[&format!("{ns}/beta")]).await?;
    show_mirror(&api, "beta").await?;
    // What a lister's `ConfigMaps(ns).List()` reads: the namespace index.
    let mut names: Vec<String> = cache
        .by_index(NAMESPACE_INDEX, ns)?
        .iter()
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    names.sort();
    println!("the cache by its namespace index: {}", names.join(", "));

    println!("\n== 7. shut down: stop intake, drain, then stop the workers");
    stop.cancel();
    reflector.await?;
    fifo.close();
    pop_loop.await?;
    println!("reflector stopped, FIFO closed and emptied: no more keys will be queued");
    queue.shutdown_with_drain().await;
    for worker in workers {
        worker.await?;
    }
    println!("workqueue shut down with drain: every key handed out is done, {WORKERS} workers returned");
    Ok(())
}

/// A ConfigMap the controller watches.
fn source(name: &str, greeting: &str) -> Result<ConfigMap, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "example.com/mirror": "true" } },
        "data": { "greeting": greeting }
    }))
}

/// client-go's `controller.processLoop` with the informer's `HandleDeltas`: pop a key with its
/// deltas, apply them to the indexed store, queue the key. Ends once the FIFO is closed and empty.
async fn pop_loop(fifo: Arc<DeltaFifo<ConfigMap>>, mut writer: Writer<ConfigMap>, queue: WorkQueue<String>) {
    while let Ok(()) = fifo
        .pop(|deltas, initial| apply(deltas, initial, &mut writer, &queue))
        .await
    {}
}

/// Runs while the FIFO is locked: the store is updated before anyone sees the FIFO without the key.
fn apply(deltas: Vec<Delta<ConfigMap>>, initial: bool, cache: &mut Writer<ConfigMap>, queue: &WorkQueue<String>) {
    let Some(key) = deltas.last().map(Delta::key) else {
        return;
    };
    let mut kinds = Vec::new();
    for delta in &deltas {
        kinds.push(delta.kind.to_string());
        match (delta.kind, delta.object.get()) {
            (DeltaType::Deleted, _) => {
                cache.delete_key(&key);
            }
            (_, Some(obj)) => {
                cache.apply(Arc::clone(obj));
            }
            (_, None) => {}
        }
    }
    // A handler queues the key, never the object: the worker reads the newest state from the cache.
    queue.add(key.clone());
    let initial = if initial { " (initial list)" } else { "" };
    println!("  [pop] {key}: {}{initial} -> cache, queued", kinds.join(", "));
}

/// Polls `HasSynced` every 100 ms, as client-go's `WaitForCacheSync` does.
async fn wait_for_cache_sync(fifo: &DeltaFifo<ConfigMap>) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fifo.has_synced() {
        if Instant::now() > deadline {
            return Err("the cache did not sync within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// client-go's `processNextWorkItem`: take a key, reconcile it, then `forget` it on success or
/// requeue it rate-limited on failure, and always `done`. `false` once the queue is shut down.
async fn process_next_work_item(ctl: &Controller, worker: usize) -> bool {
    let Some(key) = ctl.queue.get().await else { return false };
    let back = match ctl.failed_at.lock().remove(&key) {
        Some(at) => format!(" (back after {} ms)", at.elapsed().as_millis()),
        None => String::new(),
    };
    match reconcile(ctl, &key).await {
        Ok(what) => {
            let retried = ctl.queue.num_requeues(&key) > 0;
            // Success: clear the key's backoff, or its next failure would start where this one left off.
            ctl.queue.forget(&key);
            let forgot = if retried {
                format!("; forget (requeues: {})", ctl.queue.num_requeues(&key))
            } else {
                String::new()
            };
            println!("  [worker {worker}] {key}{back}: {what}{forgot}");
            let _ = ctl.settled.send(key.clone());
        }
        Err(err) => {
            ctl.failed_at.lock().insert(key.clone(), Instant::now());
            ctl.queue.add_rate_limited(key.clone());
            println!(
                "  [worker {worker}] {key}{back}: failed: {err}; requeued rate-limited (requeues: {})",
                ctl.queue.num_requeues(&key)
            );
        }
    }
    ctl.queue.done(&key);
    true
}

/// client-go's `syncHandler`: make `<name>-mirror` hold the data of the ConfigMap `key` names,
/// or delete the mirror when the ConfigMap is gone. Returns what it did.
async fn reconcile(ctl: &Controller, key: &str) -> Result<String, Error> {
    let (Some(ns), name) = store::split_key(key).ok_or("not a namespace/name key")? else {
        return Err("a ConfigMap key has a namespace".into());
    };
    let api: Api<ConfigMap> = Api::namespaced(ctl.client.clone(), ns);
    let mirror = format!("{name}-mirror");
    // Absent from a synced cache: the object was deleted. Clean up what we made for it.
    let Some(source) = ctl.cache.get_by_key(key) else {
        // client-go's `apierrors.IsNotFound`: deleting what is already gone is no failure.
        return match object::ignore_not_found(api.delete(&mirror, &DeleteParams::default()).await)? {
            Some(_) => Ok(format!("not in the cache (deleted): deleted ConfigMap {mirror}")),
            None => Ok(format!("not in the cache: {mirror} already gone")),
        };
    };
    if name == "gamma" && ctl.outage.load(Ordering::Relaxed) > 0 {
        ctl.outage.fetch_sub(1, Ordering::Relaxed);
        return Err("503 Service Unavailable (deliberate, to show the retry)".into());
    }
    let data: BTreeMap<String, String> = source.data.clone().unwrap_or_default();
    match api.get_opt(&mirror).await? {
        None => {
            let mut copy = ConfigMap::default();
            copy.metadata.name = Some(mirror.clone());
            copy.metadata.annotations = Some([("example.com/mirror-of".to_string(), name.to_string())].into());
            copy.data = Some(data);
            api.create(&PostParams::default(), &copy).await?;
            Ok(format!("created ConfigMap {mirror}"))
        }
        Some(current) if current.data.clone().unwrap_or_default() == data => Ok(format!("{mirror} already in step")),
        Some(mut current) => {
            // `current` carries its resourceVersion: if someone changed the mirror meanwhile,
            // the update fails with 409 Conflict and the key is retried with the newer state.
            current.data = Some(data);
            api.replace(&mirror, &PostParams::default(), &current).await?;
            Ok(format!("updated ConfigMap {mirror}"))
        }
    }
}

/// Waits until the workers report every key of `keys` reconciled.
async fn settle(reports: &mut mpsc::UnboundedReceiver<String>, keys: &[&str]) -> Result<(), Error> {
    let mut missing: Vec<&str> = keys.to_vec();
    while !missing.is_empty() {
        let key = tokio::time::timeout(Duration::from_secs(30), reports.recv())
            .await
            .map_err(|_| format!("no reconcile of {missing:?} within 30 s"))?
            .ok_or("the workers stopped")?;
        missing.retain(|k| *k != key);
    }
    Ok(())
}

/// Prints the mirror of `name` as the API server has it.
async fn show_mirror(api: &Api<ConfigMap>, name: &str) -> Result<(), Error> {
    match api.get_opt(&format!("{name}-mirror")).await? {
        Some(cm) => {
            let data = cm.data.unwrap_or_default();
            let data: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("on the server: {name}-mirror has {}", data.join(", "));
        }
        None => println!("on the server: {name}-mirror does not exist"),
    }
    Ok(())
}
