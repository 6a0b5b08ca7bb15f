use worker_core::worker;

// Only `every` and `cron` have ticks every replica agrees on.
#[worker(once, singleton)]
async fn a() {}

// `catch_up` is for singletons.
#[worker(every = "1s", catch_up = 3)]
async fn b() {}

// `delay` would move the grid the replicas share.
#[worker(every = "1s", singleton, missed = delay)]
async fn c() {}

fn main() {}
