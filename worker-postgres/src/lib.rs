//! The PostgreSQL backend of [`worker_core`](https://docs.rs/worker-core): durable queues whose
//! jobs survive a crash, enqueued inside the caller's own transaction (the outbox pattern).
//!
//! It holds the schema and its [`migrations`], the producer handle [`DurableQueue`], the job
//! table's state machine, in which every change of a claimed job is fenced by its attempt
//! number, so a stale consumer can never finish a newer attempt, and the leases of singleton
//! schedules with their [`Fence`]. [`Postgres`] is the host's backend
//! (`Host::builder().backend(pg)`) for `#[worker(queue = "..", durable)]` and
//! `#[worker(every = "..", singleton)]` workers.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), worker_postgres::Error> {
//! use serde::{Deserialize, Serialize};
//! use worker_postgres::Postgres;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Invoice { order_id: i64 }
//!
//! let pg = Postgres::new(pool.clone());
//! pg.migrate().await?;                                  // creates or updates the `worker` schema
//! let invoices = pg.queue::<Invoice>("invoices")?;
//!
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(7_i64).execute(&mut *tx).await?;
//! invoices.enqueue(&mut *tx, &Invoice { order_id: 7 }).await?;  // committed or rolled back with tx
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Connections
//!
//! Every query is a single statement checked at run time (no `query!` macro, so building this
//! crate needs no database) and nothing on the path of a job is session-scoped, so a pool behind
//! PgBouncer in transaction mode works, provided its prepared statements are supported
//! (PgBouncer 1.21 or later with `max_prepared_statements`) or sqlx's statement cache is off.

mod backend;
mod enqueue;
mod error;
mod hazards;
mod lease;
pub mod migrations;
mod notify;
mod postgres;
mod schema;
mod sql;
mod store;

pub use enqueue::{DurableQueue, Enqueued, Opts};
pub use error::Error;
pub use hazards::Hazards;
pub use lease::{Fence, FenceCheck, LeaseRecord};
pub use postgres::Postgres;
pub use store::{AttemptError, Cancelled, JobRecord, JobState, StateCount};

#[cfg(test)]
mod tests;
