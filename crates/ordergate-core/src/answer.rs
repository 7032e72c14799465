//! HTTP answers as plain data: status, headers and body. The server and the edge
//! build each turn an [`Answer`] into their own response type, and nothing else
//! decides what a client receives.

use crate::protocol::{Outcome, StoredResponse};
use crate::refusal::Refusal;

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One response, before it meets an HTTP library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case, `content-type` included.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer to a submission that passed the HTTP checks.
    pub fn outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Created(stored) => Self::stored(stored, false),
            Outcome::Replayed(stored) => Self::stored(stored, true),
            Outcome::InProgress => Self::refusal(&Refusal::InProgress),
            Outcome::KeyReused => Self::refusal(&Refusal::KeyReused),
            Outcome::Invalid(invalid) => Self::refusal(&Refusal::InvalidOrder(invalid)),
            Outcome::Refused(control) => Self::refusal(&Refusal::Control(control)),
            Outcome::Unavailable => Self::refusal(&Refusal::Unavailable),
        }
    }

    /// A stored answer, byte for byte; a replay says so.
    pub fn stored(stored: StoredResponse, replay: bool) -> Self {
        let mut headers = vec![
            ("content-type", JSON.to_owned()),
            ("location", stored.location),
        ];
        if replay {
            headers.push(("idempotent-replay", "true".to_owned()));
        }
        Self {
            status: stored.status,
            headers,
            body: stored.body,
        }
    }

    /// An order JSON read back with `GET`.
    pub fn order(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", JSON.to_owned())],
            body,
        }
    }

    /// A problem+json answer, with the headers its status calls for.
    pub fn refusal(refusal: &Refusal) -> Self {
        let problem = refusal.problem();
        let mut headers = vec![("content-type", PROBLEM_JSON.to_owned())];
        if let Some(seconds) = problem.retry_after {
            headers.push(("retry-after", seconds.to_string()));
        }
        match refusal {
            Refusal::Unauthorized => headers.push(("www-authenticate", "Bearer".to_owned())),
            Refusal::UnsupportedMediaType(_) => headers.push(("accept-post", JSON.to_owned())),
            _ => {}
        }
        Self {
            status: problem.status(),
            headers,
            body: problem.to_json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
        answer
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_replay_is_the_stored_answer_marked_as_a_replay() {
        let stored = StoredResponse {
            status: 201,
            location: "/orders/x".into(),
            body: b"{}".to_vec(),
        };
        let answer = Answer::outcome(Outcome::Replayed(stored));
        assert_eq!(answer.status, 201);
        assert_eq!(header(&answer, "location"), Some("/orders/x"));
        assert_eq!(header(&answer, "idempotent-replay"), Some("true"));
        assert_eq!(answer.body, b"{}");
    }

    #[test]
    fn a_conflict_says_when_to_retry() {
        let answer = Answer::outcome(Outcome::InProgress);
        assert_eq!(answer.status, 409);
        assert_eq!(header(&answer, "retry-after"), Some("1"));
        assert_eq!(header(&answer, "content-type"), Some(PROBLEM_JSON));
    }

    #[test]
    fn refusals_carry_the_headers_their_status_needs() {
        let unauthorized = Answer::refusal(&Refusal::Unauthorized);
        assert_eq!(header(&unauthorized, "www-authenticate"), Some("Bearer"));
        let media = Answer::refusal(&Refusal::UnsupportedMediaType("no"));
        assert_eq!(header(&media, "accept-post"), Some(JSON));
    }
}
