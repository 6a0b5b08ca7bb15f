// After an attribute error, the function's name still stands for a worker: registering it and
// calling it directly, as a unit test would, add no error of their own. One error only.
use worker_core::{Ctx, Host, worker};

#[worker(every = "10 parsecs")]
async fn sync_orders(ctx: Ctx) {
    let _ = ctx;
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
    let _ = Host::builder().workers([sync_orders, sync_orders]).build();
    let _future = sync_orders(Ctx::for_test("sync_orders"));
}
