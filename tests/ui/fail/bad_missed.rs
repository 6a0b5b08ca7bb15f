use worker_core::{Host, worker};

#[worker(every = "10s", missed = catch_up)]
async fn unknown() {}

#[worker(every = "10s", missed = "skip")]
async fn quoted() {}

fn main() {
    let _ = Host::builder().worker(unknown).worker(quoted).build();
}
