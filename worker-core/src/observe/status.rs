//! What the host knows about each worker while it runs, shared by the worker's supervisor
//! (which writes it) and the host's handle and HTTP surface (which read it): the metric block,
//! the control signals, and a short history of runs.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::observe::health::{self, Health};
use crate::observe::metrics::{self, Outcome, SkipReason, WorkerMetrics, WorkerState};
use crate::observe::quiet::Quiet;
use crate::observe::recent::{Entry, RecentRuns};
use crate::schedule::clock::Clock;
use crate::supervise::control::{Control, Replies};

pub(crate) use crate::observe::recent::RECENT_RUNS;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trigger {
    /// The worker's schedule.
    Schedule,
    /// A run-now admin action.
    Manual,
}

impl Trigger {
    /// The `trigger` field of the run's spans.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// The run's id, as in its spans and `Ctx::run_id`.
    pub run_id: u64,
    /// What started it.
    pub trigger: Trigger,
    /// When it was due (Unix seconds).
    #[serde(serialize_with = "unix")]
    pub scheduled_at: SystemTime,
    /// When it started (Unix seconds).
    #[serde(serialize_with = "unix")]
    pub started_at: SystemTime,
    /// How long it took, all attempts and backoff included.
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
    /// How it ended.
    pub result: Outcome,
    /// Attempts made: 1 plus the retries.
    pub attempts: u32,
    /// The last attempt's error, panic message or timeout, when it did not succeed.
    pub error: Option<String>,
}

fn unix<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(unix_seconds(*at))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

pub(crate) fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A worker's last error (with the id of its run), and under the test harness every run;
/// allocated at the first run that needs it.
#[derive(Debug, Default)]
struct History {
    all: Vec<RunRecord>,
    last_error: Option<(u64, SystemTime, String)>,
}

/// One worker's live record: what it is, how it is told what to do, and what it did.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) name: Arc<str>,
    /// The effective trigger, as `worker_info{schedule}` shows it.
    pub(crate) schedule: String,
    pub(crate) gates_readiness: bool,
    pub(crate) gates_liveness: bool,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) control: Control,
    /// Where to answer the run-now requests not handled yet.
    pub(crate) replies: Replies,
    /// The worker's loop is running (false before start and once it ended).
    alive: AtomicBool,
    /// Unix seconds (as `f64` bits; positive, so they order as integers) from which staleness
    /// counts when that is later than the last success: when the worker's first trigger was
    /// due, or when it was last resumed.
    since: AtomicU64,
    pub(crate) metrics: WorkerMetrics,
    /// How many runs to keep: [`RECENT_RUNS`], or `usize::MAX` under the test harness.
    keep: usize,
    recent: OnceLock<Box<RecentRuns>>,
    history: Mutex<Option<Box<History>>>,
    /// Rate-limits the worker's repeated log lines.
    pub(crate) quiet: Quiet,
}

/// What [`Tracked::new`] needs to know.
pub(crate) struct Declared<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) schedule: String,
    pub(crate) gates_readiness: bool,
    pub(crate) gates_liveness: bool,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) keep: usize,
}

impl Tracked {
    pub(crate) fn new(declared: Declared<'_>) -> Self {
        Self {
            metrics: WorkerMetrics::new(declared.name),
            control: Control::default(),
            name: declared.name.clone(),
            schedule: declared.schedule,
            gates_readiness: declared.gates_readiness,
            gates_liveness: declared.gates_liveness,
            stale_after: declared.stale_after,
            since: AtomicU64::new(0),
            alive: AtomicBool::new(false),
            keep: declared.keep,
            recent: OnceLock::new(),
            history: Mutex::new(None),
            quiet: Quiet::default(),
            replies: Replies::default(),
        }
    }

    fn history(&self) -> MutexGuard<'_, Option<Box<History>>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop started; staleness counts from `since` (Unix seconds) until a first success.
    pub(crate) fn started(&self, since: f64) {
        self.since.store(since.to_bits(), Ordering::Relaxed);
        self.alive.store(true, Ordering::Release);
    }

