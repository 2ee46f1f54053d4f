//! `GET /metrics`: Prometheus text format. (Being built: see docs/metrics.md.)

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use hyper::StatusCode;

use crate::AdminState;

/// `GET /metrics`.
pub async fn handler(State(_state): State<Arc<AdminState>>) -> Response {
    crate::text(StatusCode::NOT_IMPLEMENTED, "metrics: not yet\n")
}
