//! Helpers shared by the behaviour tests: running a host on the paused clock, a journal of runs,
//! and a reader of the host's metrics page.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::sync::OnceLock;

use tokio::time::Instant;
use worker_core::{Ctx, Error, Host, HostBuilder, HostHandle};

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
    let handle = host.handle();
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

/// Reads a host's metrics the way Prometheus does: from the page its handle renders.
pub(crate) struct Metrics {
    handle: OnceLock<HostHandle>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            handle: OnceLock::new(),
        }
    }

    /// Builds the host and keeps its handle, to read its metrics while it runs and after.
    pub(crate) fn build(&self, builder: HostBuilder) -> Result<Host, Error> {
        let host = builder.build()?;
        assert!(
            self.handle.set(host.handle()).is_ok(),
            "one `Metrics` per host"
        );
        Ok(host)
    }

    /// The values now. Counters and histograms are cumulative since the host was built.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let handle = self.handle.get().expect("`Metrics::build` was called");
        Snapshot::parse(&handle.render_metrics())
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

    /// Parses `name{k="v",...}` (label values unescaped).
    fn parse(text: &str) -> Self {
        let Some((name, rest)) = text.split_once('{') else {
            return Self::new(text, &[]);
        };
        let mut labels = BTreeMap::new();
        let mut chars = rest.strip_suffix('}').expect("labels end with }").chars();
        loop {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            if key.is_empty() {
                break;
            }
            assert_eq!(chars.next(), Some('"'), "label values are quoted");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => panic!("dangling escape"),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            if chars.next() != Some(',') {
                break;
            }
        }
        Self {
            name: name.to_owned(),
            labels,
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

/// One histogram series: its cumulative buckets, sum and count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// `(le, cumulative count)`, `+Inf` last.
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    /// How many observations were at most `bound`, which must be a bucket bound.
    #[track_caller]
    pub(crate) fn at_most(&self, bound: f64) -> u64 {
        self.buckets
            .iter()
            .find(|(le, _)| (*le - bound).abs() < 1e-9)
            .unwrap_or_else(|| panic!("{bound} is not a bucket bound: {self:?}"))
            .1
    }

    /// How many observations were above `low` and at most `high`, both bucket bounds.
    #[track_caller]
    pub(crate) fn between(&self, low: f64, high: f64) -> u64 {
        self.at_most(high) - self.at_most(low)
    }
}

/// One reading of a host's page: every sample, and the metric families with help text.
#[derive(Debug)]
pub(crate) struct Snapshot {
    samples: HashMap<Series, f64>,
    /// `# TYPE` of each family.
    types: HashMap<String, String>,
    described: Vec<String>,
}

impl Snapshot {
    pub(crate) fn parse(page: &str) -> Self {
        let mut samples = HashMap::new();
        let mut types = HashMap::new();
        let mut described = Vec::new();
        for line in page.lines().filter(|line| !line.is_empty()) {
            if let Some(help) = line.strip_prefix("# HELP ") {
                described.push(help.split(' ').next().unwrap_or_default().to_owned());
            } else if let Some(kind) = line.strip_prefix("# TYPE ") {
                let (name, kind) = kind.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
                let value: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    value => value.parse().expect("a numeric sample value"),
                };
                let previous = samples.insert(Series::parse(series), value);
                assert!(previous.is_none(), "{series} appears twice on the page");
            }
        }
        Self {
            samples,
            types,
            described,
        }
    }

    #[track_caller]
    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series = Series::new(name, labels);
        *self.samples.get(&series).unwrap_or_else(|| {
            let mut known: Vec<String> = self.samples.keys().map(ToString::to_string).collect();
            known.sort();
            panic!("no series {series}; the page has:\n{}", known.join("\n"))
        })
    }

    #[track_caller]
    fn kind(&self, name: &str) -> &str {
        self.types
            .get(name)
            .unwrap_or_else(|| panic!("no # TYPE for {name}"))
    }

    #[track_caller]
    pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        assert_eq!(self.kind(name), "counter", "{name}");
        let value = self.sample(name, labels);
        assert!(value >= 0.0 && value.fract() == 0.0, "{name} = {value}");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = value as u64;
        value
    }

    #[track_caller]
    pub(crate) fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.kind(name), "gauge", "{name}");
        self.sample(name, labels)
    }

    #[track_caller]
    pub(crate) fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Histogram {
        assert_eq!(self.kind(name), "histogram", "{name}");
        let series = Series::new(name, labels);
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, u64)> = self
            .samples
            .iter()
            .filter(|(s, _)| s.name == bucket)
            .filter_map(|(s, value)| {
                let mut labels = s.labels.clone();
                let le = labels.remove("le")?;
                (labels == series.labels).then(|| {
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("a numeric bound")
                    };
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let count = *value as u64;
                    (le, count)
                })
            })
            .collect();
        assert!(!buckets.is_empty(), "no buckets for {series}");
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = self.sample(&format!("{name}_count"), labels) as u64;
        assert_eq!(buckets.last().map(|b| b.1), Some(count), "+Inf = count");
        Histogram {
            buckets,
            sum: self.sample(&format!("{name}_sum"), labels),
            count,
        }
    }

    /// Whether the family of `name` has help text.
    pub(crate) fn is_described(&self, name: &str) -> bool {
        self.described.iter().any(|d| d == name)
    }

    /// Every series a family has (histograms by their label sets, without `le`), sorted.
    pub(crate) fn series(&self) -> Vec<Series> {
        let mut all: Vec<Series> = self
            .samples
            .keys()
            .filter(|s| !s.name.ends_with("_sum") && !s.name.ends_with("_count"))
            .map(|s| match s.name.strip_suffix("_bucket") {
                Some(name) => {
                    let mut s = s.clone();
                    name.clone_into(&mut s.name);
                    s.labels.remove("le");
                    s
                }
                None => s.clone(),
            })
            .collect();
        all.sort();
        all.dedup();
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
pub(crate) const STATES: [&str; 9] = [
    "starting", "idle", "running", "backoff", "paused", "stale", "failed", "stopped", "follower",
];

/// The `reason` label values of `worker_runs_skipped_total`.
pub(crate) const REASONS: [&str; 7] = [
    "overlap",
    "missed",
    "circuit_open",
    "restarting",
    "paused",
    "shutting_down",
    "not_claimed",
];

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
    handle: HostHandle,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Starts `host` in a task; it runs until [`Running::stop`] (or stops by itself).
    pub(crate) fn start(host: Host) -> Self {
        let handle = host.handle();
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

/// A durable backend for hosts that are built but whose durable workers never run.
#[derive(Debug)]
pub(crate) struct Unused;

impl worker_core::durable::Backend for Unused {
    fn claim<'a>(
        &'a self,
        _: &'a str,
        _: u32,
        _: Duration,
        _: &'a str,
        _: u32,
    ) -> worker_core::durable::BoxFuture<
        'a,
        Result<Vec<worker_core::durable::Claimed>, worker_core::BoxError>,
    > {
        unreachable!("never run")
    }
    fn complete(
        &self,
        _: Vec<worker_core::durable::Attempt>,
    ) -> worker_core::durable::BoxFuture<'_, Result<Vec<u64>, worker_core::BoxError>> {
        unreachable!("never run")
    }
    fn fail(
        &self,
        _: worker_core::durable::Attempt,
        _: Option<Duration>,
        _: String,
    ) -> worker_core::durable::BoxFuture<'_, Result<bool, worker_core::BoxError>> {
        unreachable!("never run")
    }
    fn heartbeat(
        &self,
        _: Vec<worker_core::durable::Attempt>,
        _: Duration,
    ) -> worker_core::durable::BoxFuture<'_, Result<Vec<(u64, bool)>, worker_core::BoxError>> {
        unreachable!("never run")
    }
    fn release(
        &self,
        _: Vec<(worker_core::durable::Attempt, bool)>,
    ) -> worker_core::durable::BoxFuture<'_, Result<u64, worker_core::BoxError>> {
        unreachable!("never run")
    }
    fn maintain(
        &self,
    ) -> worker_core::durable::BoxFuture<
        '_,
        Result<worker_core::durable::Maintained, worker_core::BoxError>,
    > {
        unreachable!("never run")
    }
    fn keeps_leases(&self) -> bool {
        true
    }
}
