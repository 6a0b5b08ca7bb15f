use worker_core::{Host, worker};

#[worker(once = false)]
async fn once_false() {}

#[worker(every = "10s", enabled = "no")]
async fn enabled_string() {}

#[worker(every = "10s", circuit_failure_ratio = "0.5")]
async fn quoted_ratio() {}

#[worker(every)]
async fn every_without_value() {}

fn main() {
    let _ = Host::builder()
        .worker(once_false)
        .worker(enabled_string)
        .worker(quoted_ratio)
        .worker(every_without_value)
        .build();
}
