//! Durable queues: the interface between the host and a backend that keeps jobs in a database
//! (`worker-postgres` implements it), so jobs survive a crash and replicas share them.
//!
//! A worker declared with `#[worker(queue = "invoices", durable)]` (or
//! [`WorkerBuilder::durable_queue`](crate::WorkerBuilder::durable_queue)) takes its jobs from
//! the host's [`Backend`] instead of an in-process buffer: it claims up to its free slots at
//! a time, each claim under a lease that a heartbeat renews, runs each job under the same run
//! machinery as an in-process queue's (span, panic guard, timeout, retries with the worker's
//! backoff), and reports how each attempt ended. Every report names the attempt, so a backend
//! refuses those of an attempt that lost its lease and was claimed again (a *stale* attempt,
//! counted in `worker_jobs_stale_total`). At shutdown, jobs still running when the stop budget
//! ends are released to the backend at once, for another consumer to take.
//!
//! Producers enqueue through the backend's own handle (`worker_postgres::DurableQueue`),
//! inside their own transactions if they like; [`HostHandle::queue`](crate::HostHandle::queue)
//! is for in-process queues only.

mod admin;
pub(crate) mod consume;
mod lease;
mod report;

pub use self::admin::{Discarded, JobActed, JobAction};
pub use self::lease::{Fence, Lease};
pub(crate) use self::report::refresh;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::error::BoxError;

/// A boxed future, as [`Backend`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One attempt of one job: what every report to the backend names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The job's id.
    pub id: u64,
    /// The attempt (1-based): the claim's fencing token.
    pub attempt: u32,
}

/// A job a consumer claimed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claimed {
    /// The job and the attempt this claim is.
    pub attempt: Attempt,
    /// The payload, as JSON.
    pub payload: serde_json::Value,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// Its cancellation was requested already.
    pub cancel_requested: bool,
}

impl Claimed {
    /// A claimed job.
    #[must_use]
    pub fn new(attempt: Attempt, payload: serde_json::Value, enqueued_at: SystemTime) -> Self {
        Self {
            attempt,
            payload,
            enqueued_at,
            cancel_requested: false,
        }
    }

    /// Its cancellation was requested already.
    #[must_use]
    pub fn cancel_requested(mut self, requested: bool) -> Self {
        self.cancel_requested = requested;
        self
    }
}

/// What one [`Backend::maintain`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Maintained {
    /// Scheduled or retryable jobs that became due.
    pub promoted: u64,
    /// Running jobs whose lease had expired, taken back.
    pub rescued: u64,
    /// Finished jobs deleted after their retention.
    pub pruned: u64,
}

impl Maintained {
    /// A pass's counts.
    #[must_use]
    pub fn new(promoted: u64, rescued: u64, pruned: u64) -> Self {
        Self {
            promoted,
            rescued,
            pruned,
        }
    }
}

/// What a backend reports about one queue and its database, for `/metrics`: read by each
/// consumer every few seconds. Fields a backend does not know stay zero.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs due and waiting for a consumer.
    pub available: u64,
    /// Jobs due later.
    pub scheduled: u64,
    /// Jobs claimed, by any consumer.
    pub running: u64,
    /// Jobs waiting out a retry backoff.
    pub retryable: u64,
    /// Completed jobs kept (only with retention).
    pub completed: u64,
    /// Cancelled jobs kept.
    pub cancelled: u64,
    /// Discarded jobs kept, with their errors.
    pub discarded: u64,
    /// How long the oldest available job has waited since it was due, in seconds, when the
    /// stats were read; `None` when no job is available (or the backend does not say). It
    /// makes the worker `stale` past its `stale_after`, and shows as `oldest_wait_seconds`.
    pub oldest_wait_seconds: Option<f64>,
    /// Dead row versions in the jobs table, not yet vacuumed.
    pub dead_tuples: u64,
    /// Seconds since the oldest open snapshot of the database began (it holds vacuum back).
    pub oldest_xmin_age_seconds: f64,
    /// How full the database's notification queue is, from 0 to 1.
    pub notify_queue_usage: f64,
}

