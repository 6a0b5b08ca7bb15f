//! Singleton leases: one row per singleton worker, held by one replica at a time, with a fence
//! bumped on every takeover and checked by the holder's own writes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::enqueue::micros;
use crate::sql::Sql;
use crate::{Error, Postgres};

/// A lease as stored, for inspection ([`Postgres::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRecord {
    /// The replica that holds or last held it; `None` once resigned.
    pub holder: Option<String>,
    /// Its fence: bumped on every takeover.
    pub fence: i64,
    /// When it expires unless renewed; `None` once resigned.
    pub expires_at: Option<SystemTime>,
    /// It has not expired, by the database's clock.
    pub held: bool,
    /// The scheduled instant of the last tick claimed.
    pub last_tick: Option<SystemTime>,
    /// The scheduled instant of the last tick that succeeded.
    pub last_done: Option<SystemTime>,
}

/// A lease just acquired.
#[derive(Debug, Clone)]
pub(crate) struct Acquired {
    pub(crate) fence: Fence,
    pub(crate) last_tick: Option<DateTime<Utc>>,
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
    pub(crate) last_done: Option<DateTime<Utc>>,
    /// The database's time.
    pub(crate) now: DateTime<Utc>,
}

/// The holder's proof that it holds a lease, for its own writes: [`check`](Self::check) inside
/// a transaction makes the transaction's writes land only while the lease is held, and makes a
/// takeover wait until the transaction ends. Keep fenced transactions short: a takeover waits
/// for them.
#[derive(Debug, Clone)]
pub struct Fence {
    name: Arc<str>,
    token: i64,
    sql: Arc<Sql>,
}

impl Fence {
    /// The fencing token: it rises with every takeover of the lease.
    #[must_use]
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The lease's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks, inside the caller's transaction (`&mut *tx`), that the lease is still held with
    /// this token, and locks it against takeover until the transaction ends.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] when another replica took the lease over (or it expired): the
    /// transaction must then be rolled back. [`Error::Database`] when the statement fails.
    pub async fn check<'c, E>(&self, executor: E) -> Result<(), Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let held: Option<i32> = sqlx::query_scalar(self.sql.fence.clone())
            .bind(&*self.name)
            .bind(self.token)
            .fetch_optional(executor)
            .await?;
        match held {
            Some(_) => Ok(()),
            None => Err(Error::LeaseLost {
                name: self.name.to_string(),
                fence: self.token,
            }),
        }
    }
}

impl Postgres {
    /// Takes the lease `name` for `holder` for `lease` when it is free or expired.
    pub(crate) async fn acquire(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Acquired>, Error> {
        type Row = (
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
        );
        let row: Option<Row> = sqlx::query_as(self.sql().acquire.clone())
            .bind(name)
            .bind(holder)
            .bind(micros(lease))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(token, last_tick, last_done, now)| Acquired {
            fence: Fence {
                name: name.into(),
                token,
                sql: self.sql_arc(),
            },
            last_tick,
            last_done,
            now,
        }))
    }

    /// Extends the lease held with `fence` by `lease`: the database's time, or `None` when
    /// the lease was lost.
    pub(crate) async fn renew(
        &self,
        fence: &Fence,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(sqlx::query_scalar(self.sql().renew.clone())
            .bind(fence.name())
            .bind(holder)
            .bind(fence.token)
            .bind(micros(lease))
            .fetch_optional(self.pool())
            .await?)
    }

    /// Claims the scheduled instant `tick`: `false` when it, or a later one, was claimed
    /// already, or the lease was lost.
    pub(crate) async fn claim_tick(
        &self,
        fence: &Fence,
        tick: DateTime<Utc>,
    ) -> Result<bool, Error> {
        Ok(sqlx::query(self.sql().claim_tick.clone())
            .bind(fence.name())
            .bind(fence.token)
            .bind(tick)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }

    /// Records the scheduled instant `tick` as done.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the host records no tick as done yet")
    )]
    pub(crate) async fn finish_tick(
        &self,
        fence: &Fence,
        tick: DateTime<Utc>,
    ) -> Result<bool, Error> {
        Ok(sqlx::query(self.sql().finish_tick.clone())
            .bind(fence.name())
            .bind(fence.token)
            .bind(tick)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }

    /// Gives the lease up at once; `false` when it was no longer held with `fence`.
    pub(crate) async fn resign(&self, fence: &Fence) -> Result<bool, Error> {
        Ok(sqlx::query(self.sql().resign.clone())
            .bind(fence.name())
            .bind(fence.token)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }
}

/// Checks a singleton run's fence ([`worker_core::Ctx::fence`]) inside the run's own
/// transaction, so its writes commit only while this replica holds the lease:
///
/// ```no_run
/// # async fn demo(ctx: worker_core::Ctx, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use worker_postgres::FenceCheck as _;
///
/// let fence = ctx.fence().ok_or("not a singleton's tick")?;
/// let mut tx = pool.begin().await?;
/// fence.check(&mut *tx).await?;                  // fails once another replica took over
/// sqlx::query("UPDATE totals SET n = n + 1").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub trait FenceCheck {
    /// Checks, inside the caller's transaction, that the lease is still held with this fence,
    /// and locks it against takeover until the transaction ends ([`Fence::check`]).
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] when another replica took the lease over, or the fence was not
    /// made by this backend; [`Error::Database`] when the statement fails.
    fn check<'c, E>(&self, executor: E) -> impl Future<Output = Result<(), Error>> + Send
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres> + 'c;
}

impl FenceCheck for worker_core::durable::Fence {
    fn check<'c, E>(&self, executor: E) -> impl Future<Output = Result<(), Error>> + Send
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres> + 'c,
    {
        let ours = self.backend::<Fence>().cloned();
        let (name, token) = (self.name().to_owned(), self.token());
        async move {
            match ours {
                Some(fence) => fence.check(executor).await,
                None => Err(Error::LeaseLost { name, fence: token }),
            }
        }
    }
}

impl Postgres {
    /// The lease `name` as stored, or `None` before any replica took it.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails.
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRecord>, Error> {
        type Row = (
            Option<String>,
            i64,
            Option<DateTime<Utc>>,
            bool,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(self.sql().lease.clone())
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(
            |(holder, fence, expires_at, held, last_tick, last_done)| LeaseRecord {
                holder,
                fence,
                expires_at: expires_at.map(Into::into),
                held,
                last_tick: last_tick.map(Into::into),
                last_done: last_done.map(Into::into),
            },
        ))
    }
}
