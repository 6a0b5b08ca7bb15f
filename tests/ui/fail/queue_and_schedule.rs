use worker_core::{Host, Job, worker};

#[worker(queue = "emails", every = "10s")]
async fn queue_then_every(job: Job<String>) {
    let _ = job;
}

#[worker(cron = "0 0 3 * * *", queue = "emails")]
async fn cron_then_queue(job: Job<String>) {
    let _ = job;
}

fn main() {
    let _ = Host::builder()
        .worker(queue_then_every)
        .worker(cron_then_queue)
        .build();
}
