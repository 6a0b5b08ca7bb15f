//! The schedule: exact tick counts over a simulated hour, `after`, a grid that does not drift
//! however long runs take, and the missed-tick policies (`skip`, `burst`, `delay`). Whatever the
//! policy, two runs of one worker never overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::{Metrics, Runs, assert_results, ms, run_for, secs, work};
use worker_core::{Ctx, Host, State, worker};

/// The grid `start, start + period, ...` up to and including `end`.
fn grid(start: Duration, period: Duration, end: Duration) -> Vec<Duration> {
    std::iter::successors(Some(start), |t| Some(*t + period))
        .take_while(|t| *t <= end)
        .collect()
}

/// Each run takes 3 s: a schedule that adds the period to the end of a run would drift.
#[worker(every = "10s")]
async fn every_ten(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    work(&ctx, secs(3)).await;
}

#[tokio::test(start_paused = true)]
async fn every_runs_361_times_an_hour_exactly_on_the_grid() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(every_ten))
        .unwrap();

    let stopped = run_for(host, ms(3_600_500)).await;

    stopped.result.unwrap();
    let expected = grid(secs(0), secs(10), secs(3600));
    assert_eq!(expected.len(), 361);
    assert_eq!(runs.starts(), expected, "runs start on the grid");
    assert_eq!(
        runs.scheduled(),
        expected,
        "ctx.scheduled_at() is on the grid"
    );
    assert_eq!(runs.max_active(), 1);
    let snapshot = metrics.snapshot();
    // The run at 3600 s is cut short by the shutdown at 3600.5 s, but its body returns `()`.
    assert_results(&snapshot, "every_ten", &[("success", 361)]);
    assert_eq!(snapshot.skipped("every_ten", "overlap"), 0);
    assert_eq!(snapshot.skipped("every_ten", "missed"), 0);
}

#[worker(every = "1m", after = "25s")]
async fn delayed(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
}

#[tokio::test(start_paused = true)]
async fn after_delays_the_first_run_and_anchors_the_grid() {
    let runs = Runs::new();
    let host = Host::builder()
        .state(runs.clone())
        .worker(delayed)
        .build()
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    // 25 s, 85 s, ..., 3565 s: nothing at 0 s, and the period counts from the first run.
    let expected = grid(secs(25), secs(60), secs(3600));
    assert_eq!(expected.len(), 60);
    assert_eq!(runs.starts(), expected);
    assert_eq!(runs.scheduled(), expected);
}

/// Takes exactly one period: the next tick is due the instant the run ends, and must run.
#[worker(every = "10s")]
async fn exactly_one_period(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    work(&ctx, secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_as_long_as_the_period_skips_nothing() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .worker(exactly_one_period),
        )
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    assert_eq!(runs.starts(), grid(secs(0), secs(10), secs(3600)));
    assert_eq!(runs.max_active(), 1);
    assert_eq!(
        metrics.snapshot().skipped("exactly_one_period", "overlap"),
        0
    );
}

/// Each run takes 25 s of a 10 s period.
#[worker(every = "10s", missed = skip)]
async fn slow_skip(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
    work(&ctx, secs(25)).await;
}

#[tokio::test(start_paused = true)]
async fn skip_drops_the_ticks_that_came_due_during_a_run_and_counts_them() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(slow_skip))
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    // A run from 0 to 25 s overlaps the ticks at 10 and 20 s; the next run is the tick at 30 s.
    let expected = grid(secs(0), secs(30), secs(3600));
    assert_eq!(expected.len(), 121);
    assert_eq!(runs.starts(), expected);
    assert_eq!(runs.scheduled(), expected, "still on the 10 s grid");
    assert_eq!(runs.max_active(), 1, "two runs of one worker overlapped");
    let snapshot = metrics.snapshot();
    // 361 ticks were due in [0, 3600]: 121 ran, every other one is counted.
    assert_eq!(snapshot.skipped("slow_skip", "overlap"), 361 - 121);
    assert_eq!(snapshot.skipped("slow_skip", "missed"), 0);
}

/// The first run takes 35 s, the others 1 s.
async fn long_then_short(runs: &Runs, count: &AtomicU32, ctx: &Ctx) {
    let _run = runs.enter(ctx);
    let first = count.fetch_add(1, Ordering::SeqCst) == 0;
    work(ctx, if first { secs(35) } else { secs(1) }).await;
}

#[worker(every = "10s", missed = burst)]
async fn bursty(runs: State<Arc<Runs>>, count: State<AtomicU32>, ctx: Ctx) {
    long_then_short(&runs, &count, &ctx).await;
}

