//! Durable queue workers as users write them: a serde payload, the durable keys, and the
//! builder's `durable_queue`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use worker_core::{BoxError, Job, Worker, worker};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invoice {
    order_id: i64,
}

#[worker(queue = "invoices", durable, concurrency = 16, retry = 10, lease = "30s", timeout = "2m")]
async fn render_invoice(job: Job<Invoice>) -> Result<(), BoxError> {
    let _ = (job.order_id, job.id(), job.attempt());
    Ok(())
}

fn main() {
    let _ = render_invoice;
    let _built = Worker::builder("built")
        .durable_queue::<Invoice>("more-invoices")
        .lease(Duration::from_secs(10))
        .concurrency(4)
        .handler(|job: Job<Invoice>| async move { drop(job) });
}
