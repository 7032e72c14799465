//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document, and the
//! unknown-path answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use ordergate_core::Refusal;

use super::{AppState, refusal_response};

/// `GET /healthz`: the process serves.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers and the server is not shutting down.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.shutting_down.load(Ordering::SeqCst) {
        return refusal_response(&Refusal::NotReady("the server is shutting down"));
    }
    match state.gateway.ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => refusal_response(&Refusal::NotReady("the database is unavailable")),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 document of the API, as checked in at `docs/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A known path with a method it does not serve; axum adds the `Allow` header.
pub async fn method_not_allowed() -> Response {
    refusal_response(&Refusal::MethodNotAllowed)
}

/// Any path that is not routed.
pub async fn not_found() -> Response {
    refusal_response(&Refusal::NoRoute)
}
