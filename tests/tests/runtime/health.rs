//! Health on the paused clock, through the test harness (`worker_core::testing`): every state a
//! worker shows, `stale_after`, the probes' status codes and bodies, and the admin actions with
//! no token, a wrong token and the right one, through the host's router.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;
use worker_core::testing::{TestHost, run_once};
use worker_core::{
    BoxError, Ctx, Health, Host, HostHandle, Outcome, Trigger, Worker, WorkerState, worker,
};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The state and health `worker` shows now.
fn status(handle: &HostHandle, worker: &str) -> (WorkerState, Health, Option<String>) {
    let status = handle
        .workers()
        .into_iter()
        .find(|w| w.name == worker)
        .expect("a registered worker");
    (status.state, status.health, status.reason)
}

/// Moves the clock in 100 ms steps until `worker` shows `state`, for at most a minute.
async fn wait_for(handle: &HostHandle, worker: &str, state: WorkerState) {
    for _ in 0..600 {
        if status(handle, worker).0 == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "`{worker}` never showed {state}: {:?}",
        status(handle, worker)
    );
}

/// Sends `request` to the host's router; the status and the body as JSON (or text).
async fn call(handle: &HostHandle, request: Request<Body>) -> (StatusCode, Value) {
    let response = handle.router().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn get(handle: &HostHandle, path: &str) -> (StatusCode, Value) {
    call(handle, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post(handle: &HostHandle, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::post(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    call(handle, request.body(Body::empty()).unwrap()).await
}

#[tokio::test(start_paused = true)]
async fn a_worker_goes_through_starting_running_backoff_stale_and_stopped() {
    let t0 = tokio::time::Instant::now();
    let started = move || t0.elapsed();
    let worker = Worker::builder("flaky")
        .every(secs(10))
        .retry(1)
        .backoff(secs(2))
        .stale_after(secs(30))
        .gates_readiness(true)
        .handler(move || async move {
            let scheduled = started();
            tokio::time::sleep(secs(4)).await;
            if scheduled >= secs(20) {
                return Err::<(), BoxError>("upstream down".into());
            }
            Ok(())
        });
    let host = TestHost::start(Host::builder().worker(worker)).unwrap();
    let handle = host.handle().clone();
    assert_eq!(status(&handle, "flaky").0, WorkerState::Starting);
    assert_eq!(
        get(&handle, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // 1 s: the first run (0 to 4 s) is in progress.
    tokio::time::sleep(secs(1)).await;
    assert_eq!(
        status(&handle, "flaky"),
        (WorkerState::Running, Health::Healthy, None)
    );
    let (code, ready) = get(&handle, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["workers"][0]["gates_readiness"], true);

    // 5 s: idle after a success.
    tokio::time::sleep(secs(4)).await;
    assert_eq!(status(&handle, "flaky").0, WorkerState::Idle);

    // 25 s: the run due at 20 s failed its first attempt at 24 s and waits 2 s to retry.
    host.advance(secs(20)).await;
    // `advance` waited for that run to end (at 30 s), so look at its record.
    let runs = host.runs("flaky");
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2].result, Outcome::Failure);
    assert_eq!(runs[2].attempts, 2);
    assert_eq!(runs[2].error.as_deref(), Some("upstream down"));
    let (state, health, reason) = status(&handle, "flaky");
    assert_eq!((state, health), (WorkerState::Idle, Health::Degraded));
    assert_eq!(reason.as_deref(), Some("last run failure: upstream down"));

    // The run due at 30 s fails its first attempt at 34 s and backs off.
    wait_for(&handle, "flaky", WorkerState::Backoff).await;

    // The last success ended at 14 s; 30 s later, at 44 s, the worker is stale.
    wait_for(&handle, "flaky", WorkerState::Stale).await;
    assert!(t0.elapsed() >= secs(44), "{:?}", t0.elapsed());
    let (state, health, reason) = status(&handle, "flaky");
    assert_eq!((state, health), (WorkerState::Stale, Health::Unhealthy));
    assert!(reason.unwrap().starts_with("no success for 30s"));
    let (code, ready) = get(&handle, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "it gates readiness");
    assert_eq!(ready["status"], "fail");
    assert!(
        ready["reasons"][0]
            .as_str()
            .unwrap()
            .contains("`flaky` is stale")
    );
    let metrics = handle.render_metrics();
    assert!(metrics.contains("worker_state{worker=\"flaky\",state=\"stale\"} 1"));
    assert_eq!(
        get(&handle, "/healthz").await.0,
        StatusCode::OK,
        "alive, though stale"
    );

    host.stop().await.unwrap();
    assert_eq!(status(&handle, "flaky").0, WorkerState::Stopped);
    assert_eq!(
        get(&handle, "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&handle, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[worker(every = "1s", max_restarts = 1, restart_window = "1m")]
async fn panicky() {
    panic!("always");
}

#[worker(every = "1s")]
async fn steady() {}

#[tokio::test(start_paused = true)]
async fn a_failed_worker_is_unhealthy_and_does_not_gate_readiness_unless_asked() {
    let host = TestHost::start(Host::builder().worker(panicky).worker(steady)).unwrap();
    host.advance(secs(3)).await;
    let handle = host.handle();
    let (state, health, reason) = status(handle, "panicky");
    assert_eq!((state, health), (WorkerState::Failed, Health::Unhealthy));
    assert!(reason.unwrap().starts_with("failed"));
    assert_eq!(status(handle, "steady").1, Health::Healthy);
    // A failed worker cannot run: refused, over HTTP with 409.
    let err = handle.run_now("panicky").unwrap_err();
    assert!(err.is_not_running(), "{err}");
    // `panicky` does not gate readiness, and its loop ended by policy: alive and ready.
    assert_eq!(get(handle, "/readyz").await.0, StatusCode::OK);
    let (code, live) = get(handle, "/healthz").await;
    assert_eq!(code, StatusCode::OK, "{live}");
    assert_eq!(
        live["workers"],
        serde_json::json!([]),
        "liveness stays small: no worker list"
    );
    host.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pause_skips_triggers_resume_runs_them_again_and_run_now_runs_at_once() {
    let host = TestHost::start(Host::builder().worker(steady)).unwrap();
    let handle = host.handle().clone();
    host.advance(secs(2)).await;
    assert_eq!(host.runs("steady").len(), 3, "0, 1 and 2 s");

    handle.pause("steady").unwrap();
    host.advance(secs(3)).await;
    assert_eq!(host.runs("steady").len(), 3, "nothing while paused");
    let (state, health, reason) = status(&handle, "steady");
    assert_eq!((state, health), (WorkerState::Paused, Health::Degraded));
    assert_eq!(reason.as_deref(), Some("paused"));
    assert!(
        handle
            .render_metrics()
            .contains("worker_runs_skipped_total{worker=\"steady\",reason=\"paused\"} 3")
    );

    // Run now works while paused, once.
    let run = host.run_once("steady").await;
    assert_eq!(
        (run.trigger, run.result),
        (Trigger::Manual, Outcome::Success)
    );
    assert_eq!(host.runs("steady").len(), 4);

    handle.resume("steady").unwrap();
    host.advance(secs(2)).await;
    assert_eq!(host.runs("steady").len(), 6);
    assert_eq!(status(&handle, "steady").0, WorkerState::Idle);

    let err = handle.pause("nobody").unwrap_err();
    assert!(err.is_unknown_worker(), "{err}");
    host.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn admin_actions_need_a_token_and_the_right_one() {
    // No token configured: off.
    let host = TestHost::start(Host::builder().worker(steady)).unwrap();
    let (code, body) = post(host.handle(), "/workers/steady/run", Some("anything")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("disabled"));
    host.stop().await.unwrap();

    let host = TestHost::start(Host::builder().worker(steady).admin_token("s3cret")).unwrap();
    let handle = host.handle().clone();
    host.advance(Duration::ZERO).await;
    for token in [None, Some("wrong"), Some("s3cret-but-longer"), Some("")] {
        let (code, _) = post(&handle, "/workers/steady/pause", token).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    assert_eq!(
        status(&handle, "steady").0,
        WorkerState::Idle,
        "nothing happened"
    );

    let (code, body) = post(&handle, "/workers/steady/pause", Some("s3cret")).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(
        body,
        serde_json::json!({"worker": "steady", "action": "pause"})
    );
    host.advance(Duration::ZERO).await;
    assert_eq!(status(&handle, "steady").0, WorkerState::Paused);
    let (code, _) = post(&handle, "/workers/steady/run", Some("s3cret")).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    host.advance(Duration::ZERO).await;
    assert_eq!(host.runs("steady").last().unwrap().trigger, Trigger::Manual);

    // Malformed requests: 4xx, never a panic.
    assert_eq!(
        post(&handle, "/workers/nobody/run", Some("s3cret")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&handle, "/workers/steady/explode", Some("s3cret"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&handle, "/workers/steady/run").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        post(&handle, "/workers/%FF/run", Some("s3cret"))
            .await
            .0
            .as_u16()
            / 100,
        4
    );

    let metrics = handle.render_metrics();
    for line in [
        "worker_admin_refused_total{reason=\"unauthorized\"} 4",
        "worker_admin_actions_total{worker=\"steady\",action=\"pause\"} 1",
        "worker_admin_actions_total{worker=\"steady\",action=\"run\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    let (code, workers) = get(&handle, "/workers").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(workers["admin"], true);
    assert_eq!(workers["host"]["state"], "running");
    let row = &workers["workers"][0];
    assert_eq!(row["name"], "steady");
    assert_eq!(row["state"], "paused");
    assert_eq!(row["last_run"]["trigger"], "manual");
    assert!(!row["recent"].as_array().unwrap().is_empty());
    let (code, page) = get(&handle, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("<title>Workers</title>"));
    host.stop().await.unwrap();
}

#[worker(every = "1h", timeout = "1s", retry = 2, backoff = "1s")]
async fn hangs(ctx: Ctx) {
    ctx.cancelled().await;
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_a_worker_with_its_policies_and_records_every_attempt() {
    let run = run_once(hangs, Host::builder()).await.unwrap();
    assert_eq!(run.result, Outcome::Timeout);
    assert_eq!(run.attempts, 3);
    assert_eq!(run.error.as_deref(), Some("timed out after 1s"));
    // Three attempts of 1 s, then backoffs of 1 s and 2 s with equal jitter: 4.5 to 6 s.
    let range = Duration::from_millis(4_500)..=secs(6);
    assert!(range.contains(&run.duration), "{run:?}");
}

#[worker(every = "10s", stale_after = "30s")]
async fn hourly_ish() {}

#[tokio::test(start_paused = true)]
async fn staleness_counts_from_the_resume_not_from_before_the_pause() {
    let host = TestHost::start(Host::builder().worker(hourly_ish).admin_token("t")).unwrap();
    let handle = host.handle().clone();
    host.advance(Duration::ZERO).await;
    handle.pause("hourly_ish").unwrap();
    host.advance(secs(120)).await;
    assert_eq!(
        status(&handle, "hourly_ish").0,
        WorkerState::Paused,
        "paused is never stale"
    );

    handle.resume("hourly_ish").unwrap();
    host.advance(secs(1)).await;
    let after = status(&handle, "hourly_ish");
    assert_eq!(
        after.1,
        Health::Healthy,
        "no stale after a resume: {after:?}"
    );

    // Refused once the host stops: 409 over HTTP.
    handle.shutdown();
    while handle.state() == worker_core::HostState::Running {
        tokio::task::yield_now().await;
    }
    let (code, body) = post(&handle, "/workers/hourly_ish/run", Some("t")).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    host.stop().await.unwrap();
}

/// Every job of 13 fails for good; the others succeed.
#[worker_core::worker(queue = "orders", capacity = 2)]
async fn picky(job: worker_core::Job<u64>) -> Result<(), worker_core::BoxError> {
    if *job == 13 {
        return Err(worker_core::Permanent::new("unlucky order").into());
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dead_job_is_requeued_over_http_with_the_admin_token() {
    let host = TestHost::start(Host::builder().worker(picky).admin_token("s3cret")).unwrap();
    let handle = host.handle().clone();
    let orders = host.queue::<u64>("orders");
    orders.send(13).await.unwrap();
    host.advance(Duration::ZERO).await;
    let (_, workers) = get(&handle, "/workers").await;
    let queue = &workers["workers"][0]["queue"];
    assert_eq!(queue["dead"], 1);
    assert_eq!(queue["dead_jobs"][0]["id"], 1);
    assert_eq!(queue["dead_jobs"][0]["payload"], "13");
    assert_eq!(queue["dead_jobs"][0]["error"], "unlucky order");

    let (code, _) = post(&handle, "/workers/picky/dead/1/requeue", Some("wrong")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = post(&handle, "/workers/picky/dead/1/requeue", Some("s3cret")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"worker": "picky", "action": "requeue", "dead_job": 1, "job_id": 2})
    );
    // Gone from the dead list, then dead again as job 2.
    let (code, body) = post(&handle, "/workers/picky/dead/1/requeue", Some("s3cret")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    host.advance(Duration::ZERO).await;
    let (_, workers) = get(&handle, "/workers").await;
    let dead = &workers["workers"][0]["queue"]["dead_jobs"];
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["id"], 2);
    // A queue that has no room refuses it: 409, and the job stays dead.
    handle.pause("picky").unwrap();
    host.advance(Duration::ZERO).await;
    orders.send(1).await.unwrap();
    orders.send(2).await.unwrap();
    let (code, body) = post(&handle, "/workers/picky/dead/2/requeue", Some("s3cret")).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the queue is full"),
        "{body}"
    );
    assert_eq!(
        handle.workers()[0].queue.as_ref().unwrap().dead_jobs.len(),
        1
    );
    // A scheduled worker has no dead jobs.
    let (code, _) = post(&handle, "/workers/nobody/dead/1/requeue", Some("s3cret")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        handle
            .render_metrics()
            .contains("worker_admin_actions_total{worker=\"picky\",action=\"requeue\"} 1")
    );
    host.stop().await.unwrap();
}

/// The application's own state, which its routes extract.
#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

/// `handle.mount(app, "/ops")` mounts the host's routes in an app with a state of its own:
/// every route answers under the prefix, and `/ops/` is the dashboard as `/ops` is. The
/// router alone nests as any axum router does.
#[tokio::test(start_paused = true)]
async fn the_router_mounts_in_an_app_with_its_own_state() {
    use axum::extract::State;
    use axum::routing::get as route_get;

    let worker = Worker::builder("mounted")
        .every(secs(10))
        .handler(|| async {});
    let host = TestHost::start(Host::builder().worker(worker)).unwrap();
    host.advance(Duration::ZERO).await;
    let app = axum::Router::new().route(
        "/hello",
        route_get(|State(app): State<AppState>| async move { app.greeting }),
    );
    let app: axum::Router = host
        .handle()
        .mount(app, "/ops/")
        .with_state(AppState { greeting: "hi" });
    for (path, expected) in [
        ("/hello", "hi"),
        ("/ops", "<title>Workers</title>"),
        ("/ops/", "<title>Workers</title>"),
        (
            "/ops/metrics",
            "worker_runs_total{worker=\"mounted\",result=\"success\"} 1",
        ),
        ("/ops/healthz", "\"status\":\"ok\""),
        ("/ops/workers", "\"name\":\"mounted\""),
    ] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        let body = String::from_utf8_lossy(&bytes);
        assert!(
            body.contains(expected),
            "{path}: {expected:?} not in {body}"
        );
    }
    let nested: axum::Router = axum::Router::new()
        .nest("/ops", host.handle().router())
        .with_state(AppState { greeting: "hi" });
    let request = Request::get("/ops/readyz").body(Body::empty()).unwrap();
    let response = nested.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    host.stop().await.unwrap();
}
