//! Registration: what `build()` refuses (an argument needing state or a factory that was never
//! registered, two workers with one name, an invalid declaration in code) and how the error
//! reads; and that workers declared in code, one by one or by the batch, run like `#[worker]`s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::{Runs, ms, run_for, secs};
use worker_core::{BoxError, Ctx, Error, Host, HostBuilder, Scoped, State, Worker, worker};

/// Never registered anywhere.
#[derive(Debug)]
struct Missing;

/// Registered where a test says so.
#[derive(Debug)]
struct Present(u32);

#[worker(every = "1s")]
async fn needs_state(ctx: Ctx, db: State<Missing>) {
    let _ = (ctx, db);
}

#[worker(every = "1s")]
async fn needs_scoped(conn: Scoped<Missing>) {
    let _ = conn;
}

fn build_err(builder: HostBuilder) -> Error {
    match builder.build() {
        Ok(host) => panic!("built a host that should have been refused: {host:?}"),
        Err(err) => err,
    }
}

#[track_caller]
fn assert_mentions(err: &Error, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

#[test]
fn missing_state_fails_the_build_naming_worker_argument_and_type() {
    let err = build_err(Host::builder().worker(needs_state));
    assert!(err.is_missing_dependency(), "{err}");
    assert!(!err.is_config() && !err.is_duplicate_name());
    assert_eq!(err.worker(), Some("needs_state"));
    // The second argument, by position, name and type; then how to fix it.
    assert_mentions(
        &err,
        &[
            "`needs_state`",
            "#2",
            "db",
            "State<Missing>",
            "Missing",
            ".state(",
        ],
    );
    assert!(!err.to_string().contains("ctx"), "{err}");
}

#[test]
fn missing_factory_fails_the_build_naming_worker_argument_and_type() {
    let err = build_err(Host::builder().state(Missing).worker(needs_scoped));
    assert!(err.is_missing_dependency(), "{err}");
    assert_eq!(err.worker(), Some("needs_scoped"));
    assert_mentions(
        &err,
        &[
            "`needs_scoped`",
            "#1",
            "conn",
            "Scoped<Missing>",
            ".scoped(",
        ],
    );
}

#[test]
fn registering_the_dependency_fixes_the_build() {
    Host::builder()
        .state(Missing)
        .scoped(|_: Ctx| async { Ok::<_, BoxError>(Missing) })
        .worker(needs_state)
        .worker(needs_scoped)
        .build()
        .unwrap();
}

#[test]
fn a_missing_dependency_of_a_worker_declared_in_code_names_the_type() {
    let worker = Worker::builder("in_code")
        .every(secs(1))
        .handler(|_: Ctx, _: State<Present>, _: State<Missing>| async {});
    let err = build_err(Host::builder().state(Present(1)).worker(worker));
    assert!(err.is_missing_dependency(), "{err}");
    assert_eq!(err.worker(), Some("in_code"));
    let missing = format!("State<{}>", std::any::type_name::<Missing>());
    assert_mentions(&err, &["`in_code`", "#3", &missing]);
}

/// `Some` values seen by [`optional`], and the runs in which the missing one was `None`.
#[derive(Debug, Default)]
struct Seen {
    present: AtomicU32,
    missing_was_none: AtomicU32,
}

#[worker(every = "10s")]
async fn optional(
    missing: Option<State<Missing>>,
    present: Option<State<Present>>,
    seen: State<Arc<Seen>>,
) {
    if missing.is_none() {
        seen.missing_was_none.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(present) = present {
        let Present(n) = *present;
        seen.present.fetch_add(n, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn an_optional_dependency_may_be_missing() {
    let seen = Arc::new(Seen::default());
    let host = Host::builder()
        .state(seen.clone())
        .state(Present(5))
        .worker(optional)
        .build()
        .unwrap();

    run_for(host, ms(20_500)).await.result.unwrap();

    assert_eq!(seen.missing_was_none.load(Ordering::SeqCst), 3);
    assert_eq!(seen.present.load(Ordering::SeqCst), 15);
}

#[worker(every = "1s", name = "reports")]
async fn first_reports() {}

#[test]
fn two_workers_with_one_name_fail_the_build() {
    let second = Worker::builder("reports")
        .every(secs(5))
        .handler(|| async {});
    let err = build_err(Host::builder().worker(first_reports).worker(second));
    assert!(err.is_duplicate_name(), "{err}");
    assert!(!err.is_missing_dependency() && !err.is_config());
    assert_eq!(err.worker(), Some("reports"));
    assert_mentions(&err, &["`reports`"]);

    let err = build_err(Host::builder().worker(first_reports).worker(first_reports));
    assert!(err.is_duplicate_name(), "{err}");
}

/// `(what is wrong, the builder, the key the error must name)`
fn invalid_declarations() -> Vec<(&'static str, Worker, &'static str)> {
    let named = |name: &str| Worker::builder(name).every(secs(1));
    let body = || async {};
    vec![
        (
            "zero period",
            Worker::builder("zero").every(Duration::ZERO).handler(body),
            "every",
        ),
        (
            "no schedule",
            Worker::builder("unscheduled").handler(body),
            "every",
        ),
        (
            "zero timeout",
            named("zero_timeout").timeout(Duration::ZERO).handler(body),
            "timeout",
        ),
        (
            "backoff over its maximum",
            named("backoff")
                .backoff(secs(10))
                .backoff_max(secs(5))
                .handler(body),
            "backoff",
        ),
        ("empty name", named("  ").handler(body), "name"),
    ]
}

#[test]
fn invalid_declarations_in_code_fail_the_build_as_config_errors() {
    for (case, worker, key) in invalid_declarations() {
        let name = worker.name().to_owned();
        let err = build_err(Host::builder().worker(worker));
        assert!(err.is_config(), "{case}: {err}");
        assert!(!err.is_missing_dependency() && !err.is_duplicate_name());
        assert_eq!(err.worker(), Some(name.as_str()), "{case}");
        assert_mentions(&err, &[&format!("`{key}`")]);
        if !name.trim().is_empty() {
            assert_mentions(&err, &[&format!("`{name}`")]);
        }
    }
}

#[test]
fn a_valid_worker_next_to_an_invalid_one_does_not_hide_the_error() {
    let good = Worker::builder("good").every(secs(1)).handler(|| async {});
    let bad = Worker::builder("bad")
        .every(Duration::ZERO)
        .handler(|| async {});
    let err = build_err(Host::builder().worker(good).worker(bad));
    assert_eq!(err.worker(), Some("bad"));
}

#[tokio::test(start_paused = true)]
async fn workers_declared_in_code_run_on_their_own_schedules() {
    let runs = Runs::new();
    let shards = (1..=4_u64).map(|shard| {
        let runs = runs.clone();
        Worker::builder(format!("shard-{shard}"))
            .every(secs(10 * shard))
            .handler(move |ctx: Ctx| {
                let runs = runs.clone();
                async move {
                    let _run = runs.enter(&ctx);
                }
            })
    });
    let host = Host::builder().workers(shards).build().unwrap();
    assert_eq!(
        host.worker_names().collect::<Vec<_>>(),
        ["shard-1", "shard-2", "shard-3", "shard-4"]
    );

    run_for(host, ms(120_500)).await.result.unwrap();

    // Periods of 10, 20, 30 and 40 s over [0, 120]: 13 + 7 + 5 + 4 runs.
    assert_eq!(runs.len(), 29);
}

#[worker(every = "1s", name = "custom-name")]
async fn renamed(ctx: Ctx, names: State<Arc<std::sync::Mutex<Vec<String>>>>) {
    names.lock().unwrap().push(ctx.worker().to_owned());
}

#[tokio::test(start_paused = true)]
async fn name_sets_the_worker_name_seen_everywhere() {
    let names = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let host = Host::builder()
        .state(names.clone())
        .worker(renamed)
        .build()
        .unwrap();
    assert_eq!(host.worker_names().collect::<Vec<_>>(), ["custom-name"]);

    run_for(host, ms(500)).await.result.unwrap();

    assert_eq!(*names.lock().unwrap(), ["custom-name"]);
}

#[worker(every = "1s")]
async fn callable(ctx: Ctx, calls: State<AtomicU32>) -> Result<(), BoxError> {
    calls.fetch_add(1, Ordering::SeqCst);
    if ctx.is_cancelled() {
        return Err("cancelled".into());
    }
    Ok(())
}

#[tokio::test]
async fn a_worker_function_can_still_be_called_directly() {
    let calls = State::new(AtomicU32::new(0));
    let ctx = Ctx::for_test("callable");
    assert_eq!((ctx.worker(), ctx.attempt()), ("callable", 1));
    callable(ctx.clone(), calls.clone()).await.unwrap();
    ctx.cancellation_token().cancel();
    assert!(callable(ctx, calls.clone()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        Worker::builder("x")
            .every(secs(1))
            .handler(|| async {})
            .name(),
        "x"
    );
}

/// A dependency a worker knows by its trait.
trait Notifier: Send + Sync {
    fn notify(&self) -> u32;
}

impl Notifier for Present {
    fn notify(&self) -> u32 {
        self.0
    }
}

#[worker(every = "10s")]
async fn notifies(notifier: State<dyn Notifier>, seen: State<AtomicU32>) {
    seen.store(notifier.notify(), Ordering::SeqCst);
}

/// `state_arc` registers an `Arc` the application holds, trait objects included: the worker
/// gets that very `Arc` (no second one around it), and a host without it refuses to build,
/// naming both ways to register it.
#[tokio::test(start_paused = true)]
async fn state_arc_shares_an_arc_the_application_holds_and_a_trait_object() {
    use worker_core::testing::TestHost;

    let notifier: Arc<dyn Notifier> = Arc::new(Present(42));
    let seen = Arc::new(AtomicU32::new(0));
    let host = TestHost::start(
        Host::builder()
            .state_arc(notifier.clone())
            .state_arc(seen.clone())
            .worker(notifies),
    )
    .unwrap();
    host.advance(Duration::ZERO).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        42,
        "the worker ran with the trait object"
    );
    // Two holders: this test and the host's registry, which keeps a clone of this `Arc`.
    assert_eq!(Arc::strong_count(&notifier), 2);
    host.stop().await.unwrap();

    let ctx = Ctx::for_test("notifies");
    assert!(
        ctx.state::<dyn Notifier>().is_none(),
        "a test context has no state"
    );

    let err = build_err(Host::builder().state(AtomicU32::new(0)).worker(notifies));
    assert!(err.is_missing_dependency(), "{err}");
    assert_mentions(&err, &["State<dyn", "Notifier>", ".state(", ".state_arc("]);
}

/// Per-worker state: each worker declared in code with `.state(..)` extracts its own value,
/// before the host's of the same type; the build check counts a worker's own state, and still
/// refuses a worker that has none.
#[tokio::test(start_paused = true)]
async fn a_worker_builders_state_is_that_workers_own_and_comes_before_the_hosts() {
    use worker_core::testing::TestHost;

    let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new()));
    let tenant = |name: &str, own: Option<u32>| {
        let builder = Worker::builder(name).every(secs(60));
        let builder = match own {
            Some(id) => builder.state(Present(id)),
            None => builder,
        };
        builder.handler(
            |tenant: State<Present>,
             seen: State<std::sync::Mutex<Vec<(String, u32)>>>,
             ctx: Ctx| async move {
                seen.lock()
                    .unwrap()
                    .push((ctx.worker().to_owned(), tenant.0.0));
            },
        )
    };
    let host = TestHost::start(
        Host::builder()
            .state_arc(seen.clone())
            .state(Present(0))
            .worker(tenant("tenant-1", Some(1)))
            .worker(tenant("tenant-2", Some(2)))
            .worker(tenant("shared", None)),
    )
    .unwrap();
    host.advance(Duration::ZERO).await;
    host.stop().await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let expected = [("shared", 0), ("tenant-1", 1), ("tenant-2", 2)];
    assert_eq!(seen, expected.map(|(n, id)| (n.to_owned(), id)));

    // Its own state is enough for the build check; without it nor the host's, the build fails.
    let built = Host::builder()
        .state_arc(Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new())))
        .worker(tenant("tenant-3", Some(3)))
        .build();
    assert!(built.is_ok(), "{built:?}");
    let err = build_err(
        Host::builder()
            .state_arc(Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new())))
            .worker(tenant("tenant-3", Some(3)))
            .worker(tenant("bare", None)),
    );
    assert_eq!(err.worker(), Some("bare"), "{err}");
    assert_mentions(&err, &["State<", "Present>"]);
}
