//! The series of one queue, kept beside its buffer: what was accepted, refused, started, went
//! dead or was left over at shutdown, and how long jobs waited for a slot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::observe::exposition::Escaped;
use crate::observe::metrics::{Histogram, nanos};
use crate::queue::channel::Reject;

/// Bucket bounds of `worker_queue_wait_seconds`, in seconds: 1 ms to one hour.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 600.0, 1800.0, 3600.0,
];

pub(crate) const WAIT_SLOTS: usize = QUEUE_WAIT_BUCKETS.len() + 1;
const WAIT_BOUNDS: [u64; WAIT_SLOTS - 1] = nanos(QUEUE_WAIT_BUCKETS);

/// Bucket bounds of `worker_jobs_fetch_duration_seconds`, in seconds: 0.5 ms to 10 s.
pub(crate) const FETCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
pub(crate) const FETCH_SLOTS: usize = FETCH_BUCKETS.len() + 1;
const FETCH_BOUNDS: [u64; FETCH_SLOTS - 1] = nanos(FETCH_BUCKETS);

/// A counter on a cache line of its own: producers write one, the worker's slots the others.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Line(pub(crate) AtomicU64);

/// Every series of one queue; all exist, at zero, from the start.
#[derive(Debug)]
pub(crate) struct QueueMetrics {
    /// Jobs accepted (written by producers).
    pub(crate) enqueued: Line,
    /// Jobs in flight (written by the slots).
    pub(crate) in_flight: Line,
    pub(crate) wait: Histogram<WAIT_SLOTS>,
    pub(crate) rejected: [AtomicU64; Reject::ALL.len()],
    pub(crate) dead: AtomicU64,
    /// Jobs that never got a slot before shutdown, handed to `on_leftovers` or dropped.
    pub(crate) left_over: AtomicU64,
    /// Of those, the ones no hook took.
    pub(crate) dropped: AtomicU64,
    /// Jobs whose run was cancelled at shutdown.
    pub(crate) cancelled: AtomicU64,
    /// Jobs whose run ended (whatever the outcome).
    pub(crate) finished: AtomicU64,
    /// Durable queues: results refused because the attempt had lost its lease.
    pub(crate) stale: AtomicU64,
    /// Durable queues: jobs handed back at shutdown.
    pub(crate) released: AtomicU64,
    /// Durable queues: expired leases this consumer's maintenance took back.
    pub(crate) rescued: AtomicU64,
    /// Durable queues: leases of jobs running here that a heartbeat found lost.
    pub(crate) lost: AtomicU64,
    /// Durable queues: outcomes the backend did not record (the database did not answer), so
    /// the job runs again when its lease expires.
    pub(crate) unrecorded: AtomicU64,
    /// Durable queues: how long claims took.
    pub(crate) fetch: Histogram<FETCH_SLOTS>,
    /// Durable queues: claims that failed (the database did not answer, or refused).
    pub(crate) fetch_failed: AtomicU64,
    /// Durable queues: since when (Unix seconds, as `f64` bits) every claim failed; 0 while
    /// the last one succeeded.
    pub(crate) failing_since: AtomicU64,
    /// Durable queues: what the backend last reported, and when (on tokio's clock).
    stats: std::sync::Mutex<(crate::durable::QueueStats, Option<Instant>)>,
    /// Durable queues: the latest discarded jobs, as the backend last reported them.
    pub(crate) discarded: std::sync::Mutex<Vec<crate::queue::DeadJobRecord>>,
    /// The histograms' handles in the `metrics` facade, once the host started its bridge.
    pub(crate) facade: std::sync::OnceLock<crate::observe::facade::QueueHistograms>,
    /// `worker="<name>"`, escaped once.
    pub(crate) labels: Box<str>,
}

impl QueueMetrics {
    pub(crate) fn new(worker: &str) -> Self {
        Self {
            enqueued: Line::default(),
            in_flight: Line::default(),
            wait: Histogram::new(),
            rejected: Default::default(),
            dead: AtomicU64::new(0),
            left_over: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            released: AtomicU64::new(0),
            rescued: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
            fetch: Histogram::new(),
            fetch_failed: AtomicU64::new(0),
            failing_since: AtomicU64::new(0),
            stats: std::sync::Mutex::default(),
            discarded: std::sync::Mutex::default(),
            facade: std::sync::OnceLock::new(),
            labels: format!("worker=\"{}\"", Escaped(worker)).into(),
        }
    }

    pub(crate) fn enqueued(&self) {
        self.enqueued.0.fetch_add(1, Relaxed);
    }

    /// A job started; returns the jobs in flight before it.
    pub(crate) fn started(&self) -> u64 {
        self.in_flight.0.fetch_add(1, Relaxed)
    }

    /// A job ended; returns the jobs in flight before.
    pub(crate) fn ended(&self) -> u64 {
        self.in_flight.0.fetch_sub(1, Relaxed)
    }

    /// A durable queue's claim took `took`, and failed at `failed` (Unix seconds) if it did.
    pub(crate) fn fetched(&self, took: Duration, failed: Option<f64>) {
        self.fetch.record(&FETCH_BOUNDS, took);
        if let Some(facade) = self.facade.get() {
            facade.fetch.record(took.as_secs_f64());
        }
        match failed {
            Some(at) => {
                self.fetch_failed.fetch_add(1, Relaxed);
                // Only the first failure of a run of them sets it.
                let _ = self
                    .failing_since
                    .compare_exchange(0, at.to_bits(), Relaxed, Relaxed);
            }
            None => self.failing_since.store(0, Relaxed),
        }
    }

    /// Since when every claim of a durable queue failed, if the last one did.
    pub(crate) fn failing_since(&self) -> Option<f64> {
        let bits = self.failing_since.load(Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }

    /// A job waited `wait` from being accepted to its first attempt.
    pub(crate) fn waited(&self, wait: Duration) {
        self.wait.record(&WAIT_BOUNDS, wait);
        if let Some(facade) = self.facade.get() {
            facade.wait.record(wait.as_secs_f64());
        }
    }

    pub(crate) fn rejected(&self, reason: Reject) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn went_dead(&self) {
        self.dead.fetch_add(1, Relaxed);
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.0.load(Relaxed)
    }

    /// What the backend last reported of a durable queue.
    pub(crate) fn stats(&self) -> crate::durable::QueueStats {
        self.reported().0
    }

    /// Keeps what the backend reported of a durable queue at `at`.
    pub(crate) fn set_stats(&self, stats: crate::durable::QueueStats, at: Instant) {
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (stats, Some(at));
    }

    /// Since when the oldest available job of a durable queue has waited, as the backend
    /// last reported it: the wait it reported, counted back from when it was read.
    pub(crate) fn oldest_reported(&self) -> Option<Instant> {
        let (stats, at) = self.reported();
        let waited = Duration::try_from_secs_f64(stats.oldest_wait_seconds?).ok()?;
        at?.checked_sub(waited)
    }

    fn reported(&self) -> (crate::durable::QueueStats, Option<Instant>) {
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn total_enqueued(&self) -> u64 {
        self.enqueued.0.load(Relaxed)
    }
}
