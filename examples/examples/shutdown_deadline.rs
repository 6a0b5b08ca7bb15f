//! What happens when a worker ignores cancellation: at the shutdown deadline the host aborts it,
//! names it in the log, and `main` exits non-zero.
//!
//! ```text
//! cargo run --example shutdown_deadline   # then press Ctrl+C
//! ```

use std::time::Duration;

use worker_core::{Host, worker};

/// Sleeps for an hour without ever looking at its cancellation token.
#[worker(every = "1h")]
async fn stubborn() {
    tokio::time::sleep(Duration::from_hours(1)).await;
}

/// Stops promptly.
#[worker(every = "1s")]
async fn polite(ctx: worker_core::Ctx) {
    ctx.cancelled().await;
}

#[tokio::main]
async fn main() -> Result<(), worker_core::Error> {
    tracing_subscriber::fmt().init();
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9465".to_owned());
    Host::builder()
        .worker(stubborn)
        .worker(polite)
        .shutdown_timeout(Duration::from_secs(2))
        .serve(addr)
        .run()
        .await
}
