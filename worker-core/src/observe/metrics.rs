//! The Prometheus series of every worker, kept in one block of atomics per worker and written
//! out in the text exposition format.
//!
//! The `worker_*` series do not go through the `metrics` facade: a recorder keeps every series
//! as a separate allocation behind a hash map (about 35 per worker, 14 KiB), and a run would
//! touch a dozen of them. Here one worker's series share one allocation of about 1 KiB, a run
//! touches a few adjacent cache lines, and a scrape reads them all without locking. Metrics
//! that user code records through the facade are served on the same page (see
//! [`HostBuilder::serve`](crate::HostBuilder::serve)).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::run::circuit::CircuitState;
use crate::schedule::clock::saturating_nanos;

/// How a run ended; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
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

/// Why a trigger did not produce a run; the `reason` label of `worker_runs_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum SkipReason {
    /// The tick came due while the previous run was still going.
    Overlap,
    /// The host woke up too late for the tick and a later one was already due.
    Missed,
    /// The worker's circuit breaker was open.
    CircuitOpen,
    /// The worker was waiting out its restart backoff after a panic.
    Restarting,
    /// The worker was paused by an admin action.
    Paused,
    /// The host was stopping; a trigger kept by `overlap = queue` is dropped.
    ShuttingDown,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; 6] = [
        Self::Overlap,
        Self::Missed,
        Self::CircuitOpen,
        Self::Restarting,
        Self::Paused,
        Self::ShuttingDown,
    ];

    /// The `reason` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Missed => "missed",
            Self::CircuitOpen => "circuit_open",
            Self::Restarting => "restarting",
            Self::Paused => "paused",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

/// Why a worker was restarted; the `reason` label of `worker_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
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

/// An admin action; the `action` label of `worker_admin_actions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Action {
    Run,
    Pause,
    Resume,
}

impl Action {
    pub(crate) const ALL: [Action; 3] = [Self::Run, Self::Pause, Self::Resume];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// Why an admin request was refused; the `reason` label of `worker_admin_refused_total`.
pub(crate) const REFUSALS: [&str; 2] = ["disabled", "unauthorized"];

/// What a worker is doing; the `state` label of `worker_state`.
///
/// `stale` is never stored: it is how an `idle`, `running` or `backoff` worker shows when it
/// has not succeeded within its `stale_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum WorkerState {
    /// Built, not started yet.
    Starting,
    /// Waiting for its next trigger.
    Idle,
    /// A run is in progress.
    Running,
    /// A run is waiting before its next attempt.
    Backoff,
    /// Paused by an admin action: triggers are skipped until it is resumed.
    Paused,
    /// No success within `stale_after`.
    Stale,
    /// Stopped by its escalation policy after too many restarts.
    Failed,
    /// Stopped with the host, or disabled by configuration.
    Stopped,
}

impl WorkerState {
    /// Every state, in label order.
    pub const ALL: [WorkerState; 8] = [
        Self::Starting,
        Self::Idle,
        Self::Running,
        Self::Backoff,
        Self::Paused,
        Self::Stale,
        Self::Failed,
        Self::Stopped,
    ];

    /// The `state` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Paused => "paused",
            Self::Stale => "stale",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    fn from_index(index: u8) -> Self {
        Self::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(Self::Starting)
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

const RUN_SLOTS: usize = RUN_DURATION_BUCKETS.len() + 1;
const LAG_SLOTS: usize = SCHEDULE_LAG_BUCKETS.len() + 1;
const RUN_BOUNDS: [u64; RUN_SLOTS - 1] = nanos(RUN_DURATION_BUCKETS);
const LAG_BOUNDS: [u64; LAG_SLOTS - 1] = nanos(SCHEDULE_LAG_BUCKETS);

/// Bucket bounds in nanoseconds, so recording compares integers.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the bounds are positive and far below 2^64 ns (584 years)"
)]
const fn nanos<const N: usize>(seconds: &[f64]) -> [u64; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = (seconds[i] * 1e9) as u64;
        i += 1;
    }
    out
}

/// A histogram with fixed bounds: the sum in nanoseconds and a count per bucket (not
/// cumulative; the last one counts what is above every bound), so recording is two relaxed
/// additions.
#[derive(Debug)]
struct Histogram<const SLOTS: usize> {
    sum_nanos: AtomicU64,
    counts: [AtomicU64; SLOTS],
}

