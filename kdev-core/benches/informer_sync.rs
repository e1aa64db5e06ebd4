//! Initial sync of 10,000 ConfigMaps of 1 KiB served by kdev-testenv: sync time and peak RSS
//! of a process that does only that, for kdev's informer and for kube-runtime's reflector, in
//! the same run, with the ratios.
//!
//! Each child also reports its live heap after the sync and the heap's peak (a counting
//! allocator), which separates what the caches hold from what the allocator keeps.
//! A fourth side, `kdev-strip`, is kdev's informer with the `strip_managed_fields` transform:
//! what the transform saves; `kube-runtime-strip` is kube-runtime's reflector with the same
//! change (`WatchStreamExt::modify`), the like-for-like peer. Another, `objects`, is no cache
//! at all: it lists the ConfigMaps 500 a page and keeps each decoded object, managedFields
//! dropped, in a `Vec<Arc<ConfigMap>>`.
//! No store, index or informer of typed objects can hold less, so its peak is the floor for
//! any cache that hands out `Arc<ConfigMap>`. The last, `kdev-lean`, is kdev's informer with
//! `strip_managed_fields` over a type of the bench's own instead of k8s-openapi's `ConfigMap`:
//! `ObjectMeta` (which `kube::Resource` requires) and the data as one boxed slice of boxed
//! strings, what a leaner object type buys.
//!
//! Run with `cargo bench -p kdev-core --bench informer_sync`. `KDEV_BENCH_RUNS` sets the runs
//! per side (default 5; medians are reported).
//!
//! The bench process starts kdev-testenv, creates the objects, then runs each side as a child
//! process (this same binary with `--child`), so each side's peak RSS (VmHWM) is its own.
//! Reference, measured against a real kube-apiserver 1.36 on this machine: client-go's
//! informer synced in 0.17–0.29 s with 61–65 MB peak RSS; kube-runtime's reflector in
//! 0.32–0.45 s with 70–72 MB.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube_client::api::{ListParams, PostParams};
use kube_client::config::{KubeConfigOptions, Kubeconfig};
use kube_client::{Api, Client, Config};

const OBJECTS: usize = 10_000;

/// A ConfigMap as lean as `kube::Resource` allows: its `ObjectMeta`, and the data as one boxed
/// slice of boxed strings instead of a `BTreeMap<String, String>` (whose first node has room
/// for eleven entries). Read-only: it is never sent back.
#[derive(Clone, Debug, serde::Deserialize)]
struct LeanConfigMap {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default, deserialize_with = "boxed_pairs")]
    #[allow(dead_code)] // held, as a cache holds it; never read
    data: Pairs,
}

/// A ConfigMap's data, lean: one allocation for the pairs, one for each key and each value.
type Pairs = Box<[(Box<str>, Box<str>)]>;

fn boxed_pairs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
    let map: Option<std::collections::BTreeMap<String, String>> = serde::Deserialize::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
        .collect())
}

