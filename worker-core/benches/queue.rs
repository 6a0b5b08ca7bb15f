//! Queue throughput against bare tokio, measured in one run: jobs per second through a queue
//! worker with `concurrency = 8` (every job under the run machinery: its panic caught, its
//! metrics recorded, its `worker.run` span opened when a subscriber wants it) against 8 bare
//! tokio tasks sharing one bounded `tokio::sync::mpsc` receiver behind a `tokio::sync::Mutex`,
//! on the same runtime (multi-thread, 2 worker threads), with the same body (one atomic add).
//!
//! - `prefilled`: 200,000 jobs are in the queue before the consumers start; the clock runs
//!   from their start to the last job's end.
//! - `streaming`: one producer task sends 200,000 jobs into a queue of capacity 1024 while the
//!   consumers take them; the clock runs from the first send to the last job's end.
//!
//! Each row runs without a tracing subscriber, then again in a child process of this binary
//! (`QUEUE_CHILD=subscriber`) with an INFO `tracing_subscriber::fmt()` subscriber writing to
//! `std::io::sink()` as the global default, bare and framework alike: once with the worker at
//! the default `span_level` (debug, so its spans do not reach the subscriber; the target's
//! rows), once at `span_level = info` (they do: what opting in costs; no target). The ratio is framework
//! throughput over bare throughput, each the median of `QUEUE_SAMPLES` (default 5) samples,
//! bare and framework alternating.
//!
//! ```text
//! cargo bench -p worker-core --bench queue
//! QUEUE_SAMPLES=3 QUEUE_JOBS=50000 cargo bench -p worker-core --bench queue
//! QUEUE_SUBSCRIBER=0 cargo bench -p worker-core --bench queue   # without the subscriber rows
//! ```
//!
//! The targets (at least 0.8 without a subscriber, 0.5 with one) are printed as PASS/FAIL,
//! never asserted: a benchmark is not a test.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Notify, mpsc};
use worker_core::{Host, IntoWorker as _, Job, Queue, SpanLevel, Worker, worker};

const CONSUMERS: usize = 8;
const STREAM_CAPACITY: usize = 1024;
const CHILD_ENV: &str = "QUEUE_CHILD";
/// `info`: the subscriber child's worker has `span_level = info`, so its spans reach the
/// subscriber (what opting in costs); otherwise the default (`debug`: they do not).
const SPAN_LEVEL_ENV: &str = "QUEUE_SPAN_LEVEL";
const TARGET: f64 = 0.8;
const TARGET_SUBSCRIBER: f64 = 0.5;

/// Jobs done, by every variant; the last one of a sample wakes the sampler.
static DONE: AtomicU64 = AtomicU64::new(0);
/// The job count that ends the current sample.
static GOAL: AtomicU64 = AtomicU64::new(u64::MAX);
static FINISHED: Notify = Notify::const_new();

/// The body of every variant: count the job.
fn count() {
    if DONE.fetch_add(1, Ordering::Relaxed) + 1 == GOAL.load(Ordering::Relaxed) {
        FINISHED.notify_one();
    }
}

#[worker(queue = "bench", concurrency = 8, capacity = 10000000)]
async fn consume(job: Job<u64>) {
    std::hint::black_box(*job);
    count();
}

/// `consume`, for a worker built in code.
async fn consume_built(job: Job<u64>) {
    std::hint::black_box(*job);
    count();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Prefilled,
    Streaming,
}

/// Arms the sample: `jobs` more jobs end it.
fn arm(jobs: u64) {
    GOAL.store(DONE.load(Ordering::Relaxed) + jobs, Ordering::Relaxed);
}

/// Bare: 8 tasks sharing one receiver. Returns jobs per second.
async fn bare(feed: Feed, jobs: u64) -> f64 {
    let capacity = match feed {
        Feed::Prefilled => usize::try_from(jobs).expect("fits"),
        Feed::Streaming => STREAM_CAPACITY,
    };
    let (tx, rx) = mpsc::channel::<u64>(capacity);
    let rx = Arc::new(Mutex::new(rx));
    if feed == Feed::Prefilled {
        for n in 0..jobs {
            tx.try_send(n).expect("room for every job");
        }
    }
    arm(jobs);
    let finished = FINISHED.notified();
    let started = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { break };
                    std::hint::black_box(job);
                    count();
                }
            })
        })
        .collect();
    if feed == Feed::Streaming {
        tokio::spawn(async move {
            for n in 0..jobs {
                tx.send(n).await.expect("the consumers run");
            }
        });
    } else {
        drop(tx);
    }
    finished.await;
    let took = started.elapsed();
    for consumer in consumers {
        consumer.abort();
    }
    per_second(jobs, took)
}