impl<const SLOTS: usize> Histogram<SLOTS> {
    fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts `value`; `bounds` are the bucket bounds in nanoseconds.
    fn record(&self, bounds: &[u64], value: Duration) {
        let nanos = saturating_nanos(value);
        let slot = bounds
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(bounds.len());
        add(&self.counts[slot], 1);
        add(&self.sum_nanos, nanos);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one series.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (slot, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let _ = match bounds.get(slot) {
                Some(bound) => {
                    writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}")
                }
                None => writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}"),
            };
        }
        let sum = Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Adds `n` to a counter. Readers see every value in turn; one scrape may see a run's count
/// and not yet its duration, as with any scrape.
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// A gauge holding a point in wall-clock time, stored as an integer so that setting it, once
/// per tick, needs no floating-point conversion.
#[derive(Debug, Default)]
struct Timestamp(AtomicU64);

impl Timestamp {
    /// Nanoseconds since the Unix epoch; 0 for none.
    fn set(&self, unix_nanos: u64) {
        self.0.store(unix_nanos, Relaxed);
    }

    /// Seconds since the Unix epoch; 0 for none.
    fn get(&self) -> f64 {
        // Nanoseconds since 1970 stay below 2^53 until 2255, so the conversion is exact enough.
        #[allow(clippy::cast_precision_loss, reason = "see above")]
        let nanos = self.0.load(Relaxed) as f64;
        nanos / 1e9
    }
}

/// Every series of one worker. Made when the host is built; every series exists from then on,
/// at zero. Aligned to a cache line, so that two workers' blocks never share one.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct WorkerMetrics {
    /// `worker="<name>"`, escaped once.
    labels: Box<str>,
    state: AtomicU8,
    circuit: AtomicU8,
    runs: [AtomicU64; Outcome::ALL.len()],
    durations: [Histogram<RUN_SLOTS>; Outcome::ALL.len()],
    retries: AtomicU64,
    skipped: [AtomicU64; SkipReason::ALL.len()],
    lag: Histogram<LAG_SLOTS>,
    active: AtomicU32,
    last_success: Timestamp,
    next_run: Timestamp,
    restarts: [AtomicU64; RestartReason::ALL.len()],
    admin: [AtomicU64; Action::ALL.len()],
}

impl WorkerMetrics {
    pub(crate) fn new(worker: &str) -> Self {
        Self {
            labels: format!("worker=\"{}\"", Escaped(worker)).into(),
            runs: Default::default(),
            durations: std::array::from_fn(|_| Histogram::new()),
            retries: AtomicU64::new(0),
            skipped: Default::default(),
            lag: Histogram::new(),
            active: AtomicU32::new(0),
            last_success: Timestamp::default(),
            next_run: Timestamp::default(),
            restarts: Default::default(),
            admin: Default::default(),
            state: AtomicU8::new(WorkerState::Starting as u8),
            circuit: AtomicU8::new(CircuitState::Closed as u8),
        }
    }

    /// A run ended after `took`, all attempts and backoff included.
    pub(crate) fn finished(&self, outcome: Outcome, took: Duration) {
        let index = outcome as usize;
        add(&self.runs[index], 1);
        self.durations[index].record(&RUN_BOUNDS, took);
    }

    /// A run started `lag` after it was due.
    pub(crate) fn started(&self, lag: Duration) {
        self.lag.record(&LAG_BOUNDS, lag);
    }

    pub(crate) fn retried(&self) {
        add(&self.retries, 1);
    }

    pub(crate) fn skipped(&self, reason: SkipReason, triggers: u64) {
        if triggers > 0 {
            add(&self.skipped[reason as usize], triggers);
        }
    }

    pub(crate) fn restarted(&self, reason: RestartReason) {
        add(&self.restarts[reason as usize], 1);
    }

    pub(crate) fn admin(&self, action: Action) {
        add(&self.admin[action as usize], 1);
    }

    pub(crate) fn set_active(&self, runs: usize) {
        self.active
            .store(u32::try_from(runs).unwrap_or(u32::MAX), Relaxed);
    }

    /// Unix time of the last success, in nanoseconds.
    pub(crate) fn set_last_success(&self, unix_nanos: u64) {
        self.last_success.set(unix_nanos);
    }

    /// Unix time the next run is due, in nanoseconds; 0 for none.
    pub(crate) fn set_next_run(&self, unix_nanos: u64) {
        self.next_run.set(unix_nanos);
    }

    pub(crate) fn set_circuit(&self, state: CircuitState) {
        self.circuit.store(state as u8, Relaxed);
    }