    /// The loop ended.
    pub(crate) fn ended(&self) {
        self.alive.store(false, Ordering::Release);
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The worker was resumed at `now` (Unix seconds): staleness counts from then at the earliest.
    pub(crate) fn resumed(&self, now: f64) {
        self.since.fetch_max(now.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn since(&self) -> f64 {
        f64::from_bits(self.since.load(Ordering::Relaxed))
    }

    /// Records a finished run, already counted in `worker_runs_total`: in the ring of recent
    /// runs; and, when it failed or under the test harness, under the history's lock.
    pub(crate) fn record(&self, entry: &Entry, error: Option<String>) {
        // Kept no longer than shown: a megabyte of error message is not kept per worker.
        let error = error.map(|e| match crate::http::truncated(&e) {
            std::borrow::Cow::Borrowed(_) => e,
            std::borrow::Cow::Owned(cut) => cut,
        });
        self.recent.get_or_init(Box::default).push(*entry);
        let everything = self.keep > RECENT_RUNS;
        if error.is_none() && !everything {
            return;
        }
        let mut history = self.history();
        let history = history.get_or_insert_default();
        if let Some(error) = &error {
            history.last_error = Some((entry.run_id, UNIX_EPOCH + entry.ended, error.clone()));
        }
        if everything {
            history.all.push(entry.record(error));
        }
    }

    /// The runs kept, oldest first: the last [`RECENT_RUNS`], each with its error when it is
    /// the last failed run; every run, with its error, under the test harness.
    pub(crate) fn runs(&self) -> Vec<RunRecord> {
        let history = self.history();
        if self.keep > RECENT_RUNS {
            return history.as_ref().map(|h| h.all.clone()).unwrap_or_default();
        }
        let last_error = history.as_ref().and_then(|h| h.last_error.as_ref());
        let entries = self
            .recent
            .get()
            .map(|ring| ring.entries())
            .unwrap_or_default();
        entries
            .iter()
            .map(|entry| {
                let error = last_error
                    .filter(|(run_id, ..)| *run_id == entry.run_id)
                    .map(|(.., message)| message.clone());
                entry.record(error)
            })
            .collect()
    }

    fn last_error(&self) -> Option<LastError> {
        let history = self.history();
        let (_, at, message) = history.as_ref()?.last_error.as_ref()?;
        Some(LastError {
            at: unix_seconds(*at),
            message: message.clone(),
        })
    }

    /// A snapshot for `/workers`, at `now` (Unix seconds).
    pub(crate) fn status(&self, now: f64) -> WorkerStatus {
        let metrics = &self.metrics;
        let recent = self.runs();
        let last_error = self.last_error();
        let last_run = recent.last().cloned();
        let recent = recent
            .iter()
            .rev()
            .take(RECENT_RUNS)
            .rev()
            .map(|run| Recent {
                result: run.result,
                at: unix_seconds(run.started_at + run.duration),
                duration_seconds: run.duration.as_secs_f64(),
            })
            .collect();
        let verdict = health::evaluate(self, last_run.as_ref(), now);
        WorkerStatus {
            name: self.name.to_string(),
            schedule: self.schedule.clone(),
            state: verdict.state,
            health: verdict.health,
            reason: verdict.reason,
            gates_readiness: self.gates_readiness,
            stale_after_seconds: self.stale_after.map(|d| d.as_secs_f64()),
            paused: self.control.is_paused(),
            active_runs: metrics.active(),
            circuit: metrics.circuit().as_str(),
            last_run,
            last_success_at: metrics.last_success(),
            next_run_at: metrics.next_run(),
            recent,
            last_error,
            runs: Outcome::ALL
                .iter()
                .map(|&o| (o.as_str(), metrics.runs(o)))
                .collect(),
            skipped: SkipReason::ALL
                .iter()
                .map(|&r| (r.as_str(), metrics.skips(r)))
                .collect(),
        }
    }
}

/// A worker as `/workers` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// The worker's name.
    pub name: String,
    /// Its effective trigger, such as `every 10s`.
    pub schedule: String,
    /// What it is doing; `stale` when it has not succeeded within `stale_after`.
    pub state: WorkerState,
    /// Its health, derived from its state, circuit and last run.
    pub health: Health,
    /// Why it is not healthy.
    pub reason: Option<String>,
    /// Whether the host's readiness depends on it.
    pub gates_readiness: bool,
    /// How long without a success makes it stale.
    pub stale_after_seconds: Option<f64>,
    /// Whether an admin action paused it.
    pub paused: bool,
    /// Runs in progress.
    pub active_runs: u32,
    /// Its circuit breaker: `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// The last finished run.
    pub last_run: Option<RunRecord>,
    /// Unix time of the last success.
    pub last_success_at: Option<f64>,
    /// Unix time the next run is due.
    pub next_run_at: Option<f64>,
    /// The last runs, oldest first.
    pub recent: Vec<Recent>,
    /// The last error, panic or timeout, however long ago.
    pub last_error: Option<LastError>,
    /// Runs finished, by result.
    pub runs: std::collections::BTreeMap<&'static str, u64>,
    /// Triggers skipped, by reason.
    pub skipped: std::collections::BTreeMap<&'static str, u64>,
}

/// One of a worker's recent runs, as the dashboard's strip shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Recent {
    /// How it ended.
    pub result: Outcome,
    /// When it ended (Unix seconds).
    pub at: f64,
    /// How long it took.
    pub duration_seconds: f64,
}

/// A worker's last error.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LastError {
    /// When the run ended (Unix seconds).
    pub at: f64,
    /// The error with its source chain, the panic message, or the timeout.
    pub message: String,
}

