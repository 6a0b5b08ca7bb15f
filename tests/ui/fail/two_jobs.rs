use worker_core::{Host, Job, worker};

#[worker(queue = "pairs")]
async fn pairs(first: Job<u64>, second: Job<u64>) {
    let _ = (first, second);
}

fn main() {
    let _ = Host::builder().worker(pairs).build();
}
