use worker_core::worker;

// `backoff_max` is a period (a cap of zero is no cap), whatever `backoff` is; the builder, the
// file and the environment refuse it with the same words (tests/tests/runtime/keys.rs).
#[worker(every = "10s", retry = 3, backoff = "0s", backoff_max = "0s")]
async fn zero_cap() {}

fn main() {}
