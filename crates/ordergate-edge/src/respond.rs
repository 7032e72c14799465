//! Responses of the Worker: an `ordergate_core::Answer`, or an object's reply, as a
//! Worker response. The only place the edge builds one.

use ordergate_core::{Answer, Refusal};
use worker::{Headers, Response};

use crate::wire::Reply;

pub fn answer(answer: Answer) -> worker::Result<Response> {
    let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
    build(answer.status, headers, answer.body)
}

/// An object's answer, as the client's response.
pub fn reply(reply: Reply) -> worker::Result<Response> {
    let headers = reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    build(reply.status, headers, reply.body)
}

pub fn refusal(refusal: &Refusal) -> worker::Result<Response> {
    answer(Answer::refusal(refusal))
}

/// A plain-text 200, for the probes.
pub fn text(body: &str) -> worker::Result<Response> {
    let headers = [("content-type", "text/plain; charset=utf-8")];
    build(200, headers.into_iter(), body.as_bytes().to_vec())
}

/// The answer to a `HEAD`: a `GET`'s status and headers, with its body's length but
/// not the body, as the server answers.
pub async fn without_body(mut response: Response) -> worker::Result<Response> {
    let length = response.bytes().await?.len();
    let headers = response.headers().clone();
    headers.set("content-length", &length.to_string())?;
    Ok(Response::empty()?
        .with_status(response.status_code())
        .with_headers(headers))
}

fn build<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: Vec<u8>,
) -> worker::Result<Response> {
    let out = Headers::new();
    for (name, value) in headers {
        out.set(name, value)?;
    }
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(out))
}
