//! The Prometheus metrics of every worker: names, label sets and handles, built once per worker
//! when the host is built so the per-run path only touches atomics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::circuit::CircuitState;
use tokio::time::Instant;

/// How a run ended; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The body returned `Ok` (or `()`).
    Success,
    /// Every attempt returned an error, or the last one did and no retry was left.
    Failure,
    /// The body panicked; panics are not retried.
    Panic,
    /// The last attempt hit the worker's `timeout`.
    Timeout,
    /// The host asked the run to stop (shutdown) before it succeeded.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 5] = [
        Self::Success,
        Self::Failure,
        Self::Panic,
        Self::Timeout,
        Self::Cancelled,
    ];

    /// The `result` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Why a tick did not produce a run; the `reason` label of `worker_runs_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// The tick came due while the previous run was still going.
    Overlap,
    /// The host woke up too late for the tick and a later one was already due.
    Missed,
    /// The worker's circuit breaker was open.
    CircuitOpen,
    /// The worker was waiting out its restart backoff after a panic.
    Restarting,
}

impl SkipReason {
    const ALL: [SkipReason; 4] = [
        Self::Overlap,
        Self::Missed,
        Self::CircuitOpen,
        Self::Restarting,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Missed => "missed",
            Self::CircuitOpen => "circuit_open",
            Self::Restarting => "restarting",
        }
    }
}

/// Why a worker was restarted; the `reason` label of `worker_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartReason {
    /// A run panicked.
    Panic,
    /// The worker's own loop died (a bug in the framework or in a `Drop` it ran).
    Crash,
}

impl RestartReason {
    const ALL: [RestartReason; 2] = [Self::Panic, Self::Crash];

    fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Crash => "crash",
        }
    }
}

/// What a worker is doing; the `state` label of `worker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerState {
    Starting,
    Idle,
    Running,
    Backoff,
    Failed,
    Stopped,
}

impl WorkerState {
    const ALL: [WorkerState; 6] = [
        Self::Starting,
        Self::Idle,
        Self::Running,
        Self::Backoff,
        Self::Failed,
        Self::Stopped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// Bucket bounds of `worker_run_duration_seconds`, in seconds: 5 ms to one hour.
pub const RUN_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Bucket bounds of `worker_schedule_lag_seconds`, in seconds: 1 ms to ten minutes.
pub const SCHEDULE_LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0,
];

/// Registers the help text and unit of every metric with the current recorder.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("worker_runs_total", "Runs finished, by result.");
    describe_histogram!(
        "worker_run_duration_seconds",
        Unit::Seconds,
        "Duration of finished runs, all attempts and backoff included, by result."
    );
    describe_counter!(
        "worker_run_retries_total",
        "Attempts made after the first attempt of a run."
    );
    describe_counter!(
        "worker_runs_skipped_total",
        "Ticks that did not produce a run, by reason."
    );
    describe_histogram!(
        "worker_schedule_lag_seconds",
        Unit::Seconds,
        "Delay between when a run was due and when it started."
    );
    describe_gauge!(
        "worker_run_active",
        "Runs in progress (at most 1 unless `overlap = allow(n)`)."
    );
    describe_gauge!(
        "worker_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful run; 0 before the first."
    );
    describe_gauge!(
        "worker_next_run_timestamp_seconds",
        Unit::Seconds,
        "Unix time the next run is due; 0 when none is scheduled."
    );
    describe_counter!(
        "worker_restarts_total",
        "Times the worker was restarted after a panic or a crash of its loop, by reason."
    );
    describe_gauge!(
        "worker_circuit_state",
        "The worker's circuit breaker: 1 for its current state, 0 for the others."
    );
    describe_gauge!(
        "worker_info",
        "Always 1; the labels carry the worker's effective schedule."
    );
    describe_gauge!(
        "worker_state",
        "The worker's current state: 1 for the state it is in, 0 for the others."
    );
}

/// Maps tokio's clock to wall-clock time, anchored once when the host starts, so timestamps
/// agree with the (possibly paused) clock the schedules run on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix: Duration,
}

