use worker_core::{Host, Job, worker};

#[worker(queue = "a", concurrency = 0)]
async fn none_at_a_time(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "b", concurrency = "8")]
async fn quoted(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "c", capacity = 0)]
async fn no_room(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "d", capacity = 20000000)]
async fn too_much_room(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "e", on_panic = ignore)]
async fn bad_on_panic(job: Job<u64>) {
    let _ = job;
}

#[worker(queue = "")]
async fn unnamed(job: Job<u64>) {
    let _ = job;
}

fn main() {
    let _ = Host::builder()
        .worker(none_at_a_time)
        .worker(quoted)
        .worker(no_room)
        .worker(too_much_room)
        .worker(bad_on_panic)
        .worker(unnamed)
        .build();
}
