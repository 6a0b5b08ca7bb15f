//! The circuit breaker through a host, transition by transition: closed → open at the failure
//! ratio once the minimum throughput is reached, triggers skipped while open (`circuit_open`),
//! open → half-open after the break with a single probe, half-open → open when the probe fails
//! and → closed when it succeeds; `worker_circuit_state{state}` follows every transition.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Metrics, Runs, assert_results, circuit, ms, run_for, secs, sleep_until, work};
use tokio::time::Instant;
use worker_core::{BoxError, Ctx, Host, Overlap, Worker, WorkerBuilder};

/// A worker with a breaker: opens at half of at least 4 runs failed within a minute, for 30 s.
fn guarded(name: &str) -> WorkerBuilder {
    Worker::builder(name)
        .every(secs(10))
        .circuit_failure_ratio(0.5)
        .circuit_min_throughput(4)
        .circuit_window(secs(60))
        .circuit_break(secs(30))
}

/// Run `n` (from 0) takes `takes` and succeeds when `ok`.
fn scripted(
    builder: WorkerBuilder,
    runs: &Arc<Runs>,
    script: fn(usize) -> (Duration, bool),
) -> Worker {
    let runs = runs.clone();
    builder.handler(move |ctx: Ctx| {
        let runs = runs.clone();
        async move {
            let n = runs.len();
            let _run = runs.enter(&ctx);
            let (takes, ok) = script(n);
            work(&ctx, takes).await;
            if ok {
                Ok(())
            } else {
                Err::<(), BoxError>("upstream is down".into())
            }
        }
    })
}

const CLOSED: (f64, f64, f64) = (1.0, 0.0, 0.0);
const OPEN: (f64, f64, f64) = (0.0, 1.0, 0.0);
const HALF_OPEN: (f64, f64, f64) = (0.0, 0.0, 1.0);

#[tokio::test(start_paused = true)]
async fn every_transition_of_the_circuit_breaker() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    // Up to three runs at once, so ticks do come while a probe is out.
    let worker = scripted(guarded("guarded").overlap(Overlap::Allow(3)), &runs, |n| {
        match n {
            // failure, success, failure, success: the fourth run reaches 2 of 4.
            0..4 => (Duration::ZERO, n % 2 == 1),
            // The probes take 25 s: the first fails, the second succeeds.
            4 => (secs(25), false),
            5 => (secs(25), true),
            _ => (Duration::ZERO, true),
        }
    });
    let t0 = Instant::now();
    let host =
        crate::common::Running::start(metrics.build(Host::builder().worker(worker)).unwrap());
    let name = "guarded";

    // 0, 10, 20 s: two failures of three runs, below the minimum throughput: still closed.
    sleep_until(t0, secs(25)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), CLOSED);
    assert_results(&phase, name, &[("failure", 2), ("success", 1)]);

    // 30 s: 2 of 4 failed: open.
    sleep_until(t0, secs(35)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), OPEN, "opened at the ratio");
    assert_results(&phase, name, &[("failure", 2), ("success", 2)]);

    // 40, 50 s: skipped while open.
    sleep_until(t0, secs(55)).await;
    let phase = metrics.snapshot();
    assert_eq!(phase.skipped(name, "circuit_open"), 2);
    assert_results(&phase, name, &[("failure", 2), ("success", 2)]);

    // 60 s: the break is over: half-open, and the tick runs as the probe.
    sleep_until(t0, secs(65)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), HALF_OPEN);
    assert_eq!(phase.skipped(name, "circuit_open"), 2);

    // 70, 80 s: the probe is out, so these are skipped although a slot is free; at 85 s the
    // probe fails: open again.
    sleep_until(t0, secs(88)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), OPEN, "a failed probe opens again");
    assert_eq!(phase.skipped(name, "circuit_open"), 4);
    assert_results(&phase, name, &[("failure", 3), ("success", 2)]);

    // 90, 100, 110 s: open (since 85 s); 120 s: the second probe.
    sleep_until(t0, secs(125)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), HALF_OPEN);
    assert_eq!(phase.skipped(name, "circuit_open"), 7);

    // 130, 140 s: the probe is out; at 145 s it succeeds: closed.
    sleep_until(t0, secs(148)).await;
    let phase = metrics.snapshot();
    assert_eq!(circuit(&phase, name), CLOSED, "a successful probe closes");
    assert_eq!(phase.skipped(name, "circuit_open"), 9);
    assert_results(&phase, name, &[("failure", 3), ("success", 3)]);

    // 150 .. 200 s: every tick runs again.
    sleep_until(t0, ms(200_500)).await;
    let stopped = host.stop().await;
    stopped.result.unwrap();
    let phase = metrics.snapshot();
    assert_eq!(phase.skipped(name, "circuit_open"), 9, "none after closing");
    assert_results(&phase, name, &[("failure", 3), ("success", 9)]);

    assert_eq!(
        runs.starts(),
        [0, 10, 20, 30, 60, 120, 150, 160, 170, 180, 190, 200].map(secs)
    );
    assert_eq!(runs.scheduled(), runs.starts());
    assert_eq!(
        runs.max_active(),
        1,
        "one probe at a time; no other run meanwhile"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_ratio_below_the_threshold_never_opens_the_circuit() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    // Every third run fails: at most 3 of the 7 runs in a minute, and 1 of the first 4.
    let worker = scripted(guarded("flaky"), &runs, |n| (Duration::ZERO, n % 3 != 2));
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(600_500)).await.result.unwrap();

    assert_eq!(runs.len(), 61, "every tick ran");
    let snapshot = metrics.snapshot();
    assert_eq!(circuit(&snapshot, "flaky"), CLOSED);
    assert_eq!(snapshot.skipped("flaky", "circuit_open"), 0);
    assert_results(&snapshot, "flaky", &[("failure", 20), ("success", 41)]);
}
