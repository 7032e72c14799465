//! Guards around every handler: the size of the header section, and an honest
//! connection when a request's body is left unread.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use ordergate_core::Refusal;

use super::refusal_response;

/// The largest header section answered normally; larger ones get 431 as
/// problem+json. (Past the server's read buffer, 64 KiB, hyper answers 431 itself.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses a request whose header section is larger than [`MAX_HEADER_BYTES`].
pub async fn limit_header_section(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        // "name: value\r\n"
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return refusal_response(&Refusal::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    next.run(request).await
}

/// When a request with a body is answered before the body was read to its end (a
/// 401, 404, 405 or 415, say), hyper will not reuse the connection. The answer then
/// says `Connection: close`, so a client does not send its next request into a
/// connection that is closing.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declares_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0");
    if !declares_body {
        return next.run(request).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let flag = read_to_end.clone();
    let request = request.map(|body| Body::new(ReadToEnd { body, flag }));
    let mut response = next.run(request).await;
    if !read_to_end.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A body that raises a flag once it has been read to its end.
struct ReadToEnd {
    body: Body,
    flag: Arc<AtomicBool>,
}

impl http_body::Body for ReadToEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.flag.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
