//! The `Idempotency-Key` header, both forms: whatever the bytes, a parsed key is 1 to
//! 255 characters, and its quoted (RFC 8941) spelling names the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate_core::IdempotencyKey;

fn quoted(key: &str) -> String {
    format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

fuzz_target!(|raw: &[u8]| {
    let Ok(key) = IdempotencyKey::parse(raw) else {
        return;
    };
    let text = key.as_str();
    assert!((1..=255).contains(&text.chars().count()), "{text:?}");
    assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{text:?}");
    let again = IdempotencyKey::parse(quoted(text).as_bytes()).expect("the quoted form parses");
    assert_eq!(again, key, "both forms name one key");
    // One header line is the key; two lines never are.
    let lines = [raw, raw];
    assert!(IdempotencyKey::from_header_lines(lines.iter().copied()).is_err());
});
