//! [`Postgres`]: a pool and the schema its job tables live in.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::Error;
use crate::enqueue::DurableQueue;
use crate::migrations;
use crate::notify::Listener;
use crate::schema::Schema;
use crate::sql::Sql;
use crate::store::Retention;

/// The PostgreSQL backend: a connection pool and the schema of the job tables (`worker` unless
/// [`schema`](Self::schema) says otherwise). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Postgres {
    pool: sqlx::PgPool,
    schema: Schema,
    sql: Arc<Sql>,
    retention: Retention,
    /// Attempts completed inside a caller's transaction by [`Postgres::complete_in`], which
    /// the consumer then does not complete again.
    pub(crate) completed_in: Arc<Mutex<HashSet<(i64, i32)>>>,
    /// Enqueues notify, and consumers listen (see `notify`).
    notify: bool,
    pub(crate) listener: Arc<Listener>,
}

impl Postgres {
    /// The backend on `pool`, with the tables in the schema `worker`.
    #[must_use]
    pub fn new(pool: sqlx::PgPool) -> Self {
        let schema = Schema::new(Schema::DEFAULT).unwrap_or_else(|_| unreachable!("valid"));
        let sql = Arc::new(Sql::new(&schema));
        Self {
            pool,
            schema,
            sql,
            retention: Retention::default(),
            completed_in: Arc::default(),
            notify: true,
            listener: Arc::default(),
        }
    }

    /// Whether enqueues of jobs due now send a notification (`NOTIFY`) that wakes their
    /// consumer at once, and consumers listen for them on one connection of the pool (on by
    /// default). Off, consumers find new jobs at their next poll (every 250 ms while idle): for
    /// a pool whose connections cannot `LISTEN` (PgBouncer in transaction mode), or a database
    /// where the commit-time lock `NOTIFY` takes is too costly. Producers and consumers of a
    /// queue should agree.
    #[must_use]
    pub fn notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    pub(crate) fn notifies(&self) -> bool {
        self.notify
    }

    /// The tables in the schema `name` instead (one per tenant or per test, for example).
    ///
    /// # Errors
    ///
    /// [`Error::SchemaName`] when `name` is not 1 to 63 lowercase letters, digits or `_`, not
    /// starting with a digit.
    pub fn schema(self, name: &str) -> Result<Self, Error> {
        let schema = Schema::new(name)?;
        let sql = Arc::new(Sql::new(&schema));
        Ok(Self {
            schema,
            sql,
            ..self
        })
    }

    /// Keeps completed jobs this long (state `completed`) instead of deleting them at once:
    /// for auditing, or so a unique key stays taken after its job completed. Default zero:
    /// deleted.
    #[must_use]
    pub fn keep_completed(mut self, keep: std::time::Duration) -> Self {
        self.retention.completed = keep;
        self
    }

    /// Keeps discarded jobs (failed for good) this long, with their errors; default 7 days.
    #[must_use]
    pub fn keep_discarded(mut self, keep: std::time::Duration) -> Self {
        self.retention.discarded = keep;
        self
    }

    /// Keeps cancelled jobs this long; default 1 day.
    #[must_use]
    pub fn keep_cancelled(mut self, keep: std::time::Duration) -> Self {
        self.retention.cancelled = keep;
        self
    }

    pub(crate) fn completed_in(&self) -> std::sync::MutexGuard<'_, HashSet<(i64, i32)>> {
        self.completed_in
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn retention(&self) -> Retention {
        self.retention
    }

    /// The schema's name.
    #[must_use]
    pub fn schema_name(&self) -> &str {
        self.schema.name()
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.sql
    }

    pub(crate) fn sql_arc(&self) -> Arc<Sql> {
        Arc::clone(&self.sql)
    }

    /// Creates the schema and its tables, or brings them up to date: applies, in one
    /// transaction, the [migrations](crate::migrations) the database lacks, and returns their
    /// versions. Safe to call from every replica at start-up: concurrent calls wait for each
    /// other, and the later ones find nothing to do.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when a statement fails; nothing is applied then.
    pub async fn migrate(&self) -> Result<Vec<i32>, Error> {
        migrations::migrate(&self.pool, &self.schema).await
    }

    /// Completes `job` inside the caller's transaction (`&mut *tx`), so that the job's side
    /// effects in this database and its completion commit together, or roll back together:
    /// exactly once for effects that stay in the database. Fenced by the job's attempt: when
    /// its lease was lost and the job claimed again, it is refused with
    /// [`Error::Superseded`], and the transaction must be rolled back. Once it succeeded, the
    /// worker's `Ok(())` completes nothing more; if the transaction then rolls back, the job
    /// runs again once its lease expires.
    ///
    /// # Errors
    ///
    /// [`Error::Superseded`] as above; [`Error::Database`] when the statement fails.
    pub async fn complete_in<'c, E, T>(
        &self,
        executor: E,
        job: &worker_core::Job<T>,
    ) -> Result<(), Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let id = i64::try_from(job.id()).unwrap_or(i64::MAX);
        let attempt = i32::try_from(job.attempt()).unwrap_or(i32::MAX);
        let keep = !self.retention.completed.is_zero();
        let done = self
            .complete_jobs_in(executor, &[(id, attempt)], keep)
            .await?;
        if done.is_empty() {
            return Err(Error::Superseded { id, attempt });
        }
        self.completed_in().insert((id, attempt));
        Ok(())
    }

    /// A producer's handle on the durable queue `name`, with payloads of type `T` (stored as
    /// JSON).
    ///
    /// # Errors
    ///
    /// [`Error::QueueName`] when `name` is empty or longer than 128 characters.
    pub fn queue<T: Serialize>(&self, name: &str) -> Result<DurableQueue<T>, Error> {
        DurableQueue::new(
            name,
            Arc::clone(&self.sql),
            self.notify.then_some(self.schema.name()),
        )
    }
}
