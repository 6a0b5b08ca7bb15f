//! trybuild runs rustc, not clippy: this file is where `cargo clippy --workspace --all-targets
//! -- -D warnings` sees the expansion of `#[worker]`, with every key and every kind of argument,
//! and proves it clean under `clippy::pedantic`.
#![deny(warnings, clippy::pedantic)]

use std::sync::atomic::{AtomicU64, Ordering};

use worker_core::{BoxError, Ctx, FromScope, Host, Scope, Scoped, State, worker};

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

/// Every key, a `Result` return and every kind of extractor.
#[worker(
    every = "10s",
    after = "1s",
    missed = burst,
    retry = 3,
    backoff = "250ms",
    backoff_max = "5s",
    timeout = "30s",
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
        .build()
        .expect("every worker is valid")
}

#[test]
fn the_host_builds_with_every_worker() {
    let host = host();
    let names: Vec<_> = host.worker_names().collect();
    assert_eq!(names, ["sync-orders", "heartbeat", "reports"]);
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
}
