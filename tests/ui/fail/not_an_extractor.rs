use worker_core::{Ctx, Host, worker};

#[worker(every = "10s")]
async fn sync_orders(ctx: Ctx, batch: u32) {
    let _ = (ctx, batch);
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
