//! Overlap policies, declared with the builder: `skip` (the default) drops a tick that finds the
//! previous run going and counts it as `overlap`; `queue` keeps one such tick and runs it the
//! moment the run ends; `allow(n)` runs up to `n` at once. With `missed = burst`, a tick that
//! finds no free run slot waits for one instead of being skipped.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Metrics, Runs, assert_results, ms, run_for, secs, work};
use worker_core::{Ctx, Host, Missed, Overlap, Worker, WorkerBuilder};

/// A worker that journals its runs in `runs`; run `n` (from 0) takes `takes(n)`.
fn journaled(builder: WorkerBuilder, runs: &Arc<Runs>, takes: fn(usize) -> Duration) -> Worker {
    let runs = runs.clone();
    builder.handler(move |ctx: Ctx| {
        let runs = runs.clone();
        async move {
            let n = runs.len();
            let _run = runs.enter(&ctx);
            work(&ctx, takes(n)).await;
        }
    })
}

/// The first run takes 35 s, the others 1 s.
fn first_long(n: usize) -> Duration {
    if n == 0 { secs(35) } else { secs(1) }
}

#[tokio::test(start_paused = true)]
async fn skip_is_the_default_and_counts_each_tick_it_drops() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = journaled(Worker::builder("single").every(secs(10)), &runs, first_long);
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    // The ticks at 10, 20 and 30 s came due during the first run.
    assert_eq!(runs.starts(), [0, 40, 50, 60].map(secs));
    assert_eq!(runs.scheduled(), runs.starts());
    assert_eq!(runs.max_active(), 1);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("single", "overlap"), 3);
    assert_eq!(snapshot.skipped("single", "missed"), 0);
    assert_results(&snapshot, "single", &[("success", 4)]);
}

#[tokio::test(start_paused = true)]
async fn queue_runs_one_kept_tick_as_soon_as_the_run_ends_and_skips_the_rest() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = journaled(
        Worker::builder("queued")
            .every(secs(10))
            .overlap(Overlap::Queue),
        &runs,
        first_long,
    );
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    // The tick at 10 s is kept and starts at 35 s, when the first run ends; those at 20 and
    // 30 s find it already kept and are skipped. The grid goes on at 40 s.
    let entries: Vec<(Duration, Duration)> = runs
        .entries()
        .iter()
        .map(|e| (e.start, e.scheduled))
        .collect();
    assert_eq!(
        entries,
        [(0, 0), (35, 10), (40, 40), (50, 50), (60, 60)].map(|(a, b)| (secs(a), secs(b)))
    );
    assert_eq!(runs.max_active(), 1, "a kept tick waits for the run to end");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("queued", "overlap"), 2);
    assert_eq!(snapshot.skipped("queued", "shutting_down"), 0);
    assert_results(&snapshot, "queued", &[("success", 5)]);
}

#[tokio::test(start_paused = true)]
async fn a_kept_tick_that_never_ran_is_counted_as_shutting_down() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = journaled(
        Worker::builder("queued")
            .every(secs(10))
            .overlap(Overlap::Queue),
        &runs,
        first_long,
    );
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    // The tick at 10 s is kept for the end of the first run; the host stops at 15 s.
    run_for(host, secs(15)).await.result.unwrap();

    let snapshot = metrics.snapshot();
    assert_eq!(runs.starts(), [secs(0)]);
    assert_eq!(snapshot.skipped("queued", "shutting_down"), 1);
    // The first run sees the cancellation and returns `()`: a success.
    assert_results(&snapshot, "queued", &[("success", 1)]);
}

#[tokio::test(start_paused = true)]
async fn allow_n_runs_up_to_n_at_once_and_skips_ticks_beyond() {
    const TAKES: Duration = secs(35);
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = journaled(
        Worker::builder("parallel")
            .every(secs(10))
            .overlap(Overlap::Allow(3)),
        &runs,
        |_| TAKES,
    );
    let host = metrics.build(Host::builder().worker(worker)).unwrap();

    // The runs still going at 3600.5 s are cut short (their bodies return `()`).
    run_for(host, ms(3_600_500)).await.result.unwrap();

    assert_eq!(runs.max_active(), 3, "up to three runs at once, never more");
    let starts = runs.starts();
    assert_eq!(runs.scheduled(), starts, "every run starts on its tick");
    // Replay the grid: a tick runs exactly when fewer than three runs are going.
    let going = |t: Duration| starts.iter().filter(|&&s| s < t && t < s + TAKES).count();
    let mut skipped = 0;
    for tick in (0..=360).map(|k| secs(10 * k)) {
        let ran = starts.contains(&tick);
        assert_eq!(
            ran,
            going(tick) < 3,
            "tick {tick:?}: {} runs going",
            going(tick)
        );
        skipped += u64::from(!ran);
    }
    assert!(skipped > 0, "35 s runs every 10 s need four slots");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("parallel", "overlap"), skipped);
    assert_eq!(
        snapshot.skipped("parallel", "overlap") + starts.len() as u64,
        361
    );
    assert_results(&snapshot, "parallel", &[("success", starts.len() as u64)]);
}

/// The first two runs take 35 s, the others 1 s.
fn two_long(n: usize) -> Duration {
    if n < 2 { secs(35) } else { secs(1) }
}

#[tokio::test(start_paused = true)]
async fn with_allow_n_burst_waits_for_a_free_slot_where_skip_drops_the_tick() {
    let bursting = Runs::new();
    let skipping = Runs::new();
    let metrics = Metrics::new();
    let every = |name| {
        Worker::builder(name)
            .every(secs(10))
            .overlap(Overlap::Allow(2))
    };
    let host = metrics
        .build(
            Host::builder()
                .worker(journaled(
                    every("bursting").missed(Missed::Burst),
                    &bursting,
                    two_long,
                ))
                .worker(journaled(every("skipping"), &skipping, two_long)),
        )
        .unwrap();

    run_for(host, ms(60_500)).await.result.unwrap();

    // Both slots are busy from 10 to 35 s. Burst runs the ticks of 20 and 30 s when slots free
    // up (35 s, then 36 s when that run ends); skip drops them.
    let entries: Vec<(Duration, Duration)> = bursting
        .entries()
        .iter()
        .map(|e| (e.start, e.scheduled))
        .collect();
    assert_eq!(
        entries,
        [
            (0, 0),
            (10, 10),
            (35, 20),
            (36, 30),
            (40, 40),
            (50, 50),
            (60, 60)
        ]
        .map(|(a, b)| (secs(a), secs(b)))
    );
    assert_eq!(skipping.starts(), [0, 10, 40, 50, 60].map(secs));
    assert_eq!(bursting.max_active(), 2);
    assert_eq!(skipping.max_active(), 2);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("bursting", "overlap"), 0);
    assert_eq!(snapshot.skipped("bursting", "missed"), 0);
    assert_eq!(snapshot.skipped("skipping", "overlap"), 2);
}
