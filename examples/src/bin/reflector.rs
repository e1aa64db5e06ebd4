//! Lesson 3 — the reflector: list, then watch from the list's resourceVersion; resume after a
//! dropped watch; list again after 410 Gone.
//!
//! Run it (no cluster needed: it starts kdev's embedded API server, whose fault injection
//! shows what a real cluster does only on a bad day):
//!
//! ```sh
//! cargo run -p kdev-examples --bin reflector
//! ```
//!
//! The page that goes with it: `docs/reflector.md`.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kdev::CancellationToken;
use kdev::reflector::{Backoff, Config, ListWatch, Reflector, Status};
use kdev::store::{self, Store};
use kdev::testenv::{Failure, TestEnv};
use kdev_examples::log_to_stderr;
use kube_client::Api;
use kube_client::api::{DeleteParams, PostParams};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c
}

/// Waits (at most 10 s) until the cache holds exactly `names`.
async fn settle(store: &Store<ConfigMap>, names: &[&str]) {
    for _ in 0..500 {
        let mut have: Vec<String> = store.list().iter().filter_map(|c| c.metadata.name.clone()).collect();
        have.sort();
        if have == names {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn show(step: &str, store: &Store<ConfigMap>, status: &Status) {
    let mut names: Vec<String> = store.list().iter().filter_map(|c| c.metadata.name.clone()).collect();
    names.sort();
    println!(
        "{step}: cache = [{}], lists so far: {}, watches opened: {}, last resourceVersion: {}",
        names.join(", "),
        status.lists(),
        status.watches(),
        status.last_resource_version()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // `RUST_LOG=kdev_core::reflector=debug` adds the reflector's own log lines, on stderr: each
    // list, each watch that ends and why, each retry (`=trace` adds every list page).
    log_to_stderr("off");
    let env = TestEnv::embedded(Default::default()).await?;
    let ns = env.namespace().await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
    for n in ["alpha", "beta"] {
        api.create(&PostParams::default(), &cm(n)).await?;
    }

    println!("== 1. list, then watch");
    let (store, writer) = store::store::<ConfigMap>();
    // A short backoff keeps the lesson quick; the default is client-go's 800 ms → 30 s.
    let config = Config::default().backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
        Duration::from_secs(120),
    ));
    let reflector = Reflector::new(ListWatch::new(api.clone()), writer, config);
    let status = reflector.status();
    let stop = CancellationToken::new();
    tokio::spawn(reflector.run(stop.clone()));
    settle(&store, &["alpha", "beta", "kube-root-ca.crt"]).await;
    show("after the first sync", &store, &status);
    api.create(&PostParams::default(), &cm("gamma")).await?;
    settle(&store, &["alpha", "beta", "gamma", "kube-root-ca.crt"]).await;
    show("a create arrives through the watch", &store, &status);

    println!("\n== 2. a dropped watch resumes from the last resourceVersion, without a new list");
    let dropped = env.faults().drop_watches()?;
    println!("the server dropped {dropped} watch(es)");
    api.delete("alpha", &DeleteParams::default()).await?;
    settle(&store, &["beta", "gamma", "kube-root-ca.crt"]).await;
    show("after the drop and a delete", &store, &status);

    println!("\n== 3. 410 Gone: the history is gone, so the reflector lists again");
    // Keep the watch down for a second while a change happens, then lose the history. The
    // server answers the watch 429 (too many requests) with `Retry-After: 1`; kube-client
    // waits that second and asks again by itself, as it does for 429, 503 and 504. Meanwhile
    // the server forgets the history the reflector would resume from.
    env.faults()
        .fail(Failure::new(429).verb("watch").resource("configmaps").retry_after(1))?;
    env.faults().drop_watches()?;
    api.create(&PostParams::default(), &cm("delta")).await?;
    env.faults().compact_history()?;
    settle(&store, &["beta", "delta", "gamma", "kube-root-ca.crt"]).await;
    show("after 410 Gone", &store, &status);

    stop.cancel();
    println!("lesson complete");
    Ok(())
}
