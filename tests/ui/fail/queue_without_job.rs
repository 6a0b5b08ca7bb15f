use worker_core::{Ctx, Host, worker};

#[worker(queue = "emails", concurrency = 4)]
async fn send_email(ctx: Ctx) {
    let _ = ctx;
}

fn main() {
    let _ = Host::builder().worker(send_email).build();
}
