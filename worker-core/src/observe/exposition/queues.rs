//! The series of queues, durable queues and singletons' leases, in the text format.

use std::sync::atomic::Ordering::Relaxed;

use super::{Family, bounds, sample, single};
use crate::observe::metrics::WorkerMetrics;
use crate::queue::QUEUE_WAIT_BUCKETS;
use crate::queue::channel::{Channel, Reject};
use crate::queue::metrics::{FETCH_BUCKETS, QueueMetrics};
use crate::supervise::singleton::Singleton;

const QUEUE_DEPTH: Family = Family::new(
    "worker_queue_depth",
    "gauge",
    "Jobs waiting to start: buffered, or waiting out a retry backoff.",
);
const QUEUE_OLDEST_WAIT: Family = Family::new(
    "worker_queue_oldest_wait_seconds",
    "gauge",
    "How long the oldest job ready to start has waited (0 for none): since it was accepted, or for a durable queue since it was due, as the database last said.",
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
pub(super) fn leases(out: &mut String, singletons: &[(&WorkerMetrics, &Singleton)]) {
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
pub(super) fn queues(out: &mut String, queues: &[&Channel]) {
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
    let now = tokio::time::Instant::now();
    family(&QUEUE_OLDEST_WAIT, &|out, m, q| {
        let waited = q
            .oldest_ready()
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        sample(out, QUEUE_OLDEST_WAIT.name, "", &m.labels, &[], waited);
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
