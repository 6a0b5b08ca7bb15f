use worker_core::{Host, Job, worker};

#[worker(every = "10s")]
async fn nightly(job: Job<u64>) {
    let _ = job;
}

fn main() {
    let _ = Host::builder().worker(nightly).build();
}