impl Clock {
    /// Anchors tokio's current instant to `wall`, the wall-clock time it stands for.
    pub(crate) fn starting_at(wall: SystemTime) -> Self {
        Self {
            instant: Instant::now(),
            unix: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// The wall-clock time of `at`.
    pub(crate) fn system_time(&self, at: Instant) -> SystemTime {
        let unix = if at >= self.instant {
            self.unix + (at - self.instant)
        } else {
            self.unix.saturating_sub(self.instant - at)
        };
        UNIX_EPOCH + unix
    }

    /// The instant on tokio's clock of the wall-clock time `at`.
    pub(crate) fn instant(&self, at: SystemTime) -> Instant {
        let unix = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        if unix >= self.unix {
            self.instant + unix.saturating_sub(self.unix)
        } else {
            self.instant
                .checked_sub(self.unix.saturating_sub(unix))
                .unwrap_or(self.instant)
        }
    }

    pub(crate) fn unix_seconds(&self, at: Instant) -> f64 {
        let unix = if at >= self.instant {
            self.unix + (at - self.instant)
        } else {
            self.unix.saturating_sub(self.instant - at)
        };
        unix.as_secs_f64()
    }
}

/// The handles of one worker's series.
#[derive(Debug)]
pub(crate) struct WorkerMetrics {
    runs: [Counter; 5],
    durations: [Histogram; 5],
    pub(crate) retries: Counter,
    skipped: [Counter; 4],
    pub(crate) lag: Histogram,
    pub(crate) active: Gauge,
    pub(crate) last_success: Gauge,
    pub(crate) next_run: Gauge,
    states: [Gauge; 6],
    restarts: [Counter; 2],
    circuit: [Gauge; 3],
    /// Index into `states` of the gauge currently at 1, so a transition writes two gauges.
    current: AtomicUsize,
}

impl WorkerMetrics {
    /// Registers every series of `worker` with the current recorder, at zero.
    pub(crate) fn register(worker: &str, schedule: &str) -> Self {
        let label = || worker.to_owned();
        let runs = Outcome::ALL.map(|outcome| {
            metrics::counter!("worker_runs_total", "worker" => label(), "result" => outcome.as_str())
        });
        let durations = Outcome::ALL.map(|outcome| {
            metrics::histogram!("worker_run_duration_seconds", "worker" => label(), "result" => outcome.as_str())
        });
        let skipped = SkipReason::ALL.map(|reason| {
            metrics::counter!("worker_runs_skipped_total", "worker" => label(), "reason" => reason.as_str())
        });
        let states = WorkerState::ALL.map(
            |state| metrics::gauge!("worker_state", "worker" => label(), "state" => state.as_str()),
        );
        let restarts = RestartReason::ALL.map(|reason| {
            metrics::counter!("worker_restarts_total", "worker" => label(), "reason" => reason.as_str())
        });
        let circuit = CircuitState::ALL.map(|state| {
            metrics::gauge!("worker_circuit_state", "worker" => label(), "state" => state.as_str())
        });
        metrics::gauge!("worker_info", "worker" => label(), "schedule" => schedule.to_owned())
            .set(1.0);
        let this = Self {
            runs,
            durations,
            retries: metrics::counter!("worker_run_retries_total", "worker" => label()),
            skipped,
            lag: metrics::histogram!("worker_schedule_lag_seconds", "worker" => label()),
            active: metrics::gauge!("worker_run_active", "worker" => label()),
            last_success: metrics::gauge!("worker_last_success_timestamp_seconds", "worker" => label()),
            next_run: metrics::gauge!("worker_next_run_timestamp_seconds", "worker" => label()),
            states,
            restarts,
            circuit,
            current: AtomicUsize::new(0),
        };
        // Counters and histograms exist at zero once registered; gauges need a first value.
        for counter in this.runs.iter().chain(&this.skipped).chain(&this.restarts) {
            counter.increment(0);
        }
        this.retries.increment(0);
        this.active.set(0.0);
        this.last_success.set(0.0);
        this.next_run.set(0.0);
        for gauge in &this.states {
            gauge.set(0.0);
        }
        this.states[0].set(1.0);
        this.set_circuit(CircuitState::Closed);
        this
    }

    pub(crate) fn finished(&self, outcome: Outcome, took: Duration) {
        let index = Outcome::ALL
            .iter()
            .position(|&o| o == outcome)
            .unwrap_or_default();
        self.runs[index].increment(1);
        self.durations[index].record(took.as_secs_f64());
    }

    pub(crate) fn skipped(&self, reason: SkipReason, ticks: u64) {
        if ticks > 0 {
            let index = SkipReason::ALL
                .iter()
                .position(|&r| r == reason)
                .unwrap_or_default();
            self.skipped[index].increment(ticks);
        }
    }

    pub(crate) fn restarted(&self, reason: RestartReason) {
        let index = RestartReason::ALL
            .iter()
            .position(|&r| r == reason)
            .unwrap_or_default();
        self.restarts[index].increment(1);
    }

    pub(crate) fn set_circuit(&self, state: CircuitState) {
        for (gauge, candidate) in self.circuit.iter().zip(CircuitState::ALL) {
            gauge.set(if candidate == state { 1.0 } else { 0.0 });
        }
    }

    pub(crate) fn set_state(&self, state: WorkerState) {
        let next = WorkerState::ALL
            .iter()
            .position(|&s| s == state)
            .unwrap_or_default();
        let previous = self.current.swap(next, Ordering::Relaxed);
        if previous != next {
            self.states[previous].set(0.0);
            self.states[next].set(1.0);
        }
    }
}
