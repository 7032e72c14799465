//! A JSON document as parsed from a request body, and its RFC 8785 canonical form.
//!
//! `serde_json::Value` silently keeps the last of two equal member names; an order API
//! must notice them (a repeated member is an invalid order and a different payload), so
//! objects keep every member as written.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON value. Numbers are IEEE-754 doubles, as RFC 8785 (and I-JSON) reads them.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsonValue>),
    /// Members in document order, repeats included.
    Object(Vec<(String, JsonValue)>),
}

/// The body is not JSON at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not valid JSON: {0}")]
pub struct SyntaxError(pub String);

impl JsonValue {
    /// Parses a complete JSON text (trailing data is an error).
    pub fn parse(bytes: &[u8]) -> Result<Self, SyntaxError> {
        serde_json::from_slice(bytes).map_err(|e| SyntaxError(e.to_string()))
    }

    /// The first member name repeated within one object, searching depth-first.
    pub fn first_repeated_member(&self) -> Option<&str> {
        match self {
            JsonValue::Array(items) => items.iter().find_map(JsonValue::first_repeated_member),
            JsonValue::Object(members) => {
                let mut seen = std::collections::HashSet::new();
                members
                    .iter()
                    .find(|(name, _)| !seen.insert(name.as_str()))
                    .map(|(name, _)| name.as_str())
                    .or_else(|| members.iter().find_map(|(_, v)| v.first_repeated_member()))
            }
            _ => None,
        }
    }

    /// The RFC 8785 (JCS) serialization. Only meaningful without repeated members.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            JsonValue::Null => out.extend_from_slice(b"null"),
            JsonValue::Bool(true) => out.extend_from_slice(b"true"),
            JsonValue::Bool(false) => out.extend_from_slice(b"false"),
            JsonValue::Number(n) => write_number(*n, out),
            JsonValue::String(s) => write_string(s, out),
            JsonValue::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_canonical(out);
                }
                out.push(b']');
            }
            JsonValue::Object(members) => {
                // RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
                let mut sorted: Vec<_> = members.iter().collect();
                sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
                out.push(b'{');
                for (i, (name, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(name, out);
                    out.push(b':');
                    value.write_canonical(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// ECMAScript `Number.prototype.toString`, as RFC 8785 §3.2.2.3 requires.
fn write_number(n: f64, out: &mut Vec<u8>) {
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format(n).as_bytes());
}

/// RFC 8785 §3.2.2.2: escape `"`, `\` and control characters; the short forms where
/// JSON has them, otherwise `\u00xx` in lower-case hex; everything else as is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes())
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(v))
    }

    // Integers become doubles on purpose: RFC 8785 compares numbers as doubles.
    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut members = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, JsonValue>()? {
            members.push((name, value));
        }
        Ok(JsonValue::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let value = JsonValue::parse(text.as_bytes()).expect("valid JSON");
        String::from_utf8(value.canonical_bytes()).expect("UTF-8")
    }

    #[test]
    fn canonical_form_follows_rfc_8785() {
        assert_eq!(
            canonical(r#" { "b" : 1e2, "a": [true, null, 100.0, -0.0, 1.5e-7] } "#),
            r#"{"a":[true,null,100,0,1.5e-7],"b":100}"#
        );
        assert_eq!(canonical(r#""\u00e9\/\u001F\n""#), "\"\u{e9}/\\u001f\\n\"");
        // RFC 8785 §3.2.3 sorts by UTF-16 code units, not by code points.
        assert_eq!(
            canonical(r#"{"\ud83d\ude00":1,"\ufb33":2}"#),
            "{\"\u{1f600}\":1,\"\u{fb33}\":2}"
        );
        assert_eq!(canonical("1e21"), "1e+21");
    }

    #[test]
    fn repeated_members_are_found_at_any_depth() {
        let v = JsonValue::parse(br#"{"a":1,"b":{"c":1,"c":2}}"#).expect("valid JSON");
        assert_eq!(v.first_repeated_member(), Some("c"));
        let v = JsonValue::parse(br#"{"a":1,"a":1}"#).expect("valid JSON");
        assert_eq!(v.first_repeated_member(), Some("a"));
        let v = JsonValue::parse(br#"{"a":1,"b":[{"a":1}]}"#).expect("valid JSON");
        assert_eq!(v.first_repeated_member(), None);
    }

    #[test]
    fn non_json_is_a_syntax_error() {
        for bad in ["", "{", "{}x", "{'a':1}", "[1,]", "1e400", r#""\ud800""#] {
            assert!(JsonValue::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
