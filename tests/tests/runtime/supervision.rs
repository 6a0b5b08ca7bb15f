//! Supervision: panics counted as restarts, `restart_backoff` skipping triggers while it lasts,
//! restart intensity (`max_restarts` within `restart_window`) escalating with `stop_worker` or
//! `stop_host`, and a worker's `stop_budget` at shutdown.

use std::sync::Arc;

use crate::common::{Metrics, Runs, assert_results, ms, restarts, run_for, secs};
use tokio::time::Instant;
use worker_core::{BoxError, Ctx, Escalation, Host, Worker, WorkerBuilder};

/// Panics, as a worker body that hits a bug does.
fn bug(ctx: &Ctx) {
    panic!("{} hit a bug", ctx.worker());
}

/// A worker whose every run panics, journaled in `runs`.
fn panicking(builder: WorkerBuilder, runs: &Arc<Runs>) -> Worker {
    let runs = runs.clone();
    builder.handler(move |ctx: Ctx| {
        let runs = runs.clone();
        async move {
            let _run = runs.enter(&ctx);
            bug(&ctx);
        }
    })
}

/// A worker whose runs succeed at once, journaled in `runs`.
fn steady(name: &str, runs: &Arc<Runs>) -> Worker {
    let runs = runs.clone();
    Worker::builder(name)
        .every(secs(10))
        .handler(move |ctx: Ctx| {
            let runs = runs.clone();
            async move {
                let _run = runs.enter(&ctx);
            }
        })
}

#[tokio::test(start_paused = true)]
async fn every_panic_is_counted_as_a_restart_and_the_schedule_goes_on() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = panicking(Worker::builder("crashy").every(secs(10)), &runs);
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    assert_eq!(runs.starts(), [0, 10, 20, 30, 40, 50, 60].map(secs));
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "crashy", &[("panic", 7)]);
    assert_eq!(restarts(&snapshot, "crashy", "panic"), 7);
    assert_eq!(restarts(&snapshot, "crashy", "crash"), 0);
    assert_eq!(
        snapshot.skipped("crashy", "restarting"),
        0,
        "no restart backoff"
    );
    assert_eq!(snapshot.current_state("crashy"), "stopped");
}

#[tokio::test(start_paused = true)]
async fn restart_backoff_skips_triggers_and_doubles_with_each_panic_in_the_window() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = panicking(
        Worker::builder("crashy")
            .every(secs(10))
            .restart_backoff(secs(15)),
        &runs,
    );
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    // Panic at 0 s: triggers skipped for 15 s (10 s); at 20 s: for 30 s (30, 40 s); at 50 s:
    // for 60 s (60 s, ...).
    assert_eq!(runs.starts(), [0, 20, 50].map(secs));
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("crashy", "restarting"), 4);
    assert_eq!(restarts(&snapshot, "crashy", "panic"), 3);
    assert_results(&snapshot, "crashy", &[("panic", 3)]);
}

#[tokio::test(start_paused = true)]
async fn stop_worker_stops_only_the_worker_beyond_max_restarts_in_its_window() {
    let crashy = Runs::new();
    let spread = Runs::new();
    let others = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(panicking(
                    Worker::builder("crashy")
                        .every(secs(10))
                        .max_restarts(2)
                        .restart_window(secs(60))
                        .escalate(Escalation::StopWorker),
                    &crashy,
                ))
                // Also three panics 10 s apart, but never more than two within 15 s.
                .worker(panicking(
                    Worker::builder("spread_out")
                        .every(secs(10))
                        .max_restarts(2)
                        .restart_window(secs(15)),
                    &spread,
                ))
                .worker(steady("steady", &others)),
        )
        .unwrap();

    let stopped = run_for(host, ms(3_600_500)).await;

    stopped
        .result
        .expect("stop_worker does not stop the host: it stops cleanly");
    assert_eq!(
        crashy.starts(),
        [0, 10, 20].map(secs),
        "the third panic is one more than max_restarts: no run after it"
    );
    assert_eq!(spread.len(), 361, "within its window it never escalates");
    assert_eq!(others.len(), 361, "the other worker keeps running");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.current_state("crashy"), "failed");
    assert_eq!(restarts(&snapshot, "crashy", "panic"), 3);
    assert_results(&snapshot, "crashy", &[("panic", 3)]);
    let next = snapshot.gauge("worker_next_run_timestamp_seconds", &[("worker", "crashy")]);
    assert!(
        next.abs() < f64::EPSILON,
        "a failed worker has no next run: {next}"
    );
    assert_eq!(snapshot.current_state("spread_out"), "stopped");
    assert_eq!(restarts(&snapshot, "spread_out", "panic"), 361);
    assert_results(&snapshot, "steady", &[("success", 361)]);
}

