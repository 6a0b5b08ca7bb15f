//! The promises under bad input and odd timing, in-process: every duration and number is
//! checked against one range through the builder, the configuration file and the environment
//! (the attribute's side is `ui/fail/beyond_range.rs`), and no value inside it crashes a loop;
//! a schedule that never fires is refused; the configuration file must be a small regular
//! file; a body that blocks past its timeout is a timeout; run-now requests follow the overlap
//! policy exactly and say what they came to; `gates_liveness` turns a hung worker into a failed
//! liveness probe; HTTP answers are small, truncated and carry security headers.

use std::time::Duration;

use crate::common::{Metrics, Running, restarts, run_for, secs};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;
use worker_core::testing::TestHost;
use worker_core::{
    BoxError, Ctx, Error, Host, HostBuilder, HttpLimits, Outcome, Overlap, Requested, SkipReason,
    Worker, WorkerBuilder,
};

fn base() -> WorkerBuilder {
    Worker::builder("w").every(secs(10))
}

fn build(builder: WorkerBuilder) -> Result<Host, Error> {
    Host::builder()
        .worker(builder.handler(|| async {}))
        .env_overrides(false)
        .build()
}

fn refused_with(result: Result<Host, Error>, expected: &str) -> String {
    let err = result.expect_err("refused");
    let message = err.to_string();
    assert!(err.is_config(), "{message}");
    assert!(message.contains(expected), "{expected:?} not in: {message}");
    message
}

const DAY: Duration = Duration::from_hours(24);
const MAX: Duration = Duration::from_hours(365 * 24);
const PERIOD: &str = "expected a duration from 1ms to 365d";
const DELAY: &str = "expected a duration from 0s to 365d";

type Set = fn(WorkerBuilder, Duration) -> WorkerBuilder;

/// Every duration key: its builder method and the words its range is refused with.
const DURATIONS: &[(&str, Set, &str)] = &[
    ("every", |b, d| b.every(d), PERIOD),
    ("fixed_delay", |b, d| b.fixed_delay(d), PERIOD),
    ("after", |b, d| b.after(d), DELAY),
    ("jitter", |b, d| b.fixed_delay(secs(1)).jitter(d), DELAY),
    ("backoff", |b, d| b.backoff_max(MAX).backoff(d), DELAY),
    (
        "backoff_max",
        |b, d| b.backoff(Duration::ZERO).backoff_max(d),
        PERIOD,
    ),
    ("timeout", |b, d| b.timeout(d), PERIOD),
    ("circuit_window", |b, d| b.circuit_window(d), PERIOD),
    ("circuit_break", |b, d| b.circuit_break(d), PERIOD),
    ("restart_backoff", |b, d| b.restart_backoff(d), DELAY),
    ("restart_window", |b, d| b.restart_window(d), PERIOD),
    ("stop_budget", |b, d| b.stop_budget(d), PERIOD),
    ("stale_after", |b, d| b.stale_after(d), PERIOD),
];

#[test]
fn every_duration_is_checked_against_its_range_through_the_builder_the_file_and_the_environment() {
    for &(key, set, expected) in DURATIONS {
        build(set(base(), MAX)).unwrap_or_else(|err| panic!("{key} = 365d: {err}"));
        let beyond = MAX + Duration::from_millis(1);
        let message = refused_with(build(set(base(), beyond)), expected);
        assert!(message.contains(&format!("invalid `{key}`")), "{message}");
        refused_with(build(set(base(), Duration::MAX)), expected);
        if expected == PERIOD {
            refused_with(build(set(base(), Duration::from_micros(999))), expected);
        }

        // The same words from the environment and from a file, naming the source.
        for value in ["366d", "10000000000000000000s", "100000000000000000000000s"] {
            let var = worker_core::config::env_var("w", key);
            let from_env = Host::builder()
                .worker(base().backoff_max(MAX).handler(|| async {}))
                .config_env([(var.clone(), value.to_owned())])
                .build();
            let message = refused_with(from_env, expected);
            assert!(message.contains(&var), "{message}");
        }
        let file = scratch_file(key, &format!("[workers.w]\n{key} = \"366d\"\n"));
        let from_file = Host::builder()
            .worker(base().backoff_max(MAX).handler(|| async {}))
            .config_file(&file)
            .env_overrides(false)
            .build();
        let message = refused_with(from_file, expected);
        assert!(message.contains(&format!("workers.w.{key}")), "{message}");
        std::fs::remove_file(file).ok();
    }
}

