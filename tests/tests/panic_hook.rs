//! Panics caught inside runs are reported once, by the run, through `tracing`: they do not
//! reach the process's panic hook (Rust's default one writes to stderr, outside `tracing`, and
//! captures a backtrace with `RUST_BACKTRACE`). Other panics still do. A test binary of its own:
//! the panic hook is the process's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use worker_core::testing::TestHost;
use worker_core::{Host, Outcome, Worker};

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

async fn panics() {
    panic!("the template is missing");
}

#[tokio::test(start_paused = true)]
async fn a_panic_caught_in_a_run_does_not_reach_the_previous_hook_and_others_do() {
    // The application's own hook, set before the host is built: the host wraps it.
    std::panic::set_hook(Box::new(|_| {
        HOOK_CALLS.fetch_add(1, Ordering::Relaxed);
    }));
    let worker = Worker::builder("panicky")
        .every(Duration::from_secs(1))
        .handler(panics);
    let host = TestHost::start(Host::builder().worker(worker)).unwrap();
    host.advance(Duration::from_secs(5)).await;
    let runs = host.runs("panicky");
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|run| run.result == Outcome::Panic));
    assert_eq!(
        runs[0].error.as_deref(),
        Some("panicked: the template is missing")
    );
    assert_eq!(
        HOOK_CALLS.load(Ordering::Relaxed),
        0,
        "caught panics stay quiet"
    );

    // A panic outside any run, on a thread of the application's, reaches its hook.
    let outside = std::thread::spawn(|| panic!("not a worker's")).join();
    assert!(outside.is_err());
    assert_eq!(HOOK_CALLS.load(Ordering::Relaxed), 1);
    host.stop().await.unwrap();
}
