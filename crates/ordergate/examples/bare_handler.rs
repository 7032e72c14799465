//! The baseline for benchmarks: a bare axum handler answering `POST /orders` with a
//! 201 and a small JSON body, on the same runtime and HTTP stack as ordergate but
//! with no idempotency, storage or validation. Ratios against it hold on a noisy
//! machine where absolute numbers do not.
//!
//! Run: `cargo run --release --example bare_handler -- 127.0.0.1:18180`

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::post;

const BODY: &str = r#"{"orderId":"019acb1e-6a0e-7d3b-9c3e-2f0b6b1d9a41","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"bench"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18180".to_owned());
    let app = Router::new().route(
        "/orders",
        post(|| async {
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                BODY,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
