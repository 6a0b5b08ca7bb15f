use worker_core::{Host, worker};

// Seconds go from 0 to 59.
#[worker(cron = "61 * * * * *")]
async fn out_of_range() {}

#[worker(cron = "* * *")]
async fn too_few_fields() {}

// `FUN` is not a day of the week.
#[worker(cron = "0 0 12 * * FUN")]
async fn words() {}

// `L` alone names no day of the week (Spring refuses it too).
#[worker(cron = "0 0 0 ? * L")]
async fn last_of_nothing() {}

#[worker(cron = 5)]
async fn not_a_string() {}

fn main() {
    let _ = Host::builder()
        .worker(out_of_range)
        .worker(too_few_fields)
        .worker(words)
        .worker(last_of_nothing)
        .worker(not_a_string)
        .build();
}
