//! The producer's handle: enqueue jobs on a durable queue, in the caller's transaction or not.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Error;
use crate::sql::Sql;

/// A typed handle on one durable queue, for producers: cheap to clone, and needing no host, so a
/// web process that only enqueues uses it alone. From [`Postgres::queue`](crate::Postgres::queue).
///
/// Every method takes the executor to run on: `&pool` for a statement of its own, or
/// `&mut *tx` to enqueue inside the caller's transaction, so that the job is committed with the
/// caller's writes or rolled back with them, and never runs otherwise (the outbox pattern).
pub struct DurableQueue<T> {
    name: Arc<str>,
    sql: Arc<Sql>,
    /// `<schema>:<queue>`, the payload of its notifications; `None`: notifications are off.
    notify: Option<Arc<str>>,
    payload: PhantomData<fn(&T)>,
}

impl<T> Clone for DurableQueue<T> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            sql: Arc::clone(&self.sql),
            notify: self.notify.clone(),
            payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for DurableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableQueue")
            .field("name", &self.name)
            .field("payload", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// How one job is enqueued: when it is due, its priority, and a key unique among live jobs.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Opts {
    priority: i16,
    run_at: Option<SystemTime>,
    run_in: Option<Duration>,
    unique_key: Option<String>,
}

impl Opts {
    /// The defaults: due now, priority 0, not unique.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lower runs first among due jobs of a queue (default 0; negative values are allowed).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Due at `at` (the job is `scheduled` until then). Replaces [`run_in`](Self::run_in).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self.run_in = None;
        self
    }

    /// Due `delay` after the database's clock at enqueue. Replaces [`run_at`](Self::run_at).
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_in = Some(delay);
        self.run_at = None;
        self
    }

    /// At most one live job (available, scheduled, running or retryable) of this queue has this
    /// key: enqueueing another while one lives returns the live job's id with
    /// [`Enqueued::duplicate`] set, and inserts nothing. Once the job has completed, been
    /// discarded or cancelled, the key is free again.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Enqueued {
    /// The job's id: the new job's, or the live job's that holds the same unique key.
    pub id: i64,
    /// No job was inserted: a live job of the queue holds the same unique key.
    pub duplicate: bool,
}

impl<T: Serialize> DurableQueue<T> {
    pub(crate) fn new(name: &str, sql: Arc<Sql>, notify: Option<&str>) -> Result<Self, Error> {
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::QueueName(name.to_owned()));
        }
        Ok(Self {
            name: name.into(),
            sql,
            notify: notify.map(|schema| crate::notify::payload(schema, name).into()),
            payload: PhantomData,
        })
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Enqueues `job`, due now.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the payload does not serialise to JSON; [`Error::Database`] when
    /// the statement fails (the caller's transaction, if any, is then aborted).
    pub async fn enqueue<'c, E>(&self, executor: E, job: &T) -> Result<Enqueued, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        self.enqueue_with(executor, job, Opts::new()).await
    }

    /// Enqueues `job` as `opts` says.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue).
    pub async fn enqueue_with<'c, E>(
        &self,
        executor: E,
        job: &T,
        opts: Opts,
    ) -> Result<Enqueued, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let mut done = self.insert(executor, vec![(job, opts)]).await?;
        Ok(done.remove(0))
    }

    /// Enqueues every job of `jobs`, due now, in one statement. Returns one [`Enqueued`] per
    /// job, in order.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue); nothing is enqueued when one payload fails to encode.
    pub async fn enqueue_many<'c, E>(&self, executor: E, jobs: &[T]) -> Result<Vec<Enqueued>, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        self.insert(
            executor,
            jobs.iter().map(|job| (job, Opts::new())).collect(),
        )
        .await
    }

    /// Enqueues every `(job, opts)` of `jobs` in one statement. Returns one [`Enqueued`] per
    /// job, in order; two jobs of the batch with the same unique key are one job, and the
    /// second is reported as its duplicate.
    ///
    /// # Errors
    ///
    /// As [`enqueue_many`](Self::enqueue_many).
    pub async fn enqueue_many_with<'c, 'j, E>(
        &self,
        executor: E,
        jobs: impl IntoIterator<Item = (&'j T, Opts)>,
    ) -> Result<Vec<Enqueued>, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
        T: 'j,
    {
        self.insert(executor, jobs.into_iter().collect()).await
    }

    async fn insert<'c, E>(
        &self,
        executor: E,
        jobs: Vec<(&T, Opts)>,
    ) -> Result<Vec<Enqueued>, Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        // `ON CONFLICT DO UPDATE` may not touch one row twice in a statement: a key repeated
        // in the batch is sent once, and its later occurrences share the first's outcome.
        let mut first_of_key: HashMap<&str, usize> = HashMap::new();
        let (mut args, mut priorities, mut at, mut delays, mut keys) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (index, (job, opts)) in jobs.iter().enumerate() {
            if let Some(key) = opts.unique_key.as_deref() {
                if first_of_key.contains_key(key) {
                    continue;
                }
                first_of_key.insert(key, index);
            }
            args.push(serde_json::to_value(job).map_err(Error::Encode)?);
            priorities.push(opts.priority);
            at.push(opts.run_at.map(DateTime::<Utc>::from));
            delays.push(opts.run_in.map(micros));
            keys.push(opts.unique_key.clone());
        }
        let rows: Vec<(i64, Option<String>, bool)> = sqlx::query_as(self.sql.enqueue.clone())
            .bind(&*self.name)
            .bind(args)
            .bind(priorities)
            .bind(at)
            .bind(delays)
            .bind(&keys)
            .bind(self.notify.as_deref().unwrap_or_default())
            .bind(self.notify.is_some())
            .fetch_all(executor)
            .await?;
        // Keyed jobs are matched by key; the others were inserted in order, so their ids rise
        // in the order they were sent.
        let mut by_key = HashMap::new();
        let mut fresh = Vec::new();
        for (id, key, duplicate) in rows {
            match key {
                Some(key) => {
                    by_key.insert(key, Enqueued { id, duplicate });
                }
                None => fresh.push(id),
            }
        }
        fresh.sort_unstable();
        let mut fresh = fresh.into_iter();
        let mut out = Vec::with_capacity(jobs.len());
        for (index, (_, opts)) in jobs.iter().enumerate() {
            out.push(match opts.unique_key.as_deref() {
                Some(key) => {
                    let done = by_key.get(key).copied().ok_or_else(|| lost(&self.name))?;
                    Enqueued {
                        // A later job of a key in this batch is a duplicate of the first.
                        duplicate: done.duplicate || first_of_key[key] != index,
                        ..done
                    }
                }
                None => Enqueued {
                    id: fresh.next().ok_or_else(|| lost(&self.name))?,
                    duplicate: false,
                },
            });
        }
        Ok(out)
    }
}

/// The database returned fewer rows than it was sent: a broken invariant, reported, not hidden.
fn lost(queue: &str) -> Error {
    Error::Database(sqlx::Error::Protocol(format!(
        "enqueue on queue {queue:?}: the database returned fewer jobs than were sent"
    )))
}

/// `d` in whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
