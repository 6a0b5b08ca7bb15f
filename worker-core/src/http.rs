//! The HTTP surface: `/metrics` in Prometheus's text format.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::status::Board;

/// The routes the host serves: `GET /metrics`.
pub(crate) fn router(board: Arc<Board>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(board)
}

async fn metrics(State(board): State<Arc<Board>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        board.render_metrics(),
    )
}
