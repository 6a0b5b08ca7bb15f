//! Durable queue throughput against a bare `FOR UPDATE SKIP LOCKED` loop, in one run, on the
//! same database: burn-down of `DURABLE_JOBS` (default 20,000) no-op jobs enqueued beforehand,
//! at concurrency 8 and 32.
//!
//! - bare: one loop that, in a transaction, selects up to `concurrency` available jobs `FOR
//!   UPDATE SKIP LOCKED`, runs them (no-op) and deletes them by id in one statement;
//! - framework: a host with a `durable` queue worker of that `concurrency` and a no-op body:
//!   leases, attempt fencing, batched completions, metrics and spans on.
//!
//! Also the pickup latency, from the commit of an enqueue to the body's start, p50 and p99 of
//! `DURABLE_PICKUPS` (default 200) jobs enqueued one at a time into an idle queue, with
//! notifications on (the default) and off (the consumer polls every 250 ms).
//!
//! ```text
//! scripts/postgres start /tmp/bench-pg        # prints the URL of a throw-away server
//! DURABLE_DATABASE_URL=postgres://worker@127.0.0.1:55432/postgres cargo bench -p worker-postgres --bench durable
//! ```
//!
//! Each row is the median of `DURABLE_SAMPLES` (default 3) samples, bare and framework
//! alternating, each in a schema of its own. The targets (at least 0.5 of the bare loop; p50
//! pickup under 5 ms) are printed as PASS/FAIL, never asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Notify;
use worker_core::{Host, Job, Worker};
use worker_postgres::Postgres;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    n: u64,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

async fn fresh(pool: &PgPool, jobs: u64) -> Postgres {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let schema = format!(
        "bench_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let pg = Postgres::new(pool.clone()).schema(&schema).expect("valid");
    pg.migrate().await.expect("migrates");
    let queue = pg.queue::<Noop>("bench").expect("valid");
    let all: Vec<Noop> = (0..jobs).map(|n| Noop { n }).collect();
    for chunk in all.chunks(5000) {
        queue.enqueue_many(pool, chunk).await.expect("enqueues");
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {schema}.jobs")))
        .execute(pool)
        .await
        .expect("vacuums");
    pg
}

async fn drop_schema(pg: &Postgres) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {} CASCADE",
        pg.schema_name()
    )))
    .execute(pg.pool())
    .await
    .expect("drops");
}

/// The bare loop; returns jobs per second.
async fn bare(pool: &PgPool, jobs: u64, concurrency: i64) -> f64 {
    let pg = fresh(pool, jobs).await;
    let schema = pg.schema_name().to_owned();
    let select = format!(
        "SELECT id FROM {schema}.jobs WHERE state = 'available' AND queue = 'bench' \
         ORDER BY priority, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    let delete = format!("DELETE FROM {schema}.jobs WHERE id = ANY($1)");
    let started = Instant::now();
    let mut done = 0;
    while done < jobs {
        let mut tx = pool.begin().await.expect("begins");
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
            .bind(concurrency)
            .fetch_all(&mut *tx)
            .await
            .expect("selects");
        for id in &ids {
            std::hint::black_box(id);
        }
        sqlx::query(sqlx::AssertSqlSafe(delete.clone()))
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .expect("deletes");
        tx.commit().await.expect("commits");
        done += ids.len() as u64;
    }
    let took = started.elapsed();
    drop_schema(&pg).await;
    per_second(jobs, took)
}

/// The framework; returns jobs per second.
async fn framework(pool: &PgPool, jobs: u64, concurrency: u32) -> f64 {
    let pg = fresh(pool, jobs).await;
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(Notify::new());
    let worker = {
        let (done, finished) = (done.clone(), finished.clone());
        Worker::builder("bench")
            .durable_queue::<Noop>("bench")
            .concurrency(concurrency)
            .handler(move |job: Job<Noop>| {
                let (done, finished) = (done.clone(), finished.clone());
                async move {
                    std::hint::black_box(job.n);
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                        finished.notify_one();
                    }
                }
            })
    };
    let host = Host::builder()
        .backend(pg.clone())
        .worker(worker)
        .env_overrides(false)
        .build()
        .expect("builds");
    let handle = host.handle();
    let started = Instant::now();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    finished.notified().await;
    // Done when the last completion is committed, as the bare loop's is.
    while !pg.counts().await.expect("counts").is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    handle.shutdown();
    running.await.expect("no panic").expect("stops");
    drop_schema(&pg).await;
    per_second(jobs, took)
}