#[test]
fn every_number_is_checked_against_its_range_through_the_builder_and_the_environment() {
    type SetN = fn(WorkerBuilder, u32) -> WorkerBuilder;
    let numbers: &[(&str, SetN, u32, &str)] = &[
        ("retry", |b, n| b.retry(n), 10_000, "from 0 to 10000"),
        (
            "max_restarts",
            |b, n| b.max_restarts(n),
            1_000,
            "from 0 to 1000",
        ),
        (
            "circuit_min_throughput",
            |b, n| b.circuit_min_throughput(n),
            10_000,
            "from 1 to 10000",
        ),
        (
            "overlap",
            |b, n| b.overlap(Overlap::Allow(n)),
            10_000,
            "from 1 to 10000",
        ),
    ];
    for &(key, set, max, range) in numbers {
        build(set(base(), max)).unwrap_or_else(|err| panic!("{key} = {max}: {err}"));
        refused_with(build(set(base(), max + 1)), range);
        refused_with(build(set(base(), u32::MAX)), range);
        let value = if key == "overlap" {
            format!("allow({})", max + 1)
        } else {
            "99999999999".to_owned()
        };
        let from_env = Host::builder()
            .worker(base().handler(|| async {}))
            .config_env([(worker_core::config::env_var("w", key), value)])
            .build();
        refused_with(from_env, range);
    }
    refused_with(
        build(base().circuit_failure_ratio(1.5)),
        "expected a number greater than 0 and at most 1",
    );
    refused_with(
        Host::builder()
            .shutdown_timeout(MAX + DAY)
            .worker(base().handler(|| async {}))
            .build(),
        "host: invalid `shutdown_timeout`",
    );
    refused_with(
        Host::builder()
            .http_limits(HttpLimits::default().max_connections(0))
            .build(),
        "invalid `http_max_connections` = 0: expected a whole number from 1 to 65536",
    );
}

#[test]
fn a_schedule_that_never_fires_is_refused() {
    for cron in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 1 1 * 2001"] {
        let message = refused_with(
            build(Worker::builder("w").cron(cron)),
            "expected an expression that fires",
        );
        assert!(message.contains("invalid `cron`"), "{message}");
        let from_env = Host::builder()
            .worker(base().handler(|| async {}))
            .config_env([("WORKER__W__CRON", cron)])
            .build();
        let message = refused_with(from_env, "has no fire time in the next 10 years");
        assert!(message.contains("WORKER__W__CRON"), "{message}");
    }
    build(Worker::builder("w").cron("0 0 29 2 *")).expect("every leap year");
}

fn scratch_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "worker-hardening-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_configuration_file_must_be_a_small_regular_file() {
    let fifo = std::env::temp_dir().join(format!("worker-hardening-{}.fifo", std::process::id()));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        // Returns at once: neither waits for a writer nor reads without end.
        let message = refused_with(
            Host::builder().config_file(path).build(),
            "it is not a regular file",
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    std::fs::remove_file(&fifo).ok();
    let big = scratch_file("big", &format!("# {}\n", "x".repeat(2 << 20)));
    refused_with(
        Host::builder().config_file(&big).build(),
        "larger than 1024 KiB",
    );
    std::fs::remove_file(big).ok();
}