    pub(crate) fn set_state(&self, state: WorkerState) {
        self.state.store(state as u8, Relaxed);
    }

    /// The state last set; never [`WorkerState::Stale`].
    pub(crate) fn state(&self) -> WorkerState {
        WorkerState::from_index(self.state.load(Relaxed))
    }

    pub(crate) fn circuit(&self) -> CircuitState {
        CircuitState::ALL
            .get(usize::from(self.circuit.load(Relaxed)))
            .copied()
            .unwrap_or(CircuitState::Closed)
    }

    pub(crate) fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    pub(crate) fn last_success(&self) -> Option<f64> {
        Some(self.last_success.get()).filter(|&unix| unix > 0.0)
    }

    pub(crate) fn next_run(&self) -> Option<f64> {
        Some(self.next_run.get()).filter(|&unix| unix > 0.0)
    }

    pub(crate) fn skips(&self, reason: SkipReason) -> u64 {
        self.skipped[reason as usize].load(Relaxed)
    }

    /// Runs finished with `outcome`.
    pub(crate) fn runs(&self, outcome: Outcome) -> u64 {
        self.runs[outcome as usize].load(Relaxed)
    }
}

/// A metric family: its name, kind and help text.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

impl Family {
    const fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self { name, kind, help }
    }

    fn header(&self, out: &mut String) {
        let Self { name, kind, help } = self;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
}

const RUNS: Family = Family::new("worker_runs_total", "counter", "Runs finished, by result.");
const DURATION: Family = Family::new(
    "worker_run_duration_seconds",
    "histogram",
    "Duration of finished runs, all attempts and backoff included, by result.",
);
const RETRIES: Family = Family::new(
    "worker_run_retries_total",
    "counter",
    "Attempts made after the first attempt of a run.",
);
const SKIPPED: Family = Family::new(
    "worker_runs_skipped_total",
    "counter",
    "Triggers that did not produce a run, by reason.",
);
const LAG: Family = Family::new(
    "worker_schedule_lag_seconds",
    "histogram",
    "Delay between when a run was due and when it started.",
);
const ACTIVE: Family = Family::new(
    "worker_run_active",
    "gauge",
    "Runs in progress (at most 1 unless `overlap = allow(n)`).",
);
const LAST_SUCCESS: Family = Family::new(
    "worker_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful run; 0 before the first.",
);
const NEXT_RUN: Family = Family::new(
    "worker_next_run_timestamp_seconds",
    "gauge",
    "Unix time the next run is due; 0 when none is scheduled.",
);
const RESTARTS: Family = Family::new(
    "worker_restarts_total",
    "counter",
    "Times the worker was restarted after a panic or a crash of its loop, by reason.",
);
const STATE: Family = Family::new(
    "worker_state",
    "gauge",
    "The worker's current state: 1 for the state it is in, 0 for the others.",
);
const CIRCUIT: Family = Family::new(
    "worker_circuit_state",
    "gauge",
    "The worker's circuit breaker: 1 for its current state, 0 for the others.",
);
const ADMIN: Family = Family::new(
    "worker_admin_actions_total",
    "counter",
    "Admin actions accepted (run now, pause, resume), by action.",
);
const REFUSED: Family = Family::new(
    "worker_admin_refused_total",
    "counter",
    "Admin requests refused: admin actions disabled, or a missing or wrong token.",
);
const INFO: Family = Family::new(
    "worker_info",
    "gauge",
    "Always 1; the labels carry the worker's effective schedule.",
);

/// What [`render`] writes for one worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rendered<'a> {
    pub(crate) metrics: &'a WorkerMetrics,
    /// The effective trigger, unescaped.
    pub(crate) schedule: &'a str,
    /// The state the worker shows (stale or not).
    pub(crate) state: WorkerState,
}

