//! One connection of the session, from logon to its end: every message sent is stored
//! (with the next numbers) before its bytes leave, incoming numbers are checked, gaps
//! are asked for, and the counterparty's resend requests are answered from the store.

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use ordergate_core::delivery::Sent;
use ordergate_core::fix::{self, Fields, Frame, Sequence, Stamp, msg_type, tag};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::SendOrders;
use super::session::{Ended, Runner};
use crate::store::fix::{SentMessage, SessionHold, SessionNumbers};
use crate::telemetry::cause_chain;

/// How long the acceptor has to answer the logon.
const LOGON_WITHIN: Duration = Duration::from_secs(10);
/// How often the timers are looked at.
const TICK: Duration = Duration::from_millis(250);
/// How often the hold is checked and the incoming number stored when it moved.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Stored messages older than this are deleted (a resend request for them is
/// answered with a gap fill).
const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);
/// Messages deleted at a time, so that a prune never holds the writer for long; while
/// batches come back full, the next follows on the next tick.
const PRUNE_BATCH: usize = 5_000;

/// An order sent and not yet answered.
struct Waiter {
    seq: u64,
    answer: oneshot::Sender<Sent>,
}

pub(super) struct Live<'a> {
    runner: &'a mut Runner,
    key: &'a str,
    hold: &'a dyn SessionHold,
    numbers: SessionNumbers,
    /// The incoming number the store holds.
    stored_next_in: u64,
    reader: Option<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    waiters: HashMap<Uuid, Waiter>,
    by_seq: HashMap<u64, Uuid>,
    logged_on: bool,
    last_sent: Instant,
    last_received: Instant,
    test_request_at: Option<Instant>,
    /// A resend was asked for, of everything up to this number.
    gap_until: Option<u64>,
}

/// What the connection waited for.
enum Event {
    Read(std::io::Result<usize>),
    Orders(Option<SendOrders>),
    Tick,
    Stop,
}

impl<'a> Live<'a> {
    pub fn new(
        runner: &'a mut Runner,
        key: &'a str,
        hold: &'a dyn SessionHold,
        numbers: SessionNumbers,
        stream: TcpStream,
    ) -> Self {
        let (reader, writer) = stream.into_split();
        let now = Instant::now();
        Self {
            runner,
            key,
            hold,
            stored_next_in: numbers.next_in,
            numbers,
            reader: Some(reader),
            writer,
            waiters: HashMap::new(),
            by_seq: HashMap::new(),
            logged_on: false,
            last_sent: now,
            last_received: now,
            test_request_at: None,
            gap_until: None,
        }
    }

    pub async fn run(mut self) -> Ended {
        let ended = self.session().await;
        if let Ended::Stopped = ended {
            let _ = self.send_admin(msg_type::LOGOUT, Vec::new()).await;
        }
        ended
    }

    async fn session(&mut self) -> Ended {
        let Some(mut reader) = self.reader.take() else {
            return self.dropped("no reader");
        };
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let heartbeat = self.runner.target.heartbeat.as_secs().to_string();
        let logon = vec![
            (tag::ENCRYPT_METHOD, "0".into()),
            (tag::HEART_BT_INT, heartbeat),
        ];
        if let Err(ended) = self.send_admin(msg_type::LOGON, logon).await {
            return ended;
        }
        if let Err(ended) = self.await_logon(&mut reader, &mut buf).await {
            return ended;
        }
        tracing::info!(session = %self.key, next_out = self.numbers.next_out,
            next_in = self.numbers.next_in, "FIX session logged on");
        self.runner.up.send_replace(true);
        self.runner.metrics.fix_session_up(true);
        match self.logged_on_loop(&mut reader, &mut buf).await {
            Ok(never) => match never {},
            Err(ended) => ended,
        }
    }

    async fn await_logon(
        &mut self,
        reader: &mut OwnedReadHalf,
        buf: &mut BytesMut,
    ) -> Result<(), Ended> {
        let deadline = Instant::now() + LOGON_WITHIN;
        while !self.logged_on {
            let read = tokio::select! {
                read = reader.read_buf(buf) => read,
                () = tokio::time::sleep_until(deadline) => {
                    return Err(self.dropped("no answer to the logon within 10 s"));
                }
                () = self.runner.stop.cancelled() => return Err(Ended::Stopped),
            };
            self.on_read(read, buf).await?;
        }
        Ok(())
    }

