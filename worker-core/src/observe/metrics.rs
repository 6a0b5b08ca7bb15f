//! The Prometheus series of every worker, kept in one block of atomics per worker (written out
//! by [`exposition`](super::exposition)).
//!
//! The `worker_*` series are not kept by the `metrics` facade: a recorder keeps every series as
//! a separate allocation behind a hash map (about 35 per worker, 14 KiB), and a run would touch
//! a dozen of them. Here one worker's series share one allocation of about 1 KiB, a run touches
//! a few adjacent cache lines, and a scrape reads them all without locking. The bridge
//! ([`facade`](super::facade)) publishes them to the facade's recorder as well.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::observe::exposition::{Escaped, sample};
use crate::observe::{outcome::Outcome, skip::SkipReason, state::WorkerState};
use crate::run::circuit::CircuitState;
use crate::schedule::clock::saturating_nanos;

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
    pub(super) const ALL: [RestartReason; 2] = [Self::Panic, Self::Crash];

    pub(super) fn as_str(self) -> &'static str {
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
    /// A dead job sent to its queue again.
    Requeue,
    /// Durable queues: a discarded or cancelled job run again, as a new job.
    Retry,
    /// Durable queues: a waiting job discarded.
    Discard,
    /// Durable queues: a job cancelled.
    Cancel,
}

impl Action {
    pub(crate) const ALL: [Action; 7] = [
        Self::Run,
        Self::Pause,
        Self::Resume,
        Self::Requeue,
        Self::Retry,
        Self::Discard,
        Self::Cancel,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Requeue => "requeue",
            Self::Retry => "retry",
            Self::Discard => "discard",
            Self::Cancel => "cancel",
        }
    }

    /// The counted action of an admin action on a durable job.
    pub(crate) fn of(action: crate::durable::JobAction) -> Self {
        match action {
            crate::durable::JobAction::Discard => Self::Discard,
            crate::durable::JobAction::Cancel => Self::Cancel,
            _ => Self::Retry,
        }
    }
}

/// Why an admin request was refused; the `reason` label of `worker_admin_refused_total`.
pub(crate) const REFUSALS: [&str; 2] = ["disabled", "unauthorized"];
/// Bucket bounds of `worker_run_duration_seconds`, in seconds: 5 ms to one hour.
pub const RUN_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Bucket bounds of `worker_schedule_lag_seconds`, in seconds: 1 ms to ten minutes.
pub const SCHEDULE_LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0,
];

pub(crate) const RUN_SLOTS: usize = RUN_DURATION_BUCKETS.len() + 1;
const LAG_SLOTS: usize = SCHEDULE_LAG_BUCKETS.len() + 1;
const RUN_BOUNDS: [u64; RUN_SLOTS - 1] = nanos(RUN_DURATION_BUCKETS);
const LAG_BOUNDS: [u64; LAG_SLOTS - 1] = nanos(SCHEDULE_LAG_BUCKETS);

