//! What the host knows about each worker while it runs, shared by the worker's supervisor
//! (which writes it) and the host's handle and HTTP surface (which read it).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::{self, WorkerMetrics};

/// One worker's live record.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) metrics: WorkerMetrics,
}

impl Tracked {
    /// The record of `name`, whose effective trigger reads `schedule`.
    pub(crate) fn new(name: &str, schedule: &str) -> Self {
        Self {
            metrics: WorkerMetrics::new(name, schedule),
        }
    }
}

/// Every worker of a host, in registration order, and the recorder of user metrics.
#[derive(Debug)]
pub(crate) struct Board {
    workers: Vec<Arc<Tracked>>,
    prometheus: Option<PrometheusHandle>,
}

impl Board {
    pub(crate) fn new(workers: Vec<Arc<Tracked>>, prometheus: Option<PrometheusHandle>) -> Self {
        Self {
            workers,
            prometheus,
        }
    }

    pub(crate) fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.prometheus.as_ref()
    }

    /// The Prometheus text exposition: metrics recorded through the `metrics` facade, when the
    /// host installed the recorder, then every worker's series.
    pub(crate) fn render_metrics(&self) -> String {
        let mut out = self
            .prometheus
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        metrics::render(
            &mut out,
            self.workers.iter().map(|w| (&w.metrics, w.metrics.state())),
        );
        out
    }
}
