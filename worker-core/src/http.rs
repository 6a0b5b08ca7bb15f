//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/workers`, the dashboard at `/`, and
//! the admin actions `POST /workers/{name}/{run|pause|resume}`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use subtle::ConstantTimeEq as _;

use crate::handle::{HostHandle, Origin};
use crate::health::Probe;
use crate::metrics::{Action, REFUSALS};
use crate::status::{HostState, WorkerStatus};

/// The dashboard: one static page that polls `workers`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Every route, with the host's handle as state.
pub(crate) fn router(handle: HostHandle) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/workers", get(workers))
        .route("/workers/{name}/{action}", post(act))
        .with_state(handle)
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
        handle.render_metrics(),
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

/// `POST /workers/{name}/{action}`: refused unless a token is configured and given as
/// `Authorization: Bearer <token>`; compared in constant time.
async fn act(
    State(handle): State<HostHandle>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(action) = Action::ALL.into_iter().find(|a| a.as_str() == action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown action `{action}`: expected `run`, `pause` or `resume`"),
        );
    };
    let board = &handle.board;
    let Some(expected) = &board.admin_token else {
        board.refused[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            worker = ?name,
            action = action.as_str(),
            "admin action refused: admin actions are disabled"
        );
        return error(
            StatusCode::FORBIDDEN,
            "admin actions are disabled: the host has no admin token".to_owned(),
        );
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
        board.refused[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            worker = ?name,
            action = action.as_str(),
            reason = REFUSALS[1],
            "admin action refused: missing or wrong bearer token"
        );
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` header is required".to_owned(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid header value"),
        );
        return response;
    }
    match handle.act(&name, action, Origin::Http) {
        Ok(()) => {
            #[derive(Serialize)]
            struct Accepted<'a> {
                worker: &'a str,
                action: &'static str,
            }
            let body = Accepted {
                worker: &name,
                action: action.as_str(),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(err) if err.is_not_running() => error(StatusCode::CONFLICT, err.to_string()),
        Err(err) => error(StatusCode::NOT_FOUND, err.to_string()),
    }
}
