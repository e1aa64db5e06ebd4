//! The process and REST-client metrics a controller-runtime manager serves besides its own:
//! `process_*` (the Prometheus process collector's) and `rest_client_requests_total`
//! (client-go's, as controller-runtime registers it), under the same names, types, help
//! texts and labels, so dashboards and alerts built on them work unchanged.
//!
//! A [`Manager`](crate::manager::Manager) registers both into its registry and counts every
//! request of its client; use this module directly to serve them from your own registry.
//! The other metric families live with what they measure: [`controller::Metrics`](crate::controller::Metrics),
//! [`workqueue::Metrics`](crate::workqueue::Metrics) and
//! [`leader_election::Metrics`](crate::leader_election::Metrics).
//!
//! # Example
//!
//! ```
//! use kdev_core::metrics::{ProcessCollector, RestClientMetrics};
//! use prometheus_client::registry::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let env = kdev_testenv::TestEnv::start().await?;
//! let mut registry = Registry::default();
//! ProcessCollector::register(&mut registry);
//! let rest = RestClientMetrics::default();
//! rest.register(&mut registry);
//!
//! // Every request of `client` (and of its clones) is counted from now on.
//! let client = rest.instrument(env.client(), "my-cluster:6443");
//! client.apiserver_version().await?;
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry)?;
//! assert!(text.contains(r#"rest_client_requests_total{code="200",method="GET",host="my-cluster:6443"} 1"#));
//! # if cfg!(target_os = "linux") {
//! assert!(text.contains("process_resident_memory_bytes "));
//! # }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use kube_client::Client;
use kube_client::client::Body;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The labels of `rest_client_requests_total`, in client-go's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// The HTTP status code, or `<error>` when no response came back.
    code: String,
    /// The HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`).
    method: String,
    /// The API server's `host:port`.
    host: String,
}

/// client-go's `rest_client_requests_total{code, method, host}`: every request a client
/// sends, counted when its response (or its failure) comes back.
///
/// `code` is the HTTP status code, or `<error>` when the request failed without a response
/// (a refused connection, a timeout, a TLS failure), as client-go reports it. A watch counts
/// once, when the server accepts it. Cheap to clone; clones count into the same family.
#[derive(Clone, Default)]
pub struct RestClientMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl fmt::Debug for RestClientMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClientMetrics").finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl RestClientMetrics {
    /// Registers the family in `registry`; a clone registered in several registries counts
    /// once and shows in each.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            self.requests.clone(),
        );
    }

    /// A client that sends through `client` and counts each request under the `host` label
    /// (client-go's is the API server's `host:port`, see [`host_label`]). The new client
    /// keeps `client`'s default namespace, expiry and error types.
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `kube_client::Client::new`.
    #[must_use = "only the returned client's requests are counted"]
    pub fn instrument(&self, client: Client, host: impl Into<String>) -> Client {
        let host: String = host.into();
        let requests = self.requests.clone();
        let namespace = client.default_namespace().to_string();
        let valid_until = *client.valid_until();
        let inner = client;
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let client = inner.clone();
            let requests = requests.clone();
            let method = request.method().as_str().to_string();
            let host = host.clone();
            let call: BoxFuture<Result<http::Response<Body>, kube_client::Error>> = Box::pin(async move {
                let result = client.send(request).await;
                let code = match &result {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(_) => "<error>".to_string(),
                };
                requests.get_or_create(&RequestLabels { code, method, host }).inc();
                result
            });
            call
        });
        Client::new(service, namespace).with_valid_until(valid_until)
    }

    /// The count of requests with these labels so far.
    pub fn requests(&self, code: &str, method: &str, host: &str) -> u64 {
        let labels = RequestLabels {
            code: code.to_string(),
            method: method.to_string(),
            host: host.to_string(),
        };
        self.requests.get(&labels).map_or(0, |c| c.get())
    }
}

/// The `host` label client-go gives an API server URL: its `host:port` (the port written
/// only when the URL names one), or `none` for a URL without a host.
///
/// ```
/// let url: http::Uri = "https://10.96.0.1:443".parse().unwrap();
/// assert_eq!(kdev_core::metrics::host_label(&url), "10.96.0.1:443");
/// ```
#[must_use]
pub fn host_label(url: &http::Uri) -> String {
    url.authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "none".to_string())
}

/// The Prometheus process collector's metrics, read from `/proc/self` on each scrape:
///
/// | metric | type |
/// |---|---|
/// | `process_cpu_seconds_total` | counter: user and system CPU time |
/// | `process_open_fds` | gauge |
/// | `process_max_fds` | gauge: the soft limit on open files |
/// | `process_virtual_memory_bytes` | gauge |
/// | `process_virtual_memory_max_bytes` | gauge: the soft address-space limit (2⁶⁴−1 when unlimited) |
/// | `process_resident_memory_bytes` | gauge |
/// | `process_start_time_seconds` | gauge: since the Unix epoch |
///
/// Only Linux has `/proc`; elsewhere, and for any file that cannot be read, the metrics
/// it would give are left out of the scrape rather than reported as zero.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector {
    _private: (),
}

