//! The Prometheus text exposition format (version 0.0.4) of every worker's series.

use crate::supervise::singleton::Singleton;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::observe::board::Change;
use crate::observe::metrics::{
    Action, Histogram, REFUSALS, RUN_DURATION_BUCKETS, RUN_SLOTS, RestartReason,
    SCHEDULE_LAG_BUCKETS, WorkerMetrics,
};
use crate::observe::{outcome::Outcome, skip::SkipReason, state::WorkerState};
use crate::queue::QUEUE_WAIT_BUCKETS;
use crate::queue::channel::{Channel, Reject};
use crate::queue::metrics::FETCH_BUCKETS;
use crate::queue::metrics::QueueMetrics;
use crate::run::circuit::CircuitState;

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

const QUEUE_DEPTH: Family = Family::new(
    "worker_queue_depth",
    "gauge",
    "Jobs waiting to start: buffered, or waiting out a retry backoff.",
);
const QUEUE_IN_FLIGHT: Family = Family::new("worker_queue_in_flight", "gauge", "Jobs running.");
const QUEUE_WAIT: Family = Family::new(
    "worker_queue_wait_seconds",
    "histogram",
    "Time from a job's enqueue to the start of its first attempt.",
);
const QUEUE_REJECTED: Family = Family::new(
    "worker_queue_rejected_total",
    "counter",
    "Sends refused: the queue was full (try_send, send_timeout) or closed, by reason.",
);
const JOBS_ENQUEUED: Family = Family::new(
    "worker_jobs_enqueued_total",
    "counter",
    "Jobs accepted by the queue.",
);
const JOBS_DEAD: Family = Family::new(
    "worker_jobs_dead_total",
    "counter",
    "Jobs that went dead: retries exhausted, a permanent error, or a discarded panic.",
);
const JOBS_LEFT_OVER: Family = Family::new(
    "worker_jobs_left_over_total",
    "counter",
    "Jobs that never got a slot before shutdown (handed to on_leftovers, or dropped).",
);
const JOBS_DROPPED: Family = Family::new(
    "worker_jobs_dropped_total",
    "counter",
    "Jobs dropped without running, by reason (shutdown: left over with no on_leftovers hook).",
);
const JOBS_STALE: Family = Family::new(
    "worker_jobs_stale_total",
    "counter",
    "Durable queues: results not recorded because the attempt had lost its lease to a newer one.",
);
const JOBS_RELEASED: Family = Family::new(
    "worker_jobs_released_total",
    "counter",
    "Durable queues: claimed jobs handed back at shutdown, for another consumer.",
);
const JOBS_RESCUED: Family = Family::new(
    "worker_jobs_rescued_total",
    "counter",
    "Durable queues: jobs whose lease expired (their consumer died), taken back by this consumer's maintenance.",
);

const FETCH: Family = Family::new(
    "worker_jobs_fetch_duration_seconds",
    "histogram",
    "Durable queues: how long each claim of jobs from the database took.",
);
const JOBS_LEASE_LOST: Family = Family::new(
    "worker_jobs_lease_lost_total",
    "counter",
    "Durable queues: jobs running here whose lease a heartbeat found lost (taken by another consumer); their runs are cancelled.",
);
const JOBS_UNRECORDED: Family = Family::new(
    "worker_jobs_unrecorded_total",
    "counter",
    "Durable queues: outcomes (completions, failures, releases) the database did not record; those jobs run again when their leases expire.",
);
const FETCH_FAILED: Family = Family::new(
    "worker_jobs_fetch_failed_total",
    "counter",
    "Durable queues: claims that failed (the database did not answer, or refused); the consumer tries again at its next poll.",
);

const JOBS: Family = Family::new(
    "worker_jobs",
    "gauge",
    "Durable queues: the queue's jobs in the database by state, as last read (every 5 s).",
);
const PG_DEAD_TUPLES: Family = Family::new(
    "worker_pg_jobs_dead_tuples",
    "gauge",
    "Durable queues: dead row versions in the jobs table, not yet vacuumed.",
);
const PG_XMIN_AGE: Family = Family::new(
    "worker_pg_oldest_xmin_age_seconds",
    "gauge",
    "Durable queues: age of the database's oldest open snapshot, which holds vacuum back.",
);
const PG_NOTIFY_USAGE: Family = Family::new(
    "worker_pg_notify_queue_usage",
    "gauge",
    "Durable queues: how full the database's notification queue is (0 to 1).",
);

const LEASE_HELD: Family = Family::new(
    "worker_lease_held",
    "gauge",
    "Singletons: 1 while this replica holds the worker's lease (and runs its ticks), else 0.",
);
const LEASE_FENCE: Family = Family::new(
    "worker_lease_fence",
    "gauge",
    "Singletons: the fencing token this replica last took the lease with; it rises with every takeover.",
);
const LEASE_ACQUIRED: Family = Family::new(
    "worker_lease_acquired_total",
    "counter",
    "Singletons: times this replica took the lease over.",
);
const LEASE_LOST: Family = Family::new(
    "worker_lease_lost_total",
    "counter",
    "Singletons: times this replica found its lease taken over while it thought it held it.",
);

const LEASE_MISSED: Family = Family::new(
    "worker_lease_missed_ticks_total",
    "counter",
    "Singletons: instants nobody ran (their holder died) found by this replica as it took the lease over; the missed policy replays (burst, up to catch_up) or skips them.",
);