#[tokio::test(start_paused = true)]
async fn burst_runs_every_missed_tick_back_to_back() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .state(AtomicU32::new(0))
                .worker(bursty),
        )
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    let entries = runs.entries();
    let first: Vec<(Duration, Duration)> = entries
        .iter()
        .take(5)
        .map(|e| (e.start, e.scheduled))
        .collect();
    // Ticks 10, 20 and 30 s came due during the first run; they run one after the other, then
    // the schedule is back on its grid at 40 s.
    assert_eq!(
        first,
        [
            (secs(0), secs(0)),
            (secs(35), secs(10)),
            (secs(36), secs(20)),
            (secs(37), secs(30)),
            (secs(40), secs(40)),
        ]
    );
    assert_eq!(runs.scheduled(), grid(secs(0), secs(10), secs(3600)));
    assert!(entries[4..].iter().all(|e| e.start == e.scheduled));
    assert_eq!(runs.max_active(), 1, "two runs of one worker overlapped");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("bursty", "overlap"), 0);
    assert_eq!(snapshot.skipped("bursty", "missed"), 0);
}

#[worker(every = "10s", missed = delay)]
async fn delaying(runs: State<Arc<Runs>>, count: State<AtomicU32>, ctx: Ctx) {
    long_then_short(&runs, &count, &ctx).await;
}

#[tokio::test(start_paused = true)]
async fn delay_runs_a_late_tick_at_once_and_shifts_the_grid() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .state(runs.clone())
                .state(AtomicU32::new(0))
                .worker(delaying),
        )
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    // The tick due at 10 s runs when the first run ends, at 35 s; the grid now counts from there.
    let mut expected = vec![secs(0)];
    expected.extend(grid(secs(35), secs(10), secs(3600)));
    assert_eq!(runs.starts(), expected);
    let entries = runs.entries();
    assert!(
        entries[2..].iter().all(|e| e.start == e.scheduled),
        "later runs are on the shifted grid"
    );
    assert_eq!(runs.max_active(), 1, "two runs of one worker overlapped");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("delaying", "overlap"), 0);
    assert_eq!(snapshot.skipped("delaying", "missed"), 0);
}

#[worker(every = "10s")]
async fn quick_skip(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
}

#[worker(every = "10s", missed = burst)]
async fn quick_burst(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
}

#[worker(every = "10s", missed = delay)]
async fn quick_delay(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
}

/// Runs `worker` (whose runs take no time) for 0.5 s, jumps the clock 35 s at once as if the
/// process had been suspended, goes on to 60.5 s, and returns the journal and the metrics.
async fn after_a_stall(
    worker: impl worker_core::IntoWorker,
) -> (Arc<Runs>, crate::common::Snapshot) {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(worker))
        .unwrap();
    let handle = host.handle();
    let host = tokio::spawn(host.run_until(std::future::pending()));
    tokio::time::sleep(ms(500)).await;
    tokio::time::advance(secs(35)).await;
    tokio::time::sleep(secs(25)).await;
    handle.shutdown();
    host.await.unwrap().unwrap();
    (runs, metrics.snapshot())
}

#[tokio::test(start_paused = true)]
async fn skip_runs_only_the_latest_tick_after_a_stall_and_counts_the_rest_as_missed() {
    let (runs, snapshot) = after_a_stall(quick_skip).await;

    let entries: Vec<(Duration, Duration)> = runs
        .entries()
        .iter()
        .map(|e| (e.start, e.scheduled))
        .collect();
    assert_eq!(
        entries,
        [
            (secs(0), secs(0)),
            (ms(35_500), secs(30)),
            (secs(40), secs(40)),
            (secs(50), secs(50)),
            (secs(60), secs(60)),
        ]
    );
    assert_eq!(snapshot.skipped("quick_skip", "missed"), 2);
    assert_eq!(snapshot.skipped("quick_skip", "overlap"), 0);
}

#[tokio::test(start_paused = true)]
async fn burst_runs_every_tick_missed_during_a_stall() {
    let (runs, snapshot) = after_a_stall(quick_burst).await;

    assert_eq!(runs.scheduled(), grid(secs(0), secs(10), secs(60)));
    assert_eq!(
        runs.starts(),
        [
            secs(0),
            ms(35_500),
            ms(35_500),
            ms(35_500),
            secs(40),
            secs(50),
            secs(60)
        ]
    );
    assert_eq!(snapshot.skipped("quick_burst", "missed"), 0);
}

#[tokio::test(start_paused = true)]
async fn delay_runs_once_after_a_stall_then_a_period_later() {
    let (runs, snapshot) = after_a_stall(quick_delay).await;

    // One run when the process wakes up, then one period later: runs stay a period apart.
    assert_eq!(runs.starts(), [secs(0), ms(35_500), ms(45_500), ms(55_500)]);
    assert_eq!(snapshot.skipped("quick_delay", "missed"), 0);
    assert_eq!(snapshot.skipped("quick_delay", "overlap"), 0);
}
