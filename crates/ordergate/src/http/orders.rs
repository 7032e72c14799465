//! `POST /orders`, `GET /orders/{id}` and `GET /orders?idempotencyKey=K`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ordergate_core::{Outcome, Refusal};
use uuid::Uuid;

use super::responses::{order_response, outcome_response};
use super::{AppState, intake, refusal_response};

/// `POST /orders`.
pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (label, response) = match submit(&state, request).await {
        Ok(outcome) => (outcome.label(), outcome_response(outcome)),
        Err(e) => (e.code().code(), refusal_response(&e)),
    };
    tracing::info!(
        outcome = label,
        status = response.status().as_u16(),
        "POST /orders"
    );
    state
        .metrics
        .observe("post_orders", label, started.elapsed().as_secs_f64());
    response
}

async fn submit(state: &Arc<AppState>, request: Request) -> Result<Outcome, Refusal> {
    let (parts, body) = request.into_parts();
    let (tenant, body, key) =
        intake::checked_post(&state.auth, &parts.headers, body, state.max_body).await?;
    tracing::Span::current().record("tenant", tenant.as_str());
    Ok(state.gateway.submit(tenant, key, body).await)
}

/// `GET /orders/{id}`.
pub async fn find_by_id(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let (tenant, id) = tenant_and_order(&state, &headers, id)?;
        Ok(state.gateway.lookup_by_id(&tenant, id).await?)
    };
    lookup_response(&state, found.await, started)
}

/// The caller's tenant and the order id of the path.
fn tenant_and_order(
    state: &AppState,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<(String, Uuid), Refusal> {
    let tenant = intake::tenant(&state.auth, headers)?;
    // An id that is not even UTF-8 (`%FF`) is as unknown as any other.
    let Ok(Path(id)) = id else {
        return Err(Refusal::NotFound);
    };
    let id = Uuid::parse_str(&id).map_err(|_| Refusal::NotFound)?;
    Ok((tenant, id))
}

/// `GET /orders/{orderId}/delivery`: where the order's delivery stands.
pub async fn delivery(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let (tenant, id) = tenant_and_order(&state, &headers, id)?;
        let status = state.gateway.delivery(&tenant, id).await?;
        Ok(status.map(|status| delivery_json(&status)))
    };
    lookup_response(&state, found.await, started)
}

fn delivery_json(status: &crate::store::DeliveryStatus) -> Vec<u8> {
    ordergate_core::delivery::status_json(
        &status.state,
        status.attempts,
        status.last_error.as_deref(),
        status.delivered_at_ms,
    )
}

/// `GET /orders?idempotencyKey=K`: "did my order go through?", without placing one.
pub async fn find_by_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let tenant = intake::tenant(&state.auth, &headers)?;
        let pairs = query.ok().map(|Query(pairs)| pairs);
        let pairs = pairs
            .as_ref()
            .map(|p| p.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let key = ordergate_core::intake::lookup_key(pairs)?;
        Ok(state.gateway.lookup_by_key(tenant, key).await?)
    };
    lookup_response(&state, found.await, started)
}

fn lookup_response(
    state: &AppState,
    found: Result<Option<Vec<u8>>, Refusal>,
    started: Instant,
) -> Response {
    let (label, response) = match found {
        Ok(Some(body)) => ("found", order_response(body)),
        Ok(None) => ("not_found", refusal_response(&Refusal::NotFound)),
        Err(e) => (e.code().code(), refusal_response(&e)),
    };
    state
        .metrics
        .observe("get_orders", label, started.elapsed().as_secs_f64());
    response
}
