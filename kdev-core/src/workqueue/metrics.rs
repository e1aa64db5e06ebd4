//! Workqueue metrics with controller-runtime's names and labels
//! (`controller-runtime/pkg/metrics/workqueue.go`), in a caller's prometheus-client registry.

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `name` and `controller` labels; both hold the queue's name, as in controller-runtime.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    name: String,
    controller: String,
    priority: String,
}

/// What a live queue reports at scrape time.
pub(crate) trait InFlight: Send + Sync {
    /// Seconds of work in progress summed over every item, and the longest single one.
    fn unfinished(&self) -> (f64, f64);
}

type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

/// The workqueue metric families, registered once in a [`Registry`] and shared by every
/// queue that should report into it.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `workqueue_depth` | gauge | `name`, `controller`, `priority` |
/// | `workqueue_adds_total` | counter: the adds that queue an item, or mark one being processed for requeueing (client-go's count: repeated adds count once) | `name`, `controller` |
/// | `workqueue_queue_duration_seconds` | histogram, buckets 10 ns · 10^i, i < 12 | `name`, `controller` |
/// | `workqueue_work_duration_seconds` | histogram, same buckets | `name`, `controller` |
/// | `workqueue_unfinished_work_seconds` | gauge | `name`, `controller` |
/// | `workqueue_longest_running_processor_seconds` | gauge | `name`, `controller` |
/// | `workqueue_retries_total` | counter (adds with a non-zero delay) | `name`, `controller` |
///
/// The two unfinished-work gauges are computed when the registry is scraped, so a stuck
/// worker shows up even when nothing else happens. There is no global registry: pass the
/// one your `/metrics` endpoint encodes.
///
/// # Examples
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kdev_core::workqueue::{self, WorkQueue};
///
/// let mut registry = Registry::default();
/// let metrics = workqueue::Metrics::register(&mut registry);
/// let queue: WorkQueue<String> = WorkQueue::new(workqueue::Config::default().name("pods").metrics(&metrics));
/// queue.add("default/web".to_string());
///
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains(r#"workqueue_adds_total{name="pods",controller="pods"} 1"#));
/// ```
#[derive(Clone)]
pub struct Metrics {
    depth: Family<DepthLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    retries: Family<QueueLabels, Counter>,
    queue_duration: HistogramFamily,
    work_duration: HistogramFamily,
    live: Arc<LiveQueues>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

impl Metrics {
    /// Registers the workqueue metric families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
            live: Arc::new(LiveQueues::default()),
        };
        registry.register("workqueue_depth", "Current depth of workqueue", metrics.depth.clone());
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            metrics.adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            metrics.retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            metrics.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            metrics.work_duration.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&metrics.live)));
        metrics
    }

    /// The handles of one queue named `name`.
    pub(crate) fn for_queue(&self, name: &str) -> QueueMetrics {
        let labels = QueueLabels {
            name: name.to_owned(),
            controller: name.to_owned(),
        };
        QueueMetrics {
            adds: self.adds.get_or_create(&labels).clone(),
            retries: self.retries.get_or_create(&labels).clone(),
            queue_duration: self.queue_duration.get_or_create(&labels).clone(),
            work_duration: self.work_duration.get_or_create(&labels).clone(),
            depth: self.depth.clone(),
            labels,
            live: Arc::clone(&self.live),
        }
    }
}

/// One queue's metric handles, resolved once so the hot path does no label lookups.
pub(crate) struct QueueMetrics {
    pub(crate) adds: Counter,
    pub(crate) retries: Counter,
    pub(crate) queue_duration: Histogram,
    pub(crate) work_duration: Histogram,
    depth: Family<DepthLabels, Gauge>,
    labels: QueueLabels,
    live: Arc<LiveQueues>,
}

impl QueueMetrics {
    /// The depth gauge of one priority.
    pub(crate) fn depth(&self, priority: i32) -> Gauge {
        let labels = DepthLabels {
            name: self.labels.name.clone(),
            controller: self.labels.controller.clone(),
            priority: priority.to_string(),
        };
        self.depth.get_or_create(&labels).clone()
    }

    /// Reports `queue`'s unfinished work at every scrape while it lives.
    pub(crate) fn watch(&self, queue: Weak<dyn InFlight>) {
        let mut queues = self.live.queues.lock();
        queues.retain(|(_, q)| q.strong_count() > 0);
        queues.push((self.labels.clone(), queue));
    }
}

/// The queues whose unfinished work is reported at scrape time.
#[derive(Default)]
struct LiveQueues {
    queues: Mutex<Vec<(QueueLabels, Weak<dyn InFlight>)>>,
}

impl fmt::Debug for LiveQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveQueues")
            .field("queues", &self.queues.lock().len())
            .finish()
    }
}

impl Collector for LiveQueues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let readings: Vec<(QueueLabels, (f64, f64))> = self
            .queues
            .lock()
            .iter()
            .filter_map(|(labels, queue)| Some((labels.clone(), queue.upgrade()?.unfinished())))
            .collect();
        type Pick = fn((f64, f64)) -> f64;
        let gauges: [(&str, &str, Pick); 2] = [
            (
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
                |(sum, _)| sum,
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                |(_, longest)| longest,
            ),
        ];
        for (name, help, pick) in gauges {
            let gauge = ConstGauge::new(0.0f64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for (labels, reading) in &readings {
                ConstGauge::new(pick(*reading)).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}