/// Commit-to-start latencies of `count` jobs enqueued one at a time into an idle queue.
async fn pickups(pool: &PgPool, count: u64, notify: bool) -> Vec<Duration> {
    let pg = fresh(pool, 0).await.notify(notify);
    let started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let woke = Arc::new(Notify::new());
    let worker = {
        let (started, woke) = (started.clone(), woke.clone());
        Worker::builder("pickup")
            .durable_queue::<Noop>("bench")
            .concurrency(8)
            .handler(move |_: Job<Noop>| {
                let (started, woke) = (started.clone(), woke.clone());
                async move {
                    *started.lock().expect("not poisoned") = Some(Instant::now());
                    woke.notify_one();
                }
            })
    };
    let host = Host::builder()
        .backend(pg.clone())
        .worker(worker)
        .env_overrides(false)
        .build()
        .expect("builds");
    let handle = host.handle();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    let queue = pg.queue::<Noop>("bench").expect("valid");
    let mut latencies = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..count {
        let started_job = woke.notified();
        let mut tx = pool.begin().await.expect("begins");
        queue
            .enqueue(&mut *tx, &Noop { n })
            .await
            .expect("enqueues");
        tx.commit().await.expect("commits");
        let committed = Instant::now();
        started_job.await;
        let at = started
            .lock()
            .expect("not poisoned")
            .take()
            .expect("started");
        latencies.push(at.saturating_duration_since(committed));
        // An idle queue again, at a random point of any poll.
        tokio::time::sleep(Duration::from_millis(fastrand_ms(n))).await;
    }
    handle.shutdown();
    running.await.expect("no panic").expect("stops");
    drop_schema(&pg).await;
    latencies
}

/// 5 to 50 ms, varied by `n`, so enqueues do not line up with the consumer's polls.
fn fastrand_ms(n: u64) -> u64 {
    5 + (n.wrapping_mul(2_654_435_761) % 46)
}

#[allow(clippy::cast_precision_loss, reason = "job counts far below 2^52")]
fn per_second(jobs: u64, took: Duration) -> f64 {
    jobs as f64 / took.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "small counts"
    )]
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

fn main() {
    let url = std::env::var("DURABLE_DATABASE_URL")
        .or_else(|_| std::env::var("WORKER_TEST_DATABASE_URL"))
        .expect("set DURABLE_DATABASE_URL to a database the benchmark may create schemas in (scripts/postgres start DIR prints one)");
    let jobs = setting("DURABLE_JOBS", 20_000);
    let samples = setting("DURABLE_SAMPLES", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await
            .expect("connects");
        println!(
            "worker-postgres durable queue burn-down against a bare SKIP LOCKED loop: {jobs} no-op jobs, \
             multi-thread runtime with 2 worker threads, the database on this machine; median of {samples} samples"
        );
        println!("  {:<28} | {:>10} | {:>10} | ratio | target", "row (jobs/s)", "bare", "framework");
        for concurrency in [8_u32, 32] {
            let (mut bares, mut frameworks) = (Vec::new(), Vec::new());
            for _ in 0..samples {
                bares.push(bare(&pool, jobs, i64::from(concurrency)).await);
                frameworks.push(framework(&pool, jobs, concurrency).await);
            }
            let (b, f) = (median(bares.clone()), median(frameworks.clone()));
            let ratio = f / b;
            println!(
                "  {:<28} | {b:>10.0} | {f:>10.0} | {ratio:>5.2} | >= 0.5 {}   (bare {:.0}..{:.0}, framework {:.0}..{:.0})",
                format!("concurrency {concurrency}"),
                if ratio >= 0.5 { "PASS" } else { "FAIL" },
                bares.iter().copied().fold(f64::INFINITY, f64::min),
                bares.iter().copied().fold(0.0, f64::max),
                frameworks.iter().copied().fold(f64::INFINITY, f64::min),
                frameworks.iter().copied().fold(0.0, f64::max),
            );
        }
        for notify in [true, false] {
            let mut latencies = pickups(&pool, setting("DURABLE_PICKUPS", 200), notify).await;
            latencies.sort_unstable();
            let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
            println!(
                "  pickup, commit to start, NOTIFY {}: p50 {:.1} ms, p99 {:.1} ms{}",
                if notify { "on " } else { "off" },
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                match (notify, p50 < Duration::from_millis(5)) {
                    (false, _) => "",
                    (true, true) => " | p50 < 5 ms PASS",
                    (true, false) => " | p50 < 5 ms FAIL",
                }
            );
        }
    });
}
