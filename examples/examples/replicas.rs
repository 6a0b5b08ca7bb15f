//! One replica of a service whose orders are processed from a durable queue on PostgreSQL, with
//! a singleton that rolls up every second. Start several against the same database: they share
//! the queue, each job runs on one of them, its effect and its completion commit together, and a
//! replica that dies loses its jobs to the others once their leases expire. One replica at a
//! time holds the roll-up's lease and runs its ticks; the others follow, and one of them takes
//! over within the lease (3 s) and a second when the holder dies, replaying the ticks nobody ran.
//!
//! ```text
//! export DATABASE_URL=postgres://user@127.0.0.1:5432/db
//! REPLICAS_ENQUEUE=1000 METRICS_ADDR=127.0.0.1:9471 cargo run --example replicas &
//! METRICS_ADDR=127.0.0.1:9472 cargo run --example replicas &
//! curl -s 127.0.0.1:9471/metrics | grep -E 'worker_(runs|jobs)_'
//! ```
//!
//! `DATABASE_URL` is required. `WORKER_SCHEMA` (default `worker`) names the schema of the job
//! tables and of this example's two tables: `effects`, one row per processed order under a
//! primary key (so an order processed twice would fail to commit), and `runs`, one row per
//! attempt with the replica that made it (so duplicates show); and for the roll-up, `ticks`, one
//! row per tick under a primary key on its instant, written in a transaction fenced by the lease,
//! and `tick_runs`, one row per run of a tick. `REPLICAS_ENQUEUE=N` enqueues N
//! orders at start-up, in transactions of 100. `REPLICA` names the replica in `runs` (default:
//! its process id). An order takes 1 to `REPLICAS_WORK_MS` (default 5) milliseconds. `METRICS_ADDR` (default `127.0.0.1:9471`) serves the dashboard and
//! `/metrics`, with the admin actions on when `WORKER_ADMIN_TOKEN` is set (retry, discard and
//! cancel a durable job among them). An order with a negative id fails permanently and ends
//! discarded. SIGTERM stops it gracefully: jobs still running at the end of the stop budget are
//! handed back at once.

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use worker_core::{BoxError, Ctx, Host, Job, Permanent, State, worker};
use worker_postgres::{FenceCheck as _, Postgres};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
}

/// Which replica this is, for the `runs` table, and how long an order takes at most.
struct Replica {
    name: String,
    work_ms: u64,
}

impl Replica {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Processes one order: records the attempt, then writes the order's effect and completes the
/// job in one transaction.
#[worker(
    queue = "orders",
    durable,
    concurrency = 8,
    retry = 5,
    backoff = "100ms",
    lease = "2s",
    stop_budget = "2s"
)]
async fn process_order(
    job: Job<Order>,
    pg: State<Postgres>,
    replica: State<Replica>,
) -> Result<(), BoxError> {
    if job.id < 0 {
        // Not retried: the job ends discarded, with this error, on the dashboard.
        return Err(Permanent::new(format!("order {} does not exist", job.id)).into());
    }
    let schema = pg.schema_name();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.runs (order_id, replica, attempt) VALUES ($1, $2, $3)"
    )))
    .bind(job.id)
    .bind(replica.name())
    .bind(i32::try_from(job.attempt())?)
    .execute(pg.pool())
    .await?;
    // Some work, long enough that a replica killed mid-run has jobs in flight.
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=replica.work_ms))).await;
    let mut tx = pg.pool().begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.effects (order_id, replica) VALUES ($1, $2)"
    )))
    .bind(job.id)
    .bind(replica.name())
    .execute(&mut *tx)
    .await?;
    pg.complete_in(&mut *tx, &job).await?;
    tx.commit().await?;
    Ok(())
}

/// The roll-up: one replica runs each tick. Its write commits only while this replica holds the
/// lease (`check` inside the transaction), and a new holder's takeover waits for it.
#[worker(every = "1s", singleton, lease = "3s", missed = burst)]
async fn rollup(ctx: Ctx, pg: State<Postgres>, replica: State<Replica>) -> Result<(), BoxError> {
    let schema = pg.schema_name();
    let at = chrono::DateTime::<chrono::Utc>::from(ctx.scheduled_time());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.tick_runs (at, replica) VALUES ($1, $2)"
    )))
    .bind(at)
    .bind(replica.name())
    .execute(pg.pool())
    .await?;
    let fence = ctx.fence().ok_or("a singleton's tick has a fence")?;
    let mut tx = pg.pool().begin().await?;
    fence.check(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.ticks (at, replica, fence) VALUES ($1, $2, $3)"
    )))
    .bind(at)
    .bind(replica.name())
    .bind(fence.token())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL")
        .context("set DATABASE_URL to the PostgreSQL database the replicas share")?;
    let schema = std::env::var("WORKER_SCHEMA").unwrap_or_else(|_| "worker".to_owned());
    let replica = std::env::var("REPLICA").unwrap_or_else(|_| std::process::id().to_string());
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9471".to_owned());

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let pg = Postgres::new(pool).schema(&schema)?;
    pg.migrate().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {schema}.effects (order_id bigint PRIMARY KEY, replica text NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.runs (order_id bigint NOT NULL, replica text NOT NULL, attempt int NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.ticks (at timestamptz PRIMARY KEY, replica text NOT NULL, fence bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.tick_runs (at timestamptz NOT NULL, replica text NOT NULL, ran_at timestamptz NOT NULL DEFAULT clock_timestamp());"
    )))
    .execute(pg.pool())
    .await?;

    if let Ok(count) = std::env::var("REPLICAS_ENQUEUE") {
        let count: i64 = count.parse().context("REPLICAS_ENQUEUE is a number")?;
        let orders = pg.queue::<Order>("orders")?;
        for start in (0..count).step_by(100) {
            let batch: Vec<Order> = (start..(start + 100).min(count))
                .map(|id| Order { id })
                .collect();
            let mut tx = pg.pool().begin().await?;
            orders.enqueue_many(&mut *tx, &batch).await?;
            tx.commit().await?;
        }
        tracing::info!(count, "orders enqueued");
    }

    let host = Host::builder()
        .backend(pg.clone())
        .state(pg)
        .state(Replica {
            name: replica,
            work_ms: std::env::var("REPLICAS_WORK_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .filter(|&ms| ms > 0)
                .unwrap_or(5),
        })
        .worker(process_order)
        .worker(rollup)
        .shutdown_timeout(Duration::from_secs(5))
        .serve(addr)
        .admin_token(std::env::var("WORKER_ADMIN_TOKEN").unwrap_or_default())
        .build()?;
    host.run().await?;
    Ok(())
}
