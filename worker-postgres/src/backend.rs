//! [`Postgres`] as the host's durable backend.

use std::time::{Duration, SystemTime};

use worker_core::BoxError;
use worker_core::durable::{
    self, Attempt, Backend, BoxFuture, Claimed, Discarded, JobActed, JobAction, Lease, Maintained,
    QueueStats,
};

use crate::{Cancelled, Error, Fence, JobState, Postgres};

/// Expired leases taken back, at most, per maintenance pass.
const RESCUE_BATCH: u32 = 500;
/// Due jobs made available, at most, per pass.
const PROMOTE_BATCH: u32 = 1000;
/// Finished jobs deleted, at most, per pass.
const PRUNE_BATCH: u32 = 1000;

fn id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn attempt(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn pairs(attempts: &[Attempt]) -> Vec<(i64, i32)> {
    attempts
        .iter()
        .map(|a| (id(a.id), attempt(a.attempt)))
        .collect()
}

fn unsigned(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}

impl Backend for Postgres {
    fn claim<'a>(
        &'a self,
        queue: &'a str,
        max: u32,
        lease: Duration,
        by: &'a str,
        max_attempts: u32,
    ) -> BoxFuture<'a, Result<Vec<Claimed>, BoxError>> {
        Box::pin(async move {
            let claimed = Postgres::claim(self, queue, max, lease, by, max_attempts).await?;
            Ok(claimed
                .into_iter()
                .map(|job| {
                    Claimed::new(
                        Attempt {
                            id: unsigned(job.id),
                            attempt: u32::try_from(job.attempt).unwrap_or_default(),
                        },
                        job.args,
                        SystemTime::from(job.created_at),
                    )
                    .cancel_requested(job.cancel_requested)
                })
                .collect())
        })
    }

    fn complete(&self, attempts: Vec<Attempt>) -> BoxFuture<'_, Result<Vec<u64>, BoxError>> {
        Box::pin(async move {
            // Those the body completed in its own transaction are done already.
            let (mut done, rest): (Vec<u64>, Vec<(i64, i32)>) = {
                let mut completed_in = self.completed_in();
                let mut done = Vec::new();
                let mut rest = Vec::new();
                for pair in pairs(&attempts) {
                    if completed_in.remove(&pair) {
                        done.push(unsigned(pair.0));
                    } else {
                        rest.push(pair);
                    }
                }
                (done, rest)
            };
            if !rest.is_empty() {
                let keep = !self.retention().completed.is_zero();
                let completed = Postgres::complete(self, &rest, keep).await?;
                done.extend(completed.into_iter().map(unsigned));
            }
            Ok(done)
        })
    }

    fn fail(
        &self,
        job: Attempt,
        retry_in: Option<Duration>,
        error: String,
    ) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async move {
            let pair = (id(job.id), attempt(job.attempt));
            let state = Postgres::fail(self, pair.0, pair.1, retry_in, &error).await?;
            // Completed in the body's transaction, which committed, before the body failed:
            // done, not stale.
            let completed_in = self.completed_in().remove(&pair);
            Ok(state.is_some() || completed_in)
        })
    }

    fn heartbeat(
        &self,
        attempts: Vec<Attempt>,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<(u64, bool)>, BoxError>> {
        Box::pin(async move {
            let renewed = Postgres::heartbeat(self, &pairs(&attempts), lease).await?;
            Ok(renewed
                .into_iter()
                .map(|(id, cancel)| (unsigned(id), cancel))
                .collect())
        })
    }

    fn release(&self, attempts: Vec<(Attempt, bool)>) -> BoxFuture<'_, Result<u64, BoxError>> {
        Box::pin(async move {
            let jobs: Vec<(i64, i32, bool)> = attempts
                .iter()
                .map(|(a, never_started)| (id(a.id), attempt(a.attempt), *never_started))
                .collect();
            Ok(Postgres::release(self, &jobs).await?.len() as u64)
        })
    }

    fn notified<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, ()> {
        if !self.notifies() {
            return Box::pin(std::future::pending());
        }
        let payload = crate::notify::payload(self.schema_name(), queue);
        let notify = self.listener.waiter(self.pool(), payload);
        Box::pin(async move { notify.notified().await })
    }

    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Option<QueueStats>, BoxError>> {
        Box::pin(async move {
            let counts: Vec<(String, i64, Option<f64>)> =
                sqlx::query_as(self.sql().queue_counts.clone())
                    .bind(queue)
                    .fetch_all(self.pool())
                    .await?;
            let hazards = self.hazards().await?;
            let mut stats = QueueStats::default();
            for (state, count, due_for) in counts {
                let count = u64::try_from(count).unwrap_or_default();
                match state.parse::<JobState>()? {
                    JobState::Available => {
                        stats.available = count;
                        // A job made available ahead of its `run_at` has not waited yet.
                        stats.oldest_wait_seconds = due_for.map(|s| s.max(0.0));
                    }
                    JobState::Scheduled => stats.scheduled = count,
                    JobState::Running => stats.running = count,
                    JobState::Retryable => stats.retryable = count,
                    JobState::Completed => stats.completed = count,
                    JobState::Cancelled => stats.cancelled = count,
                    JobState::Discarded => stats.discarded = count,
                }
            }
            stats.dead_tuples = u64::try_from(hazards.dead_tuples).unwrap_or_default();
            stats.oldest_xmin_age_seconds = hazards.oldest_xmin_age_seconds;
            stats.notify_queue_usage = hazards.notify_queue_usage;
            Ok(Some(stats))
        })
    }

    fn maintain(&self) -> BoxFuture<'_, Result<Maintained, BoxError>> {
        Box::pin(async move {
            let promoted = self.promote(PROMOTE_BATCH).await?.len() as u64;
            let rescued = self.rescue(RESCUE_BATCH).await?.len() as u64;
            let pruned = self.prune(self.retention(), PRUNE_BATCH).await?;
            Ok(Maintained::new(promoted, rescued, pruned))
        })
    }

    fn discarded<'a>(
        &'a self,
        queue: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Discarded>, BoxError>> {
        type Row = (
            i64,
            i32,
            String,
            Option<chrono::DateTime<chrono::Utc>>,
            String,
        );
        Box::pin(async move {
            let rows: Vec<Row> = sqlx::query_as(self.sql().discarded.clone())
                .bind(queue)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(Error::from)?;
            Ok(rows
                .into_iter()
                .map(|(id, attempt, error, at, payload)| {
                    let at = at.map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
                    let attempts = u32::try_from(attempt).unwrap_or_default();
                    Discarded::new(unsigned(id), attempts, error, at, payload)
                })
                .collect())
        })
    }

    fn act_on_job<'a>(
        &'a self,
        queue: &'a str,
        job: u64,
        action: JobAction,
    ) -> BoxFuture<'a, Result<JobActed, BoxError>> {
        Box::pin(async move {
            let state: Option<String> = sqlx::query_scalar(self.sql().job_state.clone())
                .bind(id(job))
                .bind(queue)
                .fetch_optional(self.pool())
                .await
                .map_err(Error::from)?;
            let Some(state) = state else {
                return Ok(JobActed::NotFound);
            };
            let refused = || Ok(JobActed::Refused(state.clone()));
            match action {
                JobAction::Retry => {
                    let payload = crate::notify::payload(self.schema_name(), queue);
                    let new: Option<(i64, bool)> = sqlx::query_as(self.sql().retry.clone())
                        .bind(id(job))
                        .bind(queue)
                        .bind(payload)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(Error::from)?;
                    new.map_or_else(refused, |(new, _)| {
                        Ok(JobActed::Retried { id: unsigned(new) })
                    })
                }
                JobAction::Discard => {
                    let done: Option<i64> = sqlx::query_scalar(self.sql().discard.clone())
                        .bind(id(job))
                        .bind(queue)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(Error::from)?;
                    done.map_or_else(refused, |_| Ok(JobActed::Discarded))
                }
                JobAction::Cancel => match self.cancel(self.pool(), id(job)).await? {
                    Cancelled::Cancelled => Ok(JobActed::Cancelled),
                    Cancelled::Requested => Ok(JobActed::CancelRequested),
                    Cancelled::NotLive => refused(),
                },
                _ => Err(format!("unknown action {action}").into()),
            }
        })
    }

    fn keeps_leases(&self) -> bool {
        true
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Lease, BoxError>> {
        Box::pin(async move {
            if let Some(taken) = self.acquire(name, holder, lease).await? {
                let fence = durable::Fence::new(name, taken.fence.token())
                    .with_backend(taken.fence.clone());
                let last_tick = taken.last_tick.map(SystemTime::from);
                return Ok(Lease::taken(fence, last_tick, taken.now.into()));
            }
            // Held by another replica: who, for the follower's status.
            let record = self.lease(name).await?;
            let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(crate::sql::NOW)
                .fetch_one(self.pool())
                .await
                .map_err(Error::from)?;
            Ok(Lease::held_by(record.and_then(|r| r.holder), now.into()))
        })
    }

    fn renew_lease<'a>(
        &'a self,
        fence: &'a durable::Fence,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<SystemTime>, BoxError>> {
        Box::pin(async move {
            let now = self.renew(ours(fence)?, holder, lease).await?;
            Ok(now.map(SystemTime::from))
        })
    }

    fn claim_tick<'a>(
        &'a self,
        fence: &'a durable::Fence,
        tick: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move { Ok(Postgres::claim_tick(self, ours(fence)?, tick.into()).await?) })
    }

    fn resign_lease<'a>(
        &'a self,
        fence: &'a durable::Fence,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.resign(ours(fence)?).await?;
            Ok(())
        })
    }
}

/// The fence this backend made, inside the host's.
fn ours(fence: &durable::Fence) -> Result<&Fence, BoxError> {
    fence
        .backend::<Fence>()
        .ok_or_else(|| "a fence another backend made".into())
}