/// Writes every series of `workers` in the Prometheus text format (version 0.0.4), one family
/// at a time, each worker with the state it shows (stale or not).
pub(crate) fn render<'a, I>(out: &mut String, workers: I, refused: &[AtomicU64; 2])
where
    I: IntoIterator<Item = Rendered<'a>>,
    I::IntoIter: Clone,
{
    let workers = workers.into_iter();
    let mut family = |family: &Family, line: &dyn Fn(&mut String, &WorkerMetrics, WorkerState)| {
        family.header(out);
        for worker in workers.clone() {
            line(out, worker.metrics, worker.state);
        }
    };
    family(&RUNS, &|out, m, _| {
        let values = Outcome::ALL.map(|o| (o.as_str(), m.runs(o)));
        by_label(out, RUNS.name, m, "result", values);
    });
    family(&DURATION, &|out, m, _| {
        for outcome in Outcome::ALL {
            let labels = format!("{},result=\"{}\"", m.labels, outcome.as_str());
            let histogram = &m.durations[outcome as usize];
            histogram.render(out, DURATION.name, &labels, RUN_DURATION_BUCKETS);
        }
    });
    family(&RETRIES, &|out, m, _| {
        single(out, RETRIES.name, m, m.retries.load(Relaxed));
    });
    family(&SKIPPED, &|out, m, _| {
        let values = SkipReason::ALL.map(|r| (r.as_str(), m.skipped[r as usize].load(Relaxed)));
        by_label(out, SKIPPED.name, m, "reason", values);
    });
    family(&LAG, &|out, m, _| {
        m.lag.render(out, LAG.name, &m.labels, SCHEDULE_LAG_BUCKETS);
    });
    family(&ACTIVE, &|out, m, _| {
        single(out, ACTIVE.name, m, m.active());
    });
    family(&LAST_SUCCESS, &|out, m, _| {
        single(out, LAST_SUCCESS.name, m, m.last_success.get());
    });
    family(&NEXT_RUN, &|out, m, _| {
        single(out, NEXT_RUN.name, m, m.next_run.get());
    });
    family(&RESTARTS, &|out, m, _| {
        let values = RestartReason::ALL.map(|r| (r.as_str(), m.restarts[r as usize].load(Relaxed)));
        by_label(out, RESTARTS.name, m, "reason", values);
    });
    family(&STATE, &|out, m, shown| {
        let values = WorkerState::ALL.map(|s| (s.as_str(), u8::from(s == shown)));
        by_label(out, STATE.name, m, "state", values);
    });
    family(&CIRCUIT, &|out, m, _| {
        let current = m.circuit();
        let values = CircuitState::ALL.map(|s| (s.as_str(), u8::from(s == current)));
        by_label(out, CIRCUIT.name, m, "state", values);
    });
    family(&ADMIN, &|out, m, _| {
        let values = Action::ALL.map(|a| (a.as_str(), m.admin[a as usize].load(Relaxed)));
        by_label(out, ADMIN.name, m, "action", values);
    });
    INFO.header(out);
    for worker in workers.clone() {
        let (labels, schedule) = (&worker.metrics.labels, Escaped(worker.schedule));
        let _ = writeln!(out, "{}{{{labels},schedule=\"{schedule}\"}} 1", INFO.name);
    }
    REFUSED.header(out);
    for (reason, count) in REFUSALS.iter().zip(refused) {
        let _ = writeln!(
            out,
            "{}{{reason=\"{reason}\"}} {}",
            REFUSED.name,
            count.load(Relaxed)
        );
    }
}

/// One line per label value: `name{worker="..",key="value"} x`.
fn by_label<T: fmt::Display>(
    out: &mut String,
    name: &str,
    metrics: &WorkerMetrics,
    key: &str,
    values: impl IntoIterator<Item = (&'static str, T)>,
) {
    for (value, x) in values {
        let _ = writeln!(out, "{name}{{{},{key}=\"{value}\"}} {x}", metrics.labels);
    }
}

/// The one line of a series labelled by worker only.
fn single(out: &mut String, name: &str, metrics: &WorkerMetrics, value: impl fmt::Display) {
    let _ = writeln!(out, "{name}{{{}}} {value}", metrics.labels);
}

/// A label value escaped for the text format: backslash, double quote and line feed.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let metrics = WorkerMetrics::new("a\"b\\c\nd");
        assert_eq!(&*metrics.labels, r#"worker="a\"b\\c\nd""#);
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::<3>::new();
        let bounds = [100_000_000, 1_000_000_000];
        for millis in [50, 100, 500, 2000] {
            histogram.record(&bounds, Duration::from_millis(millis));
        }
        let mut out = String::new();
        histogram.render(&mut out, "h", "w=\"x\"", &[0.1, 1.0]);
        assert_eq!(
            out,
            "h_bucket{w=\"x\",le=\"0.1\"} 2\n\
             h_bucket{w=\"x\",le=\"1\"} 3\n\
             h_bucket{w=\"x\",le=\"+Inf\"} 4\n\
             h_sum{w=\"x\"} 2.65\n\
             h_count{w=\"x\"} 4\n"
        );
    }
}
