//! Scoped resources: built by the registered factory for every attempt (on first use, shared
//! within the attempt) and dropped when the attempt ends, whatever its outcome: success,
//! failure, panic, timeout or cancellation, and even when the host aborts the run at the
//! shutdown deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::{Metrics, assert_results, ms, run_for, secs, work};
use worker_core::{BoxError, Ctx, Host, HostBuilder, Scoped, State, Worker, worker};

/// How many resources were built and dropped, and what the bodies saw.
#[derive(Debug, Default)]
struct Counts {
    created: AtomicU32,
    dropped: AtomicU32,
    /// Attempts that found their resource alive and every earlier one dropped.
    clean_starts: AtomicU32,
    /// Attempts whose resource was built for another run or attempt.
    mismatched: AtomicU32,
}

impl Counts {
    fn created(&self) -> u32 {
        self.created.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Called by a body holding its resource.
    fn check(&self, resource: &Resource, ctx: &Ctx) {
        if self.created() == self.dropped() + 1 {
            self.clean_starts.fetch_add(1, Ordering::SeqCst);
        }
        if (resource.run_id, resource.attempt) != (ctx.run_id(), ctx.attempt()) {
            self.mismatched.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A scoped resource that counts its own drops.
#[derive(Debug)]
struct Resource {
    counts: Arc<Counts>,
    run_id: u64,
    attempt: u32,
}

impl Drop for Resource {
    fn drop(&mut self) {
        self.counts.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A host builder with `counts` as state and a factory of [`Resource`]s.
fn host_with_resources(counts: &Arc<Counts>) -> HostBuilder {
    let factory_counts = counts.clone();
    Host::builder()
        .state(counts.clone())
        .scoped(move |ctx: Ctx| {
            let counts = factory_counts.clone();
            async move {
                counts.created.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(Resource {
                    counts,
                    run_id: ctx.run_id(),
                    attempt: ctx.attempt(),
                })
            }
        })
}

/// Runs `worker` for `period` and returns the counts and the metrics.
async fn run_with_resources(
    worker: impl worker_core::IntoWorker,
    period: std::time::Duration,
) -> (Arc<Counts>, crate::common::Snapshot) {
    let counts = Arc::new(Counts::default());
    let metrics = Metrics::new();
    let host = metrics
        .build(host_with_resources(&counts).worker(worker))
        .unwrap();
    let stopped = run_for(host, period).await;
    stopped.result.unwrap();
    (counts, metrics.snapshot())
}

#[track_caller]
fn assert_one_per_attempt(counts: &Counts, attempts: u32) {
    assert_eq!(counts.created(), attempts, "one resource per attempt");
    assert_eq!(counts.dropped(), attempts, "every resource dropped");
    assert_eq!(
        counts.clean_starts.load(Ordering::SeqCst),
        attempts,
        "each attempt started after the previous resource was dropped"
    );
    assert_eq!(counts.mismatched.load(Ordering::SeqCst), 0);
}

#[worker(every = "10s")]
async fn succeeds(conn: Scoped<Resource>, counts: State<Arc<Counts>>, ctx: Ctx) {
    counts.check(&conn, &ctx);
}

#[tokio::test(start_paused = true)]
async fn dropped_after_a_success() {
    let (counts, snapshot) = run_with_resources(succeeds, ms(60_500)).await;
    assert_one_per_attempt(&counts, 7);
    assert_results(&snapshot, "succeeds", &[("success", 7)]);
}

#[worker(every = "1m", retry = 2, backoff = "1s")]
async fn fails(conn: Scoped<Resource>, counts: State<Arc<Counts>>, ctx: Ctx) -> anyhow::Result<()> {
    counts.check(&conn, &ctx);
    anyhow::bail!("query failed")
}

#[tokio::test(start_paused = true)]
async fn built_for_every_attempt_and_dropped_after_a_failure() {
    let (counts, snapshot) = run_with_resources(fails, ms(90_500)).await;
    // Two runs of three attempts each.
    assert_one_per_attempt(&counts, 6);
    assert_results(&snapshot, "fails", &[("failure", 2)]);
}

#[worker(every = "10s")]
async fn panics(conn: Scoped<Resource>, counts: State<Arc<Counts>>, ctx: Ctx) {
    counts.check(&conn, &ctx);
    panic!("the resource is held by a panicking body");
}

#[tokio::test(start_paused = true)]
async fn dropped_after_a_panic() {
    let (counts, snapshot) = run_with_resources(panics, ms(60_500)).await;
    assert_one_per_attempt(&counts, 7);
    assert_results(&snapshot, "panics", &[("panic", 7)]);
}

#[worker(every = "1m", retry = 1, timeout = "2s", backoff = "1s")]
async fn times_out(conn: Scoped<Resource>, counts: State<Arc<Counts>>, ctx: Ctx) {
    counts.check(&conn, &ctx);
    work(&ctx, secs(600)).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_after_a_timeout() {
    let (counts, snapshot) = run_with_resources(times_out, ms(90_500)).await;
    assert_one_per_attempt(&counts, 4);
    assert_results(&snapshot, "times_out", &[("timeout", 2)]);
}

#[worker(every = "1h")]
async fn cancelled(
    conn: Scoped<Resource>,
    counts: State<Arc<Counts>>,
    ctx: Ctx,
) -> Result<(), BoxError> {
    counts.check(&conn, &ctx);
    ctx.cancelled().await;
    Err("shutting down".into())
}

#[tokio::test(start_paused = true)]
async fn dropped_after_cancellation() {
    let (counts, snapshot) = run_with_resources(cancelled, ms(5_500)).await;
    assert_one_per_attempt(&counts, 1);
    assert_results(&snapshot, "cancelled", &[("cancelled", 1)]);
}

#[worker(every = "1h")]
async fn ignores_shutdown(conn: Scoped<Resource>, counts: State<Arc<Counts>>, ctx: Ctx) {
    counts.check(&conn, &ctx);
    tokio::time::sleep(std::time::Duration::from_hours(1)).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_when_the_run_is_aborted_at_the_shutdown_deadline() {
    let counts = Arc::new(Counts::default());
    let host = host_with_resources(&counts)
        .worker(ignores_shutdown)
        .shutdown_timeout(secs(1))
        .build()
        .unwrap();

    let stopped = run_for(host, ms(5_500)).await;

    assert!(stopped.result.unwrap_err().is_shutdown_timeout());
    // Let the runtime drop the aborted task.
    tokio::time::sleep(ms(1)).await;
    assert_one_per_attempt(&counts, 1);
}

#[worker(every = "1h")]
async fn takes_it_twice(a: Scoped<Resource>, b: Scoped<Resource>, counts: State<Arc<Counts>>) {
    assert!(Arc::ptr_eq(&a.0, &b.0), "one resource per attempt");
    counts.clean_starts.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn built_once_per_attempt_however_many_arguments_use_it() {
    let (counts, snapshot) = run_with_resources(takes_it_twice, ms(500)).await;
    assert_eq!(counts.created(), 1);
    assert_eq!(counts.dropped(), 1);
    assert_results(&snapshot, "takes_it_twice", &[("success", 1)]);
}

#[worker(every = "1h")]
async fn never_uses_it(_conn: Option<Scoped<Resource>>) {}

#[tokio::test(start_paused = true)]
async fn an_optional_resource_is_still_built_when_registered() {
    let (counts, _) = run_with_resources(never_uses_it, ms(500)).await;
    assert_eq!((counts.created(), counts.dropped()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_factory_error_fails_the_attempt_and_is_retried() {
    let attempts = Arc::new(AtomicU32::new(0));
    let factory_calls = Arc::new(AtomicU32::new(0));
    let calls = factory_calls.clone();
    let counted = attempts.clone();
    let worker = Worker::builder("flaky_factory")
        .every(secs(60))
        .retry(2)
        .backoff(ms(100))
        .handler(move |_conn: Scoped<String>| {
            let attempts = counted.clone();
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
            }
        });
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .scoped(move |ctx: Ctx| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if ctx.attempt() < 3 {
                            return Err(BoxError::from("pool exhausted"));
                        }
                        Ok(format!("conn for run {}", ctx.run_id()))
                    }
                })
                .worker(worker),
        )
        .unwrap();

    run_for(host, ms(30_500)).await.result.unwrap();

    assert_eq!(factory_calls.load(Ordering::SeqCst), 3);
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "the body ran once");
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "flaky_factory", &[("success", 1)]);
    assert_eq!(snapshot.retries("flaky_factory"), 2);
}
