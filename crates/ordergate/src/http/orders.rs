//! `POST /orders`, `GET /orders/{id}` and `GET /orders?idempotencyKey=K`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ordergate_core::{IdempotencyKey, Outcome};
use serde::Deserialize;
use uuid::Uuid;

use super::responses::{order_response, outcome_response};
use super::{ApiError, AppState, intake};

/// `POST /orders`.
pub async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (label, response) = match submit(&state, request).await {
        Ok(outcome) => (outcome.label(), outcome_response(outcome)),
        Err(e) => (e.code().code(), e.into_response()),
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

async fn submit(state: &Arc<AppState>, request: Request) -> Result<Outcome, ApiError> {
    let (parts, body) = request.into_parts();
    let tenant = intake::tenant(&state.auth, &parts.headers)?;
    intake::check_media_type(&parts.headers)?;
    let body = intake::read_body(&parts.headers, body, state.max_body).await?;
    let key = intake::idempotency_key(&parts.headers)?;
    tracing::Span::current().record("tenant", tenant.as_str());
    Ok(state.gateway.submit(tenant, key, body).await)
}

/// `GET /orders/{id}`.
pub async fn find_by_id(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let tenant = intake::tenant(&state.auth, &headers)?;
        let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
        Ok(state.gateway.lookup_by_id(&tenant, id).await?)
    };
    lookup_response(&state, found.await, started)
}

#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    #[serde(rename = "idempotencyKey")]
    idempotency_key: Option<String>,
}

/// `GET /orders?idempotencyKey=K`: "did my order go through?", without placing one.
pub async fn find_by_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let tenant = intake::tenant(&state.auth, &headers)?;
        let raw = query
            .ok()
            .and_then(|Query(q)| q.idempotency_key)
            .ok_or(ApiError::MissingLookupKey)?;
        let key = IdempotencyKey::parse(raw.as_bytes())?;
        Ok(state.gateway.lookup_by_key(tenant, key).await?)
    };
    lookup_response(&state, found.await, started)
}

fn lookup_response(
    state: &AppState,
    found: Result<Option<Vec<u8>>, ApiError>,
    started: Instant,
) -> Response {
    let (label, response) = match found {
        Ok(Some(body)) => ("found", order_response(body)),
        Ok(None) => ("not_found", ApiError::NotFound.into_response()),
        Err(e) => (e.code().code(), e.into_response()),
    };
    state
        .metrics
        .observe("get_orders", label, started.elapsed().as_secs_f64());
    response
}
