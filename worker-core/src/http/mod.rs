//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/workers`, the dashboard at `/`, and
//! the admin actions `POST /workers/{name}/{run|pause|resume}`, `POST
//! /workers/{name}/dead/{job}/requeue` and, for durable queues, `POST
//! /workers/{name}/jobs/{job}/{retry|discard|cancel}`.

pub(crate) mod limits;
pub(crate) mod scrape;
pub(crate) mod serve;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use subtle::ConstantTimeEq as _;

use crate::host::actions::Origin;
use crate::host::handle::HostHandle;
use crate::observe::SkipReason;
use crate::observe::board::Board;
use crate::observe::health::Probe;
use crate::observe::message::{log_aside, truncated};
use crate::observe::metrics::{Action, REFUSALS};
use crate::observe::status::{HostState, WorkerStatus};
use crate::supervise::Requested;

/// The dashboard: one static page that polls `workers`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// How long `POST /workers/{name}/run` waits for the worker's answer before answering 202
/// without it (the worker's loop is busy, or its thread blocked).
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Every route, with the host's handle as state, and the security headers on every answer.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(handle: HostHandle) -> Router<S> {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/workers", get(workers))
        .route("/workers/{name}/{action}", post(act))
        .route("/workers/{name}/dead/{job}/requeue", post(requeue))
        .route("/workers/{name}/jobs/{job}/{action}", post(act_on_job))
        .with_state(handle)
        .layer(axum::middleware::map_response(secure))
}

/// `router` under `prefix` in `app`, the dashboard answering the prefix with and without its
/// trailing slash (axum's `nest` routes `/ops` to the nested `/`, and `/ops/` nowhere).
pub(crate) fn mount<S: Clone + Send + Sync + 'static>(
    handle: HostHandle,
    app: Router<S>,
    prefix: &str,
) -> Router<S> {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return app.merge(router(handle));
    }
    app.nest(prefix, router(handle)).route(
        &format!("{prefix}/"),
        get(dashboard).layer(axum::middleware::map_response(secure)),
    )
}

/// The headers every answer carries: a content security policy that allows only the
/// dashboard's own inline script and style (by their hashes) and requests to its own origin,
/// no framing, no content sniffing, no referrer, no caching.
async fn secure(mut response: Response) -> Response {
    use axum::http::HeaderValue;

    static POLICY: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hash(DASHBOARD, "<script>", "</script>"),
            inline_hash(DASHBOARD, "<style>", "</style>"),
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `'sha256-<base64>'` of the text between `open` and `close` in `page`, as a content security
/// policy names an inline script or style.
fn inline_hash(page: &str, open: &str, close: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;

    let text = page
        .split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(text, _)| text);
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn metrics(State(handle): State<HostHandle>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::http::scrape::page(&handle.board).await,
    )
}

fn probe(probe: Probe) -> Response {
    let status = if probe.ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(probe)).into_response()
}

async fn healthz(State(handle): State<HostHandle>) -> Response {
    probe(handle.liveness())
}

async fn readyz(State(handle): State<HostHandle>) -> Response {
    probe(handle.readiness())
}

/// The body of `/workers`.
#[derive(Serialize)]
struct WorkersPage {
    /// Unix seconds on the host's clock, for relative times.
    now: f64,
    host: Host,
    /// Whether admin actions are enabled (a token is configured).
    admin: bool,
    workers: Vec<WorkerStatus>,
}

#[derive(Serialize)]
struct Host {
    state: HostState,
}

async fn workers(State(handle): State<HostHandle>) -> Json<WorkersPage> {
    let board = &handle.board;
    let now = board.now();
    Json(WorkersPage {
        now,
        host: Host {
            state: board.state(),
        },
        admin: board.admin_token.is_some(),
        workers: board.statuses(now),
    })
}

fn error(status: StatusCode, message: String) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (status, Json(Body { error: message })).into_response()
}

/// Counts a refused admin request (`reason` indexes [`REFUSALS`]) and logs it; the requests
/// are unauthenticated, so at most one line per reason every `REPEAT_WINDOW`.
fn refused(board: &Board, reason: usize, name: &str, action: Action, why: &'static str) {
    board.refused[reason].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(repeated) = board
        .refusals
        .admit(reason as u64, tokio::time::Instant::now())
    {
        let worker = truncated(name).into_owned();
        log_aside(move || {
            tracing::warn!(
                worker = ?worker,
                action = action.as_str(),
                reason = REFUSALS[reason],
                repeated,
                "admin action refused: {why}"
            );
        });
    }
}