/// Every key at its upper bound: the loops run for two simulated years without one crash, and
/// every trigger is a run or a counted skip.
#[tokio::test(start_paused = true)]
async fn values_at_the_upper_bounds_never_crash_a_loop() {
    async fn fails() -> Result<(), BoxError> {
        Err("down".into())
    }
    let metrics = Metrics::new();
    let at_max = |name: &str| {
        Worker::builder(name)
            .after(MAX)
            .jitter(MAX.saturating_sub(DAY))
            .retry(10_000)
            .backoff(MAX)
            .backoff_max(MAX)
            .timeout(MAX)
            .circuit_window(MAX)
            .circuit_break(MAX)
            .circuit_min_throughput(1)
            .restart_backoff(MAX)
            .restart_window(MAX)
            .max_restarts(1_000)
            .stop_budget(MAX)
            .stale_after(MAX)
    };
    let host = metrics
        .build(
            Host::builder()
                .worker(at_max("every").every(MAX).handler(fails))
                .worker(at_max("delay").fixed_delay(MAX).handler(fails))
                .worker(
                    at_max("cron")
                        .cron("0 0 29 2 *")
                        .after(Duration::ZERO)
                        .jitter(Duration::ZERO)
                        .handler(fails),
                )
                .shutdown_timeout(secs(1)),
        )
        .unwrap();
    let stopped = run_for(host, 2 * MAX).await;
    let snapshot = metrics.snapshot();
    for worker in ["every", "delay", "cron"] {
        assert_eq!(restarts(&snapshot, worker, "crash"), 0, "{worker}");
    }
    assert!(
        snapshot.runs("every", "failure") + snapshot.runs("every", "cancelled") >= 1,
        "the first run came after a year"
    );
    // Runs waiting out a year of backoff end at once when the host stops.
    stopped.result.unwrap();
    assert_eq!(stopped.took, Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_blocks_past_its_timeout_is_a_timeout_not_a_success() {
    let worker = Worker::builder("blocks")
        .every(Duration::from_hours(1))
        .timeout(Duration::from_millis(50))
        .handler(|| async {
            std::thread::sleep(Duration::from_millis(300));
        });
    let host = Host::builder().worker(worker).build().unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let run = loop {
        if let Some(run) = handle.runs("blocks").unwrap().pop() {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.result, Outcome::Timeout, "{run:?}");
    assert_eq!(run.error.as_deref(), Some("timed out after 50ms"));
    running.stop().await.result.unwrap();
}

/// Three run-now requests at once, idle and while a run goes on, under each overlap policy.
#[tokio::test(start_paused = true)]
async fn run_now_requests_follow_the_overlap_policy_exactly_and_say_what_they_came_to() {
    use Requested::{Queued, Skipped, Started};
    let overlap = Skipped(SkipReason::Overlap);
    let cases: [(Overlap, [&str; 3], [&str; 3]); 3] = [
        // (policy, idle: three answers, busy: three answers)
        (
            Overlap::Skip,
            ["started", "skipped", "skipped"],
            ["skipped", "skipped", "skipped"],
        ),
        (
            Overlap::Queue,
            ["started", "queued", "skipped"],
            ["queued", "skipped", "skipped"],
        ),
        (
            Overlap::Allow(3),
            ["started", "started", "started"],
            ["started", "started", "skipped"],
        ),
    ];
    let kind = |answer: Requested| match answer {
        Started { .. } => "started",
        Queued => "queued",
        a if a == overlap => "skipped",
        other => panic!("{other:?}"),
    };
    for (policy, idle, busy) in cases {
        let worker = Worker::builder("w")
            .every(Duration::from_hours(1))
            .after(Duration::from_hours(1))
            .overlap(policy)
            .handler(|ctx: Ctx| async move {
                crate::common::work(&ctx, secs(10)).await;
            });
        let host = TestHost::start(Host::builder().worker(worker)).unwrap();
        let handle = host.handle().clone();
        let runs = |answers: &[&str]| {
            answers
                .iter()
                .filter(|a| **a == "started" || **a == "queued")
                .count()
        };
        let skips = |answers: &[&str]| answers.iter().filter(|a| **a == "skipped").count();
        // Idle: three requests made before the loop looks.
        let requests: Vec<_> = (0..3).map(|_| handle.run_now("w").unwrap()).collect();
        let mut idle_answers = Vec::new();
        for request in requests {
            idle_answers.push(kind(request.await));
        }
        assert_eq!(idle_answers, idle, "{policy}, idle");
        host.advance(secs(25)).await;
        // Busy: one run started first (for allow(3), one of three slots taken).
        let first = handle.run_now("w").unwrap().await;
        assert!(matches!(first, Started { .. }), "{policy}: {first:?}");
        let requests: Vec<_> = (0..3).map(|_| handle.run_now("w").unwrap()).collect();
        let mut busy_answers = Vec::new();
        for request in requests {
            busy_answers.push(kind(request.await));
        }
        assert_eq!(busy_answers, busy, "{policy}, busy");
        host.advance(secs(25)).await;
        let made = host.runs("w");
        assert_eq!(
            made.len(),
            runs(&idle_answers) + 1 + runs(&busy_answers),
            "{policy}: {made:?}"
        );
        let skipped = skips(&idle_answers) + skips(&busy_answers);
        let page = handle.render_metrics();
        let line =
            format!("worker_runs_skipped_total{{worker=\"w\",reason=\"overlap\"}} {skipped}");
        assert!(page.contains(&line), "{policy}: {line} in\n{page}");
        host.stop().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_admin_answer_says_whether_a_run_started_and_why_not() {
    let worker = Worker::builder("w")
        .every(Duration::from_hours(1))
        .after(Duration::from_hours(1))
        .handler(|ctx: Ctx| async move {
            crate::common::work(&ctx, secs(10)).await;
        });
    let host = TestHost::start(Host::builder().worker(worker).admin_token("t")).unwrap();
    let handle = host.handle().clone();
    let post = |handle: worker_core::HostHandle| async move {
        let request = Request::post("/workers/w/run")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(Body::empty())
            .unwrap();
        let response = handle.router().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };
    let (status, body) = post(handle.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["result"], "started");
    let run_id = body["run_id"].as_u64().expect("a run id");
    let (status, body) = post(handle.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["result"], "skipped");
    assert_eq!(body["reason"], "overlap");
    assert!(body["error"].as_str().unwrap().contains("overlap limit"));
    host.advance(secs(11)).await;
    assert_eq!(host.runs("w")[0].run_id, run_id, "the run the answer named");
    host.stop().await.unwrap();
}

/// A worker that gates liveness fails `/healthz` while it is stale with a run in progress
/// (hung), not while it is merely idle, and `/healthz` stays small.
#[tokio::test(start_paused = true)]
async fn gates_liveness_fails_healthz_for_a_hung_run_only() {
    let hung = |name: &str, gates: bool| {
        Worker::builder(name)
            .every(Duration::from_hours(1))
            .stale_after(secs(30))
            .gates_liveness(gates)
            .handler(|| async {
                // Deaf to cancellation, never ends: hung.
                std::future::pending::<()>().await;
            })
    };
    let idle = Worker::builder("idle")
        .every(Duration::from_hours(1))
        .after(Duration::from_hours(2))
        .stale_after(secs(30))
        .gates_liveness(true)
        .handler(|| async {});
    let host = TestHost::start(
        Host::builder()
            .worker(hung("hung", true))
            .worker(hung("ungated", false))
            .worker(idle)
            .shutdown_timeout(secs(1)),
    )
    .unwrap();
    let handle = host.handle().clone();
    tokio::time::sleep(secs(20)).await;
    assert!(handle.liveness().ok(), "not stale yet");
    tokio::time::sleep(secs(20)).await;
    let live = handle.liveness();
    assert!(!live.ok());
    assert_eq!(live.reasons.len(), 1, "{:?}", live.reasons);
    assert!(
        live.reasons[0].starts_with("`hung` is stale with a run in progress: no success for"),
        "{:?}",
        live.reasons
    );
    assert!(live.workers.is_empty());
    let response = handle
        .router()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        host.stop().await.is_err(),
        "the hung run was aborted at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn healthz_stays_small_and_messages_over_http_are_truncated() {
    let huge = "x".repeat(1 << 20);
    let failing = (0..50).map(move |i| {
        let message = huge.clone();
        Worker::builder(format!("w{i}"))
            .every(secs(1))
            .stale_after(secs(5))
            .gates_liveness(true)
            .handler(move || {
                let message = message.clone();
                async move {
                    let _: () = std::future::pending().await;
                    Err::<(), BoxError>(message.into())
                }
            })
    });
    let host = TestHost::start(
        Host::builder()
            .workers(failing)
            .worker(
                Worker::builder("loud")
                    .every(secs(1))
                    .handler(|| async { Err::<(), BoxError>("y".repeat(1 << 20).into()) }),
            )
            .shutdown_timeout(secs(1)),
    )
    .unwrap();
    let handle = host.handle().clone();
    tokio::time::sleep(secs(10)).await;
    let get = |path: &'static str| {
        let handle = handle.clone();
        async move {
            let response = handle
                .router()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let headers = response.headers().clone();
            let body = axum::body::to_bytes(response.into_body(), 1 << 26)
                .await
                .unwrap();
            (headers, body)
        }
    };
    let (_, live) = get("/healthz").await;
    assert!(
        live.len() < 2048,
        "{} bytes: {}",
        live.len(),
        String::from_utf8_lossy(&live)
    );
    let live: serde_json::Value = serde_json::from_slice(&live).unwrap();
    assert_eq!(live["reasons"].as_array().unwrap().len(), 6, "{live}");
    assert_eq!(live["reasons"][5], "and 45 more workers");
    let (headers, workers) = get("/workers").await;
    let workers: serde_json::Value = serde_json::from_slice(&workers).unwrap();
    let loud = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "loud")
        .unwrap();
    let message = loud["last_error"]["message"].as_str().unwrap();
    assert!(
        message.len() <= 1024,
        "messages are documented to be kept up to 1024 bytes: {}",
        message.len()
    );
    assert!(message.ends_with('…'));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    let (headers, page) = get("/").await;
    let policy = headers["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(part), "{part} in {policy}");
    }
    let page = String::from_utf8_lossy(&page);
    for handler in ["onsubmit=", "onclick=", "onload=", "oninput="] {
        assert!(
            !page.contains(handler),
            "no inline event handler: {handler}"
        );
    }
    let _ = host.stop().await;
}

/// A listener that cannot be built fails the build, not the first request.
#[test]
fn a_bad_http_limit_stops_the_build() {
    let limits = HttpLimits::default().header_timeout(Duration::ZERO);
    refused_with(
        HostBuilder::build(Host::builder().http_limits(limits)),
        "invalid `http_header_timeout` = \"0s\": expected a duration from 1ms to 365d",
    );
}

/// A request to a worker that will never run (disabled, failed, stopped) is answered, never
/// left waiting.
#[tokio::test(start_paused = true)]
async fn a_run_now_request_that_cannot_run_is_answered() {
    let disabled = Worker::builder("disabled")
        .every(secs(1))
        .enabled(false)
        .handler(|| async {});
    let host = Host::builder().worker(disabled).build().unwrap();
    let handle = host.handle();
    // Asked before the host starts: accepted, then answered when the worker's loop ends.
    let request = handle.run_now("disabled").unwrap();
    let running = Running::start(host);
    let answer = tokio::time::timeout(secs(60), request)
        .await
        .expect("answered");
    assert_eq!(answer, Requested::Skipped(SkipReason::ShuttingDown));
    running.stop().await.result.unwrap();
    let err = handle.run_now("disabled").unwrap_err();
    assert!(err.is_not_running(), "{err}");
}

/// `TestHost::advance` waits for a run that outlasts it, and returns soon after that run ends
/// (the run's own timer fires at its instant); of a worker that is never idle, it waits for the
/// runs started by its target only; a run that never ends fails the test, naming its worker,
/// instead of spinning.
#[tokio::test(start_paused = true)]
async fn the_test_harness_waits_for_a_long_run_and_gives_up_on_one_that_never_ends() {
    let long = Worker::builder("long")
        .once()
        .handler(|| async { tokio::time::sleep(secs(300)).await });
    let host = TestHost::start(Host::builder().worker(long)).unwrap();
    let start = tokio::time::Instant::now();
    host.advance(secs(1)).await;
    let waited = start.elapsed();
    assert!(
        (secs(300)..=secs(303)).contains(&waited),
        "returned {waited:?} after the start"
    );
    let runs = host.runs("long");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].duration, secs(300));
    host.stop().await.unwrap();

    // Never idle: each run outlasts the period, and `overlap = queue` keeps a tick for its end.
    let never_idle = Worker::builder("never_idle")
        .every(secs(1))
        .overlap(Overlap::Queue)
        .handler(|| async { tokio::time::sleep(Duration::from_millis(2500)).await });
    let host = TestHost::start(Host::builder().worker(never_idle)).unwrap();
    let start = tokio::time::Instant::now();
    host.advance(Duration::from_millis(10_500)).await;
    let waited = start.elapsed();
    // The run started by 10.5 s (its 5th, at 10 s) ends at 12.5 s; the one kept for then is
    // not waited for.
    assert!(
        (Duration::from_millis(12_500)..=Duration::from_millis(12_700)).contains(&waited),
        "returned {waited:?} after the start"
    );
    assert_eq!(host.runs("never_idle").len(), 5);
    host.stop().await.unwrap();

    let stuck = Worker::builder("stuck")
        .once()
        .handler(std::future::pending::<()>);
    let host = TestHost::start(Host::builder().worker(stuck)).unwrap();
    let advanced = tokio::spawn(async move { host.advance(secs(1)).await });
    let panic = advanced
        .await
        .expect_err("a run that never ends fails the test");
    let message = panic.into_panic();
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.contains("a simulated day later: stuck"),
        "{message}"
    );
}

/// The builder's refusals write a duration as the attribute and the configuration do, in days
/// and smaller units: `"366d"`, never `"1year 18h"`.
#[test]
fn a_refused_duration_is_written_as_the_keys_are() {
    let err = build(Worker::builder("w").every(Duration::from_hours(366 * 24))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "worker `w`: invalid `every` = \"366d\": expected a duration from 1ms to 365d"
    );
}
