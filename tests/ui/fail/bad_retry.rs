use worker_core::{Host, worker};

#[worker(every = "10s", retry = -1)]
async fn negative() {}

#[worker(every = "10s", retry = "3")]
async fn quoted() {}

fn main() {
    let _ = Host::builder().worker(negative).worker(quoted).build();
}
