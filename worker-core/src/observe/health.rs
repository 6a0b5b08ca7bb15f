//! Health: what a worker's state, circuit and last run say about whether it makes progress, and
//! what that makes of the host's liveness and readiness.
//!
//! | worker | health | reason |
//! |---|---|---|
//! | `failed` (restarts exhausted) | unhealthy | `failed: ...` |
//! | `stale`: no success within `stale_after` | unhealthy | `no success for ...` |
//! | circuit open or half-open | degraded | `circuit open` |
//! | paused by an admin action | degraded | `paused` |
//! | last run failed, panicked or timed out | degraded | `last run ...: <error>` |
//! | queue worker: its oldest job ready to start (buffered, or due in the database) waited longer than `stale_after` | unhealthy | `the oldest job has waited ...` |
//! | queue worker: a job went dead in the last 5 minutes (instead of the last-run rule) | degraded | `jobs going dead: ...` |
//! | otherwise | healthy | |
//!
//! Liveness (`/healthz`) fails once the host stopped, when a worker's loop is gone while the
//! host runs (which the supervisor's restarts should make impossible), and while a worker with
//! `gates_liveness` is stale with a run in progress: hung, not idle, which a restart of the
//! process may cure. Readiness (`/readyz`) fails while the host
//! starts or stops, and while a worker that gates readiness is unhealthy.

use serde::Serialize;

use crate::observe::board::Board;
use crate::observe::message::truncated;
use crate::observe::status::{HostState, RunRecord, WorkerStatus};
use crate::observe::tracked::Tracked;
use crate::observe::{Outcome, WorkerState};

/// A worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Health {
    /// Making progress.
    Healthy,
    /// Running, but with its circuit open, paused, or after a failed run.
    Degraded,
    /// Failed, or no success within `stale_after`.
    Unhealthy,
}

/// A worker's state as shown, its health and why.
pub(crate) struct Verdict {
    pub(crate) state: WorkerState,
    pub(crate) health: Health,
    pub(crate) reason: Option<String>,
}

/// How long a queue worker's jobs going dead keep it degraded after the last one.
pub(crate) const DEAD_RECENT: f64 = 300.0;

/// How long `worker` has gone without a success at `now` (Unix seconds), if that is longer
/// than its `stale_after`; for a queue worker, how long its oldest job ready to start has
/// waited (buffered, or for a durable queue in the database).
fn overdue(worker: &Tracked, now: f64) -> Option<f64> {
    let stale_after = worker.stale_after?.as_secs_f64();
    if let Some(queue) = &worker.queue {
        let oldest = queue.oldest_ready()?;
        let waited = tokio::time::Instant::now()
            .saturating_duration_since(oldest)
            .as_secs_f64();
        return (waited > stale_after).then_some(waited);
    }
    let since = worker
        .metrics
        .last_success()
        .unwrap_or_default()
        .max(worker.since());
    let quiet = now - since;
    (quiet > stale_after).then_some(quiet)
}

/// The state `worker` shows at `now`: its stored state, or `stale` for a worker waiting,
/// running or backing off without a success within its `stale_after`.
pub(crate) fn shown_state(worker: &Tracked, now: f64) -> WorkerState {
    let mut state = worker.metrics.state();
    if let (Some(queue), WorkerState::Idle | WorkerState::Running) = (&worker.queue, state) {
        // The slots race to set it; what is in flight does not.
        state = if queue.metrics.in_flight() > 0 {
            WorkerState::Running
        } else {
            WorkerState::Idle
        };
    }
    match state {
        WorkerState::Idle | WorkerState::Running | WorkerState::Backoff
            if overdue(worker, now).is_some() =>
        {
            WorkerState::Stale
        }
        _ => state,
    }
}

/// The health of `worker` at `now`, given its last finished run.
pub(crate) fn evaluate(worker: &Tracked, last_run: Option<&RunRecord>, now: f64) -> Verdict {
    let state = shown_state(worker, now);
    let (health, reason) = match state {
        WorkerState::Failed => (
            Health::Unhealthy,
            Some("failed: it panicked more often than `max_restarts` allows".to_owned()),
        ),
        WorkerState::Stale => {
            let quiet = overdue(worker, now).unwrap_or_default();
            let limit = worker_keys::show(worker.stale_after.unwrap_or_default());
            let reason = if worker.queue.is_some() {
                format!(
                    "the oldest job has waited {} (stale_after {limit})",
                    human(quiet)
                )
            } else {
                format!("no success for {} (stale_after {limit})", human(quiet))
            };
            (Health::Unhealthy, Some(reason))
        }
        WorkerState::Paused => (Health::Degraded, Some("paused".to_owned())),
        // A durable queue whose claims keep failing: the database is out of reach.
        _ if let Some(failing) = claims_failing(worker, now) => (
            Health::Unhealthy,
            Some(format!(
                "no claim from the database has succeeded for {}",
                human(failing)
            )),
        ),
        _ if worker.metrics.circuit() != crate::run::circuit::CircuitState::Closed => (
            Health::Degraded,
            Some(format!("circuit {}", worker.metrics.circuit().as_str())),
        ),
        _ if worker.queue.is_some() => match worker.queue.as_ref().and_then(|q| q.dead.last()) {
            Some(at) if now - at <= DEAD_RECENT => {
                let queue = worker.queue.as_ref().unwrap_or_else(|| unreachable!());
                let dead = queue
                    .metrics
                    .dead
                    .load(std::sync::atomic::Ordering::Relaxed);
                let last = queue
                    .dead
                    .records()
                    .pop()
                    .map(|r| r.error)
                    .unwrap_or_default();
                (
                    Health::Degraded,
                    Some(format!(
                        "jobs going dead: {dead} so far, the last {} ago: {last}",
                        human(now - at)
                    )),
                )
            }
            _ => (Health::Healthy, None),
        },
        _ => match last_run {
            Some(run) if run.result != Outcome::Success && run.result != Outcome::Cancelled => {
                let error = run.error.as_deref().unwrap_or("no message");
                (
                    Health::Degraded,
                    Some(format!("last run {}: {error}", run.result.as_str())),
                )
            }
            _ => (Health::Healthy, None),
        },
    };
    Verdict {
        state,
        health,
        reason,
    }
}

