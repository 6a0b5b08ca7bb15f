use worker_core::{Host, worker};

#[worker(every = "ten seconds")]
async fn words() {}

#[worker(every = "10s", timeout = "")]
async fn empty() {}

fn main() {
    let _ = Host::builder().worker(words).worker(empty).build();
}
