//! Shutdown: the body sees the cancellation (`ctx.cancelled()`, `ctx.is_cancelled()`, the token),
//! the run ends as `cancelled`, no new run starts, and `run_until` returns `Ok` after a clean
//! stop; a worker that ignores cancellation is aborted at the shutdown deadline and named in the
//! error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Metrics, Runs, assert_results, ms, run_for, secs, work};
use worker_core::{BoxError, Ctx, Host, HostBuilder, State, worker};

/// When bodies saw the cancellation, as time since the test started.
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<Duration>>);

impl Seen {
    fn record(&self, runs: &Runs) {
        self.0.lock().unwrap().push(runs.now());
    }

    fn times(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

#[worker(every = "1h")]
async fn waits_for_shutdown(
    runs: State<Arc<Runs>>,
    seen: State<Arc<Seen>>,
    ctx: Ctx,
) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    ctx.cancelled().await;
    seen.record(&runs);
    Err("interrupted by shutdown".into())
}

#[tokio::test(start_paused = true)]
async fn the_body_sees_ctx_cancelled_and_the_run_ends_as_cancelled() {
    let runs = Runs::new();
    let seen = Arc::new(Seen::default());
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .state(seen.clone())
                .worker(waits_for_shutdown),
        )
        .unwrap();

    let stopped = run_for(host, ms(10_500)).await;

    stopped.result.unwrap();
    assert_eq!(stopped.took, Duration::ZERO, "the run stopped at once");
    assert_eq!(seen.times(), [ms(10_500)], "seen when shutdown was asked");
    assert_eq!(runs.len(), 1);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "waits_for_shutdown", &[("cancelled", 1)]);
    assert_eq!(snapshot.current_state("waits_for_shutdown"), "stopped");
}

/// Works in units of 1 s and checks `is_cancelled` between them.
#[worker(every = "1h")]
async fn polls_its_token(
    runs: State<Arc<Runs>>,
    units: State<Arc<AtomicU32>>,
    ctx: Ctx,
) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    loop {
        if ctx.is_cancelled() {
            return Err("stopped half-way".into());
        }
        tokio::time::sleep(secs(1)).await;
        units.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn the_body_sees_is_cancelled_and_shutdown_waits_for_the_unit_in_progress() {
    let runs = Runs::new();
    let units = Arc::new(AtomicU32::new(0));
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .state(units.clone())
                .worker(polls_its_token),
        )
        .unwrap();

    let stopped = run_for(host, ms(10_500)).await;

    stopped.result.unwrap();
    // Ten units before shutdown, then the eleventh, in progress at 10.5 s, is finished.
    assert_eq!(units.load(Ordering::SeqCst), 11);
    assert_eq!(stopped.took, ms(500));
    assert_results(&metrics.snapshot(), "polls_its_token", &[("cancelled", 1)]);
}

#[worker(every = "1h")]
async fn hands_its_token_to_a_task(seen: State<Arc<Seen>>, runs: State<Arc<Runs>>, ctx: Ctx) {
    let token = ctx.cancellation_token().clone();
    let child = tokio::spawn(async move { token.cancelled_owned().await });
    child.await.unwrap();
    seen.record(&runs);
}

#[tokio::test(start_paused = true)]
async fn the_cancellation_token_reaches_child_tasks() {
    let runs = Runs::new();
    let seen = Arc::new(Seen::default());
    let host = Host::builder()
        .state(runs.clone())
        .state(seen.clone())
        .worker(hands_its_token_to_a_task)
        .build()
        .unwrap();

    let stopped = run_for(host, ms(5_500)).await;

    stopped.result.unwrap();
    assert_eq!(seen.times(), [ms(5_500)]);
}

#[worker(every = "1h", retry = 3, backoff = "10s")]
async fn fails_then_backs_off(runs: State<Arc<Runs>>, ctx: Ctx) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    Err("down".into())
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_backoff_ends_the_run_at_once_as_cancelled() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .worker(fails_then_backs_off),
        )
        .unwrap();

    // The first retry is due between 5 and 10 s.
    let stopped = run_for(host, ms(3_000)).await;

    stopped.result.unwrap();
    assert_eq!(stopped.took, Duration::ZERO, "did not wait out the backoff");
    assert_eq!(runs.len(), 1, "no retry after shutdown");
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "fails_then_backs_off", &[("cancelled", 1)]);
    assert_eq!(
        snapshot.retries("fails_then_backs_off"),
        0,
        "a retry is counted when its attempt starts; this one never did"
    );
}

/// Ignores cancellation for 5 s of a 1 s period.
#[worker(every = "1s")]
async fn finishes_its_run(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    tokio::time::sleep(secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn no_run_starts_after_shutdown_even_when_ticks_are_due() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(finishes_its_run))
        .unwrap();

    let stopped = run_for(host, ms(2_500)).await;

    stopped.result.unwrap();
    assert_eq!(stopped.took, ms(2_500), "waited for the run in progress");
    assert_eq!(
        runs.len(),
        1,
        "ticks due at the end of the run did not start"
    );
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "finishes_its_run", &[("success", 1)]);
    // The ticks that came due during the run before shutdown (1 s and 2 s) are accounted for;
    // ticks after shutdown was requested are not triggers any more.
    assert_eq!(snapshot.skipped("finishes_its_run", "overlap"), 2);
}

#[worker(every = "1h")]
async fn stubborn(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    tokio::time::sleep(Duration::from_hours(1)).await;
}

#[worker(every = "1s")]
async fn polite(ctx: Ctx) -> Result<(), BoxError> {
    if work(&ctx, secs(10)).await {
        return Err("interrupted".into());
    }
    Ok(())
}

#[worker(every = "1h")]
async fn idle() {}

#[tokio::test(start_paused = true)]
async fn a_worker_ignoring_cancellation_is_aborted_at_the_deadline_and_named() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .worker(stubborn)
                .worker(polite)
                .worker(idle)
                .shutdown_timeout(secs(2)),
        )
        .unwrap();

    let stopped = run_for(host, ms(10_500)).await;

    let err = stopped.result.unwrap_err();
    assert!(err.is_shutdown_timeout(), "{err}");
    assert_eq!(err.overran(), ["stubborn"]);
    let message = err.to_string();
    assert!(
        message.contains("stubborn") && message.contains("2s"),
        "{message}"
    );
    assert!(!message.contains("polite") && !message.contains("idle"));
    assert_eq!(stopped.took, secs(2), "shutdown honours its deadline");

    // Let the runtime drop the aborted task.
    tokio::time::sleep(ms(1)).await;
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "polite", &[("success", 1), ("cancelled", 1)]);
    // The aborted run is not lost: it is counted, and the worker is shown as stopped.
    assert_results(&snapshot, "stubborn", &[("cancelled", 1)]);
    for worker in ["stubborn", "polite", "idle"] {
        assert_eq!(snapshot.current_state(worker), "stopped", "{worker}");
        let active = snapshot.gauge("worker_run_active", &[("worker", worker)]);
        assert!(
            active.abs() < f64::EPSILON,
            "{worker}: {active} runs active"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_shutdown_deadline_is_30_seconds() {
    let runs = Runs::new();
    let host = Host::builder()
        .state(runs.clone())
        .worker(stubborn)
        .build()
        .unwrap();

    let stopped = run_for(host, ms(500)).await;

    let err = stopped.result.unwrap_err();
    assert!(err.is_shutdown_timeout());
    assert_eq!(err.overran(), ["stubborn"]);
    assert_eq!(stopped.took, HostBuilder::DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(HostBuilder::DEFAULT_SHUTDOWN_TIMEOUT, secs(30));
}
