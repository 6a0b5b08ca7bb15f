//! [`Postgres`]: a pool and the schema its job tables live in.

use std::sync::Arc;

use serde::Serialize;

use crate::Error;
use crate::enqueue::DurableQueue;
use crate::migrations;
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
        }
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

    /// A producer's handle on the durable queue `name`, with payloads of type `T` (stored as
    /// JSON).
    ///
    /// # Errors
    ///
    /// [`Error::QueueName`] when `name` is empty or longer than 128 characters.
    pub fn queue<T: Serialize>(&self, name: &str) -> Result<DurableQueue<T>, Error> {
        DurableQueue::new(name, Arc::clone(&self.sql))
    }
}
