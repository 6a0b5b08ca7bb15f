use worker_core::{Host, worker};

#[worker(every = "10s", retry = 3, cron = "0 */5 * * * *")]
async fn every_and_cron() {}

#[worker(fixed_delay = "10s", once)]
async fn fixed_delay_and_once() {}

#[worker(once = true, every = "1m")]
async fn once_and_every() {}

fn main() {
    let _ = Host::builder()
        .worker(every_and_cron)
        .worker(fixed_delay_and_once)
        .worker(once_and_every)
        .build();
}
