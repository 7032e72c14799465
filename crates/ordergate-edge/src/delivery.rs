//! The object's deliverer: from its alarm, the deliveries that are due are sent to the
//! webhook of `ORDERGATE_DELIVER`, signed as the server signs them, and what came of
//! each is recorded as it settles. The message, the headers, what an answer
//! means, the backoff and the judgement are `ordergate_core::delivery`'s; this module
//! only sends.
//!
//! An alarm is one invocation of the platform, whose subrequests are limited (50 on
//! the free plan): one round sends at most [`ROUND`] messages, [`IN_FLIGHT`] at once
//! (a slot freed by one answer takes the next message, so one slow receiver request
//! holds up only itself), and the alarm comes back at once while more are due.

use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use futures_util::stream;
use ordergate_core::delivery::{self as rules, Attempted, Sent, Verdict};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, js_sys};

use crate::config::Webhook;
use crate::platform::{now_ms, random_bytes};
use crate::store::{DueDelivery, Tables};

/// Messages sent by one alarm, within the free plan's 50 subrequests.
pub const ROUND: usize = 48;

/// Messages in flight at once.
const IN_FLIGHT: usize = 16;

/// A webhook that has not answered in this long is tried again later.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one round of due deliveries and records what came of it; whether a full
/// round was due (more may be waiting).
pub async fn round(tables: &Tables, webhook: &Webhook) -> worker::Result<bool> {
    let due = tables.due_deliveries(now_ms(), ROUND)?;
    let recorded: Vec<worker::Result<()>> = stream::iter(&due)
        .map(|delivery| async move {
            let sent = send(webhook, delivery).await;
            let verdict = judge(webhook, delivery, sent, now_ms());
            // Recorded as it settles: a stalled request delays no other's outcome.
            tables.record_delivery(&delivery.order_id, &verdict)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    recorded.into_iter().collect::<worker::Result<()>>()?;
    Ok(due.len() == ROUND)
}

/// The core's judgement of one attempt, logged as the server logs it.
fn judge(webhook: &Webhook, delivery: &DueDelivery, sent: Sent, now_ms: i64) -> Verdict {
    let attempted = Attempted {
        accepted_at_ms: delivery.accepted_ms,
        attempts: delivery.attempts,
    };
    let jitter = u32::from_le_bytes(random_bytes());
    let verdict = rules::judge(attempted, sent, now_ms, webhook.max_age_ms, jitter);
    let (id, attempts) = (&delivery.order_id, delivery.attempts + 1);
    match &verdict {
        Verdict::Delivered { .. } => {}
        Verdict::Retry { error, .. } => worker::console_warn!(
            "delivery of {id} failed (attempt {attempts}): {error}; will retry"
        ),
        Verdict::Failed { error } => {
            worker::console_error!("delivery of {id} given up after {attempts} attempts: {error}")
        }
    }
    verdict
}

/// One signed POST of the order's message; confirmed only by a 2xx within [`TIMEOUT`].
async fn send(webhook: &Webhook, delivery: &DueDelivery) -> Sent {
    let now = now_ms();
    let body = rules::message_body(delivery.sequence, &delivery.tenant, now, &delivery.order);
    let timestamp_s = u64::try_from(now / 1_000).unwrap_or(0);
    let request = match signed_request(webhook, &delivery.order_id, timestamp_s, &body) {
        Ok(request) => request,
        Err(e) => return Sent::Transient(format!("the webhook request cannot be made: {e}")),
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = pin!(fetch.send_with_signal(&signal));
    let timeout = pin!(Delay::from(TIMEOUT));
    match select(sending, timeout).await {
        Either::Left((Ok(response), _)) => rules::webhook_answer(response.status_code()),
        Either::Left((Err(e), _)) => Sent::Transient(format!("the webhook is unreachable: {e}")),
        Either::Right(_) => {
            controller.abort();
            Sent::Transient(format!(
                "the webhook did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        }
    }
}

fn signed_request(
    webhook: &Webhook,
    order_id: &str,
    timestamp_s: u64,
    body: &[u8],
) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in rules::webhook_headers(&webhook.key, order_id, timestamp_s, body) {
        headers.set(name, &value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    Request::new_with_init(&webhook.url, &init)
}
