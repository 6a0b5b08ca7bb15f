use worker_core::{Host, worker};

#[worker(every = "0s")]
async fn sync_orders() {}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
