use worker_core::{Host, worker};

#[worker(every = "10s", circuit_failure_ratio = 1.5)]
async fn ratio_above_one() {}

#[worker(every = "10s", circuit_failure_ratio = 0)]
async fn ratio_zero() {}

#[worker(every = "10s", circuit_failure_ratio = -0.5)]
async fn ratio_negative() {}

#[worker(every = "10s", overlap = allow(0))]
async fn allow_zero() {}

#[worker(every = "10s", circuit_min_throughput = 0)]
async fn no_throughput() {}

#[worker(every = "10s", circuit_window = "0s")]
async fn empty_window() {}

#[worker(every = "10s", max_restarts = -1)]
async fn negative_restarts() {}

fn main() {
    let _ = Host::builder()
        .worker(ratio_above_one)
        .worker(ratio_zero)
        .worker(ratio_negative)
        .worker(allow_zero)
        .worker(no_throughput)
        .worker(empty_window)
        .worker(negative_restarts)
        .build();
}