#[tokio::test(start_paused = true)]
async fn stop_host_stops_the_host_by_itself_with_an_error_naming_the_worker() {
    let crashy = Runs::new();
    let others = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(panicking(
                    Worker::builder("crashy")
                        .every(secs(10))
                        .max_restarts(2)
                        .escalate(Escalation::StopHost),
                    &crashy,
                ))
                .worker(steady("steady", &others)),
        )
        .unwrap();
    let t0 = Instant::now();

    // Nobody asks the host to stop.
    let result = tokio::time::timeout(secs(3600), host.run_until(std::future::pending()))
        .await
        .expect("the host stopped by itself");

    assert_eq!(t0.elapsed(), secs(20), "right after the third panic");
    let err = result.expect_err("an escalation is an error, so main exits non-zero");
    assert!(err.is_escalation(), "{err}");
    assert!(!err.is_shutdown_timeout(), "{err}");
    assert_eq!(err.escalated(), ["crashy"]);
    assert!(err.to_string().contains("crashy"), "{err}");
    assert_eq!(crashy.starts(), [0, 10, 20].map(secs));
    assert!(
        others.len() >= 2,
        "the other worker ran until the host stopped"
    );
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.current_state("crashy"), "failed");
    assert_eq!(snapshot.current_state("steady"), "stopped");
    assert_eq!(restarts(&snapshot, "crashy", "panic"), 3);
}

#[tokio::test(start_paused = true)]
async fn stop_budget_aborts_a_worker_ignoring_cancellation_within_its_budget() {
    let metrics = Metrics::new();
    let stubborn = Worker::builder("stubborn")
        .every(secs(3600))
        .stop_budget(secs(1))
        .handler(|| async {
            // Never looks at its cancellation token.
            tokio::time::sleep(secs(3600)).await;
        });
    let polite = Worker::builder("polite")
        .every(secs(3600))
        .stop_budget(secs(1))
        .handler(|ctx: Ctx| async move {
            ctx.cancelled().await;
            Err::<(), BoxError>("cancelled".into())
        });
    let host = metrics
        .build(
            Host::builder()
                .worker(stubborn)
                .worker(polite)
                .shutdown_timeout(secs(30)),
        )
        .unwrap();

    let stopped = run_for(host, ms(5_500)).await;

    assert_eq!(stopped.took, secs(1), "the budget, not the host's 30 s");
    let err = stopped.result.expect_err("a worker was aborted");
    assert!(err.is_shutdown_timeout(), "{err}");
    assert_eq!(err.overran(), ["stubborn"], "{err}");
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "stubborn", &[("cancelled", 1)]);
    assert_results(&snapshot, "polite", &[("cancelled", 1)]);
    assert_eq!(snapshot.current_state("stubborn"), "stopped");
    assert_eq!(snapshot.current_state("polite"), "stopped");
}

#[tokio::test(start_paused = true)]
async fn restart_backoff_also_skips_a_trigger_kept_by_overlap_queue() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = {
        let runs = runs.clone();
        Worker::builder("queued")
            .every(secs(10))
            .overlap(worker_core::Overlap::Queue)
            .restart_backoff(secs(60))
            .handler(move |ctx: Ctx| {
                let runs = runs.clone();
                async move {
                    let _run = runs.enter(&ctx);
                    crate::common::work(&ctx, secs(15)).await;
                    bug(&ctx);
                }
            })
    };
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    // The tick at 10 s is kept while the first run goes on; the run panics at 15 s, so the kept
    // tick falls within the 60 s restart backoff like the ticks at 20 .. 60 s.
    assert_eq!(runs.starts(), [secs(0)]);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("queued", "restarting"), 6);
    assert_eq!(snapshot.skipped("queued", "overlap"), 0);
    assert_results(&snapshot, "queued", &[("panic", 1)]);
}