/// The framework: a queue worker with 8 slots. Returns jobs per second.
async fn framework(feed: Feed, jobs: u64) -> f64 {
    let span_info = std::env::var(SPAN_LEVEL_ENV).as_deref() == Ok("info");
    let built = |capacity: usize| {
        let worker = Worker::builder("bench")
            .queue::<u64>("bench")
            .concurrency(8)
            .capacity(u32::try_from(capacity).expect("fits"));
        let worker = if span_info {
            worker.span_level(SpanLevel::Info)
        } else {
            worker
        };
        worker.handler(consume_built)
    };
    let worker = match feed {
        Feed::Prefilled if span_info => built(10_000_000),
        Feed::Prefilled => consume.into_worker(),
        // The same worker with the bare channel's capacity, so `send` waits as bare's does.
        Feed::Streaming => built(STREAM_CAPACITY),
    };
    let host = Host::builder()
        .worker(worker)
        .env_overrides(false)
        .build()
        .expect("the benchmark's host is valid");
    let handle = host.handle();
    let queue: Queue<u64> = handle.queue("bench").expect("the queue exists");
    if feed == Feed::Prefilled {
        for n in 0..jobs {
            queue.try_send(n).expect("room for every job");
        }
    }
    arm(jobs);
    let finished = FINISHED.notified();
    let started = Instant::now();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    if feed == Feed::Streaming {
        tokio::spawn(async move {
            for n in 0..jobs {
                queue.send(n).await.expect("the host runs");
            }
        });
    }
    finished.await;
    let took = started.elapsed();
    handle.shutdown();
    running
        .await
        .expect("the host task does not panic")
        .expect("the host stops cleanly");
    per_second(jobs, took)
}

#[allow(clippy::cast_precision_loss, reason = "job counts far below 2^52")]
fn per_second(jobs: u64, took: Duration) -> f64 {
    jobs as f64 / took.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median bare and framework throughput of `feed`, alternating.
fn row(rt: &Runtime, feed: Feed, jobs: u64, samples: usize) -> (f64, f64) {
    let (mut bares, mut frameworks) = (Vec::new(), Vec::new());
    // One warm-up of each.
    rt.block_on(bare(feed, jobs));
    rt.block_on(framework(feed, jobs));
    for _ in 0..samples {
        bares.push(rt.block_on(bare(feed, jobs)));
        frameworks.push(rt.block_on(framework(feed, jobs)));
    }
    (median(bares), median(frameworks))
}

fn settings() -> (u64, usize) {
    let read = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .unwrap_or(default)
    };
    (
        read("QUEUE_JOBS", 200_000),
        usize::try_from(read("QUEUE_SAMPLES", 5)).unwrap_or(5),
    )
}

/// Both rows, as `bare fw bare fw`.
fn rows(jobs: u64, samples: usize) -> [f64; 4] {
    let rt = runtime();
    let (pb, pf) = row(&rt, Feed::Prefilled, jobs, samples);
    let (sb, sf) = row(&rt, Feed::Streaming, jobs, samples);
    [pb, pf, sb, sf]
}

/// One row; a `target` of 0 is none.
fn print_row(label: &str, bare: f64, framework: f64, target: f64) {
    let ratio = framework / bare;
    let verdict = if target > 0.0 {
        format!(
            ">= {target:.1} {}",
            if ratio >= target { "PASS" } else { "FAIL" }
        )
    } else {
        "-".to_owned()
    };
    println!("  {label:<40} | {bare:>12.0} | {framework:>12.0} | {ratio:>5.2} | {verdict}");
}

fn main() {
    let (jobs, samples) = settings();
    if std::env::var(CHILD_ENV).as_deref() == Ok("subscriber") {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        let [pb, pf, sb, sf] = rows(jobs, samples);
        println!("{pb} {pf} {sb} {sf}");
        return;
    }
    println!(
        "worker-core queue throughput against bare tokio: {jobs} jobs, {CONSUMERS} consumers, \
         multi-thread runtime with 2 worker threads; median of {samples} samples"
    );
    let [pb, pf, sb, sf] = rows(jobs, samples);
    if std::env::var("QUEUE_SUBSCRIBER").as_deref() == Ok("0") {
        print_row("prefilled", pb, pf, TARGET);
        print_row("streaming", sb, sf, TARGET);
        return;
    }
    let child = |level: &str| -> Vec<f64> {
        let output = Command::new(std::env::current_exe().expect("this binary"))
            .env(CHILD_ENV, "subscriber")
            .env(SPAN_LEVEL_ENV, level)
            .stderr(Stdio::inherit())
            .output()
            .expect("the subscriber child runs");
        assert!(output.status.success(), "the subscriber child failed");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    let (child, info) = (child("default"), child("info"));
    println!(
        "  {:<40} | {:>12} | {:>12} | ratio | target",
        "row (jobs/s)", "bare", "framework"
    );
    print_row("prefilled", pb, pf, TARGET);
    print_row("streaming", sb, sf, TARGET);
    print_row(
        "prefilled, INFO fmt subscriber",
        child[0],
        child[1],
        TARGET_SUBSCRIBER,
    );
    print_row(
        "streaming, INFO fmt subscriber",
        child[2],
        child[3],
        TARGET_SUBSCRIBER,
    );
    print_row(
        "prefilled, INFO fmt, span_level = info",
        info[0],
        info[1],
        0.0,
    );
    print_row(
        "streaming, INFO fmt, span_level = info",
        info[2],
        info[3],
        0.0,
    );
}
