use worker_core::{Job, worker};

#[derive(Debug, Clone)]
struct Invoice {
    order_id: i64,
}

#[worker(queue = "invoices", durable)]
async fn render_invoice(job: Job<Invoice>) {
    let _ = job.order_id;
}

fn main() {}
