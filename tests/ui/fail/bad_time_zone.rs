use worker_core::{Host, worker};

#[worker(cron = "0 30 2 * * *", time_zone = "Mars/Olympus")]
async fn unknown() {}

// IANA names are case-sensitive.
#[worker(cron = "0 30 2 * * *", time_zone = "europe/berlin")]
async fn lowercase() {}

#[worker(cron = "0 30 2 * * *", time_zone = Europe::Berlin)]
async fn not_a_string() {}

fn main() {
    let _ = Host::builder()
        .worker(unknown)
        .worker(lowercase)
        .worker(not_a_string)
        .build();
}
