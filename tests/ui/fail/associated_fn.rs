use worker_core::worker;

struct Orders;

impl Orders {
    #[worker(every = "10s")]
    async fn sync(ctx: worker_core::Ctx) {
        let _ = ctx;
    }
}

fn main() {}
