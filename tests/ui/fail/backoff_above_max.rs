use worker_core::{Host, worker};

#[worker(every = "10s", retry = 3, backoff = "2m", backoff_max = "30s")]
async fn explicit() {}

// `backoff_max` defaults to one minute.
#[worker(every = "10s", retry = 3, backoff = "2m")]
async fn default_max() {}

// `backoff` defaults to one second.
#[worker(every = "10s", retry = 3, backoff_max = "500ms")]
async fn default_base() {}

fn main() {
    let _ = Host::builder()
        .worker(explicit)
        .worker(default_max)
        .worker(default_base)
        .build();
}
