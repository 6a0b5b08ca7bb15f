//! A platform crate re-exports worker-core; its users name it with `crate = ".."`.
mod platform {
    pub use worker_core as jobs;
}

use platform::jobs::{Ctx, Host, Job, worker};

#[worker(every = "10s", retry = 2, overlap = skip, crate = "crate::platform::jobs")]
async fn sync_orders(ctx: Ctx) {
    let _ = ctx;
}

#[worker(queue = "emails", concurrency = 4, crate = "platform::jobs")]
async fn send_email(job: Job<String>) {
    let _ = job;
}

fn main() {
    let _ = Host::builder().worker(sync_orders).worker(send_email).build();
}
