use worker_core::{Host, worker};

#[worker(every = "10s", overlap = sometimes)]
async fn overlap() {}

#[worker(every = "10s", backoff_kind = quadratic)]
async fn backoff_kind() {}

#[worker(every = "10s", escalate = panic)]
async fn escalate() {}

#[worker(every = "10s", escalate = "stop_host")]
async fn quoted() {}

#[worker(every = "10s", overlap = allow)]
async fn allow_without_limit() {}

#[worker(every = "10s", span_level = warn)]
async fn span_level() {}

fn main() {
    let _ = Host::builder()
        .worker(overlap)
        .worker(backoff_kind)
        .worker(escalate)
        .worker(quoted)
        .worker(allow_without_limit)
        .worker(span_level)
        .build();
}