/// How long a durable queue's claims may fail before its worker is unhealthy: a database
/// restart or a failover takes about that long.
pub(crate) const CLAIMS_FAILING: f64 = 5.0;

/// How long a durable queue's claims have failed, when longer than [`CLAIMS_FAILING`].
fn claims_failing(worker: &Tracked, now: f64) -> Option<f64> {
    let queue = worker.queue.as_ref().filter(|q| q.durable.is_some())?;
    let since = queue.metrics.failing_since()?;
    Some(now - since).filter(|&failing| failing > CLAIMS_FAILING)
}

/// Whole seconds, readable: `1m 30s`.
fn human(seconds: f64) -> worker_keys::Shown {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive number of seconds far below 2^64"
    )]
    let whole = seconds.max(0.0) as u64;
    worker_keys::show(std::time::Duration::from_secs(whole))
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Probe {
    /// Whether the probe passes.
    pub status: ProbeStatus,
    /// The host's state.
    pub host: HostState,
    /// Why the probe fails.
    pub reasons: Vec<String>,
    /// Readiness: every worker, with its state, health and reason. Liveness: none (it stays
    /// small; `/readyz` and `/workers` have the details).
    pub workers: Vec<ProbeWorker>,
}

impl Probe {
    /// Whether the probe passes.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.status == ProbeStatus::Ok
    }
}

/// Whether a [`Probe`] passes; `"ok"` or `"fail"` in its JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// The probe passes: `200 OK`.
    Ok,
    /// The probe fails: `503 Service Unavailable`, with the reasons.
    Fail,
}

/// A worker as the probes list it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProbeWorker {
    /// The worker's name.
    pub name: String,
    /// Its state as shown.
    pub state: WorkerState,
    /// Its health.
    pub health: Health,
    /// Why it is not healthy.
    pub reason: Option<String>,
    /// Whether readiness depends on it.
    pub gates_readiness: bool,
}

fn probe(board: &Board, statuses: Vec<WorkerStatus>, reasons: Vec<String>) -> Probe {
    Probe {
        status: if reasons.is_empty() {
            ProbeStatus::Ok
        } else {
            ProbeStatus::Fail
        },
        host: board.state(),
        reasons,
        workers: statuses
            .into_iter()
            .map(|s| ProbeWorker {
                name: s.name,
                state: s.state,
                health: s.health,
                reason: s.reason,
                gates_readiness: s.gates_readiness,
            })
            .collect(),
    }
}

/// At most this many reasons in a liveness answer; more are summed up in one more line, so
/// `/healthz` stays small however many workers fail.
pub(crate) const MAX_LIVENESS_REASONS: usize = 5;

/// Liveness at `now`: the host has not stopped, every worker's loop that should run does, and
/// no worker that gates liveness is stale with a run in progress (hung). Lists no workers
/// (readiness and `/workers` do), and at most [`MAX_LIVENESS_REASONS`] reasons, so the answer is
/// small and made from each worker's atomics alone.
pub(crate) fn liveness(board: &Board, now: f64) -> Probe {
    let host = board.state();
    let mut reasons = Vec::new();
    if host == HostState::Stopped {
        reasons.push("the host has stopped".to_owned());
    }
    let mut failing = 0_usize;
    if host == HostState::Running {
        for worker in board.workers().iter() {
            let state = worker.metrics.state();
            // Loops not started yet (`starting`) and those ended by policy are not gone.
            let ended = matches!(
                state,
                WorkerState::Starting | WorkerState::Failed | WorkerState::Stopped
            );
            let reason = if !worker.is_alive() && !ended {
                format!("the loop of `{}` is not running", worker.name)
            } else if let Some(quiet) = overdue(worker, now)
                && worker.gates_liveness
                && worker.metrics.active() > 0
            {
                format!(
                    "`{}` is stale with a run in progress: no success for {} (stale_after {})",
                    worker.name,
                    human(quiet),
                    worker_keys::show(worker.stale_after.unwrap_or_default())
                )
            } else {
                continue;
            };
            failing += 1;
            if failing <= MAX_LIVENESS_REASONS {
                reasons.push(truncated(&reason).into_owned());
            }
        }
    }
    if failing > MAX_LIVENESS_REASONS {
        reasons.push(format!(
            "and {} more workers",
            failing - MAX_LIVENESS_REASONS
        ));
    }
    Probe {
        status: if reasons.is_empty() {
            ProbeStatus::Ok
        } else {
            ProbeStatus::Fail
        },
        host,
        reasons,
        workers: Vec::new(),
    }
}

/// Readiness at `now`: the host runs, and no worker that gates readiness is unhealthy.
pub(crate) fn readiness(board: &Board, now: f64) -> Probe {
    let statuses = board.statuses(now);
    let mut reasons = Vec::new();
    match board.state() {
        HostState::Running => {}
        state => reasons.push(format!("the host is {}", state.as_str())),
    }
    for status in &statuses {
        if status.gates_readiness && status.health == Health::Unhealthy {
            let why = status.reason.as_deref().unwrap_or("unhealthy");
            reasons.push(format!("`{}` is {}: {why}", status.name, status.state));
        }
    }
    probe(board, statuses, reasons)
}