impl ProcessCollector {
    /// Registers the collector in `registry`.
    pub fn register(registry: &mut Registry) {
        registry.register_collector(Box::new(ProcessCollector::default()));
    }
}

/// One scrape's figures; `None` where `/proc` could not tell.
#[derive(Debug, Default, Clone, PartialEq)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    virtual_bytes: Option<f64>,
    virtual_max_bytes: Option<f64>,
    resident_bytes: Option<f64>,
    start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc`'s times: the kernel's `USER_HZ`, 100 on every Linux
/// architecture (the Prometheus procfs library assumes the same).
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    #[cfg(target_os = "linux")]
    fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let mut stats = read("/proc/self/stat")
            .as_deref()
            .and_then(parse_stat)
            .map(|stat| {
                let boot = read("/proc/stat").as_deref().and_then(parse_boot_time);
                ProcessStats {
                    cpu_seconds: Some(stat.cpu_ticks as f64 / USER_HZ),
                    virtual_bytes: Some(stat.vsize as f64),
                    start_time_seconds: boot.map(|b| b as f64 + stat.start_ticks as f64 / USER_HZ),
                    ..Default::default()
                }
            })
            .unwrap_or_default();
        stats.resident_bytes = read("/proc/self/status").as_deref().and_then(parse_resident);
        if let Some(limits) = read("/proc/self/limits") {
            stats.max_fds = parse_limit(&limits, "Max open files");
            stats.virtual_max_bytes = parse_limit(&limits, "Max address space");
        }
        stats.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        stats
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Self {
        ProcessStats::default()
    }
}

/// The fields of `/proc/self/stat` the collector uses.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_ticks: u64,
    start_ticks: u64,
    vsize: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, utime (14) index 11, stime (15) index 12,
    // starttime (22) index 19, vsize (23) index 20.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(11)?.checked_add(field(12)?)?,
        start_ticks: field(19)?,
        vsize: field(20)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("btime")?.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_resident(text: &str) -> Option<f64> {
    let line = text.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib as f64 * 1024.0)
}

/// The soft limit of the row of `/proc/self/limits` named `name`; `unlimited` reads as
/// 2⁶⁴−1, as the Prometheus process collector reports it.
fn parse_limit(text: &str, name: &str) -> Option<f64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let soft = rest.split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX as f64)
    } else {
        soft.parse::<u64>().ok().map(|v| v as f64)
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = ProcessStats::read();
        if let Some(cpu) = stats.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                counter.metric_type(),
            )?;
            counter.encode(m)?;
        }
        let gauges = [
            ("process_open_fds", "Number of open file descriptors.", stats.open_fds),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_bytes,
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                stats.virtual_max_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let m = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_last_parenthesis() {
        // A command name with spaces and a parenthesis, as a process may set it.
        let line = "4242 (my (odd) ctl) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0 9 0 123456 \
                    987654321 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 325,
                start_ticks: 123456,
                vsize: 987654321
            })
        );
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_parsed() {
        let status = "Name:\tctl\nVmPeak:\t  20000 kB\nVmRSS:\t   5120 kB\nThreads:\t9\n";
        assert_eq!(parse_resident(status), Some(5_242_880.0));
        assert_eq!(parse_resident("Name:\tctl\n"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max address space         unlimited            unlimited            bytes     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_limit(limits, "Max open files"), Some(1024.0));
        assert_eq!(parse_limit(limits, "Max address space"), Some(u64::MAX as f64));
        assert_eq!(parse_limit(limits, "Max processes"), None);

        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu  1 2 3\n"), None);
    }

    #[test]
    fn host_label_is_host_and_port() {
        let label = |s: &str| host_label(&s.parse().unwrap());
        assert_eq!(label("https://10.96.0.1:443"), "10.96.0.1:443");
        assert_eq!(label("https://kubernetes.default.svc"), "kubernetes.default.svc");
        assert_eq!(label("http://user:pw@127.0.0.1:8080/prefix"), "127.0.0.1:8080");
        assert_eq!(label("/api/v1"), "none");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_every_figure() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0.0), "{stats:?}");
        assert!(
            stats.virtual_bytes.is_some_and(|b| b >= stats.resident_bytes.unwrap()),
            "{stats:?}"
        );
        assert!(stats.open_fds.is_some_and(|n| n >= 1.0), "{stats:?}");
        assert!(stats.max_fds.is_some_and(|n| n >= stats.open_fds.unwrap()), "{stats:?}");
        assert!(stats.virtual_max_bytes.is_some(), "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = stats.start_time_seconds.expect("start time");
        assert!(start <= now + 1.0 && start > now - 86_400.0 * 365.0, "{start} vs {now}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");

        let mut registry = Registry::default();
        ProcessCollector::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE process_cpu_seconds counter\n"), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"), "{text}");
        assert!(text.contains("# TYPE process_start_time_seconds gauge\n"), "{text}");
    }
}
