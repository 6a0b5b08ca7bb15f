//! Every worker of a host, with the host's state: what the handle and the HTTP surface read.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use crate::observe::exposition::{self, Rendered};
use crate::observe::health::{self};
use crate::observe::status::{HostState, WorkerStatus, unix_seconds};
use crate::observe::tracked::Tracked;
use crate::schedule::clock::Clock;

/// The recorder of the application's own metrics (installed by the host when asked, or handed
/// over), whose page is served before the workers' series.
#[cfg(feature = "prometheus")]
pub(crate) type Recorder = metrics_exporter_prometheus::PrometheusHandle;
/// Without the `prometheus` feature the host installs no recorder.
#[cfg(not(feature = "prometheus"))]
pub(crate) type Recorder = std::convert::Infallible;

/// Every worker of a host, in registration order, with the host's state, its admin token and
/// the recorder of user metrics.
pub(crate) struct Board {
    /// Replaced (copied on write) when a worker is added or removed while the host runs:
    /// readers take the list in one step and never hold the lock.
    workers: RwLock<Arc<Vec<Arc<Tracked>>>>,
    /// Workers added and removed while the host ran: [`Change`] indexes it.
    pub(crate) changes: [AtomicU64; 2],
    recorder: Option<Recorder>,
    pub(crate) admin_token: Option<String>,
    state: AtomicU8,
    /// Admin requests refused: no token configured, or a wrong one.
    pub(crate) refused: [AtomicU64; 2],
    /// Set when the host starts: timestamps follow tokio's (possibly paused) clock.
    clock: OnceLock<Clock>,
    /// Concurrent scrapes of `/metrics` share one rendering.
    #[cfg(feature = "http")]
    pub(crate) scrapes: crate::http::scrape::Scrapes,
    /// The length of the last page rendered, to reserve the next one's memory at once.
    last_page: std::sync::atomic::AtomicUsize,
    /// The running host's watchdog, armed by a stop request.
    watchdog: OnceLock<crate::host::watchdog::Watchdog>,
    /// Rate-limits the log lines of refused admin requests, which anyone can send.
    #[cfg(feature = "http")]
    pub(crate) refusals: crate::observe::quiet::Quiet,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("workers", &self.workers().len())
            .field("state", &self.state())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl Board {
    pub(crate) fn new(
        workers: Vec<Arc<Tracked>>,
        recorder: Option<Recorder>,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            workers: RwLock::new(Arc::new(workers)),
            changes: Default::default(),
            recorder,
            admin_token,
            state: AtomicU8::new(HostState::Starting as u8),
            refused: Default::default(),
            clock: OnceLock::new(),
            #[cfg(feature = "http")]
            scrapes: crate::http::scrape::Scrapes::default(),
            last_page: std::sync::atomic::AtomicUsize::new(0),
            watchdog: OnceLock::new(),
            #[cfg(feature = "http")]
            refusals: crate::observe::quiet::Quiet::default(),
        }
    }

    /// The running host's watchdog; the first call wins.
    pub(crate) fn set_watchdog(&self, watchdog: crate::host::watchdog::Watchdog) {
        let _ = self.watchdog.set(watchdog);
    }

    /// A stop was asked for: arms the watchdog, if the host runs with one.
    pub(crate) fn stop_requested(&self) {
        if let Some(watchdog) = self.watchdog.get() {
            watchdog.arm();
        }
    }

    /// Anchors the host's clock; the first call wins.
    pub(crate) fn start_clock(&self, clock: Clock) {
        let _ = self.clock.set(clock);
    }

    /// Unix seconds now, on the host's clock once it started.
    pub(crate) fn now(&self) -> f64 {
        self.clock.get().map_or_else(
            || unix_seconds(SystemTime::now()),
            |clock| clock.unix_seconds(tokio::time::Instant::now()),
        )
    }

    /// Every worker now, in registration order (workers added while the host runs last).
    pub(crate) fn workers(&self) -> Arc<Vec<Arc<Tracked>>> {
        Arc::clone(&self.workers.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn worker(&self, name: &str) -> Option<Arc<Tracked>> {
        self.workers().iter().find(|w| &*w.name == name).cloned()
    }

    /// Shows one more worker on every page, probe and list, and counts it.
    pub(crate) fn add(&self, worker: Arc<Tracked>) {
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        Arc::make_mut(&mut workers).push(worker);
        self.changes[Change::Added as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a worker off every page, probe and list, and counts it.
    pub(crate) fn remove(&self, worker: &Arc<Tracked>) {
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        Arc::make_mut(&mut workers).retain(|w| !Arc::ptr_eq(w, worker));
        self.changes[Change::Removed as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(all(feature = "http", feature = "prometheus"))]
    pub(crate) fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    pub(crate) fn state(&self) -> HostState {
        HostState::ALL
            .get(usize::from(self.state.load(Ordering::Acquire)))
            .copied()
            .unwrap_or(HostState::Starting)
    }

    pub(crate) fn set_state(&self, state: HostState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Every worker's status at `now` (Unix seconds).
    pub(crate) fn statuses(&self, now: f64) -> Vec<WorkerStatus> {
        self.workers().iter().map(|w| w.status(now)).collect()
    }

    /// The Prometheus text exposition: metrics recorded through the `metrics` facade, when the
    /// host installed the recorder, then every worker's series.
    pub(crate) fn render_metrics(&self, now: f64) -> String {
        #[cfg(feature = "prometheus")]
        // The bridge published the workers' series to the recorder too: written once, below.
        let user = self
            .recorder
            .as_ref()
            .map(|recorder| {
                crate::observe::facade::without_worker_series(&recorder.render()).into_owned()
            })
            .unwrap_or_default();
        #[cfg(not(feature = "prometheus"))]
        let user = match self.recorder {
            Some(never) => match never {},
            None => String::new(),
        };
        // Reserved at once from the last page's size: grown by doubling, a page of 100 MB
        // would need up to 1.5 times that while it is copied.
        let last = self.last_page.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16 + user.len() + 1);
        out.push_str(&user);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        self.render_workers_into(&mut out, now);
        self.last_page.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Every worker's series in the text exposition, as on the page.
    pub(crate) fn render_workers(&self, now: f64) -> String {
        let mut out = String::with_capacity(self.last_page.load(Ordering::Relaxed));
        self.render_workers_into(&mut out, now);
        out
    }

    fn render_workers_into(&self, out: &mut String, now: f64) {
        let workers = self.workers();
        exposition::render(
            out,
            workers.iter().map(|w| Rendered {
                metrics: &w.metrics,
                schedule: &w.schedule,
                state: health::shown_state(w, now),
                queue: w.queue.as_deref(),
                lease: w.lease.as_deref(),
            }),
            &self.refused,
            &self.changes,
        );
    }
}

/// A change of a running host's workers, as `worker_workers_changed_total` counts it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    Added,
    Removed,
}

impl Change {
    pub(crate) const ALL: [Change; 2] = [Self::Added, Self::Removed];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }
}