/// Bucket bounds in nanoseconds, so recording compares integers.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the bounds are positive and far below 2^64 ns (584 years)"
)]
pub(crate) const fn nanos<const N: usize>(seconds: &[f64]) -> [u64; N] {
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
pub(crate) struct Histogram<const SLOTS: usize> {
    sum_nanos: AtomicU64,
    counts: [AtomicU64; SLOTS],
}

impl<const SLOTS: usize> Histogram<SLOTS> {
    pub(crate) fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts `value`; `bounds` are the bucket bounds in nanoseconds.
    pub(crate) fn record(&self, bounds: &[u64], value: Duration) {
        let nanos = saturating_nanos(value);
        let slot = bounds
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(bounds.len());
        add(&self.counts[slot], 1);
        add(&self.sum_nanos, nanos);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one series: its labels, then
    /// `extra` if given; `les` are the bounds as [`exposition::bounds`] writes them.
    pub(crate) fn render(
        &self,
        out: &mut String,
        name: &str,
        labels: &str,
        extra: Option<(&str, &str)>,
        les: &[String],
    ) {
        let mut cumulative = 0;
        for (slot, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = ("le", les.get(slot).map_or("+Inf", String::as_str));
            match extra {
                Some(extra) => sample(out, name, "_bucket", labels, &[extra, le], cumulative),
                None => sample(out, name, "_bucket", labels, &[le], cumulative),
            }
        }
        let extra = extra.as_slice();
        let sum = Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64();
        sample(out, name, "_sum", labels, extra, sum);
        sample(out, name, "_count", labels, extra, cumulative);
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
pub(super) struct Timestamp(AtomicU64);

impl Timestamp {
    /// Nanoseconds since the Unix epoch; 0 for none.
    fn set(&self, unix_nanos: u64) {
        self.0.store(unix_nanos, Relaxed);
    }

    /// Seconds since the Unix epoch; 0 for none.
    pub(super) fn get(&self) -> f64 {
        // Nanoseconds since 1970 stay below 2^53 until 2255, so the conversion is exact enough.
        #[allow(clippy::cast_precision_loss, reason = "see above")]
        let nanos = self.0.load(Relaxed) as f64;
        nanos / 1e9
    }
}

/// Every series of one worker. Made when the host is built; every series exists from then on,
/// at zero.
///
/// In declaration order (`repr(C)`): the gauges and the run counters, which every run sets,
/// then the counters of rarer events, then the histograms. Aligned to a cache line, so two
/// workers' blocks never share one.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct WorkerMetrics {
    pub(super) state: AtomicU8,
    pub(super) circuit: AtomicU8,
    pub(super) active: AtomicU32,
    pub(super) next_run: Timestamp,
    pub(super) last_success: Timestamp,
    pub(super) runs: [AtomicU64; Outcome::ALL.len()],
    pub(super) retries: AtomicU64,
    pub(super) skipped: [AtomicU64; SkipReason::ALL.len()],
    pub(super) restarts: [AtomicU64; RestartReason::ALL.len()],
    pub(super) admin: [AtomicU64; Action::ALL.len()],
    pub(super) lag: Histogram<LAG_SLOTS>,
    /// The durations of successful and failed runs.
    durations: [Histogram<RUN_SLOTS>; 2],
    /// Those of panicked, timed-out and cancelled runs, allocated at the first: most workers
    /// never have one, and each histogram is an eighth of the worker's idle memory.
    rare: std::sync::OnceLock<Box<[Histogram<RUN_SLOTS>; 3]>>,
    /// The histograms' handles in the `metrics` facade, once the host started its bridge.
    pub(crate) facade: std::sync::OnceLock<crate::observe::facade::RunHistograms>,
    /// `worker="<name>"`, escaped once.
    pub(super) labels: Box<str>,
}

impl WorkerMetrics {
    pub(crate) fn new(worker: &str) -> Self {
        Self {
            labels: format!("worker=\"{}\"", Escaped(worker)).into(),
            runs: Default::default(),
            durations: std::array::from_fn(|_| Histogram::new()),
            rare: std::sync::OnceLock::new(),
            facade: std::sync::OnceLock::new(),
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
        let histogram = match self.durations.get(index) {
            Some(histogram) => histogram,
            None => &self
                .rare
                .get_or_init(|| Box::new(std::array::from_fn(|_| Histogram::new())))[index - 2],
        };
        histogram.record(&RUN_BOUNDS, took);
        if let Some(facade) = self.facade.get() {
            facade.durations[index].record(took.as_secs_f64());
        }
    }

    /// The durations of the runs that ended with `outcome`; `None`: none did yet.
    pub(super) fn durations(&self, outcome: Outcome) -> Option<&Histogram<RUN_SLOTS>> {
        let index = outcome as usize;
        self.durations
            .get(index)
            .or_else(|| Some(&self.rare.get()?[index - 2]))
    }

    /// A run started `lag` after it was due.
    pub(crate) fn started(&self, lag: Duration) {
        self.lag.record(&LAG_BOUNDS, lag);
        if let Some(facade) = self.facade.get() {
            facade.lag.record(lag.as_secs_f64());
        }
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

    /// Runs finished, whatever their outcome.
    pub(crate) fn finished_runs(&self) -> u64 {
        self.runs.iter().map(|runs| runs.load(Relaxed)).sum()
    }

    /// Runs finished with `outcome`.
    pub(crate) fn runs(&self, outcome: Outcome) -> u64 {
        self.runs[outcome as usize].load(Relaxed)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The rare outcomes' histograms are allocated at their first run, and the page shows
    /// each outcome's series either way.
    #[test]
    fn each_outcome_s_durations_are_kept_apart() {
        let metrics = WorkerMetrics::new("w");
        assert!(metrics.durations(Outcome::Panic).is_none());
        metrics.finished(Outcome::Success, Duration::from_millis(1));
        metrics.finished(Outcome::Panic, Duration::from_secs(2));
        metrics.finished(Outcome::Panic, Duration::from_secs(3));
        let count = |outcome| {
            metrics
                .durations(outcome)
                .map(|h| h.counts.iter().map(|c| c.load(Relaxed)).sum::<u64>())
        };
        assert_eq!(
            Outcome::ALL.map(count),
            [Some(1), Some(0), Some(2), Some(0), Some(0)]
        );
        let page = crate::observe::exposition::page_of(&metrics);
        for (result, n) in [
            ("success", 1),
            ("failure", 0),
            ("panic", 2),
            ("cancelled", 0),
        ] {
            let line = format!(
                "worker_run_duration_seconds_count{{worker=\"w\",result=\"{result}\"}} {n}\n"
            );
            assert!(page.contains(&line), "{line} in {page}");
        }
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::<3>::new();
        let bounds = [100_000_000, 1_000_000_000];
        for millis in [50, 100, 500, 2000] {
            histogram.record(&bounds, Duration::from_millis(millis));
        }
        let les = crate::observe::exposition::bounds(&[0.1, 1.0]);
        let mut out = String::new();
        histogram.render(&mut out, "h", "w=\"x\"", None, &les);
        histogram.render(&mut out, "h", "w=\"x\"", Some(("result", "ok")), &les);
        assert_eq!(
            out,
            "h_bucket{w=\"x\",le=\"0.1\"} 2\n\
             h_bucket{w=\"x\",le=\"1\"} 3\n\
             h_bucket{w=\"x\",le=\"+Inf\"} 4\n\
             h_sum{w=\"x\"} 2.65\n\
             h_count{w=\"x\"} 4\n\
             h_bucket{w=\"x\",result=\"ok\",le=\"0.1\"} 2\n\
             h_bucket{w=\"x\",result=\"ok\",le=\"1\"} 3\n\
             h_bucket{w=\"x\",result=\"ok\",le=\"+Inf\"} 4\n\
             h_sum{w=\"x\",result=\"ok\"} 2.65\n\
             h_count{w=\"x\",result=\"ok\"} 4\n"
        );
    }
}
