//! Metrics, read from the page the host serves: every series of every worker exists at zero as
//! soon as the host is built, and after runs the counters, histograms and gauges say what
//! happened.
#![allow(
    clippy::float_cmp,
    reason = "gauges are set to exact values: 0, 1, and whole seconds of the paused clock"
)]

use std::collections::BTreeSet;

use crate::common::{
    Metrics, REASONS, RESULTS, STATES, Series, assert_results, ms, run_for, secs, work,
};
use worker_core::{
    BoxError, Ctx, Host, RUN_DURATION_BUCKETS, SCHEDULE_LAG_BUCKETS, Worker, worker,
};

#[worker(every = "10s")]
async fn alpha() {}

/// Every series the core registers for `worker`.
fn expected_series(worker: &str) -> Vec<Series> {
    let mut all = Vec::new();
    for result in RESULTS {
        let labels = [("worker", worker), ("result", result)];
        all.push(Series::new("worker_runs_total", &labels));
        all.push(Series::new("worker_run_duration_seconds", &labels));
    }
    for reason in REASONS {
        let labels = [("worker", worker), ("reason", reason)];
        all.push(Series::new("worker_runs_skipped_total", &labels));
    }
    for state in STATES {
        all.push(Series::new(
            "worker_state",
            &[("worker", worker), ("state", state)],
        ));
    }
    for reason in ["panic", "crash"] {
        let labels = [("worker", worker), ("reason", reason)];
        all.push(Series::new("worker_restarts_total", &labels));
    }
    for state in ["closed", "open", "half_open"] {
        let labels = [("worker", worker), ("state", state)];
        all.push(Series::new("worker_circuit_state", &labels));
    }
    for name in [
        "worker_run_retries_total",
        "worker_schedule_lag_seconds",
        "worker_run_active",
        "worker_last_success_timestamp_seconds",
        "worker_next_run_timestamp_seconds",
    ] {
        all.push(Series::new(name, &[("worker", worker)]));
    }
    all
}

#[test]
fn every_series_exists_at_zero_once_the_host_is_built() {
    let metrics = Metrics::new();
    let beta = Worker::builder("beta").every(secs(1)).handler(|| async {});
    let host = metrics
        .build(Host::builder().worker(alpha).worker(beta))
        .unwrap();
    let snapshot = metrics.snapshot();

    let mut expected: Vec<Series> = ["alpha", "beta"]
        .iter()
        .flat_map(|w| expected_series(w))
        .collect();
    expected.sort();
    let names: BTreeSet<&str> = expected.iter().map(|s| s.name.as_str()).collect();
    let actual: Vec<Series> = snapshot
        .series()
        .into_iter()
        .filter(|s| names.contains(s.name.as_str()))
        .collect();
    assert_eq!(actual, expected, "exactly these series and label sets");

    for worker in ["alpha", "beta"] {
        let w = ("worker", worker);
        for result in RESULTS {
            assert_eq!(snapshot.runs(worker, result), 0);
            let labels = [w, ("result", result)];
            let durations = snapshot.histogram("worker_run_duration_seconds", &labels);
            assert_eq!((durations.count, durations.sum), (0, 0.0));
            assert_eq!(durations.buckets.len(), RUN_DURATION_BUCKETS.len() + 1);
        }
        for reason in REASONS {
            assert_eq!(snapshot.skipped(worker, reason), 0);
        }
        assert_eq!(snapshot.retries(worker), 0);
        let lag = snapshot.histogram("worker_schedule_lag_seconds", &[w]);
        assert_eq!((lag.count, lag.sum), (0, 0.0));
        assert_eq!(lag.buckets.len(), SCHEDULE_LAG_BUCKETS.len() + 1);
        for gauge in [
            "worker_run_active",
            "worker_last_success_timestamp_seconds",
            "worker_next_run_timestamp_seconds",
        ] {
            assert_eq!(snapshot.gauge(gauge, &[w]), 0.0, "{gauge}");
        }
        for state in STATES {
            let on = if state == "starting" { 1.0 } else { 0.0 };
            assert_eq!(snapshot.state(worker, state), on, "{worker} {state}");
        }
    }
    for name in names {
        assert!(snapshot.is_described(name), "{name} has no help text");
    }
    drop(host);
}

#[worker(every = "10s")]
async fn ok() {}

#[worker(every = "10s", retry = 1, backoff = "1s")]
async fn flaky(ctx: Ctx) -> Result<(), BoxError> {
    if ctx.attempt() == 1 {
        return Err("first attempts fail".into());
    }
    Ok(())
}

#[worker(every = "10s", retry = 2, backoff = "100ms")]
async fn broken() -> anyhow::Result<()> {
    anyhow::bail!("always")
}

#[worker(every = "10s")]
async fn panicky() {
    panic!("always");
}

/// 25 s runs of a 10 s period; a run cut by shutdown ends as `cancelled`.
#[worker(every = "10s")]
async fn slow(ctx: Ctx) -> Result<(), BoxError> {
    if work(&ctx, secs(25)).await {
        return Err("interrupted".into());
    }
    Ok(())
}

