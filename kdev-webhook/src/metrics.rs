//! controller-runtime's webhook metrics (`pkg/webhook/internal/metrics`),
//! same names, labels and buckets, so existing dashboards and alerts work unchanged.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `webhook` label: the path the webhook is served at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

/// The `webhook` and `code` (HTTP status) labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    webhook: String,
    code: u16,
}

fn latency_histogram() -> Histogram {
    // controller-runtime's ExponentialBuckets(10e-9, 10, 12): 10 ns to 1,000 s.
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

type HistogramFamily = Family<WebhookLabel, Histogram, fn() -> Histogram>;

/// The status codes whose counters are resolved once per path, so that counting them takes no
/// lock and allocates nothing: every answer a healthy server gives, and its usual errors.
const COMMON_CODES: [u16; 7] = [200, 400, 405, 408, 413, 415, 500];

/// The webhook metric families, registered once in a [`Registry`] and shared by every server
/// reporting into it.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `controller_runtime_webhook_requests_total` | counter | `webhook` (the path), `code` (the HTTP status) |
/// | `controller_runtime_webhook_latency_seconds` | histogram, buckets 10 ns · 10^i, i < 12 | `webhook` |
/// | `controller_runtime_webhook_requests_in_flight` | gauge | `webhook` |
/// | `certwatcher_read_certificate_total` | counter (reads of certificate files) | none |
/// | `certwatcher_read_certificate_errors_total` | counter (reads that failed or did not parse) | none |
///
/// Only requests to a registered path are counted (an unknown path has no `webhook` label), as
/// in controller-runtime, where each webhook's handler is wrapped. The latency runs from the
/// request's headers to its response, the body read included.
///
/// # Examples
///
/// ```
/// use kdev_webhook::{Server, metrics::Metrics};
/// use kdev_webhook::admission::{Request, Response};
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
/// # let tls = kdev_webhook::tls::ServingCert::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap();
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// let metrics = Metrics::register(&mut registry);
/// let server = Server::builder()
///     .raw("/allow", |_req: Request| async { Response::allowed() })
///     .tls(tls)
///     .metrics(&metrics)
///     .build()
///     .unwrap();
///
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains(r#"controller_runtime_webhook_requests_in_flight{webhook="/allow"} 0"#));
/// # drop(server);
/// ```
#[derive(Clone)]
pub struct Metrics {
    requests: Family<CodeLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Family<WebhookLabel, Gauge>,
    cert: CertMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            cert: CertMetrics::default(),
        };
        registry.register(
            "controller_runtime_webhook_requests",
            "Total number of admission requests by HTTP status code",
            m.requests.clone(),
        );
        registry.register(
            "controller_runtime_webhook_latency_seconds",
            "Histogram of the latency of processing admission requests",
            m.latency.clone(),
        );
        registry.register(
            "controller_runtime_webhook_requests_in_flight",
            "Current number of admission requests being served",
            m.in_flight.clone(),
        );
        registry.register(
            "certwatcher_read_certificate",
            "Total number of certificate reads",
            m.cert.reads.clone(),
        );
        registry.register(
            "certwatcher_read_certificate_errors",
            "Total number of certificate read errors",
            m.cert.errors.clone(),
        );
        m
    }

    /// The certificate-watcher counters (controller-runtime's `pkg/certwatcher/metrics`).
    pub(crate) fn cert_metrics(&self) -> CertMetrics {
        self.cert.clone()
    }

    /// The handles of the webhook at `path`, resolved once when the server is built. Creates
    /// its latency, in-flight and `code="200"` series at 0.
    pub(crate) fn for_path(&self, path: &str) -> PathMetrics {
        let label = WebhookLabel {
            webhook: path.to_string(),
        };
        let common = COMMON_CODES.map(|code| (code, OnceLock::new()));
        let metrics = PathMetrics {
            webhook: path.to_string(),
            requests: self.requests.clone(),
            common,
            latency: self.latency.get_or_create(&label).clone(),
            in_flight: self.in_flight.get_or_create(&label).clone(),
        };
        metrics.counter(200);
        metrics
    }
}

/// One webhook's metric handles.
pub(crate) struct PathMetrics {
    webhook: String,
    requests: Family<CodeLabels, Counter>,
    /// The counters of the common codes, each taken from the family on its first use (so a
    /// scrape lists only codes that happened) and lock-free after that.
    common: [(u16, OnceLock<Counter>); COMMON_CODES.len()],
    latency: Histogram,
    in_flight: Gauge,
}

impl PathMetrics {
    /// Marks a request in flight until the returned guard is finished or dropped.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight {
            metrics: self,
            started: Instant::now(),
        }
    }

    fn resolve(&self, code: u16) -> Counter {
        self.requests
            .get_or_create(&CodeLabels {
                webhook: self.webhook.clone(),
                code,
            })
            .clone()
    }

    /// The counter of `code`: resolved once for the common codes, looked up for the others.
    fn counter(&self, code: u16) -> Cow<'_, Counter> {
        match self.common.iter().find(|(c, _)| *c == code) {
            Some((_, cell)) => Cow::Borrowed(cell.get_or_init(|| self.resolve(code))),
            None => Cow::Owned(self.resolve(code)),
        }
    }
}

/// A request in flight; decrements the gauge when dropped.
pub(crate) struct InFlight<'a> {
    metrics: &'a PathMetrics,
    started: Instant,
}

impl InFlight<'_> {
    /// Records the answer's status and the latency.
    pub(crate) fn finish(self, status: http::StatusCode) {
        self.metrics.latency.observe(self.started.elapsed().as_secs_f64());
        self.metrics.counter(status.as_u16()).inc();
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// controller-runtime's certwatcher counters: every read of the certificate files, and those
/// that failed (a file missing, or a pair that does not parse).
#[derive(Debug, Clone, Default)]
pub(crate) struct CertMetrics {
    reads: Counter,
    errors: Counter,
}

impl CertMetrics {
    /// Counts one read.
    pub(crate) fn read(&self, ok: bool) {
        self.reads.inc();
        if !ok {
            self.errors.inc();
        }
    }
}
