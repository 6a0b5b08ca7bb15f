use worker_core::{FromScope, Host, worker};

#[worker(every = "10s")]
async fn sync_orders<T: FromScope>(value: T) {
    let _ = value;
}

fn main() {
    let _ = Host::builder().worker(sync_orders).build();
}