/// Refuses an admin request unless a token is configured and given as
/// `Authorization: Bearer <token>`; compared in constant time.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the response, built once"
)]
fn authorize(
    handle: &HostHandle,
    headers: &HeaderMap,
    name: &str,
    action: Action,
) -> Result<(), Response> {
    let board = &handle.board;
    let Some(expected) = &board.admin_token else {
        refused(board, 0, name, action, "admin actions are disabled");
        return Err(error(
            StatusCode::FORBIDDEN,
            "admin actions are disabled: the host has no admin token".to_owned(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        refused(board, 1, name, action, "missing or wrong bearer token");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` header is required".to_owned(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid header value"),
        );
        return Err(response);
    }
    Ok(())
}

/// `POST /workers/{name}/dead/{job}/requeue`: sends a dead job to its queue again, as a new job;
/// answers 202 with the new job's id, 404 for an unknown worker or job, 409 when the queue is
/// full or closed. Guarded by the admin token like the other actions.
async fn requeue(
    State(handle): State<HostHandle>,
    Path((name, job)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    #[derive(Serialize)]
    struct Requeued<'a> {
        worker: &'a str,
        action: &'static str,
        dead_job: u64,
        job_id: u64,
    }
    if let Err(refusal) = authorize(&handle, &headers, &name, Action::Requeue) {
        return refusal;
    }
    match handle.requeue_from(&name, job, Origin::Http) {
        Ok(job_id) => (
            StatusCode::ACCEPTED,
            Json(Requeued {
                worker: &name,
                action: "requeue",
                dead_job: job,
                job_id,
            }),
        )
            .into_response(),
        Err(err) if err.is_unknown_worker() || err.to_string().contains("no such job") => error(
            StatusCode::NOT_FOUND,
            truncated(&err.to_string()).into_owned(),
        ),
        Err(err) => error(
            StatusCode::CONFLICT,
            truncated(&err.to_string()).into_owned(),
        ),
    }
}

/// `POST /workers/{name}/jobs/{job}/{retry|discard|cancel}`: an admin action on a job of the
/// durable queue the worker consumes. Answers 202 with what was done (`retried` with the new
/// job's id, `discarded`, `cancelled`, or `cancel_requested` for a running job), 404 for an
/// unknown worker, action or job, 409 when the job's state does not allow it or the worker
/// consumes no durable queue. Guarded by the admin token like the other actions.
async fn act_on_job(
    State(handle): State<HostHandle>,
    Path((name, job, action)): Path<(String, u64, String)>,
    headers: HeaderMap,
) -> Response {
    use crate::durable::{JobActed, JobAction};

    #[derive(Serialize)]
    struct Acted<'a> {
        worker: &'a str,
        action: &'static str,
        job: u64,
        result: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        job_id: Option<u64>,
    }
    let Some(action) = JobAction::ALL.into_iter().find(|a| a.as_str() == action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown job action `{}`: expected `retry`, `discard` or `cancel`",
                truncated(&action)
            ),
        );
    };
    if let Err(refusal) = authorize(&handle, &headers, &name, Action::of(action)) {
        return refusal;
    }
    match handle
        .act_on_job_from(&name, job, action, Origin::Http)
        .await
    {
        Ok(acted) => {
            let (result, job_id) = match acted {
                JobActed::Retried { id } => ("retried", Some(id)),
                JobActed::Discarded => ("discarded", None),
                JobActed::Cancelled => ("cancelled", None),
                JobActed::CancelRequested => ("cancel_requested", None),
                _ => ("done", None),
            };
            let body = Acted {
                worker: &name,
                action: action.as_str(),
                job,
                result,
                job_id,
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(err) if err.is_unknown_worker() || err.to_string().contains("has no such job") => {
            error(
                StatusCode::NOT_FOUND,
                truncated(&err.to_string()).into_owned(),
            )
        }
        Err(err) => error(
            StatusCode::CONFLICT,
            truncated(&err.to_string()).into_owned(),
        ),
    }
}

/// `POST /workers/{name}/{action}`: refused unless a token is configured and given as
/// `Authorization: Bearer <token>`; compared in constant time.
async fn act(
    State(handle): State<HostHandle>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let routed = [Action::Run, Action::Pause, Action::Resume];
    let Some(action) = routed.into_iter().find(|a| a.as_str() == action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown action `{}`: expected `run`, `pause` or `resume`",
                truncated(&action)
            ),
        );
    };
    if let Err(refusal) = authorize(&handle, &headers, &name, action) {
        return refusal;
    }
    let request = match handle.act(&name, action, Origin::Http) {
        Ok(request) => request,
        Err(err) if err.is_not_running() => {
            return error(
                StatusCode::CONFLICT,
                truncated(&err.to_string()).into_owned(),
            );
        }
        Err(err) => {
            return error(
                StatusCode::NOT_FOUND,
                truncated(&err.to_string()).into_owned(),
            );
        }
    };
    let answer = match request {
        Some(request) => tokio::time::timeout(ANSWER_WAIT, request).await.ok(),
        None => None,
    };
    acted(&name, action, answer, action == Action::Run)
}

/// The answer to an accepted admin action: 202 with what happened, or 409 when a run-now
/// request was skipped (with why).
fn acted(name: &str, action: Action, answer: Option<Requested>, run: bool) -> Response {
    #[derive(Serialize)]
    struct Accepted<'a> {
        worker: &'a str,
        action: &'static str,
        /// Run now: `started`, `queued`, `skipped`, or `requested` when the worker did not
        /// answer in time.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
    let mut body = Accepted {
        worker: name,
        action: action.as_str(),
        result: None,
        run_id: None,
        reason: None,
        error: None,
    };
    let mut status = StatusCode::ACCEPTED;
    if run {
        match answer {
            Some(Requested::Started { run_id }) => {
                body.result = Some("started");
                body.run_id = Some(run_id);
            }
            Some(Requested::Queued) => body.result = Some("queued"),
            Some(Requested::Skipped(reason)) => {
                status = StatusCode::CONFLICT;
                body.result = Some("skipped");
                body.reason = Some(reason.as_str());
                body.error = Some(match reason {
                    SkipReason::Overlap => format!(
                        "`{}` is at its overlap limit: the run was skipped",
                        truncated(name)
                    ),
                    other => format!("the run was skipped ({})", other.as_str()),
                });
            }
            None => body.result = Some("requested"),
        }
    }
    (status, Json(body)).into_response()
}
