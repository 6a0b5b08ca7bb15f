// Every key at once, with values of every accepted form.
use worker_core::{Ctx, Host, worker};

#[worker(
    every = "1h 30m",
    after = "250ms",
    missed = burst,
    retry = 3,
    backoff = "100ms",
    backoff_max = "10s",
    timeout = "30s",
    name = "sync-orders",
)]
async fn sync_orders(ctx: Ctx) -> Result<(), std::io::Error> {
    let _ = ctx.attempt();
    Ok(())
}

#[worker(every = "5m", missed = skip, after = "0s", backoff = "0s")]
async fn skip() {}

#[worker(every = "10s", missed = delay, retry = 0)]
async fn delay() -> Result<(), String> {
    Ok(())
}

fn main() {
    let host = Host::builder()
        .worker(sync_orders)
        .worker(skip)
        .worker(delay)
        .build()
        .expect("every key is valid");
    let names: Vec<_> = host.worker_names().collect();
    assert_eq!(names, ["sync-orders", "skip", "delay"]);
}
