//! The Prometheus text exposition format (version 0.0.4) of every worker's series.

use std::fmt::{self, Write as _};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::observe::board::Change;
use crate::observe::metrics::{
    Action, Histogram, REFUSALS, RUN_DURATION_BUCKETS, RUN_SLOTS, RestartReason,
    SCHEDULE_LAG_BUCKETS, WorkerMetrics,
};
use crate::observe::{outcome::Outcome, skip::SkipReason, state::WorkerState};
use crate::queue::channel::Channel;
use crate::run::circuit::CircuitState;
use crate::supervise::singleton::Singleton;

use self::queues::{leases, queues};

mod queues;

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
        for piece in [
            "# HELP ",
            name,
            " ",
            help,
            "\n# TYPE ",
            name,
            " ",
            kind,
            "\n",
        ] {
            out.push_str(piece);
        }
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
const CHANGED: Family = Family::new(
    "worker_workers_changed_total",
    "counter",
    "Workers added to and removed from the running host through its handle, by change.",
);
const INFO: Family = Family::new(
    "worker_info",
    "gauge",
    "Always 1; the labels carry the worker's effective schedule.",
);

/// The series of an outcome no run had yet: zero in every bucket.
static EMPTY_RUN_HISTOGRAM: LazyLock<Histogram<RUN_SLOTS>> = LazyLock::new(Histogram::new);

/// What [`render`] writes for one worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rendered<'a> {
    pub(crate) metrics: &'a WorkerMetrics,
    /// The effective trigger, unescaped.
    pub(crate) schedule: &'a str,
    /// The state the worker shows (stale or not).
    pub(crate) state: WorkerState,
    /// A queue worker's queue.
    pub(crate) queue: Option<&'a Channel>,
    /// A singleton's lease.
    pub(crate) lease: Option<&'a Singleton>,
}

/// Writes every series of `workers` in the Prometheus text format (version 0.0.4), one family
/// at a time, each worker with the state it shows (stale or not).
pub(crate) fn render<'a, I>(
    out: &mut String,
    workers: I,
    refused: &[AtomicU64; 2],
    changes: &[AtomicU64; 2],
) where
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
    let run_les = bounds(RUN_DURATION_BUCKETS);
    family(&DURATION, &|out, m, _| {
        for outcome in Outcome::ALL {
            let result = Some(("result", outcome.as_str()));
            let histogram = m.durations(outcome).unwrap_or(&EMPTY_RUN_HISTOGRAM);
            histogram.render(out, DURATION.name, &m.labels, result, &run_les);
        }
    });
    family(&RETRIES, &|out, m, _| {
        single(out, RETRIES.name, m, m.retries.load(Relaxed));
    });
    family(&SKIPPED, &|out, m, _| {
        let values = SkipReason::ALL.map(|r| (r.as_str(), m.skipped[r as usize].load(Relaxed)));
        by_label(out, SKIPPED.name, m, "reason", values);
    });
    let lag_les = bounds(SCHEDULE_LAG_BUCKETS);
    family(&LAG, &|out, m, _| {
        m.lag.render(out, LAG.name, &m.labels, None, &lag_les);
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
    ACTIVE.header(out);
    for worker in workers.clone() {
        // A queue worker's runs in flight are its queue's.
        let active = worker
            .queue
            .map_or(u64::from(worker.metrics.active()), |q| {
                q.metrics.in_flight()
            });
        single(out, ACTIVE.name, worker.metrics, active);
    }
    let with_queues: Vec<&Channel> = workers.clone().filter_map(|w| w.queue).collect();
    queues(out, &with_queues);
    let singletons: Vec<(&WorkerMetrics, &Singleton)> = workers
        .clone()
        .filter_map(|w| Some((w.metrics, w.lease?)))
        .collect();
    leases(out, &singletons);
    INFO.header(out);
    for worker in workers.clone() {
        let schedule = Escaped(worker.schedule).to_string();
        let schedule = [("schedule", schedule.as_str())];
        sample(out, INFO.name, "", &worker.metrics.labels, &schedule, 1_u8);
    }
    REFUSED.header(out);
    for (reason, count) in REFUSALS.iter().zip(refused) {
        let reason = [("reason", *reason)];
        sample(out, REFUSED.name, "", "", &reason, count.load(Relaxed));
    }
    CHANGED.header(out);
    for (change, count) in Change::ALL.iter().zip(changes) {
        let change = [("change", change.as_str())];
        sample(out, CHANGED.name, "", "", &change, count.load(Relaxed));
    }
}

/// One line per label value: `name{worker="..",key="value"} x`.
fn by_label<T: Value>(
    out: &mut String,
    name: &str,
    metrics: &WorkerMetrics,
    key: &str,
    values: impl IntoIterator<Item = (&'static str, T)>,
) {
    for (value, x) in values {
        sample(out, name, "", &metrics.labels, &[(key, value)], x);
    }
}

/// The one line of a series labelled by worker only.
fn single(out: &mut String, name: &str, metrics: &WorkerMetrics, value: impl Value) {
    sample(out, name, "", &metrics.labels, &[], value);
}

/// A sample's value, as the text format writes it.
pub(crate) trait Value {
    fn write(self, out: &mut String);
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn write(self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(self));
            }
        }
    )*};
}
integer_value!(u8, u64, i64);

impl Value for f64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

/// One sample line: `{name}{suffix}{labels,key="value",..} value`. The page is written with
/// plain appends (a 10,000-worker page has more than a million lines): `labels` is escaped
/// already, and the extra label values are the host's own words.
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    extra: &[(&str, &str)],
    value: impl Value,
) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
    for (key, label) in extra {
        if !out.ends_with('{') {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        out.push_str(label);
        out.push('"');
    }
    out.push_str("} ");
    value.write(out);
    out.push('\n');
}

/// The `le` label values of a histogram's bounds, written once per page.
pub(crate) fn bounds(seconds: &[f64]) -> Vec<String> {
    seconds.iter().map(f64::to_string).collect()
}

/// A label value escaped for the text format: backslash, double quote and line feed.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

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

/// The page of one idle worker, for tests.
#[cfg(test)]
pub(crate) fn page_of(metrics: &WorkerMetrics) -> String {
    let mut out = String::new();
    let worker = Rendered {
        metrics,
        schedule: "every 1s",
        state: WorkerState::Idle,
        queue: None,
        lease: None,
    };
    render(&mut out, [worker], &Default::default(), &Default::default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let metrics = WorkerMetrics::new("a\"b\\c\nd");
        assert_eq!(&*metrics.labels, r#"worker="a\"b\\c\nd""#);
    }
}
