//! The embedded API server under load: create 10,000 ConfigMaps of 1 KiB with 32 concurrent
//! clients, then list them in one request; report creates/s, the list latency and the
//! server's RSS. The server must never be the bottleneck of kdev's own benchmarks.
//!
//! Run with
//! `cargo bench -p kdev-testenv --features k8s-openapi/latest --bench apiserver`.
//! `KDEV_BENCH_RUNS` sets the create runs per client setup (default 5); the median is
//! reported.
//!
//! The server runs as a separate process (`kdev-testenv serve`, over HTTPS as kubectl and
//! kube-client see it), so the RSS read from `/proc/<pid>/status` is the server's alone.
//! Client and server share this machine's cores, as they did for the reference figures.
//!
//! - **creates**: 32 tasks on a multi-thread tokio runtime take names from a shared counter
//!   and POST ConfigMaps with a 1 KiB value until 10,000 exist, each run in a fresh
//!   namespace with a fresh client (its TLS handshakes included). Measured with one shared
//!   `kube_client::Client` (the reported figure) and with 32 separate clients.
//! - **list**: one `GET /api/v1/namespaces/NS/configmaps` without a limit, on a server that
//!   holds those 10,000 ConfigMaps, timed until the last byte of the body arrived: raw
//!   (`Client::send`, body frames counted, not parsed) and typed (`Api::<ConfigMap>::list`,
//!   deserialization included). Measured by criterion.
//!
//! Reference: kube-apiserver with etcd on this machine created them at 1,297/s (7.7 s) and
//! served the 19 MB list in 0.2–0.35 s. Target: ≥ 10× the creates/s, ≤ 100 ms for the list.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube_client::api::{ListParams, PostParams};
use kube_client::config::{KubeConfigOptions, Kubeconfig};
use kube_client::{Api, Client, Config};
use parking_lot::Mutex;

/// kube-apiserver with etcd, same workload, same machine.
const PEER_CREATES_PER_SEC: f64 = 1_297.0;
const PEER_LIST_SECS: (f64, f64) = (0.2, 0.35);
const TARGET_LIST_SECS: f64 = 0.1;

const OBJECTS: usize = 10_000;
const CONCURRENCY: usize = 32;
const VALUE_BYTES: usize = 1024;

/// The `kdev-testenv serve` child process; killed when dropped, also on panic.
struct ServerProcess {
    child: Child,
    dir: PathBuf,
}

impl ServerProcess {
    fn spawn() -> (ServerProcess, String) {
        // `serve` does not print back a port 0 choice in a machine-readable way: take a free
        // port from the kernel, release it and hand it to the server.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!("kdev-testenv-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let child = Command::new(env!("CARGO_BIN_EXE_kdev-testenv"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--kubeconfig"])
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning kdev-testenv serve");
        let mut server = ServerProcess { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait().expect("child status") {
                panic!("kdev-testenv serve exited early: {status}");
            }
            // The kubeconfig is written after the listener is bound; a half-written file
            // fails to parse and is read again.
            if let Ok(yaml) = std::fs::read_to_string(&kubeconfig)
                && yaml.contains("current-context:")
            {
                return (server, yaml);
            }
            assert!(
                Instant::now() < deadline,
                "kdev-testenv serve wrote no kubeconfig in 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// VmRSS and VmHWM of a process, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process so far (`/proc/<pid>/stat`, USER_HZ = 100).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    let n = xs.len();
    if n == 0 {
        // A criterion filter skipped the benchmark.
        return Duration::ZERO;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    }
}

async fn client(config: &Config) -> Client {
    Client::try_from(config.clone()).expect("client")
}

async fn wait_ready(config: &Config) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = client(config).await;
        match c
            .request_text(http::Request::get("/version").body(Vec::new()).expect("request"))
            .await
        {
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "/version did not answer in 30 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating the namespace");
}

fn config_map(i: usize, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("cm-{i:05}"));
    cm.data = Some([("payload".to_string(), value.to_string())].into());
    cm
}

/// Creates `OBJECTS` ConfigMaps in `ns` with `CONCURRENCY` tasks; `clients` has 1 or
/// `CONCURRENCY` entries. Returns the wall time.
async fn create_all(clients: &[Client], ns: &str) -> Duration {
    // 1 KiB of varied printable data, so nothing compresses it into a special case.
    let value: Arc<str> = (0..VALUE_BYTES)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect::<String>()
        .into();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let api = Api::<ConfigMap>::namespaced(clients[t % clients.len()].clone(), ns);
            let next = next.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let pp = PostParams::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= OBJECTS {
                        break;
                    }
                    api.create(&pp, &config_map(i, &value)).await.expect("create");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("create task");
    }
    start.elapsed()
}

