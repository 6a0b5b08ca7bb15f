//! trybuild runs rustc, not clippy: this file is where `cargo clippy --workspace --all-targets
//! -- -D warnings` sees the expansion of `#[worker]`, with every key and every kind of argument,
//! and proves it clean under `clippy::pedantic`.
#![deny(warnings, clippy::pedantic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use worker_core::{
    BackoffKind, BoxError, Ctx, Escalation, FromScope, Host, IntoWorker, Missed, Overlap, Scope,
    Scoped, State, Worker, worker,
};

/// Shared state.
#[derive(Debug, Default)]
pub struct Orders {
    shipped: AtomicU64,
}

/// A scoped resource.
#[derive(Debug)]
pub struct Conn {
    run_id: u64,
}

/// A user-written extractor.
#[derive(Debug)]
pub struct Attempt(u32);

impl FromScope for Attempt {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        Ok(Attempt(scope.ctx().attempt()))
    }
}

/// Every key that goes with `every`, a `Result` return and every kind of extractor.
#[worker(
    every = "10s",
    after = "1s",
    jitter = "2s",
    missed = burst,
    overlap = allow(2),
    enabled = true,
    retry = 3,
    backoff_kind = linear,
    backoff = "250ms",
    backoff_max = "5s",
    timeout = "30s",
    circuit_failure_ratio = 0.5,
    circuit_min_throughput = 10,
    circuit_window = "1m",
    circuit_break = "30s",
    restart_backoff = "1s",
    max_restarts = 5,
    restart_window = "1m",
    escalate = stop_host,
    stop_budget = "10s",
    name = "sync-orders"
)]
pub async fn sync_orders(
    orders: State<Orders>,
    Scoped(conn): Scoped<Conn>,
    maybe: Option<State<String>>,
    Attempt(attempt): Attempt,
    ctx: Ctx,
) -> anyhow::Result<()> {
    if ctx.is_cancelled() || maybe.is_some() {
        anyhow::bail!("stopped");
    }
    orders
        .shipped
        .fetch_add(conn.run_id + u64::from(attempt), Ordering::Relaxed);
    Ok(())
}

/// No arguments, no return value, the defaults.
#[worker(every = "1m")]
async fn heartbeat() {}

/// A private worker with `missed = delay` and a `Result` with a string error.
#[worker(every = "5m", missed = delay, retry = 0, name = "reports")]
async fn reports(ctx: Ctx) -> Result<(), String> {
    if ctx.attempt() > 1 {
        return Err("unexpected retry".to_owned());
    }
    Ok(())
}

/// A cron schedule in a time zone, with a ratio written as an integer.
#[worker(
    cron = "0 30 2 * * *",
    time_zone = "Europe/Berlin",
    overlap = queue,
    backoff_kind = constant,
    circuit_failure_ratio = 1,
    escalate = stop_worker
)]
async fn nightly(ctx: Ctx) -> Result<(), BoxError> {
    if ctx.is_cancelled() {
        return Err("cancelled".into());
    }
    Ok(())
}

/// A fixed delay between runs.
#[worker(fixed_delay = "30s", jitter = "1m", overlap = skip, backoff_kind = exponential)]
async fn poll() {}

/// Once at start-up, disabled.
#[worker(once, after = "1s", enabled = false)]
async fn warm_up() {}

/// Once, written as `once = true`.
#[worker(once = true)]
async fn migrate() {}

fn host() -> Host {
    Host::builder()
        .state(Orders::default())
        .scoped(|ctx: Ctx| async move {
            Ok::<_, BoxError>(Conn {
                run_id: ctx.run_id(),
            })
        })
        .worker(sync_orders)
        .worker(heartbeat)
        .worker(reports)
        .worker(nightly)
        .worker(poll)
        .worker(warm_up)
        .worker(migrate)
        .build()
        .expect("every worker is valid")
}

#[test]
fn the_host_builds_with_every_worker() {
    let host = host();
    let names: Vec<_> = host.worker_names().collect();
    assert_eq!(
        names,
        [
            "sync-orders",
            "heartbeat",
            "reports",
            "nightly",
            "poll",
            "warm_up",
            "migrate"
        ]
    );
}

