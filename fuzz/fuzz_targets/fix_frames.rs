//! Bytes from a FIX acceptor: framing never reads past the buffer, a message it frames
//! is exactly what its BodyLength and CheckSum say, and a framed message that parses
//! comes back the same when its body is encoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate_core::fix::{self, Fields, Frame, SessionId, Stamp};

fuzz_target!(|bytes: &[u8]| {
    let mut rest = bytes;
    while let Frame::Message(len) = fix::frame(rest) {
        assert!(len <= rest.len(), "a frame within the buffer");
        let (message, after) = rest.split_at(len);
        assert_eq!(fix::frame(message), Frame::Message(len), "a frame alone is one frame");
        if let Ok(fields) = Fields::parse(message) {
            let (Some(kind), Some(seq)) = (fields.msg_type(), fields.seq()) else {
                panic!("a parsed message has a type and a number");
            };
            let id = SessionId {
                sender: fields.get(49).unwrap_or("S").to_owned(),
                target: fields.get(56).unwrap_or("T").to_owned(),
            };
            let stamp = Stamp { seq, sending_time_ms: 0, poss_dup_of_ms: None };
            let again = fix::encode(&id, kind, stamp, &fields.body());
            assert_eq!(fix::frame(&again), Frame::Message(again.len()), "what we encode frames");
        }
        rest = after;
    }
});
