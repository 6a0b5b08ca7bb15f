use std::time::Duration;

use worker_core::{Host, worker};

#[worker(every = 10)]
async fn number() {}

#[worker(every = Duration::from_secs(10))]
async fn expression() {}

fn main() {
    let _ = Duration::ZERO;
    let _ = Host::builder().worker(number).worker(expression).build();
}
