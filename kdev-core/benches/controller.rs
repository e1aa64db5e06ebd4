//! A controller with a no-op reconcile over 10,000 ConfigMaps served by kdev-testenv: its
//! throughput on the first full pass and its latency from a change to the reconcile that sees
//! it, for kdev's `Controller` and for kube-runtime 5.0's `Controller`, in the same run, on the
//! same objects, server and concurrency, with the ratios (issue 5).
//!
//! Run with `cargo bench -p kdev-core --bench controller`. `KDEV_BENCH_RUNS` sets the runs per
//! side (default 3; medians are reported). Set `KDEV_TEST_KUBECONFIG` to run it against a real
//! cluster instead of the embedded server.
//!
//! # Method
//!
//! The bench process starts kdev-testenv and creates 10,000 ConfigMaps of 256 B in a fresh
//! namespace (32 concurrent clients), then runs each side as a child process (this same
//! binary with `--child`), alternating the sides run after run, so that neither inherits the
//! other's tasks, connections or heap. The server stays up in the parent. In each child:
//!
//! 1. A controller of the namespace's ConfigMaps starts with 4 concurrent reconciles (kdev's
//!    `max_concurrent_reconciles(4)`, kube-runtime's `Config::default().concurrency(4)`, whose
//!    debounce stays at its default of 0) and the same list strategy (a streaming list, kdev's
//!    default; kube-runtime's `watcher::Config::default().streaming_lists()`). Both wait for
//!    the initial list before the first reconcile (kdev's workers start on sync; kube-runtime's
//!    runner holds its tasks until the store is ready).
//! 2. **First pass.** The reconcile does nothing but record that it ran, at the start of its
//!    future. The pass ends when each of the 10,000 keys has been reconciled at least once.
//!    Reported: reconciles/s over the reconcile phase (10,000 / time from the first reconcile
//!    to the last key's first), which is what the controllers differ in, and the pass's time
//!    from controller start (which includes the initial list).
//! 3. **Latency.** 0.5 s later a driver, on its own thread, runtime and client, merge-patches
//!    5,000 distinct ConfigMaps at 1,000 changes/s (open loop: change `i` is sent at
//!    `i` ms whatever the earlier ones are doing), each setting `data.seq` to the child's tag
//!    and the change's number. The reconcile reads `data.seq` from the object it is handed and
//!    records the first time a reconcile saw each change. A change's latency runs from the
//!    moment its PATCH call returned (the change is committed and answered) to the start of
//!    the first reconcile that saw it; a reconcile that starts before the driver got its
//!    answer counts 0 (the "early" count). The latency from just before the PATCH is sent is
//!    reported beside it. Targets: kdev's throughput ≥ 1.5× kube-runtime's; p99 under 10 ms.
//!
//! All timestamps of a child come from one monotonic clock (`Instant`). The machine is shared
//! by the server, the controller and the driver, so the figures include their contention,
//! equally for both sides.

use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube_client::api::{Patch, PatchParams, PostParams};
use kube_client::config::{KubeConfigOptions, Kubeconfig};
use kube_client::{Api, Client, Config};
use tokio_util::sync::CancellationToken;

const OBJECTS: usize = 10_000;
const CHANGES: usize = 5_000;
const CHANGES_PER_SEC: u64 = 1_000;
const WORKERS: usize = 4;

