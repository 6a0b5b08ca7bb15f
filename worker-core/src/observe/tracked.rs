//! One worker's live record, shared by its supervisor (which writes it) and the host's handle
//! and HTTP surface (which read it): the metric block, the control signals, and a short
//! history of runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::observe::health::{self};
use crate::observe::metrics::WorkerMetrics;
use crate::observe::quiet::Quiet;
use crate::observe::recent::{Entry, RecentRuns};
use crate::observe::status::{LastError, Recent, RunRecord, WorkerStatus, unix_seconds};
use crate::observe::{Outcome, SkipReason};
use crate::queue::channel::Channel;
use crate::supervise::control::{Control, Replies};
use crate::supervise::singleton::Singleton;

pub(crate) use crate::observe::recent::RECENT_RUNS;

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
    /// The queue a queue worker consumes.
    pub(crate) queue: Option<Arc<Channel>>,
    /// A singleton's lease.
    pub(crate) lease: Option<Arc<Singleton>>,
}

/// What [`Tracked::new`] needs to know.
pub(crate) struct Declared<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) schedule: String,
    pub(crate) gates_readiness: bool,
    pub(crate) gates_liveness: bool,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) keep: usize,
    pub(crate) queue: Option<Arc<Channel>>,
    pub(crate) lease: Option<Arc<Singleton>>,
}

impl Tracked {
    pub(crate) fn new(declared: Declared<'_>) -> Self {
        Self {
            metrics: WorkerMetrics::new(declared.name),
            control: if declared.queue.is_some() {
                Control::keeping_runs()
            } else {
                Control::default()
            },
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
            queue: declared.queue,
            lease: declared.lease,
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
        let error = error.map(|e| match crate::observe::message::truncated(&e) {
            std::borrow::Cow::Borrowed(_) => e,
            std::borrow::Cow::Owned(cut) => cut,
        });
        let index = self.metrics.finished_runs().saturating_sub(1);
        self.recent.get_or_init(Box::default).push(index, entry);
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
            active_runs: self.queue.as_ref().map_or(metrics.active(), |q| {
                u32::try_from(q.metrics.in_flight()).unwrap_or(u32::MAX)
            }),
            circuit: metrics.circuit(),
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
            queue: self
                .queue
                .as_ref()
                .map(|queue| queue.status(tokio::time::Instant::now(), now)),
            lease: self.lease.as_ref().map(|lease| lease.status()),
        }
    }
}
