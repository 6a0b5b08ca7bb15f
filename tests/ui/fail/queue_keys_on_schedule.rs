use worker_core::{Host, Job, worker};

#[worker(every = "1m", concurrency = 4)]
async fn scheduled_concurrency() {}

#[worker(once, on_panic = discard)]
async fn scheduled_on_panic() {}

#[worker(queue = "q", missed = burst)]
async fn queue_missed(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "r", overlap = queue)]
async fn queue_overlap(job: Job<u64>) {
    let _ = job;
}

fn main() {
    let _ = Host::builder()
        .worker(scheduled_concurrency)
        .worker(scheduled_on_panic)
        .worker(queue_missed)
        .worker(queue_overlap)
        .build();
}