/// The keys reach the builder: each worker is the one the same builder calls make, with a
/// handler taking the same arguments; compared whole through `Debug`, whatever its format.
#[test]
fn the_keys_reach_the_builder() {
    #[track_caller]
    fn same(expanded: impl IntoWorker, by_hand: &Worker) {
        let expanded = expanded.into_worker();
        assert_eq!(format!("{expanded:?}"), format!("{by_hand:?}"));
    }
    let secs = Duration::from_secs;
    same(
        sync_orders,
        &Worker::builder("sync-orders")
            .every(secs(10))
            .after(secs(1))
            .jitter(secs(2))
            .missed(Missed::Burst)
            .overlap(Overlap::Allow(2))
            .enabled(true)
            .retry(3)
            .backoff_kind(BackoffKind::Linear)
            .backoff(Duration::from_millis(250))
            .backoff_max(secs(5))
            .timeout(secs(30))
            .circuit_failure_ratio(0.5)
            .circuit_min_throughput(10)
            .circuit_window(secs(60))
            .circuit_break(secs(30))
            .restart_backoff(secs(1))
            .max_restarts(5)
            .restart_window(secs(60))
            .escalate(Escalation::StopHost)
            .stop_budget(secs(10))
            .handler(
                |_: State<Orders>,
                 _: Scoped<Conn>,
                 _: Option<State<String>>,
                 _: Attempt,
                 _: Ctx| async { Ok::<(), anyhow::Error>(()) },
            ),
    );
    same(
        heartbeat,
        &Worker::builder("heartbeat")
            .every(secs(60))
            .handler(|| async {}),
    );
    same(
        reports,
        &Worker::builder("reports")
            .every(secs(300))
            .missed(Missed::Delay)
            .retry(0)
            .handler(|_: Ctx| async { Ok::<(), String>(()) }),
    );
    same(
        nightly,
        &Worker::builder("nightly")
            .cron("0 30 2 * * *")
            .time_zone("Europe/Berlin")
            .overlap(Overlap::Queue)
            .backoff_kind(BackoffKind::Constant)
            .circuit_failure_ratio(1.0)
            .escalate(Escalation::StopWorker)
            .handler(|_: Ctx| async { Ok::<(), BoxError>(()) }),
    );
    same(
        poll,
        &Worker::builder("poll")
            .fixed_delay(secs(30))
            .jitter(secs(60))
            .overlap(Overlap::Skip)
            .backoff_kind(BackoffKind::Exponential)
            .handler(|| async {}),
    );
    same(
        warm_up,
        &Worker::builder("warm_up")
            .once()
            .after(secs(1))
            .enabled(false)
            .handler(|| async {}),
    );
    same(
        migrate,
        &Worker::builder("migrate").once().handler(|| async {}),
    );
}

/// The triggers as the host shows them.
#[test]
fn the_host_shows_the_triggers_as_declared() {
    let schedules: Vec<String> = host()
        .handle()
        .workers()
        .into_iter()
        .map(|worker| worker.schedule)
        .collect();
    assert_eq!(
        schedules,
        [
            "every 10s",
            "every 1m",
            "every 5m",
            "cron \"0 30 2 * * *\" Europe/Berlin",
            "fixed_delay 30s",
            "once",
            "once"
        ]
    );
}

#[tokio::test]
async fn the_functions_are_still_callable() {
    let orders = State::new(Orders::default());
    sync_orders(
        orders.clone(),
        Scoped(std::sync::Arc::new(Conn { run_id: 2 })),
        None,
        Attempt(1),
        Ctx::for_test("sync-orders"),
    )
    .await
    .unwrap();
    assert_eq!(orders.shipped.load(Ordering::Relaxed), 3);
    heartbeat().await;
    reports(Ctx::for_test("reports")).await.unwrap();
    nightly(Ctx::for_test("nightly")).await.unwrap();
    poll().await;
    warm_up().await;
    migrate().await;
}
