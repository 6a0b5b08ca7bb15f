//! Workers that misbehave on purpose, to see the host keep its promises: the shutdown deadline
//! holds whatever a body does, signals are acted on while every runtime thread is blocked, and
//! `/healthz` keeps answering. The process tests (`tests/tests/process/abuse.rs`) drive it.
//!
//! ```text
//! BODY=block BODIES=2 cargo run --example misbehaving    # then Ctrl+C: exits within 1 s + grace
//! ```
//!
//! Settings, from the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BODY` | what each misbehaving worker does: `block` (`std::thread::sleep` for two minutes), `spin` (a busy loop that never yields), `ignore` (sleeps an hour, deaf to cancellation), `chatty` (logs without end, lines that differ), `polite` (waits for cancellation) | `block` |
//! | `BODIES` | how many such workers | `1` |
//! | `FLAVOR` | the runtime: `multi_thread` (2 threads) or `current_thread` | `multi_thread` |
//! | `WORKERS` | idle workers to register besides, for a slow start-up | `0` |
//! | `SHUTDOWN_TIMEOUT_MS` | the host's shutdown timeout | `1000` |
//! | `METRICS_ADDR` | where to serve | `127.0.0.1:9466` |

use std::time::Duration;

use worker_core::{Ctx, Host, Worker};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn number(name: &str, default: u64) -> u64 {
    setting(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a whole number"))
}

fn main() -> Result<(), worker_core::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut runtime = if setting("FLAVOR", "multi_thread") == "current_thread" {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(run())
}

async fn run() -> Result<(), worker_core::Error> {
    let body = setting("BODY", "block");
    let mut builder = Host::builder()
        .shutdown_timeout(Duration::from_millis(number("SHUTDOWN_TIMEOUT_MS", 1000)))
        .serve(setting("METRICS_ADDR", "127.0.0.1:9466"));
    for i in 0..number("BODIES", 1) {
        let kind = body.clone();
        let worker = Worker::builder(format!("{body}-{i}"))
            .every(Duration::from_hours(1))
            .handler(move |ctx: Ctx| {
                let kind = kind.clone();
                async move { misbehave(&kind, &ctx).await }
            });
        builder = builder.worker(worker);
    }
    let idle = number("WORKERS", 0);
    builder = builder.workers((0..idle).map(|i| {
        Worker::builder(format!("idle-{i}"))
            .every(Duration::from_hours(1))
            .after(Duration::from_hours(1))
            .handler(|| async {})
    }));
    tracing::info!(idle, "workers registered");
    // `HostBuilder::run` has the signal handlers in place before it builds the host.
    builder.run().await
}

async fn misbehave(kind: &str, ctx: &Ctx) {
    tracing::info!(worker = ctx.worker(), "misbehaving now");
    match kind {
        "block" => std::thread::sleep(Duration::from_mins(2)),
        "spin" => loop {
            std::hint::spin_loop();
        },
        "ignore" => tokio::time::sleep(Duration::from_hours(1)).await,
        "chatty" => {
            for line in 0_u64.. {
                tracing::info!(line, "chatting");
                tokio::task::yield_now().await;
            }
        }
        _ => ctx.cancelled().await,
    }
}
