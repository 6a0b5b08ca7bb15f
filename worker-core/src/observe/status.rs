//! What the host knows about each worker while it runs, shared by the worker's supervisor
//! (which writes it) and the host's handle and HTTP surface (which read it): the metric block,
//! the control signals, and a short history of runs.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::observe::health::Health;
use crate::observe::{Outcome, WorkerState};
use crate::run::circuit::CircuitState;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trigger {
    /// The worker's schedule.
    Schedule,
    /// A run-now admin action.
    Manual,
    /// A job of the worker's queue.
    Queue,
}

impl Trigger {
    /// The `trigger` field of the run's spans.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
            Self::Queue => "queue",
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
    /// The job a queue worker's run ran (its id within the queue).
    pub job_id: Option<u64>,
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
    /// Its circuit breaker's state (`closed` for a worker without one).
    pub circuit: CircuitState,
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
    /// A queue worker's queue.
    pub queue: Option<QueueStatus>,
    /// A singleton's lease: whether this replica holds it, or who does.
    pub lease: Option<LeaseStatus>,
}

/// A singleton's lease, as `/workers` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeaseStatus {
    /// This replica holds the lease (and trusts it now): it runs the ticks.
    pub held: bool,
    /// Who holds it: this replica's identity when `held`, another's when known.
    pub holder: Option<String>,
    /// The fence this replica holds, or last held, the lease with.
    pub fence: Option<i64>,
    /// Takeovers by this replica.
    pub acquired: u64,
    /// Leases this replica lost while it thought it held them.
    pub lost: u64,
}

/// A queue worker's queue, as `/workers` and the dashboard show it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct QueueStatus {
    /// The queue's name.
    pub name: String,
    /// The payload type.
    pub payload: &'static str,
    /// Jobs waiting to start: buffered, or waiting out a retry backoff.
    pub depth: usize,
    /// Of those, the ones waiting out a retry backoff.
    pub in_backoff: usize,
    /// Jobs running now.
    pub in_flight: u64,
    /// How many may run at once.
    pub concurrency: usize,
    /// How many may wait before sends wait.
    pub capacity: usize,
    /// How long the oldest job ready to start has waited, in seconds: since it was accepted
    /// for an in-process queue; for a durable queue, since it was due, as the database said at
    /// its last read (every 5 s). `None` when no job is waiting.
    pub oldest_wait_seconds: Option<f64>,
    /// Whether sends are refused (the host is stopping); never for a durable queue, whose
    /// jobs are enqueued in the database.
    pub closed: bool,
    /// Jobs accepted since start-up.
    pub enqueued: u64,
    /// Jobs whose run ended, whatever the outcome.
    pub finished: u64,
    /// Jobs that went dead.
    pub dead: u64,
    /// Sends refused, by reason (`full`, `closed`).
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Jobs finished per second over the last minute.
    pub throughput_per_second: f64,
    /// The depth over the last ten minutes, `[unix seconds, depth]`, oldest first.
    pub depth_history: Vec<(f64, usize)>,
    /// The last dead jobs, oldest first; for a durable queue, its latest discarded jobs in the
    /// database, whichever replica ran them.
    pub dead_jobs: Vec<crate::queue::DeadJobRecord>,
    /// A durable queue's jobs in the database, by state, as last read (every 5 s); `None` for
    /// an in-process queue.
    pub states: Option<std::collections::BTreeMap<&'static str, u64>>,
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
    pub(crate) const ALL: [HostState; 4] =
        [Self::Starting, Self::Running, Self::Stopping, Self::Stopped];

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
