use worker_core::{Host, worker};

#[worker(every = "10s")]
async fn sync_orders() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