async fn client_from(path: &str) -> Client {
    let yaml = std::fs::read_to_string(path).expect("kubeconfig");
    let kc = Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn name_of(i: usize) -> String {
    format!("cm-{i:05}")
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses: utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 a second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    match ticks.get(10..12) {
        Some([user, system]) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// What a child's reconciles and its driver record. Times are nanoseconds since `base`; 0
/// means "not yet".
struct Record {
    base: Instant,
    /// Tags this child's changes, so that values left by earlier runs are not taken for them.
    tag: String,
    seen: Vec<AtomicBool>,
    keys_seen: AtomicUsize,
    reconciles: AtomicUsize,
    first_reconcile: AtomicU64,
    pass_done: AtomicU64,
    pass_done_signal: tokio::sync::Notify,
    sent: Vec<AtomicU64>,
    answered: Vec<AtomicU64>,
    observed: Vec<AtomicU64>,
    observed_count: AtomicUsize,
}

impl Record {
    fn new() -> Self {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Record {
            base: Instant::now(),
            tag: std::process::id().to_string(),
            seen: (0..OBJECTS).map(|_| AtomicBool::new(false)).collect(),
            keys_seen: AtomicUsize::new(0),
            reconciles: AtomicUsize::new(0),
            first_reconcile: AtomicU64::new(0),
            pass_done: AtomicU64::new(0),
            pass_done_signal: tokio::sync::Notify::new(),
            sent: zeros(CHANGES),
            answered: zeros(CHANGES),
            observed: zeros(CHANGES),
            observed_count: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    /// Called at the start of every reconcile, on both sides.
    fn reconciled(&self, cm: &ConfigMap) {
        let now = self.now();
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let index = cm
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("cm-")?.parse::<usize>().ok());
        if let Some(i) = index.filter(|&i| i < OBJECTS)
            && !self.seen[i].swap(true, Ordering::Relaxed)
        {
            let _ = self
                .first_reconcile
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            if self.keys_seen.fetch_add(1, Ordering::AcqRel) + 1 == OBJECTS {
                self.pass_done.store(now, Ordering::Release);
                self.pass_done_signal.notify_one();
            }
        }
        let change = cm
            .data
            .as_ref()
            .and_then(|d| d.get("seq"))
            .and_then(|v| v.split_once('-'))
            .filter(|(tag, _)| *tag == self.tag)
            .and_then(|(_, seq)| seq.parse::<usize>().ok());
        if let Some(seq) = change.filter(|&s| s < CHANGES)
            && self.observed[seq]
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.observed_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs kdev's controller until `stop`.
async fn run_kdev(api: Api<ConfigMap>, record: Arc<Record>, stop: CancellationToken) {
    use kdev_core::controller::{Action, Context, Controller, Error};
    let controller = Controller::builder(api)
        .max_concurrent_reconciles(WORKERS)
        .build(move |cm: Arc<ConfigMap>, _ctx: Context| {
            let record = record.clone();
            async move {
                record.reconciled(&cm);
                Ok::<_, Error>(Action::done())
            }
        })
        .expect("kdev controller builds");
    controller.run(stop).await.expect("kdev controller runs");
}

/// Runs kube-runtime's controller until `stop`.
async fn run_kube_runtime(api: Api<ConfigMap>, record: Arc<Record>, stop: CancellationToken) {
    use kube_runtime::controller::{Action, Config, Controller};
    Controller::new(api, kube_runtime::watcher::Config::default().streaming_lists())
        .with_config(Config::default().concurrency(WORKERS as u16))
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            |cm: Arc<ConfigMap>, record: Arc<Record>| async move {
                record.reconciled(&cm);
                Ok::<_, Infallible>(Action::await_change())
            },
            |_, _, _| Action::await_change(),
            record,
        )
        .for_each(|_| async {})
        .await;
}

/// Sends the changes at `CHANGES_PER_SEC` from its own thread and runtime; returns the rate
/// achieved (changes sent per second).
fn drive(kubeconfig: String, ns: String, record: Arc<Record>) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("driver runtime");
    rt.block_on(async move {
        let api: Api<ConfigMap> = Api::namespaced(client_from(&kubeconfig).await, &ns);
        let mut patches = tokio::task::JoinSet::new();
        let start = tokio::time::Instant::now();
        for seq in 0..CHANGES {
            let at = Duration::from_micros(seq as u64 * 1_000_000 / CHANGES_PER_SEC);
            tokio::time::sleep_until(start + at).await;
            let (api, record) = (api.clone(), record.clone());
            patches.spawn(async move {
                let patch = serde_json::json!({ "data": { "seq": format!("{}-{seq}", record.tag) } });
                record.sent[seq].store(record.now(), Ordering::Relaxed);
                api.patch(&name_of(seq), &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("patch");
                record.answered[seq].store(record.now(), Ordering::Relaxed);
            });
            while let Some(done) = patches.try_join_next() {
                done.expect("patch task");
            }
        }
        let sending = start.elapsed();
        while let Some(done) = patches.join_next().await {
            done.expect("patch task");
        }
        CHANGES as f64 / sending.as_secs_f64()
    })
}

/// p50, p99 and max of `v`, in milliseconds.
fn percentiles(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    [at(50), at(99), v[v.len() - 1]]
}

/// A child: run one side's controller through the first pass and the changes, and print its
/// figures on one line (see `FIGURES`).
fn child(side: &str, kubeconfig: &str, ns: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let figures = rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client_from(kubeconfig).await, ns);
        let record = Arc::new(Record::new());
        let stop = CancellationToken::new();
        let start = record.now();
        let running = match side {
            "kdev" => tokio::spawn(run_kdev(api, record.clone(), stop.clone())),
            _ => tokio::spawn(run_kube_runtime(api, record.clone(), stop.clone())),
        };
        tokio::time::timeout(Duration::from_secs(120), record.pass_done_signal.notified())
            .await
            .unwrap_or_else(|_| panic!("{side}: the first pass did not finish in 120 s"));
        let cpu_pass = cpu_seconds();
        let secs = |nanos: u64| nanos as f64 / 1e9;
        let (first, done) = (
            record.first_reconcile.load(Ordering::Relaxed),
            record.pass_done.load(Ordering::Acquire),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reconciles_pass = record.reconciles.load(Ordering::Relaxed);

        let rate = {
            let (kubeconfig, ns, record) = (kubeconfig.to_string(), ns.to_string(), record.clone());
            tokio::task::spawn_blocking(move || drive(kubeconfig, ns, record))
                .await
                .expect("driver")
        };
        let waited = Instant::now();
        while record.observed_count.load(Ordering::Relaxed) < CHANGES && waited.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        running.await.expect("controller task");

        let (mut from_answer, mut from_send, mut early) = (Vec::new(), Vec::new(), 0);
        for seq in 0..CHANGES {
            let observed = record.observed[seq].load(Ordering::Relaxed);
            if observed == 0 {
                continue;
            }
            let answered = record.answered[seq].load(Ordering::Relaxed);
            let sent = record.sent[seq].load(Ordering::Relaxed);
            if observed < answered {
                early += 1;
            }
            from_answer.push(observed.saturating_sub(answered) as f64 / 1e6);
            from_send.push(observed.saturating_sub(sent) as f64 / 1e6);
        }
        let missing = CHANGES - from_answer.len();
        let [p50, p99, max] = percentiles(from_answer);
        let [s50, s99, _] = percentiles(from_send);
        [
            secs(done - start),
            secs(done - first),
            reconciles_pass as f64,
            cpu_pass,
            p50,
            p99,
            max,
            s50,
            s99,
            early as f64,
            missing as f64,
            rate,
        ]
    });
    let line: Vec<String> = figures.iter().map(ToString::to_string).collect();
    println!("{}", line.join(" "));
}

/// The figures a child prints, in order.
const FIGURES: usize = 12;

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
        println!("controller: skipped (run it with `cargo bench -p kdev-core --bench controller`)");
        return;
    }
    let runs: usize = std::env::var("KDEV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = rt.block_on(kdev_testenv::TestEnv::start()).expect("server");
    let ns = rt.block_on(env.namespace()).expect("namespace");
    let kubeconfig = std::env::temp_dir().join(format!("kdev-controller-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, env.kubeconfig()).expect("write kubeconfig");
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
        let value = "x".repeat(256);
        let mut tasks = futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let api = api.clone();
                let value = value.clone();
                async move {
                    let mut cm = ConfigMap::default();
                    cm.metadata.name = Some(name_of(i));
                    cm.data = Some([("payload".to_string(), value)].into());
                    api.create(&PostParams::default(), &cm).await.expect("create");
                }
            })
            .buffer_unordered(32);
        while tasks.next().await.is_some() {}
    });
    println!(
        "controller: {OBJECTS} ConfigMaps of 256 B on {}; no-op reconcile, {WORKERS} concurrent reconciles; \
         {CHANGES} changes at {CHANGES_PER_SEC}/s; {runs} runs per side, each in its own process",
        if env.is_embedded() {
            "kdev-testenv"
        } else {
            "a real cluster"
        }
    );
    let exe = std::env::current_exe().expect("this binary");
    let sides = ["kdev", "kube-runtime"];
    let mut results: Vec<Vec<[f64; FIGURES]>> = vec![Vec::new(); sides.len()];
    for run in 1..=runs {
        for (side, runs_of_side) in sides.iter().zip(&mut results) {
            let out = Command::new(&exe)
                .args(["--child", side, &kubeconfig.display().to_string(), &ns])
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let figures: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
            let Ok(f) = <[f64; FIGURES]>::try_from(figures) else {
                panic!("{side} child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
            };
            println!(
                "  run {run} {side:<12} first pass {:.3} s from start (synced at {:.3} s), {:>6.0} reconciles/s \
                 after sync ({:.0} reconciles, {:.2} CPU s); change→reconcile p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
                 (from send: p50 {:.2} ms, p99 {:.2} ms; {:.0} early, {:.0} missed; {:.0} changes/s sent)",
                f[0],
                f[0] - f[1],
                OBJECTS as f64 / f[1],
                f[2],
                f[3],
                f[4],
                f[5],
                f[6],
                f[7],
                f[8],
                f[9],
                f[10],
                f[11]
            );
            runs_of_side.push(f);
        }
    }
    let _ = std::fs::remove_file(&kubeconfig);
    let med = |side: usize, k: usize| median(results[side].iter().map(|f| f[k]).collect());
    let throughput = |side: usize| median(results[side].iter().map(|f| OBJECTS as f64 / f[1]).collect());
    println!("controller: medians over {runs} runs");
    println!(
        "  {:<12} {:>14} {:>12} {:>9} {:>9} {:>9} {:>14} {:>14}",
        "side", "reconciles/s", "pass (s)", "p50 (ms)", "p99 (ms)", "max (ms)", "p50 send (ms)", "p99 send (ms)"
    );
    for (i, side) in sides.iter().enumerate() {
        println!(
            "  {side:<12} {:>14.0} {:>12.3} {:>9.2} {:>9.2} {:>9.2} {:>14.2} {:>14.2}",
            throughput(i),
            med(i, 0),
            med(i, 4),
            med(i, 5),
            med(i, 6),
            med(i, 7),
            med(i, 8)
        );
    }
    let ratio = throughput(0) / throughput(1);
    println!(
        "controller: throughput ratio kdev / kube-runtime {ratio:.2} (target >= 1.5: {}); first pass from start \
         {:.3} s vs {:.3} s (ratio {:.2}); kdev p99 change→reconcile {:.2} ms (target < 10 ms: {}), \
         kube-runtime {:.2} ms; p50 ratio {:.2}, p99 ratio {:.2}",
        if ratio >= 1.5 { "met" } else { "missed" },
        med(0, 0),
        med(1, 0),
        med(0, 0) / med(1, 0),
        med(0, 5),
        if med(0, 5) < 10.0 { "met" } else { "missed" },
        med(1, 5),
        med(0, 4) / med(1, 4),
        med(0, 5) / med(1, 5)
    );
}
