//! `POST /orders`, `GET /orders/{id}` and `GET /orders?idempotencyKey=K`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ordergate_core::{IdempotencyKey, KeyError, Outcome};
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
) -> Result<(String, Uuid), ApiError> {
    let tenant = intake::tenant(&state.auth, headers)?;
    // An id that is not even UTF-8 (`%FF`) is as unknown as any other.
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound);
    };
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
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
    let json = serde_json::json!({
        "state": status.state,
        "attempts": status.attempts,
        "lastError": status.last_error,
        "deliveredAt": status.delivered_at_ms.map(ordergate_core::order::format_timestamp),
    });
    json.to_string().into_bytes()
}

/// The lookup's query parameter.
const KEY_PARAMETER: &str = "idempotencyKey";

/// `GET /orders?idempotencyKey=K`: "did my order go through?", without placing one.
pub async fn find_by_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let found = async {
        let tenant = intake::tenant(&state.auth, &headers)?;
        let key = lookup_key(query)?;
        Ok(state.gateway.lookup_by_key(tenant, key).await?)
    };
    lookup_response(&state, found.await, started)
}

/// Exactly one `idempotencyKey` parameter with a well-formed key.
fn lookup_key(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<IdempotencyKey, ApiError> {
    let Ok(Query(pairs)) = query else {
        return Err(ApiError::LookupKey(
            "the query string is not valid URL-encoded UTF-8",
        ));
    };
    let mut values = pairs.iter().filter(|(name, _)| name == KEY_PARAMETER);
    let value = values.next().ok_or(ApiError::MissingLookupKey)?;
    if values.next().is_some() {
        return Err(ApiError::LookupKey("the parameter is given more than once"));
    }
    IdempotencyKey::parse(value.1.as_bytes()).map_err(|e| match e {
        KeyError::Malformed(reason) => ApiError::LookupKey(reason),
        KeyError::Missing => ApiError::MissingLookupKey,
    })
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
