// `Option<State<T>>` is `None` when no such state was registered, and a user-written
// `FromScope` extractor works like the built-in ones; the host runs the worker once to show it.
use std::sync::Mutex;
use std::time::Duration;

use worker_core::{BoxError, FromScope, Host, Scope, State, worker};

/// A custom extractor: who is running, which run.
struct RunTag(String);

impl FromScope for RunTag {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        let ctx = scope.ctx();
        Ok(RunTag(format!("{}#{}", ctx.worker(), ctx.attempt())))
    }
}

struct Missing;

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[worker(every = "1h")]
async fn tagged(
    tag: RunTag,
    missing: Option<State<Missing>>,
    present: Option<State<u32>>,
    maybe_tag: Option<RunTag>,
) {
    assert!(missing.is_none());
    assert_eq!(present.as_deref(), Some(&7));
    assert!(maybe_tag.is_some());
    SEEN.lock().unwrap().push(tag.0);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let host = Host::builder()
        .state(7_u32)
        .worker(tagged)
        .build()
        .expect("an optional state that is missing is not an error");
    host.run_until(tokio::time::sleep(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(*SEEN.lock().unwrap(), ["tagged#1"]);
}
