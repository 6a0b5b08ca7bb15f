use worker_core::{Host, worker};

#[worker(every = "1h", time_zone = "Europe/Berlin")]
async fn every_hour() {}

#[worker(time_zone = "UTC", once)]
async fn at_start_up() {}

fn main() {
    let _ = Host::builder()
        .worker(every_hour)
        .worker(at_start_up)
        .build();
}
