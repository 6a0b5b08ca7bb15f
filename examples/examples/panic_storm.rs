//! A panic storm: workers that panic on every run, as fast as their schedule allows, to measure
//! what a caught panic costs in log bytes and memory. `tests/tests/process/abuse.rs` runs it.
//!
//! ```text
//! STORM_WORKERS=50 cargo run --release --example panic_storm
//! ```
//!
//! Each of `STORM_WORKERS` workers (default 50) runs every millisecond and panics with the same
//! message; the host serves `/metrics` on `METRICS_ADDR` (default `127.0.0.1:9467`).

use std::time::Duration;

use worker_core::{Host, Worker};

/// Panics on every run, always with the same message.
async fn storm() {
    panic!("the report template is missing");
}

#[tokio::main]
async fn main() -> Result<(), worker_core::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let workers: usize = std::env::var("STORM_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9467".to_owned());
    let storm = (0..workers).map(|i| {
        Worker::builder(format!("storm-{i}"))
            .every(Duration::from_millis(1))
            .handler(storm)
    });
    Host::builder()
        .workers(storm)
        .shutdown_timeout(Duration::from_secs(5))
        .serve(addr)
        .run()
        .await
}
