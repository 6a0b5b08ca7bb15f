use worker_core::{Host, worker};

#[worker(every = "10s")]
async fn sync_orders() -> u32 {
    42
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
