use worker_core::{Host, worker};

#[worker(every = "10s", jitter = "10s")]
async fn equal() {}

#[worker(jitter = "1m", every = "30s")]
async fn longer() {}

fn main() {
    let _ = Host::builder().worker(equal).worker(longer).build();
}
