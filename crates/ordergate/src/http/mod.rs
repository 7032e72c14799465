//! The HTTP layer: routes, handlers, and the mapping of outcomes to responses.
//!
//! Handlers check what HTTP owns (token, media type, size, key header) in the
//! contract's order and hand the rest to [`crate::gateway::Gateway`].

mod guards;
mod intake;
mod ops;
mod orders;
mod problem;
mod responses;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use tower_http::trace::TraceLayer;

pub use problem::{answer_response, refusal_response};

use crate::auth::Auth;
use crate::gateway::Gateway;
use crate::telemetry::Metrics;

/// Everything handlers share.
pub struct AppState {
    gateway: Gateway,
    auth: Arc<Auth>,
    metrics: Arc<Metrics>,
    max_body: u64,
    /// Set at SIGTERM: `/readyz` answers 503 from then on.
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        gateway: Gateway,
        auth: Arc<Auth>,
        metrics: Arc<Metrics>,
        max_body: u64,
        shutting_down: Arc<AtomicBool>,
    ) -> Self {
        Self {
            gateway,
            auth,
            metrics,
            max_body,
            shutting_down,
        }
    }
}

/// One span per request; handlers fill in the tenant and the outcome. Headers are
/// left out on purpose: they carry bearer tokens.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        tenant = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// The application; the seam tests and the server both use.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/orders", get(orders::find_by_key).post(orders::create))
        .route("/orders/{id}", get(orders::find_by_id))
        .route("/orders/{id}/delivery", get(orders::delivery))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        // The handler enforces --max-body itself, so axum's own 2 MB default must not.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(guards::limit_header_section))
        .layer(middleware::from_fn(guards::close_if_body_unread))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // One Arc per request instead of a clone of every field: state is cloned a few
        // times per request, and on two cores each clone is a contended atomic.
        .with_state(Arc::new(state))
}
