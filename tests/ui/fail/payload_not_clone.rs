use worker_core::{Host, Job, worker};

struct Unique(u64);

#[worker(queue = "unique")]
async fn consume(job: Job<Unique>) {
    let _ = job.0;
}

fn main() {
    let _ = Host::builder().worker(consume).build();
}
