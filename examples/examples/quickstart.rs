//! A host with six workers, a live dashboard and metrics endpoint.
//!
//! ```text
//! WORKER_ADMIN_TOKEN=secret cargo run --example quickstart
//! open http://127.0.0.1:9464/            # the dashboard; paste `secret` to use its buttons
//! curl -s 127.0.0.1:9464/metrics | grep worker_runs_total
//! curl -s 127.0.0.1:9464/readyz
//! curl -s -X POST -H 'Authorization: Bearer secret' 127.0.0.1:9464/workers/digest/run
//! ```
//!
//! Stop it with Ctrl+C (or SIGTERM): in-flight runs are cancelled, the host waits for them and
//! exits 0. `METRICS_ADDR` changes the listening address; without `WORKER_ADMIN_TOKEN` the admin
//! actions are off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use worker_core::{BoxError, Ctx, Host, State, Worker, worker};

/// Shared state: a pretend order book.
#[derive(Default)]
struct Orders {
    shipped: AtomicU64,
}

/// Healthy: runs every two seconds and always succeeds.
#[worker(every = "2s", gates_readiness = true)]
async fn heartbeat(ctx: Ctx) {
    tracing::info!(run = ctx.run_id(), "still alive");
}

/// Fails about one attempt in three and retries up to twice, with a short backoff.
#[worker(every = "3s", retry = 2, backoff = "200ms", timeout = "2s")]
async fn sync_orders(orders: State<Orders>, ctx: Ctx) -> anyhow::Result<()> {
    if fastrand::u8(0..3) == 0 {
        let upstream: Result<(), std::io::Error> = Err(std::io::ErrorKind::ConnectionReset.into());
        upstream.context("fetching pending orders from the upstream shop")?;
    }
    for _ in 0..fastrand::u64(1..5) {
        if ctx.is_cancelled() {
            bail!("stopped half-way by shutdown");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        orders.shipped.fetch_add(1, Ordering::Relaxed);
        // Metrics your code records through the `metrics` facade are served next to the
        // workers' on the host's `/metrics`.
        metrics::counter!("orders_shipped_total").increment(1);
    }
    tracing::info!(
        shipped = orders.shipped.load(Ordering::Relaxed),
        "orders synced"
    );
    Ok(())
}

/// Panics now and then; the panic is caught and counted, and the schedule goes on.
#[worker(every = "5s", after = "1s")]
async fn flaky_report() {
    assert!(fastrand::u8(0..4) != 0, "report template is missing");
    tracing::info!("report written");
}

/// Runs on a cron schedule: at seconds 0, 10, 20, ... of every minute, Berlin time.
#[worker(cron = "*/10 * * * * *", time_zone = "Europe/Berlin")]
async fn digest(ctx: Ctx) {
    tracing::info!(run = ctx.run_id(), "digest sent");
}

/// An upstream that is down more often than not: after 4 runs in 30 s with at least half of
/// them failed, the circuit opens for 5 s (ticks are skipped as `circuit_open`), then one probe
/// run decides whether it closes again.
#[worker(
    every = "1s",
    circuit_failure_ratio = 0.5,
    circuit_min_throughput = 4,
    circuit_window = "30s",
    circuit_break = "5s"
)]
async fn inventory_feed() -> Result<(), BoxError> {
    if fastrand::u8(0..10) < 7 {
        return Err("inventory service unavailable".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), worker_core::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9464".to_owned());

    // A worker declared in code, as you would for one per tenant or shard.
    let cleanup = Worker::builder("cache_cleanup")
        .every(Duration::from_secs(4))
        .handler(|ctx: Ctx| async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(300)) => Ok(()),
                () = ctx.cancelled() => Err(BoxError::from("cleanup interrupted")),
            }
        });

    let host = Host::builder()
        .state(Orders::default())
        .worker(heartbeat)
        .worker(sync_orders)
        .worker(flaky_report)
        .worker(digest)
        .worker(inventory_feed)
        .worker(cleanup)
        .shutdown_timeout(Duration::from_secs(10))
        .serve(addr)
        // Admin actions (run now, pause, resume) are off unless a token is set.
        .admin_token(std::env::var("WORKER_ADMIN_TOKEN").unwrap_or_default())
        .build()?;
    // Building with `.serve(..)` installed the Prometheus recorder of the `metrics` facade, so
    // this help text reaches the page.
    metrics::describe_counter!("orders_shipped_total", "Orders shipped by sync_orders.");
    host.run().await
}
