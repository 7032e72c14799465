//! An [`Answer`] as a Worker response: the only place the edge builds one.

use ordergate_core::{Answer, Refusal};
use worker::{Headers, Response};

pub fn answer(answer: Answer) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &answer.headers {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(answer.body)?
        .with_status(answer.status)
        .with_headers(headers))
}

pub fn refusal(refusal: &Refusal) -> worker::Result<Response> {
    answer(Answer::refusal(refusal))
}

/// A plain-text 200, for the probes.
pub fn text(body: &str) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/plain; charset=utf-8")?;
    Ok(Response::from_bytes(body.as_bytes().to_vec())?.with_headers(headers))
}
