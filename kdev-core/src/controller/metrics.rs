//! controller-runtime's controller metrics (`pkg/internal/controller/metrics`), same names and labels, so
//! existing dashboards and alerts work unchanged.

use std::fmt;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `controller` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ControllerLabel {
    pub controller: String,
}

/// The `controller` and `result` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub controller: String,
    pub result: &'static str,
}

/// controller-runtime's `reconcile_time_seconds` buckets.
const RECONCILE_BUCKETS: [f64; 37] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
    1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0,
];

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS.iter().copied().chain([40.0, 50.0, 60.0]))
}

type HistogramFamily = Family<ControllerLabel, Histogram, fn() -> Histogram>;

/// The controller metric families, registered once in a [`Registry`] and shared by every
/// controller reporting into it.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `controller_runtime_reconcile_total` | counter | `controller`, `result` (`success`, `error`, `requeue_after`; `requeue` stays 0, created for dashboards, since an [`Action`](super::Action) always names its delay) |
/// | `controller_runtime_reconcile_errors_total` | counter | `controller` |
/// | `controller_runtime_terminal_reconcile_errors_total` | counter | `controller` |
/// | `controller_runtime_reconcile_panics_total` | counter | `controller` |
/// | `controller_runtime_reconcile_timeouts_total` | counter | `controller` |
/// | `controller_runtime_reconcile_time_seconds` | histogram | `controller` |
/// | `controller_runtime_max_concurrent_reconciles` | gauge | `controller` |
/// | `controller_runtime_active_workers` | gauge | `controller` |
///
/// Every series of a controller starts at 0 when the controller is built.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) total: Family<ResultLabels, Counter>,
    pub(crate) errors: Family<ControllerLabel, Counter>,
    pub(crate) terminal: Family<ControllerLabel, Counter>,
    pub(crate) panics: Family<ControllerLabel, Counter>,
    pub(crate) timeouts: Family<ControllerLabel, Counter>,
    pub(crate) time: HistogramFamily,
    pub(crate) max_concurrent: Family<ControllerLabel, Gauge>,
    pub(crate) active: Family<ControllerLabel, Gauge>,
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
            total: Family::default(),
            errors: Family::default(),
            terminal: Family::default(),
            panics: Family::default(),
            timeouts: Family::default(),
            time: Family::new_with_constructor(reconcile_histogram),
            max_concurrent: Family::default(),
            active: Family::default(),
        };
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            m.total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            m.errors.clone(),
        );
        registry.register(
            "controller_runtime_terminal_reconcile_errors",
            "Total number of terminal reconciliation errors per controller",
            m.terminal.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            m.panics.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_timeouts",
            "Total number of reconciliation timeouts per controller",
            m.timeouts.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            m.time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            m.max_concurrent.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            m.active.clone(),
        );
        m
    }

    /// Creates every series of `controller` at 0, as controller-runtime does.
    pub(crate) fn init(&self, controller: &str, max_concurrent: usize) {
        let label = ControllerLabel {
            controller: controller.to_string(),
        };
        for result in ["success", "error", "requeue", "requeue_after"] {
            let _ = self.total.get_or_create(&ResultLabels {
                controller: controller.to_string(),
                result,
            });
        }
        let _ = self.errors.get_or_create(&label);
        let _ = self.terminal.get_or_create(&label);
        let _ = self.panics.get_or_create(&label);
        let _ = self.timeouts.get_or_create(&label);
        let _ = self.time.get_or_create(&label);
        let _ = self.active.get_or_create(&label);
        self.max_concurrent
            .get_or_create(&label)
            .set(i64::try_from(max_concurrent).unwrap_or(i64::MAX));
    }
}
