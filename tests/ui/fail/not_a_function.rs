use worker_core::worker;

#[worker(every = "10s")]
struct SyncOrders;

fn main() {}
