// Every key at once, with values of every accepted form; each key appears in at least one worker.
use worker_core::{Ctx, Host, worker};

#[worker(
    every = "1h 30m",
    after = "250ms",
    jitter = "5m",
    missed = burst,
    overlap = allow(3),
    enabled = true,
    retry = 3,
    backoff_kind = linear,
    backoff = "100ms",
    backoff_max = "10s",
    timeout = "30s",
    circuit_failure_ratio = 0.25,
    circuit_min_throughput = 10,
    circuit_window = "2m",
    circuit_break = "45s",
    restart_backoff = "1s",
    max_restarts = 5,
    restart_window = "10m",
    escalate = stop_host,
    stop_budget = "5s",
    stale_after = "10m",
    gates_readiness = true,
    gates_liveness = true,
    span_level = info,
    name = "sync-orders",
)]
async fn sync_orders(ctx: Ctx) -> Result<(), std::io::Error> {
    let _ = ctx.attempt();
    Ok(())
}

#[worker(every = "5m", missed = skip, overlap = skip, after = "0s", backoff = "0s")]
async fn skip() {}

#[worker(every = "10s", missed = delay, overlap = queue, retry = 0, backoff_kind = constant)]
async fn delay() -> Result<(), String> {
    Ok(())
}

// A time zone with a cron expression of 6 fields (seconds first).
#[worker(cron = "0 30 2 * * *", time_zone = "Europe/Berlin", escalate = stop_worker)]
async fn nightly() {}

// 5 fields, the default zone (UTC), a ratio written as an integer.
#[worker(
    cron = "*/15 * * * *",
    circuit_failure_ratio = 1,
    backoff_kind = exponential
)]
async fn quarterly() {}

#[worker(
    fixed_delay = "30s",
    jitter = "1m",
    restart_backoff = "0s",
    max_restarts = 0
)]
async fn poll() {}

#[worker(once, after = "1s")]
async fn warm_up() {}

#[worker(name = "migrate", once = true, enabled = false)]
async fn migrate() {}

fn main() {
    let host = Host::builder()
        .worker(sync_orders)
        .worker(skip)
        .worker(delay)
        .worker(nightly)
        .worker(quarterly)
        .worker(poll)
        .worker(warm_up)
        .worker(migrate)
        .build()
        .expect("every key is valid");
    let names: Vec<_> = host.worker_names().collect();
    assert_eq!(
        names,
        [
            "sync-orders",
            "skip",
            "delay",
            "nightly",
            "quarterly",
            "poll",
            "warm_up",
            "migrate"
        ]
    );
}
