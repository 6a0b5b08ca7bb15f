// The macro replaces the function by a unit struct that dereferences to a function pointer, so
// the body is still called directly, as in a unit test, with hand-made arguments.
use std::sync::atomic::{AtomicU32, Ordering};

use worker_core::{Ctx, Host, State, worker};

#[derive(Default)]
struct Counter {
    hits: AtomicU32,
}

#[worker(every = "10s", retry = 2)]
async fn sync(counter: State<Counter>, ctx: Ctx) -> Result<(), std::io::Error> {
    assert_eq!(ctx.worker(), "sync");
    counter.hits.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[worker(every = "10s")]
async fn no_arguments() {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let counter = State::new(Counter::default());
    sync(counter.clone(), Ctx::for_test("sync")).await.unwrap();
    sync(counter.clone(), Ctx::for_test("sync")).await.unwrap();
    assert_eq!(counter.hits.load(Ordering::Relaxed), 2);

    // The struct is `Copy`, so it can be called and registered alike.
    let host = Host::builder()
        .state(Counter::default())
        .worker(sync)
        .build();
    assert!(host.is_ok());
    no_arguments().await;
}