struct CreateRun {
    wall: Duration,
    server_cpu: Duration,
    bench_cpu: Duration,
}

/// One create run in a fresh namespace with fresh client(s).
fn create_run(rt: &tokio::runtime::Runtime, config: &Config, pid: u32, ns: &str, separate: bool) -> CreateRun {
    rt.block_on(async {
        let n = if separate { CONCURRENCY } else { 1 };
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(client(config).await);
        }
        create_namespace(&clients[0], ns).await;
        let (server0, bench0) = (cpu_time(&pid.to_string()), cpu_time("self"));
        let wall = create_all(&clients, ns).await;
        let (server1, bench1) = (cpu_time(&pid.to_string()), cpu_time("self"));
        CreateRun {
            wall,
            server_cpu: server1 - server0,
            bench_cpu: bench1 - bench0,
        }
    })
}

fn report_runs(label: &str, runs: &[CreateRun]) -> Duration {
    let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let m = median(walls);
    let list = runs
        .iter()
        .map(|r| {
            format!(
                "{:.3} (server CPU {:.2})",
                r.wall.as_secs_f64(),
                r.server_cpu.as_secs_f64()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let server_cpu = median(runs.iter().map(|r| r.server_cpu).collect());
    let bench_cpu = median(runs.iter().map(|r| r.bench_cpu).collect());
    println!(
        "creates, {label}: runs [{list}] s;\n    median {:.3} s = {:.0}/s ({:.1}x kube-apiserver's 1,297/s); \
         median CPU per run: server {:.2} s ({:.0} creates per server-CPU-second), bench client {:.2} s",
        m.as_secs_f64(),
        OBJECTS as f64 / m.as_secs_f64(),
        OBJECTS as f64 / m.as_secs_f64() / PEER_CREATES_PER_SEC,
        server_cpu.as_secs_f64(),
        OBJECTS as f64 / server_cpu.as_secs_f64().max(1e-9),
        bench_cpu.as_secs_f64(),
    );
    m
}

/// One raw LIST: (time to the response head, time to the last body byte, body bytes).
async fn list_raw(client: &Client, ns: &str) -> (Duration, Duration, usize) {
    let req = http::Request::get(format!("/api/v1/namespaces/{ns}/configmaps"))
        .body(kube_client::client::Body::empty())
        .expect("request");
    let start = Instant::now();
    let res = client.send(req).await.expect("list");
    let head = start.elapsed();
    assert!(res.status().is_success(), "list answered {}", res.status());
    let mut body = res.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("list body").into_data() {
            bytes += data.len();
        }
    }
    (head, start.elapsed(), bytes)
}

async fn list_typed(client: &Client, ns: &str) -> (Duration, usize) {
    let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let start = Instant::now();
    let list = api.list(&ListParams::default()).await.expect("typed list");
    (start.elapsed(), list.items.len())
}

fn main() {
    // Without `--bench` (`cargo test --benches`, `cargo test --all-targets`) criterion runs
    // in test mode; the 10,000-object workload only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("apiserver bench: skipped (run it with `cargo bench --bench apiserver`)");
        return;
    }
    let runs: usize = std::env::var("KDEV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut criterion = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let (server, yaml) = ServerProcess::spawn();
    let pid = server.pid();
    let config = rt.block_on(async {
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config");
        wait_ready(&config).await;
        config
    });
    let (rss_idle, _) = rss(pid);
    println!("server pid {pid}: RSS at start {:.1} MB", mb(rss_idle));

    // First run: its namespace holds the 10,000 ConfigMaps that are listed, while the server
    // holds nothing else, so the RSS readings are for exactly those 10,000.
    let list_ns = "bench-shared-1".to_string();
    let mut shared = vec![create_run(&rt, &config, pid, &list_ns, false)];
    let (rss_created, hwm_created) = rss(pid);
    println!(
        "server RSS after 10,000 creates: {:.1} MB (peak {:.1} MB)",
        mb(rss_created),
        mb(hwm_created)
    );

    let list_client = rt.block_on(client(&config));
    let (head, whole, body_bytes) = rt.block_on(list_raw(&list_client, &list_ns));
    let (_, items) = rt.block_on(list_typed(&list_client, &list_ns));
    // A new namespace also gets `kube-root-ca.crt`, as in Kubernetes.
    assert!(
        (OBJECTS..=OBJECTS + 1).contains(&items),
        "the list returned {items} items"
    );
    println!(
        "first raw list: {items} items, {body_bytes} bytes, head after {:.1} ms, whole body after {:.1} ms",
        head.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3
    );

    let raw_times = Mutex::new(Vec::new());
    let head_times = Mutex::new(Vec::new());
    let typed_times = Mutex::new(Vec::new());
    {
        let mut group = criterion.benchmark_group("apiserver list 10k ConfigMaps");
        // Flat sampling: every sample runs the same number of lists (each takes tens of ms).
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(8));
        group.bench_function("raw (until the last byte)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (head, whole, bytes) = rt.block_on(list_raw(&list_client, &list_ns));
                    assert_eq!(bytes, body_bytes);
                    raw_times.lock().push(whole);
                    head_times.lock().push(head);
                    total += whole;
                }
                total
            });
        });
        group.bench_function("typed (Api::list, deserialized)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (took, _) = rt.block_on(list_typed(&list_client, &list_ns));
                    typed_times.lock().push(took);
                    total += took;
                }
                total
            });
        });
        group.finish();
    }
    let (rss_listed, hwm_listed) = rss(pid);
    let raw_times = raw_times.into_inner();
    let lists = raw_times.len();
    let raw = median(raw_times);
    let head = median(head_times.into_inner());
    let typed = median(typed_times.into_inner());
    println!(
        "list: {body_bytes} bytes; median raw {:.1} ms (head after {:.1} ms), typed {:.1} ms over {lists} raw lists; \
         server RSS after the lists {:.1} MB (peak {:.1} MB)",
        raw.as_secs_f64() * 1e3,
        head.as_secs_f64() * 1e3,
        typed.as_secs_f64() * 1e3,
        mb(rss_listed),
        mb(hwm_listed)
    );

    // More create runs, each in a fresh namespace (the server keeps the earlier ones), the two
    // client setups alternating so that both see the server at the same sizes.
    let mut separate = Vec::new();
    for r in 1..=runs {
        separate.push(create_run(&rt, &config, pid, &format!("bench-separate-{r}"), true));
        if r < runs {
            shared.push(create_run(&rt, &config, pid, &format!("bench-shared-{}", r + 1), false));
        }
    }
    let creates = report_runs("32 tasks sharing one client", &shared);
    report_runs("32 tasks with a client each", &separate);
    let (rss_end, hwm_end) = rss(pid);
    println!(
        "server RSS at the end, holding {} ConfigMaps: {:.1} MB (peak {:.1} MB)",
        OBJECTS * runs * 2,
        mb(rss_end),
        mb(hwm_end)
    );
    drop(server);

    let creates_per_sec = OBJECTS as f64 / creates.as_secs_f64();
    println!();
    println!(
        "apiserver bench: creates 10,000 in {:.3} s = {:.0}/s ({:.1}x kube-apiserver's 1,297/s, target >= 10x); \
         list {:.1} MB in {:.1} ms raw, {:.1} ms typed (target <= 100 ms; kube-apiserver {:.0}-{:.0} ms); \
         server RSS {:.1} MB (peak {:.1} MB) with 10,000 ConfigMaps after the lists",
        creates.as_secs_f64(),
        creates_per_sec,
        creates_per_sec / PEER_CREATES_PER_SEC,
        body_bytes as f64 / 1e6,
        raw.as_secs_f64() * 1e3,
        typed.as_secs_f64() * 1e3,
        PEER_LIST_SECS.0 * 1e3,
        PEER_LIST_SECS.1 * 1e3,
        mb(rss_listed),
        mb(hwm_listed),
    );
    let creates_ok = creates_per_sec >= 10.0 * PEER_CREATES_PER_SEC;
    let list_ok = raw.as_secs_f64() <= TARGET_LIST_SECS;
    println!(
        "apiserver bench: creates target {}, list target {}",
        if creates_ok { "met" } else { "MISSED" },
        if list_ok { "met" } else { "MISSED" }
    );
    criterion.final_summary();
}
