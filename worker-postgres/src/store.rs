//! The job table's state machine: claiming, finishing and maintaining jobs (see `sql` for the
//! states). Consumers drive the crate-private half; cancelling and inspecting jobs are public.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value as JsonValue;

use crate::enqueue::micros;
use crate::{Error, Postgres};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Due, waiting for a consumer.
    Available,
    /// Due later (`run_at` in the future).
    Scheduled,
    /// Claimed by a consumer, under a lease.
    Running,
    /// Failed, waiting out its backoff before the next attempt.
    Retryable,
    /// Completed (kept only when completed jobs are retained; they are deleted by default).
    Completed,
    /// Cancelled before or while it ran.
    Cancelled,
    /// Failed for good: a permanent error, or out of attempts. Kept for its retention period.
    Discarded,
}

impl JobState {
    /// The state's name in the database (`"available"`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Retryable => "retryable",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Discarded => "discarded",
        }
    }

    /// Available, scheduled, running or retryable: the states a unique key is unique among.
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            Self::Available | Self::Scheduled | Self::Running | Self::Retryable
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "available" => Self::Available,
            "scheduled" => Self::Scheduled,
            "running" => Self::Running,
            "retryable" => Self::Retryable,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            "discarded" => Self::Discarded,
            other => {
                return Err(Error::Database(sqlx::Error::Protocol(format!(
                    "unknown job state {other:?}"
                ))));
            }
        })
    }
}

/// What [`Postgres::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The job was waiting (available, scheduled or retryable): it is cancelled and never runs.
    Cancelled,
    /// The job is running: its consumer is asked to stop it, and it ends `cancelled` unless it
    /// completes first.
    Requested,
    /// No live job has this id: it finished, was cancelled already, or never existed.
    NotLive,
}

/// How many jobs of a queue are in a state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many of the queue's jobs are in it.
    pub count: i64,
}

/// One failed attempt, as the job keeps it (its last 10, newest first).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AttemptError {
    /// Which attempt failed (1-based).
    pub attempt: i32,
    /// The error's text; `"lease expired"` when its consumer stopped renewing the lease.
    pub error: String,
    /// The consumer that held an expired lease.
    #[serde(default)]
    pub by: Option<String>,
}

/// A job as stored, for inspection ([`Postgres::job`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its state.
    pub state: JobState,
    /// Attempts claimed so far (the current one, while running).
    pub attempt: i32,
    /// The attempts its last consumer allows (its `retry` + 1).
    pub max_attempts: i32,
    /// Its priority: lower runs first.
    pub priority: i16,
    /// When it is, or was, due.
    pub run_at: SystemTime,
    /// Its unique key, if it has one.
    pub unique_key: Option<String>,
    /// Its last failed attempts, newest first.
    pub errors: Vec<AttemptError>,
    /// Its cancellation was requested while it ran.
    pub cancel_requested: bool,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When its last attempt was claimed.
    pub attempted_at: Option<SystemTime>,
    /// When it reached a final state.
    pub finalized_at: Option<SystemTime>,
}

/// How long finished jobs are kept before pruning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub(crate) completed: Duration,
    pub(crate) discarded: Duration,
    pub(crate) cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: Duration::ZERO,
            discarded: Duration::from_hours(7 * 24),
            cancelled: Duration::from_hours(24),
        }
    }
}

/// A job a consumer claimed: its lease runs from the claim.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) args: JsonValue,
    /// The attempt this claim is, and the token every later change of the job must name.
    pub(crate) attempt: i32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) cancel_requested: bool,
}

/// `(id, attempt)` pairs as the two arrays the statements take.
fn split(jobs: &[(i64, i32)]) -> (Vec<i64>, Vec<i32>) {
    jobs.iter().copied().unzip()
}

fn clamp(n: u32) -> i64 {
    i64::from(n)
}

