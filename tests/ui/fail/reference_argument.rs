use worker_core::{Ctx, Host, worker};

struct Db;

#[worker(every = "10s")]
async fn sync_orders(name: &str, ctx: &Ctx, db: &Db) {
    let _ = (name, ctx, db);
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
