//! Request bodies and their RFC 8785 canonical form: canonicalising is idempotent,
//! and equal canonical forms give equal fingerprints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate_core::Payload;
use ordergate_core::json::JsonValue;

fuzz_target!(|body: &[u8]| {
    let Ok(value) = JsonValue::parse(body) else {
        assert!(
            Payload::from_body(body).fingerprint().is_none(),
            "not JSON, no fingerprint"
        );
        return;
    };
    let payload = Payload::from_body(body);
    if value.first_repeated_member().is_some() {
        assert!(
            payload.fingerprint().is_none(),
            "a repeated member has no canonical form"
        );
        return;
    }
    let canonical = value.canonical_bytes();
    let reparsed = JsonValue::parse(&canonical).expect("the canonical form is JSON");
    assert_eq!(
        reparsed.canonical_bytes(),
        canonical,
        "canonical form is idempotent"
    );
    let from_canonical = Payload::from_body(&canonical);
    assert!(payload.fingerprint().is_some());
    assert_eq!(
        payload.fingerprint(),
        from_canonical.fingerprint(),
        "same canonical form, same fingerprint"
    );
});