#[worker(every = "10s", timeout = "1s")]
async fn sleepy(ctx: Ctx) {
    work(&ctx, secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn runs_retries_skips_durations_and_gauges_after_a_minute() {
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(ok)
                .worker(flaky)
                .worker(broken)
                .worker(panicky)
                .worker(slow)
                .worker(sleepy),
        )
        .unwrap();

    // Late enough after the tick at 60 s for `flaky`'s retry, early enough to cut `slow`'s run.
    run_for(host, secs(65)).await.result.unwrap();
    let snapshot = metrics.snapshot();

    assert_results(&snapshot, "ok", &[("success", 7)]);
    assert_results(&snapshot, "flaky", &[("success", 7)]);
    assert_results(&snapshot, "broken", &[("failure", 7)]);
    assert_results(&snapshot, "panicky", &[("panic", 7)]);
    assert_results(&snapshot, "slow", &[("success", 2), ("cancelled", 1)]);
    assert_results(&snapshot, "sleepy", &[("timeout", 7)]);

    assert_eq!(snapshot.retries("ok"), 0);
    assert_eq!(snapshot.retries("flaky"), 7);
    assert_eq!(snapshot.retries("broken"), 14);
    assert_eq!(snapshot.retries("panicky"), 0);
    // Ticks at 10, 20 s and 40, 50 s came due during runs.
    assert_eq!(snapshot.skipped("slow", "overlap"), 4);
    assert_eq!(snapshot.skipped("ok", "overlap"), 0);

    let durations = |worker: &str, result: &str| {
        snapshot.histogram(
            "worker_run_duration_seconds",
            &[("worker", worker), ("result", result)],
        )
    };
    // (count, sum in seconds) of each histogram.
    let sum_count = |h: crate::common::Histogram| (h.count, (h.sum * 1e6).round() / 1e6);
    assert_eq!(sum_count(durations("ok", "success")), (7, 0.0));
    assert_eq!(sum_count(durations("slow", "success")), (2, 50.0));
    assert_eq!(sum_count(durations("slow", "cancelled")), (1, 5.0));
    assert_eq!(sum_count(durations("sleepy", "timeout")), (7, 7.0));
    assert_eq!(durations("sleepy", "timeout").between(0.5, 1.0), 7);
    let retried = durations("flaky", "success");
    assert_eq!(retried.count, 7);
    // Each retried run waited a backoff of 0.5 to 1 s.
    assert_eq!(retried.between(0.25, 1.0), 7, "{retried:?}");
    assert!((3.5..=7.0).contains(&retried.sum), "{retried:?}");
    assert_eq!(durations("ok", "failure").count, 0);

    // Every run started on time; for `slow`, the runs that did start.
    let lag =
        |worker: &str| snapshot.histogram("worker_schedule_lag_seconds", &[("worker", worker)]);
    assert_eq!(sum_count(lag("ok")), (7, 0.0));
    assert_eq!(lag("ok").at_most(0.001), 7);
    assert_eq!(sum_count(lag("slow")), (3, 0.0));

    let last_success = |worker: &str| {
        snapshot.gauge(
            "worker_last_success_timestamp_seconds",
            &[("worker", worker)],
        )
    };
    assert!(last_success("ok") > 1_600_000_000.0, "a Unix time");
    // On tokio's clock: `ok` last succeeded at 60 s, `slow` at 55 s.
    assert!((last_success("ok") - last_success("slow") - 5.0).abs() < 1e-3);
    for worker in ["broken", "panicky", "sleepy"] {
        assert_eq!(last_success(worker), 0.0, "{worker} never succeeded");
    }

    for worker in ["ok", "flaky", "broken", "panicky", "slow", "sleepy"] {
        let w = [("worker", worker)];
        for state in STATES {
            let on = if state == "stopped" { 1.0 } else { 0.0 };
            assert_eq!(snapshot.state(worker, state), on, "{worker} {state}");
        }
        assert_eq!(snapshot.gauge("worker_run_active", &w), 0.0);
        assert_eq!(snapshot.gauge("worker_next_run_timestamp_seconds", &w), 0.0);
    }
}

/// Runs for 4 s of every 10.
#[worker(every = "10s")]
async fn busy(ctx: Ctx) {
    work(&ctx, secs(4)).await;
}

#[worker(every = "1h", retry = 1, backoff = "20s")]
async fn backing_off() -> Result<(), BoxError> {
    Err("down".into())
}

#[tokio::test(start_paused = true)]
async fn gauges_follow_the_worker_while_it_runs() {
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().worker(busy).worker(backing_off))
        .unwrap();
    let handle = host.handle();
    let host = tokio::spawn(host.run_until(std::future::pending()));

    tokio::time::sleep(ms(2_500)).await;
    let during = metrics.snapshot();
    tokio::time::sleep(secs(3)).await;
    let after = metrics.snapshot();
    handle.shutdown();
    host.await.unwrap().unwrap();

    // At 2.5 s: `busy` is in its first run, `backing_off` waits for its retry.
    assert_eq!(
        during.gauge("worker_run_active", &[("worker", "busy")]),
        1.0
    );
    assert_eq!(during.state("busy", "running"), 1.0);
    assert_eq!(during.state("busy", "idle"), 0.0);
    assert_eq!(during.state("backing_off", "backoff"), 1.0);
    assert_eq!(during.state("backing_off", "running"), 0.0);
    assert_eq!(
        during.gauge("worker_run_active", &[("worker", "backing_off")]),
        1.0,
        "a run waiting for its retry is still active"
    );
    // At 5.5 s: `busy` finished at 4 s and waits for 10 s.
    let w = [("worker", "busy")];
    assert_eq!(after.gauge("worker_run_active", &w), 0.0);
    assert_eq!(after.state("busy", "idle"), 1.0);
    assert_eq!(after.state("busy", "running"), 0.0);
    // During the first run, the next run is the tick at 10 s; the first success was at 4 s.
    let next = during.gauge("worker_next_run_timestamp_seconds", &w);
    let last = after.gauge("worker_last_success_timestamp_seconds", &w);
    assert!((next - last - 6.0).abs() < 1e-3, "next {next}, last {last}");
}