    async fn logged_on_loop(
        &mut self,
        reader: &mut OwnedReadHalf,
        buf: &mut BytesMut,
    ) -> Result<std::convert::Infallible, Ended> {
        let stop = self.runner.stop.clone();
        let mut tick = tokio::time::interval(TICK);
        let mut checked = Instant::now();
        // The first prune comes with the first tick.
        let mut pruned: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                read = reader.read_buf(buf) => Event::Read(read),
                orders = self.runner.orders.recv() => Event::Orders(orders),
                _ = tick.tick() => Event::Tick,
                () = stop.cancelled() => Event::Stop,
            };
            match event {
                Event::Read(read) => self.on_read(read, buf).await?,
                Event::Orders(Some(orders)) => self.send_orders(orders).await?,
                Event::Orders(None) | Event::Stop => return Err(Ended::Stopped),
                Event::Tick => {
                    self.keep_alive().await?;
                    if checked.elapsed() >= CHECK_EVERY {
                        checked = Instant::now();
                        self.check().await?;
                    }
                    if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                        let more = self.prune().await;
                        pruned = if more { None } else { Some(Instant::now()) };
                    }
                }
            }
        }
    }

    fn dropped(&self, why: impl Into<String>) -> Ended {
        Ended::Dropped {
            why: why.into(),
            logged_on: self.logged_on,
        }
    }

    async fn on_read(
        &mut self,
        read: std::io::Result<usize>,
        buf: &mut BytesMut,
    ) -> Result<(), Ended> {
        match read {
            Ok(0) => return Err(self.dropped("the acceptor closed the connection")),
            Ok(_) => {}
            Err(e) => return Err(self.dropped(format!("reading from the acceptor failed: {e}"))),
        }
        loop {
            match fix::frame(buf) {
                Frame::Incomplete => return Ok(()),
                Frame::Garbled(why) => {
                    return Err(self.dropped(format!("the acceptor sent garbage: {why}")));
                }
                Frame::Message(len) => {
                    let message = buf.split_to(len);
                    let fields = Fields::parse(&message).map_err(|e| {
                        self.dropped(format!("the acceptor sent a malformed message: {e}"))
                    })?;
                    self.incoming(fields).await?;
                }
            }
        }
    }

    /// Checks an incoming message's header and number, then acts on it.
    async fn incoming(&mut self, fields: Fields) -> Result<(), Ended> {
        self.last_received = Instant::now();
        self.test_request_at = None;
        let session = &self.runner.target.session;
        if fields.get(tag::SENDER_COMP_ID) != Some(session.target.as_str())
            || fields.get(tag::TARGET_COMP_ID) != Some(session.sender.as_str())
        {
            return Err(self.dropped("a message for another session (SenderCompID/TargetCompID)"));
        }
        let kind = fields.msg_type().unwrap_or_default().to_owned();
        let seq = fields.seq().unwrap_or_default();
        if kind == msg_type::SEQUENCE_RESET && !fields.flag(tag::GAP_FILL_FLAG) {
            return self.reset_by_counterparty(&fields);
        }
        match fix::check_sequence(self.numbers.next_in, seq, fields.flag(tag::POSS_DUP_FLAG)) {
            Sequence::InOrder => {
                self.numbers.next_in = seq + 1;
                if self
                    .gap_until
                    .is_some_and(|until| self.numbers.next_in > until)
                {
                    self.gap_until = None;
                }
                self.act(&kind, &fields).await
            }
            Sequence::Gap { expected } => self.gap(&kind, &fields, expected, seq).await,
            Sequence::SeenBefore => Ok(()),
            Sequence::TooLow { expected } => Err(self.too_low(expected, seq).await),
        }
    }

    /// A SequenceReset-Reset: the counterparty sets the next incoming number. Only
    /// forward: a reset backwards would accept old numbers as new.
    fn reset_by_counterparty(&mut self, fields: &Fields) -> Result<(), Ended> {
        match fields.number(tag::NEW_SEQ_NO) {
            Some(new) if new >= self.numbers.next_in => {
                tracing::warn!(session = %self.key, from = self.numbers.next_in, to = new,
                    "the counterparty reset the incoming sequence number");
                self.numbers.next_in = new;
                Ok(())
            }
            _ => {
                self.runner.metrics.fix_sequence_error();
                Err(self.dropped("a SequenceReset backwards, refused"))
            }
        }
    }

    /// Messages were missed: ask for them once (a resend request covers everything
    /// after), answering a resend request or a logout meanwhile.
    async fn gap(
        &mut self,
        kind: &str,
        fields: &Fields,
        expected: u64,
        seq: u64,
    ) -> Result<(), Ended> {
        match kind {
            msg_type::RESEND_REQUEST => self.answer_resend(fields).await?,
            msg_type::LOGOUT => return Err(self.logged_out(fields)),
            msg_type::LOGON => self.logged_on = true,
            _ => {}
        }
        if self.gap_until.is_some_and(|until| seq <= until) {
            return Ok(());
        }
        tracing::warn!(session = %self.key, expected, received = seq,
            "incoming sequence numbers skipped; asking for the missed messages");
        self.gap_until = Some(seq);
        let request = vec![
            (tag::BEGIN_SEQ_NO, expected.to_string()),
            (tag::END_SEQ_NO, "0".into()),
        ];
        self.send_admin(msg_type::RESEND_REQUEST, request).await
    }

    /// The counterparty's numbers went back without PossDupFlag: it reset or lost its
    /// store. ordergate never resets by itself: it says so, counts it and logs out; a
    /// person decides (see the sequence-number runbook).
    async fn too_low(&mut self, expected: u64, received: u64) -> Ended {
        self.runner.metrics.fix_sequence_error();
        let text = format!("MsgSeqNum too low, expecting {expected} but received {received}");
        tracing::error!(session = %self.key, expected, received,
            "the counterparty's sequence numbers went back (did it reset its store?); \
             ordergate does not reset by itself: see the runbook");
        let _ = self
            .send_admin(msg_type::LOGOUT, vec![(tag::TEXT, text.clone())])
            .await;
        self.dropped(text)
    }

    fn logged_out(&self, fields: &Fields) -> Ended {
        let text = fields.get(tag::TEXT).unwrap_or("no reason given");
        self.dropped(format!("the acceptor logged out: {text}"))
    }

    async fn act(&mut self, kind: &str, fields: &Fields) -> Result<(), Ended> {
        match kind {
            msg_type::LOGON => self.logged_on = true,
            msg_type::TEST_REQUEST => {
                let id = fields.get(tag::TEST_REQ_ID).unwrap_or_default().to_owned();
                self.send_admin(msg_type::HEARTBEAT, vec![(tag::TEST_REQ_ID, id)])
                    .await?;
            }
            msg_type::RESEND_REQUEST => self.answer_resend(fields).await?,
            msg_type::SEQUENCE_RESET => {
                if let Some(new) = fields
                    .number(tag::NEW_SEQ_NO)
                    .filter(|n| *n > self.numbers.next_in)
                {
                    self.numbers.next_in = new;
                }
            }
            msg_type::LOGOUT => {
                let _ = self.send_admin(msg_type::LOGOUT, Vec::new()).await;
                return Err(self.logged_out(fields));
            }
            msg_type::EXECUTION_REPORT => {
                if let Some(answer) = fix::execution_report(fields) {
                    self.answer(answer.order_id, answer.outcome);
                }
            }
            msg_type::REJECT | msg_type::BUSINESS_MESSAGE_REJECT => self.rejected(kind, fields),
            _ => {}
        }
        Ok(())
    }

    fn answer(&mut self, order_id: Uuid, outcome: Sent) {
        if let Some(waiter) = self.waiters.remove(&order_id) {
            self.by_seq.remove(&waiter.seq);
            let _ = waiter.answer.send(outcome);
        }
    }

    /// A Reject or BusinessMessageReject of one of our NewOrderSingles fails it.
    fn rejected(&mut self, kind: &str, fields: &Fields) {
        let (ref_seq, ref_id) = fix::rejected_ref(fields);
        let order = ref_id.or_else(|| ref_seq.and_then(|seq| self.by_seq.get(&seq).copied()));
        let what = if kind == msg_type::REJECT {
            "the acceptor rejected the message"
        } else {
            "the acceptor rejected the order"
        };
        let text = fix::rejection_text(what, fields);
        match order {
            Some(order_id) => self.answer(order_id, Sent::Permanent(text)),
            None => tracing::warn!(session = %self.key, ?ref_seq, %text,
                "the acceptor rejected a message that is not a waiting order"),
        }
    }

    /// Stores the orders' NewOrderSingles, sends them in one write and waits for their
    /// answers. An order tried before, or one a stored message shows was sent, carries
    /// PossResend: no order is ever sent twice unflagged.
    async fn send_orders(&mut self, request: SendOrders) -> Result<(), Ended> {
        let SendOrders { orders, reply } = request;
        let unsure: Vec<Uuid> = orders
            .iter()
            .filter(|o| !o.tried_before)
            .map(|o| o.order_id)
            .collect();
        let sent_before = if unsure.is_empty() {
            Default::default()
        } else {
            match self.runner.store.orders_sent(self.key, unsure).await {
                Ok(sent) => sent,
                Err(e) => {
                    tracing::warn!(error = %cause_chain(&e), "cannot read which orders went out; not sending");
                    return Ok(());
                }
            }
        };
        let now_ms = self.runner.clock.now_ms();
        let first = self.numbers.next_out;
        let mut messages = Vec::with_capacity(orders.len());
        for (seq, order) in (first..).zip(orders) {
            let flagged = order.tried_before || sent_before.contains(&order.order_id);
            let body = if flagged {
                self.runner.metrics.fix_resent("poss_resend");
                fix::poss_resend(order.body)
            } else {
                order.body
            };
            let bytes = self.encode(msg_type::NEW_ORDER_SINGLE, seq, now_ms, None, &body);
            messages.push(SentMessage {
                seq,
                msg_type: msg_type::NEW_ORDER_SINGLE.to_owned(),
                order_id: Some(order.order_id),
                sent_at_ms: now_ms,
                bytes,
            });
        }
        if !self.store_sent(messages.clone()).await? {
            return Ok(());
        }
        let mut out = Vec::with_capacity(messages.iter().map(|m| m.bytes.len()).sum());
        let mut receivers = Vec::with_capacity(messages.len());
        for message in messages {
            out.extend_from_slice(&message.bytes);
            let (answer, receiver) = oneshot::channel();
            if let Some(order_id) = message.order_id {
                self.by_seq.insert(message.seq, order_id);
                self.waiters.insert(
                    order_id,
                    Waiter {
                        seq: message.seq,
                        answer,
                    },
                );
            }
            receivers.push(receiver);
        }
        self.write(&out).await?;
        let _ = reply.send(receivers);
        Ok(())
    }

    /// Stores messages about to be sent and moves the outgoing number past them.
    /// False (and nothing sent) if the store failed; an error if the session was lost.
    async fn store_sent(&mut self, messages: Vec<SentMessage>) -> Result<bool, Ended> {
        let count = messages.len() as u64;
        let next_in = self.numbers.next_in;
        match self
            .runner
            .store
            .record_sent(self.key, self.numbers.epoch, messages, next_in)
            .await
        {
            Ok(true) => {
                self.numbers.next_out += count;
                self.stored_next_in = next_in;
                Ok(true)
            }
            Ok(false) => Err(Ended::LostHold(
                "another gateway took the FIX session".into(),
            )),
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot store the FIX session's messages; not sending");
                Ok(false)
            }
        }
    }

    /// Stores and sends one session-level message; a store failure ends the connection
    /// (nothing may leave unstored).
    async fn send_admin(&mut self, kind: &str, body: Vec<(u32, String)>) -> Result<(), Ended> {
        let now_ms = self.runner.clock.now_ms();
        let seq = self.numbers.next_out;
        let bytes = self.encode(kind, seq, now_ms, None, &body);
        let message = SentMessage {
            seq,
            msg_type: kind.to_owned(),
            order_id: None,
            sent_at_ms: now_ms,
            bytes: bytes.clone(),
        };
        if !self.store_sent(vec![message]).await? {
            return Err(self.dropped("cannot store the FIX session's state"));
        }
        self.write(&bytes).await
    }

    fn encode(
        &self,
        kind: &str,
        seq: u64,
        now_ms: i64,
        poss_dup_of_ms: Option<i64>,
        body: &[(u32, String)],
    ) -> Vec<u8> {
        let stamp = Stamp {
            seq,
            sending_time_ms: now_ms,
            poss_dup_of_ms,
        };
        fix::encode(&self.runner.target.session, kind, stamp, body)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Ended> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| self.dropped(format!("writing to the acceptor failed: {e}")))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Answers a ResendRequest from the store: application messages again with
    /// `43=Y` and their original sending time, session messages (and any no longer
    /// stored) gap-filled with `35=4 123=Y`. Nothing here takes a new number.
    async fn answer_resend(&mut self, fields: &Fields) -> Result<(), Ended> {
        let last = self.numbers.next_out.saturating_sub(1);
        let begin = fields.number(tag::BEGIN_SEQ_NO).unwrap_or(1).max(1);
        let end = match fields.number(tag::END_SEQ_NO) {
            Some(end) if end != 0 && end < last => end,
            _ => last,
        };
        if begin > end {
            return Ok(());
        }
        let stored = self
            .runner
            .store
            .sent_between(self.key, begin, end)
            .await
            .map_err(|e| {
                self.dropped(format!(
                    "cannot read stored messages for a resend: {}",
                    cause_chain(&e)
                ))
            })?;
        tracing::info!(session = %self.key, begin, end, "answering a resend request");
        let now_ms = self.runner.clock.now_ms();
        let mut out = Vec::new();
        let mut cursor = begin;
        for message in stored.iter().filter(|m| !msg_type::is_admin(&m.msg_type)) {
            let Ok(original) = Fields::parse(&message.bytes) else {
                continue;
            };
            if cursor < message.seq {
                out.extend(self.gap_fill(cursor, message.seq, now_ms));
            }
            let bytes = self.encode(
                &message.msg_type,
                message.seq,
                now_ms,
                Some(message.sent_at_ms),
                &original.body(),
            );
            out.extend(bytes);
            self.runner.metrics.fix_resent("poss_dup");
            cursor = message.seq + 1;
        }
        if cursor <= end {
            out.extend(self.gap_fill(cursor, end + 1, now_ms));
        }
        self.write(&out).await
    }

    fn gap_fill(&self, seq: u64, new_seq: u64, now_ms: i64) -> Vec<u8> {
        let body = [
            (tag::GAP_FILL_FLAG, "Y".to_owned()),
            (tag::NEW_SEQ_NO, new_seq.to_string()),
        ];
        self.encode(msg_type::SEQUENCE_RESET, seq, now_ms, Some(now_ms), &body)
    }

    /// Heartbeats when quiet, a TestRequest when the acceptor is quiet, and the end of
    /// the connection when it does not answer that either.
    async fn keep_alive(&mut self) -> Result<(), Ended> {
        let heartbeat = self.runner.target.heartbeat;
        if let Some(at) = self.test_request_at
            && at.elapsed() >= heartbeat
        {
            return Err(self.dropped("the acceptor did not answer a TestRequest"));
        }
        if self.test_request_at.is_none()
            && self.last_received.elapsed() >= heartbeat + heartbeat / 5
        {
            self.test_request_at = Some(Instant::now());
            let id = format!("ordergate-{}", self.runner.clock.now_ms());
            return self
                .send_admin(msg_type::TEST_REQUEST, vec![(tag::TEST_REQ_ID, id)])
                .await;
        }
        if self.last_sent.elapsed() >= heartbeat {
            return self.send_admin(msg_type::HEARTBEAT, Vec::new()).await;
        }
        Ok(())
    }

    /// The hold is still ours, the incoming number is stored when it moved, and
    /// waiters whose sender gave up are forgotten.
    async fn check(&mut self) -> Result<(), Ended> {
        if let Err(e) = self.hold.check().await {
            return Err(Ended::LostHold(format!(
                "the hold on the session lapsed: {}",
                cause_chain(&e)
            )));
        }
        if self.stored_next_in != self.numbers.next_in {
            let next_in = self.numbers.next_in;
            match self
                .runner
                .store
                .record_received(self.key, self.numbers.epoch, next_in)
                .await
            {
                Ok(true) => self.stored_next_in = next_in,
                Ok(false) => {
                    return Err(Ended::LostHold(
                        "another gateway took the FIX session".into(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %cause_chain(&e), "cannot store the incoming sequence number")
                }
            }
        }
        self.waiters.retain(|_, waiter| !waiter.answer.is_closed());
        let waiting: std::collections::HashSet<u64> =
            self.waiters.values().map(|w| w.seq).collect();
        self.by_seq.retain(|seq, _| waiting.contains(seq));
        Ok(())
    }

    /// Deletes one batch of messages past retention; true if more may remain.
    async fn prune(&self) -> bool {
        let before_ms = self.runner.clock.now_ms() - RETENTION_MS;
        match self
            .runner
            .store
            .prune_sent(self.key, before_ms, PRUNE_BATCH)
            .await
        {
            Ok(pruned) => {
                if pruned > 0 {
                    tracing::info!(session = %self.key, pruned, "deleted FIX messages past retention");
                }
                pruned == PRUNE_BATCH
            }
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot delete old FIX messages");
                false
            }
        }
    }
}
