use worker_core::{Ctx, Worker};

fn main() {
    let _ = Worker::builder("wide").every(std::time::Duration::from_secs(1)).handler(
        |a: Ctx, b: Ctx, c: Ctx, d: Ctx, e: Ctx, f: Ctx, g: Ctx, h: Ctx, i: Ctx, j: Ctx, k: Ctx, l: Ctx, m: Ctx| async move {
            let _ = (a, b, c, d, e, f, g, h, i, j, k, l, m);
        },
    );
}
