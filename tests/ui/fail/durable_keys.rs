use worker_core::{Job, worker};

// `capacity` bounds an in-process buffer, which a durable queue has not.
#[worker(queue = "a", durable, capacity = 10)]
async fn durable_with_capacity(job: Job<u64>) {
    let _ = job;
}

// `lease` is a durable queue's.
#[worker(queue = "b", lease = "30s")]
async fn lease_in_process(job: Job<u64>) {
    let _ = job;
}

// So is `durable`: a schedule has no queue.
#[worker(every = "1m", durable)]
async fn durable_schedule() {}

fn main() {}