// The consumer's half: what the host's durable workers drive, through `Backend`.
impl Postgres {
    /// Claims up to `max` due jobs of `queue` for `by`, each under a lease of `lease`, allowing
    /// `max_attempts` attempts in all.
    pub(crate) async fn claim(
        &self,
        queue: &str,
        max: u32,
        lease: Duration,
        by: &str,
        max_attempts: u32,
    ) -> Result<Vec<Claimed>, Error> {
        type Row = (i64, JsonValue, i32, DateTime<Utc>, bool);
        let rows: Vec<Row> = sqlx::query_as(self.sql().claim.clone())
            .bind(queue)
            .bind(clamp(max))
            .bind(micros(lease))
            .bind(by)
            .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, args, attempt, created_at, cancel_requested)| Claimed {
                    id,
                    args,
                    attempt,
                    created_at,
                    cancel_requested,
                },
            )
            .collect())
    }

    /// Completes the `(id, attempt)` jobs: deleted, or kept as `completed` when `keep`. Returns
    /// the ids completed; the others were stale (their attempt superseded, or no longer running).
    pub(crate) async fn complete(
        &self,
        jobs: &[(i64, i32)],
        keep: bool,
    ) -> Result<Vec<i64>, Error> {
        self.complete_jobs_in(self.pool(), jobs, keep).await
    }

    /// [`complete`](Self::complete) on `executor`: inside the caller's transaction, the
    /// completion commits or rolls back with the caller's writes.
    pub(crate) async fn complete_jobs_in<'c, E>(
        &self,
        executor: E,
        jobs: &[(i64, i32)],
        keep: bool,
    ) -> Result<Vec<i64>, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let (ids, attempts) = split(jobs);
        let sql = if keep {
            &self.sql().complete_keep
        } else {
            &self.sql().complete
        };
        Ok(sqlx::query_scalar(sql.clone())
            .bind(ids)
            .bind(attempts)
            .fetch_all(executor)
            .await?)
    }

    /// Records a failed attempt: retried after `retry_in`, or discarded when `None` (and
    /// cancelled instead, either way, if its cancellation was requested). Returns the state it
    /// went to, or `None` when the attempt was stale.
    pub(crate) async fn fail(
        &self,
        id: i64,
        attempt: i32,
        retry_in: Option<Duration>,
        error: &str,
    ) -> Result<Option<JobState>, Error> {
        let state: Option<String> = sqlx::query_scalar(self.sql().fail.clone())
            .bind(id)
            .bind(attempt)
            .bind(retry_in.map(micros))
            .bind(error)
            .fetch_optional(self.pool())
            .await?;
        state.as_deref().map(str::parse).transpose()
    }

    /// Renews the leases of the `(id, attempt)` jobs for `lease`. Returns the ids renewed, each
    /// with whether its cancellation was requested; a job missing was lost to a rescue.
    pub(crate) async fn heartbeat(
        &self,
        jobs: &[(i64, i32)],
        lease: Duration,
    ) -> Result<Vec<(i64, bool)>, Error> {
        let (ids, attempts) = split(jobs);
        Ok(sqlx::query_as(self.sql().heartbeat.clone())
            .bind(ids)
            .bind(attempts)
            .bind(micros(lease))
            .fetch_all(self.pool())
            .await?)
    }

    /// Hands the `(id, attempt, never_started)` jobs back to the queue at once (graceful
    /// shutdown), giving back the attempt of those that never started. Returns the ids released.
    pub(crate) async fn release(&self, jobs: &[(i64, i32, bool)]) -> Result<Vec<i64>, Error> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut attempts = Vec::with_capacity(jobs.len());
        let mut refunds = Vec::with_capacity(jobs.len());
        for &(id, attempt, refund) in jobs {
            ids.push(id);
            attempts.push(attempt);
            refunds.push(refund);
        }
        Ok(sqlx::query_scalar(self.sql().release.clone())
            .bind(ids)
            .bind(attempts)
            .bind(refunds)
            .fetch_all(self.pool())
            .await?)
    }

    /// Takes back up to `limit` running jobs whose lease expired: available again, or
    /// discarded when out of attempts. Returns each one's id, queue and new state.
    pub(crate) async fn rescue(&self, limit: u32) -> Result<Vec<(i64, String, JobState)>, Error> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(self.sql().rescue.clone())
            .bind(clamp(limit))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|(id, queue, state)| Ok((id, queue, state.parse()?)))
            .collect()
    }

    /// Makes up to `limit` scheduled and retryable jobs that are due available. Returns the
    /// queue of each.
    pub(crate) async fn promote(&self, limit: u32) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(self.sql().promote.clone())
            .bind(clamp(limit))
            .fetch_all(self.pool())
            .await?)
    }

    /// Deletes up to `limit` finished jobs older than their retention. Returns how many.
    pub(crate) async fn prune(&self, retention: Retention, limit: u32) -> Result<u64, Error> {
        Ok(sqlx::query(self.sql().prune.clone())
            .bind(micros(retention.completed))
            .bind(micros(retention.discarded))
            .bind(micros(retention.cancelled))
            .bind(clamp(limit))
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Cancels job `id` on `executor` (`&pool`, or `&mut *tx` to cancel with the caller's
    /// writes): a waiting job at once, a running one by asking its consumer to stop it.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails.
    pub async fn cancel<'c, E>(&self, executor: E, id: i64) -> Result<Cancelled, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let state: Option<String> = sqlx::query_scalar(self.sql().cancel.clone())
            .bind(id)
            .fetch_optional(executor)
            .await?;
        Ok(match state.as_deref() {
            None => Cancelled::NotLive,
            Some("running") => Cancelled::Requested,
            Some(_) => Cancelled::Cancelled,
        })
    }

    /// How many jobs each queue has in each state (states with none are left out).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails.
    pub async fn counts(&self) -> Result<Vec<StateCount>, Error> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(self.sql().counts.clone())
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|(queue, state, count)| {
                Ok(StateCount {
                    queue,
                    state: state.parse()?,
                    count,
                })
            })
            .collect()
    }

    /// Job `id` as stored, or `None` when there is none (completed jobs are deleted unless
    /// retained, and finished ones are pruned after their retention).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails.
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>, Error> {
        type Row = (
            i64,
            String,
            String,
            i32,
            i32,
            i16,
            DateTime<Utc>,
            Option<String>,
            JsonValue,
            bool,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(self.sql().job.clone())
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (
            id,
            queue,
            state,
            attempt,
            max_attempts,
            priority,
            run_at,
            unique_key,
            errors,
            cancel_requested,
            created_at,
            attempted_at,
            finalized_at,
        ) = row;
        Ok(Some(JobRecord {
            id,
            queue,
            state: state.parse()?,
            attempt,
            max_attempts,
            priority,
            run_at: run_at.into(),
            unique_key,
            errors: serde_json::from_value(errors)
                .map_err(|err| Error::Database(sqlx::Error::Decode(Box::new(err))))?,
            cancel_requested,
            created_at: created_at.into(),
            attempted_at: attempted_at.map(Into::into),
            finalized_at: finalized_at.map(Into::into),
        }))
    }
}
