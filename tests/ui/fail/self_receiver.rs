use worker_core::{Ctx, worker};

struct Orders;

impl Orders {
    #[worker(every = "10s")]
    async fn sync(&self, ctx: Ctx) {
        let _ = ctx;
    }
}

fn main() {}
