use worker_core::{Host, worker};

#[worker(every = "10s", retry = 3, every = "5s")]
async fn sync_orders() {}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
