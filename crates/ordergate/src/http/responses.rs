//! Answers built from what the gateway returned: a submission's outcome (the stored
//! answer, or the problem it maps to) and an order read back.

use axum::response::Response;
use ordergate_core::{Answer, Outcome};

use super::problem::answer_response;

/// The answer to a submission that passed the HTTP checks.
pub fn outcome_response(outcome: Outcome) -> Response {
    answer_response(Answer::outcome(outcome))
}

/// An order JSON read back with `GET`.
pub fn order_response(body: Vec<u8>) -> Response {
    answer_response(Answer::order(body))
}
