use worker_core::{Host, worker};

// The largest value each key accepts compiles; one past it is refused with the same words the
// builder, the configuration file and the environment use.
#[worker(
    every = "365d",
    after = "365d",
    timeout = "365d",
    retry = 10000,
    max_restarts = 1000,
    circuit_min_throughput = 10000,
    circuit_break = "365d",
    restart_backoff = "365d",
    overlap = allow(10000)
)]
async fn at_every_upper_bound() {}

#[worker(every = "10s", after = "10000000000000000000s")]
async fn after_beyond_u64_seconds() {}

#[worker(every = "366d")]
async fn every_beyond_a_year() {}

#[worker(fixed_delay = "1ms", timeout = "500us")]
async fn timeout_below_a_millisecond() {}

#[worker(every = "10s", circuit_break = "99999999999999999999999s")]
async fn break_too_large_to_parse() {}

#[worker(every = "10s", retry = 10001)]
async fn too_many_retries() {}

#[worker(every = "10s", max_restarts = 4294967296)]
async fn restarts_beyond_u32() {}

#[worker(every = "10s", overlap = allow(10001))]
async fn too_many_overlapping_runs() {}

#[worker(cron = "0 0 30 2 *")]
async fn on_the_thirtieth_of_february() {}

fn main() {
    let _ = Host::builder()
        .worker(at_every_upper_bound)
        .worker(after_beyond_u64_seconds)
        .worker(every_beyond_a_year)
        .worker(timeout_below_a_millisecond)
        .worker(break_too_large_to_parse)
        .worker(too_many_retries)
        .worker(restarts_beyond_u32)
        .worker(too_many_overlapping_runs)
        .worker(on_the_thirtieth_of_february)
        .build();
}