/// The families of singletons only.
fn leases(out: &mut String, singletons: &[(&WorkerMetrics, &Singleton)]) {
    if singletons.is_empty() {
        return;
    }
    for (family, value) in [
        (
            &LEASE_HELD,
            (|s: &Singleton| i64::from(s.metrics.held.load(Relaxed))) as fn(&Singleton) -> i64,
        ),
        (&LEASE_FENCE, |s| s.metrics.fence.load(Relaxed)),
        (&LEASE_ACQUIRED, |s| {
            i64::try_from(s.metrics.acquired.load(Relaxed)).unwrap_or(i64::MAX)
        }),
        (&LEASE_LOST, |s| {
            i64::try_from(s.metrics.lost.load(Relaxed)).unwrap_or(i64::MAX)
        }),
        (&LEASE_MISSED, |s| {
            i64::try_from(s.metrics.missed.load(Relaxed)).unwrap_or(i64::MAX)
        }),
    ] {
        family.header(out);
        for (m, singleton) in singletons {
            single(out, family.name, m, value(singleton));
        }
    }
}

/// The families of durable queues only.
fn durable_queues(out: &mut String, queues: &[&Channel]) {
    let durable: Vec<&QueueMetrics> = queues
        .iter()
        .filter(|q| q.durable.is_some())
        .map(|q| &q.metrics)
        .collect();
    if durable.is_empty() {
        return;
    }
    for (family, value) in [
        (
            &JOBS_STALE,
            (|m: &QueueMetrics| m.stale.load(Relaxed)) as fn(&QueueMetrics) -> u64,
        ),
        (&JOBS_RELEASED, |m| m.released.load(Relaxed)),
        (&JOBS_RESCUED, |m| m.rescued.load(Relaxed)),
        (&FETCH_FAILED, |m| m.fetch_failed.load(Relaxed)),
        (&JOBS_LEASE_LOST, |m| m.lost.load(Relaxed)),
        (&JOBS_UNRECORDED, |m| m.unrecorded.load(Relaxed)),
    ] {
        family.header(out);
        for m in &durable {
            sample(out, family.name, "", &m.labels, &[], value(m));
        }
    }
    FETCH.header(out);
    let fetch_les = bounds(FETCH_BUCKETS);
    for m in &durable {
        m.fetch.render(out, FETCH.name, &m.labels, None, &fetch_les);
    }
    let stats: Vec<(&QueueMetrics, crate::durable::QueueStats)> =
        durable.iter().map(|m| (*m, m.stats())).collect();
    JOBS.header(out);
    for (m, stats) in &stats {
        for (state, count) in stats.states() {
            sample(out, JOBS.name, "", &m.labels, &[("state", state)], count);
        }
    }
    PG_DEAD_TUPLES.header(out);
    for (m, stats) in &stats {
        sample(
            out,
            PG_DEAD_TUPLES.name,
            "",
            &m.labels,
            &[],
            stats.dead_tuples,
        );
    }
    PG_XMIN_AGE.header(out);
    for (m, stats) in &stats {
        sample(
            out,
            PG_XMIN_AGE.name,
            "",
            &m.labels,
            &[],
            stats.oldest_xmin_age_seconds,
        );
    }
    PG_NOTIFY_USAGE.header(out);
    for (m, stats) in &stats {
        sample(
            out,
            PG_NOTIFY_USAGE.name,
            "",
            &m.labels,
            &[],
            stats.notify_queue_usage,
        );
    }
}

/// The queue families, when the host has queue workers.
fn queues(out: &mut String, queues: &[&Channel]) {
    if queues.is_empty() {
        return;
    }
    let mut family = |family: &Family, line: &dyn Fn(&mut String, &QueueMetrics, &Channel)| {
        family.header(out);
        for queue in queues {
            line(out, &queue.metrics, queue);
        }
    };
    let one = |out: &mut String, name: &str, m: &QueueMetrics, value: u64| {
        sample(out, name, "", &m.labels, &[], value);
    };
    family(&QUEUE_DEPTH, &|out, m, q| {
        one(out, QUEUE_DEPTH.name, m, q.waiting().0 as u64);
    });
    family(&QUEUE_IN_FLIGHT, &|out, m, _| {
        one(out, QUEUE_IN_FLIGHT.name, m, m.in_flight());
    });
    let wait_les = bounds(QUEUE_WAIT_BUCKETS);
    family(&QUEUE_WAIT, &|out, m, _| {
        m.wait
            .render(out, QUEUE_WAIT.name, &m.labels, None, &wait_les);
    });
    family(&QUEUE_REJECTED, &|out, m, _| {
        for reason in Reject::ALL {
            let count = m.rejected[reason as usize].load(Relaxed);
            let reason = [("reason", reason.as_str())];
            sample(out, QUEUE_REJECTED.name, "", &m.labels, &reason, count);
        }
    });
    family(&JOBS_ENQUEUED, &|out, m, _| {
        one(out, JOBS_ENQUEUED.name, m, m.total_enqueued());
    });
    family(&JOBS_DEAD, &|out, m, _| {
        one(out, JOBS_DEAD.name, m, m.dead.load(Relaxed));
    });
    family(&JOBS_LEFT_OVER, &|out, m, _| {
        one(out, JOBS_LEFT_OVER.name, m, m.left_over.load(Relaxed));
    });
    family(&JOBS_DROPPED, &|out, m, _| {
        let dropped = m.dropped.load(Relaxed);
        let reason = [("reason", "shutdown")];
        sample(out, JOBS_DROPPED.name, "", &m.labels, &reason, dropped);
    });
    durable_queues(out, queues);
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
