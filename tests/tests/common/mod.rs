//! Helpers shared by the behaviour tests: running a host on the paused clock, a journal of runs,
//! and a readable view of the `metrics` debugging recorder.
#![allow(
    dead_code,
    reason = "every test binary includes this module and uses a different part of it"
)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::Instant;
use worker_core::{Ctx, Error, Host, HostBuilder};

/// `n` milliseconds.
pub(crate) const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub(crate) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How a host run by [`run_for`] ended.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// What `run_until` returned.
    pub(crate) result: Result<(), Error>,
    /// Tokio time from the shutdown request to `run_until` returning.
    pub(crate) took: Duration,
}

/// Runs `host` for `period` of (paused) tokio time, asks it to stop, and waits for it.
///
/// End `period` between ticks (say 3600.5 s) so no run starts in the same instant as shutdown.
pub(crate) async fn run_for(host: Host, period: Duration) -> Stopped {
    let handle = host.shutdown_handle();
    let host = tokio::spawn(host.run_until(std::future::pending()));
    tokio::time::sleep(period).await;
    handle.shutdown();
    let asked = Instant::now();
    let result = host.await.expect("the host task panicked");
    Stopped {
        result,
        took: asked.elapsed(),
    }
}

/// Sleeps for `period`, or less if the run is cancelled first; says whether it was.
pub(crate) async fn work(ctx: &Ctx, period: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = ctx.cancelled() => true,
    }
}

/// One attempt, as seen by a worker body. Times are measured from the moment the journal was
/// made, which is when the test started and the host with it (the clock is paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) run_id: u64,
    pub(crate) attempt: u32,
    /// When the attempt started.
    pub(crate) start: Duration,
    /// `ctx.scheduled_at()`.
    pub(crate) scheduled: Duration,
}

/// A journal of attempts, shared with worker bodies as `State<Arc<Runs>>`; it also checks that
/// no two attempts of the workers writing to it overlap.
#[derive(Debug)]
pub(crate) struct Runs {
    t0: Instant,
    entries: Mutex<Vec<Entry>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl Runs {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            t0: Instant::now(),
            entries: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
        })
    }

    /// Tokio time since the journal was made.
    pub(crate) fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Records the start of an attempt; the attempt counts as active until the guard drops.
    pub(crate) fn enter(&self, ctx: &Ctx) -> Active<'_> {
        let entry = Entry {
            run_id: ctx.run_id(),
            attempt: ctx.attempt(),
            start: self.now(),
            scheduled: ctx.scheduled_at().saturating_duration_since(self.t0),
        };
        self.lock().push(entry);
        let active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(active, Ordering::SeqCst);
        Active(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn starts(&self) -> Vec<Duration> {
        self.lock().iter().map(|e| e.start).collect()
    }

    pub(crate) fn scheduled(&self) -> Vec<Duration> {
        self.lock().iter().map(|e| e.scheduled).collect()
    }

    /// The attempts grouped by run, in order.
    pub(crate) fn runs(&self) -> Vec<Vec<Entry>> {
        let mut runs: Vec<Vec<Entry>> = Vec::new();
        for entry in self.entries() {
            match runs.last_mut() {
                Some(run) if run[0].run_id == entry.run_id => run.push(entry),
                _ => runs.push(vec![entry]),
            }
        }
        runs
    }

    /// The most attempts that were ever active at once.
    pub(crate) fn max_active(&self) -> usize {
        self.max_active.load(Ordering::SeqCst)
    }
}

/// An attempt in progress; see [`Runs::enter`].
#[derive(Debug)]
pub(crate) struct Active<'a>(&'a Runs);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A `metrics` debugging recorder that a host's metric handles are bound to.
pub(crate) struct Metrics {
    recorder: DebuggingRecorder,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            recorder: DebuggingRecorder::new(),
        }
    }

    /// Builds the host with this recorder as the local recorder, so its handles bind to it.
    pub(crate) fn build(&self, builder: HostBuilder) -> Result<Host, Error> {
        metrics::with_local_recorder(&self.recorder, || builder.build())
    }

    /// The values now. Reading resets counters and gauges to zero and empties histograms, so
    /// take one snapshot per phase of a test.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let series = self
            .recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, description, value)| {
                let kind = key.kind();
                let (_, key) = key.into_parts();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let series = Series {
                    name: key.name().to_owned(),
                    labels,
                };
                let described = description.is_some() || unit.is_some();
                (series, (kind, value, described))
            })
            .collect();
        Snapshot(series)
    }
}

/// A metric name and its exact label set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
}

impl Series {
    pub(crate) fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut labels = String::new();
        for (k, v) in &self.labels {
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = write!(labels, "{sep}{k}={v:?}");
        }
        write!(f, "{}{{{labels}}}", self.name)
    }
}

/// One reading of every series: kind, value, and whether it was described (help text or unit).
#[derive(Debug)]
pub(crate) struct Snapshot(HashMap<Series, (MetricKind, DebugValue, bool)>);

impl Snapshot {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> &(MetricKind, DebugValue, bool) {
        let series = Series::new(name, labels);
        self.0.get(&series).unwrap_or_else(|| {
            let mut known: Vec<String> = self.0.keys().map(ToString::to_string).collect();
            known.sort();
            panic!(
                "no series {series}; the recorder has:\n{}",
                known.join("\n")
            )
        })
    }

    pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            (MetricKind::Counter, DebugValue::Counter(n), _) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    pub(crate) fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            (MetricKind::Gauge, DebugValue::Gauge(x), _) => x.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    pub(crate) fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            (MetricKind::Histogram, DebugValue::Histogram(xs), _) => {
                xs.iter().map(|x| x.into_inner()).collect()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    pub(crate) fn is_described(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.get(name, labels).2
    }

    /// Every series, sorted.
    pub(crate) fn series(&self) -> Vec<Series> {
        let mut all: Vec<Series> = self.0.keys().cloned().collect();
        all.sort();
        all
    }

    /// `worker_runs_total{worker, result}`.
    pub(crate) fn runs(&self, worker: &str, result: &str) -> u64 {
        self.counter(
            "worker_runs_total",
            &[("worker", worker), ("result", result)],
        )
    }

    /// `worker_runs_skipped_total{worker, reason}`.
    pub(crate) fn skipped(&self, worker: &str, reason: &str) -> u64 {
        self.counter(
            "worker_runs_skipped_total",
            &[("worker", worker), ("reason", reason)],
        )
    }

    /// `worker_run_retries_total{worker}`.
    pub(crate) fn retries(&self, worker: &str) -> u64 {
        self.counter("worker_run_retries_total", &[("worker", worker)])
    }

    /// `worker_state{worker, state}`.
    pub(crate) fn state(&self, worker: &str, state: &str) -> f64 {
        self.gauge("worker_state", &[("worker", worker), ("state", state)])
    }

    /// The state `worker` is in: the one `worker_state` series at 1, the others being at 0.
    #[track_caller]
    pub(crate) fn current_state(&self, worker: &str) -> &'static str {
        let values = STATES.map(|state| (state, self.state(worker, state)));
        let on: Vec<&str> = values
            .iter()
            .filter(|(_, value)| (*value - 1.0).abs() < f64::EPSILON)
            .map(|(state, _)| *state)
            .collect();
        let off = values.iter().filter(|(_, value)| *value == 0.0).count();
        assert!(
            on.len() == 1 && off == STATES.len() - 1,
            "`{worker}` is not in exactly one state: {values:?}"
        );
        on[0]
    }
}

/// The `result` label values, in the order of `Outcome::ALL`.
pub(crate) const RESULTS: [&str; 5] = ["success", "failure", "panic", "timeout", "cancelled"];

/// The `state` label values.
pub(crate) const STATES: [&str; 6] = [
    "starting", "idle", "running", "backoff", "failed", "stopped",
];

/// The `reason` label values of `worker_runs_skipped_total`.
pub(crate) const REASONS: [&str; 4] = ["overlap", "missed", "circuit_open", "restarting"];

/// Asserts that `worker`'s runs ended as `expected` (`(result, count)`; other results zero).
#[track_caller]
pub(crate) fn assert_results(snapshot: &Snapshot, worker: &str, expected: &[(&str, u64)]) {
    let actual: Vec<(&str, u64)> = RESULTS
        .iter()
        .map(|&result| (result, snapshot.runs(worker, result)))
        .collect();
    let wanted: Vec<(&str, u64)> = RESULTS
        .iter()
        .map(|&result| {
            let n = expected
                .iter()
                .find(|(r, _)| *r == result)
                .map_or(0, |(_, n)| *n);
            (result, n)
        })
        .collect();
    assert_eq!(actual, wanted, "worker_runs_total of `{worker}`");
}

/// A host running in a task on the paused clock, for tests that look at it in phases (a metrics
/// snapshot per phase) before stopping it.
pub(crate) struct Running {
    handle: worker_core::ShutdownHandle,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Starts `host` in a task; it runs until [`Running::stop`] (or stops by itself).
    pub(crate) fn start(host: Host) -> Self {
        let handle = host.shutdown_handle();
        let task = tokio::spawn(host.run_until(std::future::pending()));
        Self { handle, task }
    }

    /// Asks the host to stop and waits for it.
    pub(crate) async fn stop(self) -> Stopped {
        self.handle.shutdown();
        let asked = Instant::now();
        let result = self.task.await.expect("the host task panicked");
        Stopped {
            result,
            took: asked.elapsed(),
        }
    }
}

/// Sleeps until `at` after `t0` on the (paused) clock; for tests that act at given moments.
pub(crate) async fn sleep_until(t0: Instant, at: Duration) {
    tokio::time::sleep_until(t0 + at).await;
}

/// `worker_circuit_state{worker, state}` for the three states, as `(closed, open, half_open)`.
///
/// Every transition writes all three gauges, so a snapshot taken after a transition shows the
/// state the circuit is in (a snapshot resets what it reads).
pub(crate) fn circuit(snapshot: &Snapshot, worker: &str) -> (f64, f64, f64) {
    let read = |state| {
        snapshot.gauge(
            "worker_circuit_state",
            &[("worker", worker), ("state", state)],
        )
    };
    (read("closed"), read("open"), read("half_open"))
}

/// `worker_restarts_total{worker, reason}`.
pub(crate) fn restarts(snapshot: &Snapshot, worker: &str, reason: &str) -> u64 {
    snapshot.counter(
        "worker_restarts_total",
        &[("worker", worker), ("reason", reason)],
    )
}
