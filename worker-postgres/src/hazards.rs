//! The database-side hazards of a job table, read for metrics and readiness.

use crate::{Error, Postgres};

/// What the database says about the conditions that slow or stop job queues in production.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Hazards {
    /// Dead row versions in the jobs table not yet vacuumed. Every claim, retry and completion
    /// leaves one; a count that keeps rising means vacuum cannot keep up or is held back, and
    /// fetches slow down as they step over them.
    pub dead_tuples: i64,
    /// Live rows in the jobs table (the statistics' estimate).
    pub live_tuples: i64,
    /// Seconds since the oldest open snapshot began (a transaction in any database of the
    /// server, or a prepared transaction): vacuum can remove no row deleted after it. Sessions of
    /// other roles count only when this role has `pg_read_all_stats`.
    pub oldest_xmin_age_seconds: f64,
    /// How full the server's NOTIFY queue is, from 0 to 1 (`pg_notification_queue_usage()`):
    /// at 1, every transaction that notifies fails at commit.
    pub notify_queue_usage: f64,
}

impl Postgres {
    /// Reads the [`Hazards`] of this schema's jobs table.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails.
    pub async fn hazards(&self) -> Result<Hazards, Error> {
        let (dead_tuples, live_tuples, oldest_xmin_age_seconds, notify_queue_usage) =
            sqlx::query_as(self.sql().hazards.clone())
                .bind(self.schema_name())
                .fetch_one(self.pool())
                .await?;
        Ok(Hazards {
            dead_tuples,
            live_tuples,
            oldest_xmin_age_seconds,
            notify_queue_usage,
        })
    }
}
