//! Panics: a panicking run is caught, counted as `panic`, never retried, and the schedule goes
//! on; one worker's panics and failures do not disturb another worker's runs.

use std::sync::Arc;

use crate::common::{Metrics, Runs, Snapshot, assert_results, ms, restarts, run_for, secs};
use worker_core::testing::TestHost;
use worker_core::{BoxError, Ctx, Host, Outcome, State, Worker, worker};

#[worker(every = "10s", retry = 3)]
async fn always_panics(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    panic!("report template is missing");
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_caught_not_retried_and_the_schedule_goes_on() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(always_panics))
        .unwrap();

    let stopped = run_for(host, ms(60_500)).await;

    stopped.result.unwrap();
    // Every tick ran, each run made exactly one attempt although `retry = 3`.
    let all = runs.runs();
    assert_eq!(all.len(), 7);
    assert!(all.iter().all(|run| run.len() == 1 && run[0].attempt == 1));
    assert_eq!(
        runs.starts(),
        (0..=6).map(|k| secs(10 * k)).collect::<Vec<_>>()
    );
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "always_panics", &[("panic", 7)]);
    assert_eq!(snapshot.retries("always_panics"), 0);
    assert_eq!(snapshot.current_state("always_panics"), "stopped");
}

#[worker(every = "10s")]
async fn panics_once(runs: State<Arc<Runs>>, ctx: Ctx) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    let first = runs.len() == 1;
    if first {
        // A panic with a `String` payload, after an await point.
        tokio::task::yield_now().await;
        panic!("{} panicked on its first run", ctx.worker());
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn runs_after_a_panic_succeed() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(panics_once))
        .unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    assert_eq!(runs.len(), 7);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "panics_once", &[("panic", 1), ("success", 6)]);
    assert!(
        snapshot.gauge(
            "worker_last_success_timestamp_seconds",
            &[("worker", "panics_once")]
        ) > 0.0
    );
}

/// A worker declared in code whose attempts go to its own journal, so the test can tell workers
/// apart.
fn journaled(
    name: &str,
    runs: &Arc<Runs>,
    retry: u32,
    body: fn(&Ctx) -> Result<(), BoxError>,
) -> Worker {
    let runs = runs.clone();
    Worker::builder(name)
        .every(secs(10))
        .retry(retry)
        .backoff(ms(100))
        .handler(move |ctx: Ctx| {
            let runs = runs.clone();
            async move {
                let _run = runs.enter(&ctx);
                body(&ctx)
            }
        })
}

#[tokio::test(start_paused = true)]
async fn one_workers_panics_and_failures_do_not_affect_another() {
    let healthy = Runs::new();
    let panicking = Runs::new();
    let failing = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(journaled("panicking", &panicking, 2, |_| panic!("boom")))
                .worker(journaled("failing", &failing, 2, |_| {
                    Err("always fails".into())
                }))
                .worker(journaled("healthy", &healthy, 0, |_| Ok(()))),
        )
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    let grid: Vec<_> = (0..=360).map(|k| secs(10 * k)).collect();
    assert_eq!(
        healthy.starts(),
        grid,
        "the healthy worker kept its schedule"
    );
    assert_eq!(panicking.len(), 361);
    assert_eq!(failing.len(), 361 * 3);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "healthy", &[("success", 361)]);
    assert_results(&snapshot, "panicking", &[("panic", 361)]);
    assert_results(&snapshot, "failing", &[("failure", 361)]);
    assert_eq!(snapshot.retries("healthy"), 0);
    assert_eq!(snapshot.retries("panicking"), 0);
    assert_eq!(snapshot.retries("failing"), 361 * 2);
}

/// A value whose `Drop` panics, as a guard that finds its invariant broken does.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the lock guard found its file gone");
    }
}

#[worker(every = "10s", timeout = "1s")]
async fn overruns_holding_a_guard() {
    let _guard = PanicsOnDrop;
    tokio::time::sleep(secs(60)).await;
}

#[worker(every = "10s", stop_budget = "1s")]
async fn ignores_cancellation_holding_a_guard() {
    let _guard = PanicsOnDrop;
    tokio::time::sleep(secs(3600)).await;
}

/// A timed-out attempt's future is dropped as a run: a panic in a `Drop` it holds is the
/// attempt's panic, counted and logged; the worker's loop does not crash and the schedule goes
/// on.
#[tokio::test(start_paused = true)]
async fn a_panic_while_a_timed_out_run_is_dropped_is_the_run_s_and_never_crashes_its_worker() {
    let host = TestHost::start(Host::builder().worker(overruns_holding_a_guard)).unwrap();
    host.advance(ms(30_500)).await;

    let runs = host.runs("overruns_holding_a_guard");
    assert_eq!(runs.len(), 4, "every tick ran: {runs:?}");
    for run in &runs {
        assert_eq!(run.result, Outcome::Panic);
        let error = run.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(
                "the lock guard found its file gone (while dropped at its timeout of 1s)"
            ),
            "{error}"
        );
    }
    let snapshot = Snapshot::parse(&host.handle().render_metrics());
    assert_eq!(restarts(&snapshot, "overruns_holding_a_guard", "crash"), 0);
    assert_eq!(restarts(&snapshot, "overruns_holding_a_guard", "panic"), 4);
    host.stop().await.unwrap();
}

/// A run cut short at its stop budget is dropped as a run too: the panic of a `Drop` it holds
/// is logged, and the stop ends as it would have, reporting the overrun.
#[tokio::test(start_paused = true)]
async fn a_panic_while_a_run_is_dropped_at_its_stop_budget_does_not_change_the_stop() {
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().worker(ignores_cancellation_holding_a_guard))
        .unwrap();

    let stopped = run_for(host, ms(2_000)).await;

    let err = stopped.result.unwrap_err();
    assert_eq!(
        err.overran(),
        ["ignores_cancellation_holding_a_guard"],
        "{err}"
    );
    assert_eq!(
        stopped.took,
        secs(1),
        "the stop budget, not the host's deadline"
    );
    let snapshot = metrics.snapshot();
    assert_results(
        &snapshot,
        "ignores_cancellation_holding_a_guard",
        &[("cancelled", 1)],
    );
    assert_eq!(
        restarts(&snapshot, "ignores_cancellation_holding_a_guard", "crash"),
        0
    );
    assert_eq!(
        snapshot.current_state("ignores_cancellation_holding_a_guard"),
        "stopped"
    );
}
