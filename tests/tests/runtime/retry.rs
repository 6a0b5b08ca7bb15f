//! Retries and timeouts: `retry = N` makes at most N + 1 attempts of one run, `ctx.attempt()`
//! counts them, the delays between attempts double within their bounds up to `backoff_max`, a
//! success stops retrying, and `timeout` cuts each attempt (not the whole run).

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Entry, Metrics, Runs, assert_results, ms, run_for, secs, work};
use worker_core::{BoxError, Ctx, Host, State, Worker, worker};

/// Checks the delay between the attempts of every run: the delay before retry `n` is within
/// `[nominal / 2, nominal]`, `nominal = backoff * 2^(n - 1)` capped at `max`. Attempt bodies
/// must take `took` each.
#[track_caller]
fn assert_backoff(run: &[Entry], took: Duration, backoff: Duration, max: Duration) {
    for (n, pair) in (1_u32..).zip(run.windows(2)) {
        let nominal = backoff.saturating_mul(2_u32.pow(n - 1)).min(max);
        let delay = pair[1]
            .start
            .checked_sub(pair[0].start + took)
            .expect("an attempt started before the previous one ended");
        assert!(
            delay >= nominal / 2 && delay <= nominal,
            "retry {n}: waited {delay:?}, expected within [{:?}, {nominal:?}]; run: {run:?}",
            nominal / 2
        );
    }
}

/// Checks that each run has `attempts` attempts, numbered from 1, sharing the run's id, all
/// scheduled when the run was.
#[track_caller]
fn assert_attempts(runs: &[Vec<Entry>], attempts: u32) {
    for run in runs {
        let numbers: Vec<u32> = run.iter().map(|e| e.attempt).collect();
        assert_eq!(numbers, (1..=attempts).collect::<Vec<_>>(), "{run:?}");
        assert!(
            run.iter()
                .all(|e| e.run_id == run[0].run_id && e.scheduled == run[0].scheduled)
        );
    }
}

#[worker(every = "1m", retry = 3)]
async fn always_fails(runs: State<Arc<Runs>>, ctx: Ctx) -> anyhow::Result<()> {
    let _run = runs.enter(&ctx);
    anyhow::bail!("upstream is down")
}

#[tokio::test(start_paused = true)]
async fn retry_3_makes_4_attempts_with_doubling_backoff() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(always_fails))
        .unwrap();

    // Stop between runs, so that every run has finished.
    run_for(host, ms(3_590_500)).await.result.unwrap();

    let all = runs.runs();
    assert_eq!(all.len(), 60, "one run a minute, 0 s to 3540 s");
    assert_attempts(&all, 4);
    let mut ids: Vec<u64> = all.iter().map(|run| run[0].run_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 60, "every run has its own id");
    // Defaults: 1 s, doubling, at most 60 s. 60 runs draw 180 random delays.
    for run in &all {
        assert_backoff(run, Duration::ZERO, secs(1), secs(60));
    }
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "always_fails", &[("failure", 60)]);
    assert_eq!(snapshot.retries("always_fails"), 60 * 3);
}

/// Fails for 2 s, five times: nominal delays 10, 20, 25, 25, 25 s.
#[worker(every = "10m", retry = 5, backoff = "10s", backoff_max = "25s")]
async fn capped(runs: State<Arc<Runs>>, ctx: Ctx) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    work(&ctx, secs(2)).await;
    Err("still down".into())
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_up_to_backoff_max() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(capped))
        .unwrap();

    run_for(host, ms(3_590_500)).await.result.unwrap();

    let all = runs.runs();
    assert_eq!(all.len(), 6);
    assert_attempts(&all, 6);
    for run in &all {
        assert_backoff(run, secs(2), secs(10), secs(25));
    }
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "capped", &[("failure", 6)]);
    assert_eq!(snapshot.retries("capped"), 6 * 5);
}

#[worker(every = "1m", retry = 5)]
async fn third_time_lucky(runs: State<Arc<Runs>>, ctx: Ctx) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    if ctx.attempt() < 3 {
        return Err(format!("attempt {} failed", ctx.attempt()).into());
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_success_stops_the_retries() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(third_time_lucky))
        .unwrap();

    run_for(host, ms(150_500)).await.result.unwrap();

    let all = runs.runs();
    assert_eq!(all.len(), 3);
    assert_attempts(&all, 3);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "third_time_lucky", &[("success", 3)]);
    assert_eq!(snapshot.retries("third_time_lucky"), 3 * 2);
}

#[tokio::test(start_paused = true)]
async fn no_retry_means_one_attempt() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let journal = runs.clone();
    let once = Worker::builder("once")
        .every(secs(10))
        .handler(move |ctx: Ctx| {
            let runs = journal.clone();
            async move {
                let _run = runs.enter(&ctx);
                Err::<(), _>(BoxError::from("nope"))
            }
        });
    let host = metrics.build(Host::builder().worker(once)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    assert_attempts(&runs.runs(), 1);
    assert_eq!(runs.len(), 7);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "once", &[("failure", 7)]);
    assert_eq!(snapshot.retries("once"), 0);
}

/// Never finishes within its 2 s timeout.
#[worker(every = "1h", retry = 2, timeout = "2s")]
async fn hangs(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    work(&ctx, secs(600)).await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_and_the_run_ends_as_timeout() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(hangs))
        .unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    let all = runs.runs();
    assert_eq!(all.len(), 1);
    assert_attempts(&all, 3);
    // Each attempt is cut at exactly 2 s, then waits its backoff.
    assert_backoff(&all[0], secs(2), secs(1), secs(60));
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "hangs", &[("timeout", 1)]);
    assert_eq!(snapshot.retries("hangs"), 2);
    let durations = snapshot.histogram(
        "worker_run_duration_seconds",
        &[("worker", "hangs"), ("result", "timeout")],
    );
    assert_eq!(durations.count, 1);
    assert!((6.0..=9.0).contains(&durations.sum), "{durations:?}");
}

/// Times out on the first attempt, then succeeds quickly.
#[worker(every = "1h", retry = 1, timeout = "2s")]
async fn slow_then_fast(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    if ctx.attempt() == 1 {
        work(&ctx, secs(600)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_timeout_can_succeed() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(slow_then_fast))
        .unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    assert_attempts(&runs.runs(), 2);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "slow_then_fast", &[("success", 1)]);
    assert_eq!(snapshot.retries("slow_then_fast"), 1);
}

/// Each attempt takes 1.5 s, under the 2 s timeout, though the run takes far longer.
#[worker(every = "1h", retry = 3, timeout = "2s", backoff = "1s")]
async fn slow_failures(runs: State<Arc<Runs>>, ctx: Ctx) -> Result<(), BoxError> {
    let _run = runs.enter(&ctx);
    work(&ctx, ms(1500)).await;
    Err("failed slowly".into())
}

#[tokio::test(start_paused = true)]
async fn the_timeout_applies_to_each_attempt_not_to_the_run() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(slow_failures))
        .unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    assert_attempts(&runs.runs(), 4);
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "slow_failures", &[("failure", 1)]);
}
