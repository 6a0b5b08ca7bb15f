use worker_core::{Host, worker};

#[worker(every = "10s")]
#[worker(every = "1m", retry = 3)]
async fn sync_orders() {}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