impl kube_core::Resource for LeanConfigMap {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "ConfigMap".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "configmaps".into()
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

/// The system allocator, counting live heap bytes and their peak, so the bench can tell what
/// the cache holds from what the allocator keeps.
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn client_from(path: &str) -> Client {
    let yaml = std::fs::read_to_string(path).expect("kubeconfig");
    let kc = Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A child: sync once with `side` and print "seconds peak_mb".
fn child(side: &str, kubeconfig: &str, ns: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let secs = rt.block_on(async {
        let client = client_from(kubeconfig).await;
        let lean: Api<LeanConfigMap> = Api::namespaced(client.clone(), ns);
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let start = Instant::now();
        match side {
            // The baseline: a client and one small request, no cache.
            "baseline" => {
                api.get_opt("cm-00000").await.expect("get");
            }
            "kdev" | "kdev-strip" => {
                let lw = kdev_core::reflector::ListWatch::new(api);
                // `kdev-strip` drops managedFields before storing (the documented transform).
                let transform = (side == "kdev-strip").then(kdev_core::informer::strip_managed_fields);
                let inf = kdev_core::informer::SharedIndexInformer::with_transform(
                    lw,
                    kdev_core::reflector::Config::default(),
                    transform,
                );
                let runner = inf.clone();
                tokio::spawn(async move { runner.run().await });
                inf.wait_for_sync(Duration::from_secs(120)).await.expect("kdev synced");
                assert!(inf.store().len() >= OBJECTS);
            }
            "kdev-lean" => {
                let inf = kdev_core::informer::SharedIndexInformer::with_transform(
                    kdev_core::reflector::ListWatch::new(lean),
                    kdev_core::reflector::Config::default(),
                    Some(kdev_core::informer::strip_managed_fields()),
                );
                let runner = inf.clone();
                tokio::spawn(async move { runner.run().await });
                inf.wait_for_sync(Duration::from_secs(120)).await.expect("kdev synced");
                assert!(inf.store().len() >= OBJECTS);
            }
            "objects" => {
                let mut kept = Vec::with_capacity(OBJECTS);
                let mut params = ListParams::default().limit(500);
                loop {
                    let page = api.list(&params).await.expect("list");
                    kept.extend(page.items.into_iter().map(|mut cm| {
                        cm.metadata.managed_fields = None;
                        Arc::new(cm)
                    }));
                    match page.metadata.continue_ {
                        Some(token) if !token.is_empty() => params = params.continue_token(&token),
                        _ => break,
                    }
                }
                assert!(kept.len() >= OBJECTS);
                // Kept until the figures are read (the child exits right after), as the
                // informers are.
                std::mem::forget(kept);
            }
            "kube-runtime" | "kube-runtime-strip" => {
                use kube_runtime::WatchStreamExt as _;
                let strip = side == "kube-runtime-strip";
                let (reader, writer) = kube_runtime::reflector::store::<ConfigMap>();
                let watch = kube_runtime::watcher(api, kube_runtime::watcher::Config::default()).modify(move |cm| {
                    if strip {
                        cm.metadata.managed_fields = None;
                    }
                });
                let stream = kube_runtime::reflector(writer, watch);
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while stream.next().await.is_some() {}
                });
                reader.wait_until_ready().await.expect("kube-runtime synced");
                assert!(reader.state().len() >= OBJECTS);
            }
            other => panic!("unknown side {other}"),
        }
        start.elapsed().as_secs_f64()
    });
    let mb = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "{secs} {} {} {}",
        peak_rss_mb(),
        mb(ALLOC.allocated()),
        mb(ALLOC.max_allocated())
    );
    // Measured: leave without waiting for the tasks. kube-runtime's watcher has no backoff
    // unless asked for one, so once the runtime shuts its I/O down its task retries in a loop
    // that never yields, and a runtime dropped the usual way would wait for it forever.
    rt.shutdown_background();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let get = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        child(&get(1), &get(2), &get(3));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("informer_sync: skipped (run it with `cargo bench -p kdev-core --bench informer_sync`)");
        return;
    }
    let runs: usize = std::env::var("KDEV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = rt
        .block_on(kdev_testenv::TestEnv::embedded(kdev_testenv::Config::default()))
        .expect("server");
    let ns = rt.block_on(env.namespace()).expect("namespace");
    let kubeconfig = std::env::temp_dir().join(format!("kdev-informer-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, env.kubeconfig()).expect("write kubeconfig");
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
        let value = "x".repeat(1024);
        let mut tasks = futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let api = api.clone();
                let value = value.clone();
                async move {
                    let mut cm = ConfigMap::default();
                    cm.metadata.name = Some(format!("cm-{i:05}"));
                    cm.data = Some([("payload".to_string(), value)].into());
                    api.create(&PostParams::default(), &cm).await.expect("create");
                }
            })
            .buffer_unordered(32);
        while tasks.next().await.is_some() {}
    });
    println!(
        "informer_sync: {OBJECTS} ConfigMaps of 1 KiB on kdev-testenv; {runs} runs per side, each in its own process"
    );
    let exe = std::env::current_exe().expect("this binary");
    let mut results = Vec::new();
    for side in [
        "baseline",
        "kdev",
        "kube-runtime",
        "kdev-strip",
        "kube-runtime-strip",
        "objects",
        "kdev-lean",
    ] {
        let (mut times, mut rss, mut heap, mut heap_peak) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = Command::new(&exe)
                .args(["--child", side, &kubeconfig.display().to_string(), &ns])
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let figures: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
            let [t, r, h, hp] = figures[..] else {
                panic!("{side} child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
            };
            times.push(t);
            rss.push(r);
            heap.push(h);
            heap_peak.push(hp);
        }
        println!(
            "  {side:<18} sync times {times:.3?} s, peak RSS {rss:.1?} MB; heap after sync {:.1} MB, heap peak {:.1} MB",
            median(heap),
            median(heap_peak)
        );
        results.push((median(times), median(rss)));
    }
    let _ = std::fs::remove_file(&kubeconfig);
    let (base, (kt, kr), (rt_, rr), (st, sr), (rst, rsr), (_, fr), (lt, lr)) = (
        results[0].1,
        results[1],
        results[2],
        results[3],
        results[4],
        results[5],
        results[6],
    );
    println!(
        "informer_sync: kdev {kt:.3} s / {kr:.1} MB, kube-runtime {rt_:.3} s / {rr:.1} MB; time ratio {:.2} (target <= 1), \
         RSS ratio {:.2} (target <= 0.5); a process with only the client peaks at {base:.1} MB, so the caches take \
         {:.1} MB (kdev) and {:.1} MB (kube-runtime)",
        kt / rt_,
        kr / rr,
        kr - base,
        rr - base
    );
    println!(
        "informer_sync: kdev with strip_managed_fields {st:.3} s / {sr:.1} MB; time ratio {:.2}, RSS ratio {:.2}; \
         the transform saves {:.1} MB of {:.1} MB of cache ({:.0}%)",
        st / rt_,
        sr / rr,
        kr - sr,
        kr - base,
        100.0 * (kr - sr) / (kr - base)
    );
    println!(
        "informer_sync: like for like, both with managedFields dropped: kdev {st:.3} s / {sr:.1} MB, kube-runtime \
         {rst:.3} s / {rsr:.1} MB; time ratio {:.2}, RSS ratio {:.2}",
        st / rst,
        sr / rsr
    );
    println!(
        "informer_sync: the decoded objects alone (managedFields dropped, no cache) peak at {fr:.1} MB, RSS ratio {:.2}: \
         about the least any cache of Arc<ConfigMap> can reach here (one page of 500 in flight included)",
        fr / rr
    );
    println!(
        "informer_sync: kdev's informer over a lean ConfigMap type of your own (ObjectMeta, data as boxed strs), \
         managedFields dropped: {lt:.3} s / {lr:.1} MB; time ratio {:.2}, RSS ratio {:.2}",
        lt / rt_,
        lr / rr
    );
}
