//! Restart intensity and escalation: a worker that panics on every run is restarted twice, and
//! its third panic stops the whole host (`escalate = stop_host`), so the process exits non-zero
//! by itself and the log names the worker.
//!
//! ```text
//! cargo run --example escalation   # exits with code 1 after about half a second
//! ```

use std::time::Duration;

use worker_core::{Escalation, Host, Worker};

/// The worker's body, with a bug: it panics on every run.
async fn import() {
    panic!("the import template is missing");
}

#[tokio::main]
async fn main() -> Result<(), worker_core::Error> {
    tracing_subscriber::fmt().init();
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9466".to_owned());
    let broken = Worker::builder("broken_import")
        .every(Duration::from_millis(200))
        .max_restarts(2)
        .escalate(Escalation::StopHost)
        .handler(import);
    Host::builder().worker(broken).serve(addr).run().await
}