impl QueueStats {
    /// The states, with their label values, in the order `/metrics` lists them.
    pub(crate) fn states(&self) -> [(&'static str, u64); 7] {
        [
            ("available", self.available),
            ("scheduled", self.scheduled),
            ("running", self.running),
            ("retryable", self.retryable),
            ("completed", self.completed),
            ("cancelled", self.cancelled),
            ("discarded", self.discarded),
        ]
    }
}

/// A store of durable jobs: what the host's durable consumers call. Every method that changes
/// a claimed job names its [`Attempt`] and must do nothing unless that attempt is the job's
/// current one and the job is running.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Claims up to `max` due jobs of `queue` for the consumer `by`, each under a lease of
    /// `lease`, allowing `max_attempts` attempts in all.
    fn claim<'a>(
        &'a self,
        queue: &'a str,
        max: u32,
        lease: Duration,
        by: &'a str,
        max_attempts: u32,
    ) -> BoxFuture<'a, Result<Vec<Claimed>, BoxError>>;

    /// Completes these attempts' jobs. Returns the ids completed; the others were stale.
    fn complete(&self, attempts: Vec<Attempt>) -> BoxFuture<'_, Result<Vec<u64>, BoxError>>;

    /// Records a failed attempt with its error: retried after `retry_in`, or dead (discarded)
    /// when `None`. Returns `false` when the attempt was stale.
    fn fail(
        &self,
        attempt: Attempt,
        retry_in: Option<Duration>,
        error: String,
    ) -> BoxFuture<'_, Result<bool, BoxError>>;

    /// Renews these attempts' leases for `lease`. Returns the ids renewed, each with whether
    /// its cancellation was requested; one missing lost its lease.
    fn heartbeat(
        &self,
        attempts: Vec<Attempt>,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<(u64, bool)>, BoxError>>;

    /// Hands these attempts' jobs back at once (shutdown), giving back the attempt of those
    /// marked as never started. Returns how many were released.
    fn release(&self, attempts: Vec<(Attempt, bool)>) -> BoxFuture<'_, Result<u64, BoxError>>;

    /// Resolves when `queue` may have new due jobs: a hint, which makes a consumer claim at
    /// once instead of at its next poll. By default it never resolves (consumers poll).
    fn notified<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, ()> {
        let _ = queue;
        Box::pin(std::future::pending())
    }

    /// The queue's jobs by state and the database's hazards, for `/metrics`. By default none.
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Option<QueueStats>, BoxError>> {
        let _ = queue;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// One maintenance pass: promotes due jobs, rescues expired leases, prunes old jobs. Every
    /// consumer runs it (about once a second); concurrent passes must not conflict.
    fn maintain(&self) -> BoxFuture<'_, Result<Maintained, BoxError>>;

    /// The queue's latest discarded jobs (dead: out of attempts, a `Permanent` error, or
    /// discarded by an admin), newest first, at most `limit`, for `/workers` and the
    /// dashboard. By default none.
    fn discarded<'a>(
        &'a self,
        queue: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Discarded>, BoxError>> {
        let _ = (queue, limit);
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// An admin action on the job `id` of `queue` (the dashboard's buttons). By default
    /// refused.
    fn act_on_job<'a>(
        &'a self,
        queue: &'a str,
        id: u64,
        action: JobAction,
    ) -> BoxFuture<'a, Result<JobActed, BoxError>> {
        let _ = (queue, id, action);
        Box::pin(std::future::ready(Err(
            "this durable backend takes no admin actions".into(),
        )))
    }

    /// Whether the backend keeps singleton leases (the methods below). By default not: a host
    /// with a singleton worker and such a backend refuses to build.
    fn keeps_leases(&self) -> bool {
        false
    }

    /// Takes the lease `name` for `holder`, for `lease`, when nobody holds it (or its holder's
    /// lease expired), with a fence higher than any before; otherwise says who holds it.
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Lease, BoxError>> {
        let _ = (name, holder, lease);
        Box::pin(std::future::ready(Err(no_leases())))
    }

    /// Extends the lease held with `fence` by `lease`. Returns the database's time, or `None`
    /// when the lease was lost (it expired and another replica took it).
    fn renew_lease<'a>(
        &'a self,
        fence: &'a Fence,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<SystemTime>, BoxError>> {
        let _ = (fence, holder, lease);
        Box::pin(std::future::ready(Err(no_leases())))
    }

    /// Claims the scheduled instant `tick` for the holder of `fence`: `false` when it, or a
    /// later one, was claimed already, or the lease is no longer held with `fence`. Claims are
    /// a compare-and-set on the last instant claimed, so no instant runs twice.
    fn claim_tick<'a>(
        &'a self,
        fence: &'a Fence,
        tick: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        let _ = (fence, tick);
        Box::pin(std::future::ready(Err(no_leases())))
    }

    /// Gives the lease held with `fence` up at once (graceful shutdown), so another replica
    /// takes it over without waiting for it to expire.
    fn resign_lease<'a>(&'a self, fence: &'a Fence) -> BoxFuture<'a, Result<(), BoxError>> {
        let _ = fence;
        Box::pin(std::future::ready(Err(no_leases())))
    }
}

fn no_leases() -> BoxError {
    "this durable backend keeps no singleton leases".into()
}

/// A replica's identity in the backend (as a job's claimer or a lease's holder): host,
/// process, a random boot id, and worker.
pub(crate) fn identity(worker: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!(
        "{host}/{}/{:08x}/{worker}",
        std::process::id(),
        fastrand::u32(..)
    )
}
