use worker_core::{Host, worker};

// Seconds go from 0 to 59.
#[worker(cron = "61 * * * * *")]
async fn out_of_range() {}

#[worker(cron = "* * *")]
async fn too_few_fields() {}

// `FUN` is not a day of the week.
#[worker(cron = "0 0 12 * * FUN")]
async fn words() {}

#[worker(cron = 5)]
async fn not_a_string() {}

fn main() {
    let _ = Host::builder()
        .worker(out_of_range)
        .worker(too_few_fields)
        .worker(words)
        .worker(not_a_string)
        .build();
}
