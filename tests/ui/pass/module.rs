// A `pub` worker in a module keeps its doc comment (`missing_docs` is denied) and its
// visibility, and `#[cfg]` applies to everything the macro emits.
#![deny(missing_docs)]
//! A crate with workers in a module.

/// Workers.
pub mod jobs {
    use worker_core::{Ctx, worker};

    /// Ships pending orders.
    #[worker(every = "10s")]
    pub async fn sync_orders(ctx: Ctx) {
        let _ = ctx;
    }

    /// Compiled out, wherever the `#[cfg]` is written: `DoesNotExist` must never be resolved.
    #[worker(every = "10s")]
    #[cfg(any())]
    pub async fn disabled(missing: DoesNotExist) {}

    /// Compiled in.
    #[worker(every = "1m")]
    #[cfg(all())]
    pub(crate) async fn enabled() {}
}

fn main() {
    let host = worker_core::Host::builder()
        .worker(jobs::sync_orders)
        .worker(jobs::enabled)
        .build()
        .unwrap();
    assert_eq!(host.worker_names().count(), 2);
}
