//! The Prometheus recorder of the `metrics` facade whose page `/metrics` serves before the
//! workers' series: installed by the host when asked ([`HostBuilder::install_recorder`]), or
//! the application's own ([`HostBuilder::prometheus`]). The host never installs one on its own.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Kind};
use crate::host::HostBuilder;

/// What the builder was asked for.
#[derive(Debug)]
pub(crate) enum UserMetrics {
    /// Install a Prometheus recorder as the process's global recorder when the host is built.
    Install,
    /// Serve the page of the application's own recorder.
    Given(PrometheusHandle),
}

impl HostBuilder {
    /// Installs a Prometheus recorder as the process's global `metrics` recorder when the host
    /// is built, so what your own code records with `metrics::counter!` and friends is served on
    /// the host's `/metrics`, before the workers' series. Describe your metrics once the host is
    /// built.
    ///
    /// [`build`](Self::build) fails when a global recorder is installed already: hand its
    /// handle over with [`prometheus`](Self::prometheus) instead.
    pub fn install_recorder(mut self) -> Self {
        self.user_metrics = Some(UserMetrics::Install);
        self
    }

    /// Serves the page of your own Prometheus recorder on the host's `/metrics`, before the
    /// workers' series: one page for both, whoever installed the recorder.
    ///
    /// ```
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    /// use worker_core::Host;
    ///
    /// let recorder = PrometheusBuilder::new().build_recorder();
    /// let handle = recorder.handle();
    /// // metrics::set_global_recorder(recorder) where the application sets up its metrics.
    /// let host = Host::builder().prometheus(handle).build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.user_metrics = Some(UserMetrics::Given(handle));
        self
    }
}

impl UserMetrics {
    /// The handle whose page the host serves, installing the recorder if asked to.
    pub(super) fn resolve(self) -> Result<PrometheusHandle, Error> {
        match self {
            Self::Given(handle) => Ok(handle),
            Self::Install => {
                let recorder = worker_buckets(PrometheusBuilder::new()).build_recorder();
                let handle = recorder.handle();
                metrics::set_global_recorder(recorder).map_err(|_| {
                    Error::new(Kind::Recorder(
                        "a global `metrics` recorder is installed already; pass its \
                         `PrometheusHandle` to `.prometheus(handle)` instead of calling \
                         `.install_recorder()`"
                            .to_owned(),
                    ))
                })?;
                Ok(handle)
            }
        }
    }
}

/// `builder` with the bucket bounds of the host's page for every `worker_*` histogram, so the
/// series the bridge records into your Prometheus recorder have the same buckets as the host's
/// `/metrics` (see [`HostBuilder::metrics_facade_every`]). Other histograms keep what `builder`
/// says.
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
///
/// let recorder = worker_core::worker_buckets(PrometheusBuilder::new()).build_recorder();
/// ```
#[must_use]
pub fn worker_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    [
        ("worker_run_duration_seconds", crate::RUN_DURATION_BUCKETS),
        ("worker_schedule_lag_seconds", crate::SCHEDULE_LAG_BUCKETS),
        ("worker_queue_wait_seconds", crate::QUEUE_WAIT_BUCKETS),
        (
            "worker_jobs_fetch_duration_seconds",
            crate::queue::metrics::FETCH_BUCKETS,
        ),
    ]
    .into_iter()
    .fold(builder, |builder, (name, buckets)| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .unwrap_or_else(|_| unreachable!("the bucket lists are not empty"))
    })
}