/// Where the host is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum HostState {
    /// Built; workers not started yet.
    Starting,
    /// Workers running.
    Running,
    /// Shutdown requested: no new runs, in-flight runs finishing.
    Stopping,
    /// Every worker stopped.
    Stopped,
}

impl HostState {
    const ALL: [HostState; 4] = [Self::Starting, Self::Running, Self::Stopping, Self::Stopped];

    /// The state's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

/// Every worker of a host, in registration order, with the host's state, its admin token and
/// the recorder of user metrics.
pub(crate) struct Board {
    workers: Vec<Arc<Tracked>>,
    prometheus: Option<PrometheusHandle>,
    pub(crate) admin_token: Option<String>,
    state: AtomicU8,
    /// Admin requests refused: no token configured, or a wrong one.
    pub(crate) refused: [AtomicU64; 2],
    /// Set when the host starts: timestamps follow tokio's (possibly paused) clock.
    clock: OnceLock<Clock>,
    /// Concurrent scrapes of `/metrics` share one rendering.
    pub(crate) scrapes: crate::http::scrape::Scrapes,
    /// The length of the last page rendered, to reserve the next one's memory at once.
    last_page: std::sync::atomic::AtomicUsize,
    /// The running host's watchdog, armed by a stop request.
    watchdog: OnceLock<crate::host::watchdog::Watchdog>,
    /// Rate-limits the log lines of refused admin requests, which anyone can send.
    pub(crate) refusals: Quiet,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("workers", &self.workers.len())
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
        prometheus: Option<PrometheusHandle>,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            workers,
            prometheus,
            admin_token,
            state: AtomicU8::new(HostState::Starting as u8),
            refused: Default::default(),
            clock: OnceLock::new(),
            scrapes: crate::http::scrape::Scrapes::default(),
            last_page: std::sync::atomic::AtomicUsize::new(0),
            watchdog: OnceLock::new(),
            refusals: Quiet::default(),
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

    pub(crate) fn workers(&self) -> &[Arc<Tracked>] {
        &self.workers
    }

    pub(crate) fn worker(&self, name: &str) -> Option<&Arc<Tracked>> {
        self.workers.iter().find(|w| &*w.name == name)
    }

    pub(crate) fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.prometheus.as_ref()
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
        self.workers.iter().map(|w| w.status(now)).collect()
    }

    /// The Prometheus text exposition: metrics recorded through the `metrics` facade, when the
    /// host installed the recorder, then every worker's series.
    pub(crate) fn render_metrics(&self, now: f64) -> String {
        let user = self
            .prometheus
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        // Reserved at once from the last page's size: grown by doubling, a page of 100 MB
        // would need up to 1.5 times that while it is copied.
        let last = self.last_page.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16 + user.len() + 1);
        out.push_str(&user);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        metrics::render(
            &mut out,
            self.workers.iter().map(|w| metrics::Rendered {
                metrics: &w.metrics,
                schedule: &w.schedule,
                state: health::shown_state(w, now),
            }),
            &self.refused,
        );
        self.last_page.store(out.len(), Ordering::Relaxed);
        out
    }
}
