//! A host with eight workers, one of them consuming a queue another one feeds, a live dashboard
//! and metrics endpoint.
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
//! exits 0; the emails still queued are sent until `send_email`'s stop budget, and the rest are
//! handed to its `on_leftovers` hook (logged here). `METRICS_ADDR` changes the listening
//! address; without `WORKER_ADMIN_TOKEN` the admin actions are off; `QUICKSTART_EMAILS` (default
//! 20) is how many emails `queue_digests` queues every 2 s; `QUICKSTART_SPAM=1` makes it queue one
//! more to `spam@example.com` every time, which `send_email` fails for good, so dead jobs show
//! on the dashboard (with a Requeue button each).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use worker_core::{
    BoxError, Ctx, Host, IntoWorker as _, Job, Queue, SendError, State, Worker, worker,
};

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

/// A job of the `emails` queue.
#[derive(Debug, Clone)]
struct Email {
    to: String,
    subject: String,
}

/// How many emails `queue_digests` queues per run, and whether one more goes to a blocked
/// address.
struct Burst {
    emails: u64,
    spam: bool,
}

/// Feeds the `emails` queue: a burst of digest emails every two seconds (and one to a blocked
/// address with `QUICKSTART_SPAM=1`). When the queue is full, `send` waits (back-pressure); once
/// the host stops, it hands the email back.
#[worker(every = "2s")]
async fn queue_digests(emails: Queue<Email>, burst: State<Burst>, ctx: Ctx) -> anyhow::Result<()> {
    let spam = burst.spam.then(|| "spam@example.com".to_owned());
    let total = burst.emails + u64::from(burst.spam);
    let addresses = (0..burst.emails)
        .map(|n| format!("user{n}@example.com"))
        .chain(spam);
    for (n, to) in addresses.enumerate() {
        let email = Email {
            to,
            subject: format!("digest #{}", ctx.run_id()),
        };
        match emails.send(email).await {
            Ok(_) => {}
            Err(SendError::Closed(_)) => {
                bail!("the host is stopping: {n} of {total} emails queued")
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// Consumes the `emails` queue, four at a time: each takes 20 to 80 ms, one in ten bounces and
/// is retried, and an address with `spam` in it fails for good.
#[worker(
    queue = "emails",
    concurrency = 4,
    capacity = 64,
    retry = 2,
    backoff = "500ms",
    timeout = "5s",
    stop_budget = "3s"
)]
async fn send_email(job: Job<Email>) -> Result<(), BoxError> {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(20..80))).await;
    if job.to.contains("spam") {
        return Err(worker_core::Permanent::new(format!("{} is blocked", job.to)).into());
    }
    if fastrand::u8(0..10) == 0 {
        return Err(format!("{} bounced (attempt {})", job.to, job.attempt()).into());
    }
    tracing::debug!(to = %job.to, subject = %job.subject, "email sent");
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

    let burst = std::env::var("QUICKSTART_EMAILS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let spam = std::env::var("QUICKSTART_SPAM").is_ok_and(|v| !v.is_empty() && v != "0");
    // What never got sent by shutdown; a real service would store it to send on restart.
    let mailer = send_email.into_worker().on_leftovers(|emails: Vec<Email>| {
        tracing::warn!(emails = emails.len(), "emails left unsent at shutdown");
    });

    let host = Host::builder()
        .state(Orders::default())
        .state(Burst {
            emails: burst,
            spam,
        })
        .worker(queue_digests)
        .worker(mailer)
        .worker(heartbeat)
        .worker(sync_orders)
        .worker(flaky_report)
        .worker(digest)
        .worker(inventory_feed)
        .worker(cleanup)
        .shutdown_timeout(Duration::from_secs(10))
        .serve(addr)
        // What this program records with `metrics::counter!` is served on the same page.
        .install_recorder()
        // Admin actions (run now, pause, resume) are off unless a token is set.
        .admin_token(std::env::var("WORKER_ADMIN_TOKEN").unwrap_or_default())
        .build()?;
    // Building with `.install_recorder()` installed the Prometheus recorder of the `metrics`
    // facade, so this help text reaches the page.
    metrics::describe_counter!("orders_shipped_total", "Orders shipped by sync_orders.");
    host.run().await
}
