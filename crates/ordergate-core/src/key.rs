//! The `Idempotency-Key` header: the two spellings of one key, and what is malformed.
//!
//! A key is either plain (`abc`) or an RFC 8941 sf-string (`"abc"`); both name the same
//! key, so only the decoded text is ever stored or compared.

use std::fmt;

/// Longest key, in decoded characters.
pub const MAX_KEY_LEN: usize = 255;

/// A validated, decoded idempotency key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why a request's key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is required")]
    Missing,
    #[error("the Idempotency-Key header is malformed: {0}")]
    Malformed(&'static str),
}

impl IdempotencyKey {
    /// Reads the key from every `Idempotency-Key` header line of a request.
    ///
    /// Exactly one line is allowed: two lines are ambiguous, and so is a comma-joined
    /// list (which is what a proxy makes of two lines).
    pub fn from_header_lines<'a>(
        mut lines: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Self, KeyError> {
        let first = lines.next().ok_or(KeyError::Missing)?;
        if lines.next().is_some() {
            return Err(KeyError::Malformed("more than one Idempotency-Key header"));
        }
        Self::parse(first)
    }

    /// Parses one header value in either form.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        let trimmed = trim_spaces(raw);
        if trimmed.is_empty() {
            return Err(KeyError::Malformed("the key is empty"));
        }
        let decoded = if trimmed[0] == b'"' {
            decode_sf_string(trimmed)?
        } else {
            parse_plain(trimmed)?
        };
        if decoded.is_empty() {
            return Err(KeyError::Malformed("the key is empty"));
        }
        if decoded.len() > MAX_KEY_LEN {
            return Err(KeyError::Malformed("the key is longer than 255 characters"));
        }
        Ok(Self(decoded))
    }

    /// A key already decoded from either form (as stored, or as one build hands it to
    /// another): 1 to 255 printable ASCII characters, commas and quotes included.
    pub fn from_decoded(decoded: &str) -> Result<Self, KeyError> {
        if decoded.is_empty() || decoded.len() > MAX_KEY_LEN {
            return Err(KeyError::Malformed("a key has 1 to 255 characters"));
        }
        if !decoded.bytes().all(is_printable) {
            return Err(KeyError::Malformed(
                "a key may only contain printable ASCII characters",
            ));
        }
        Ok(Self(decoded.to_owned()))
    }

    /// The decoded key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key within its tenant: the unit of "at most one order per key". Both the
/// in-process claims and the replay cache are keyed by it, and the edge build picks a
/// key's shard from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopedKey {
    pub tenant: String,
    pub key: IdempotencyKey,
}

impl ScopedKey {
    pub fn new(tenant: impl Into<String>, key: IdempotencyKey) -> Self {
        Self {
            tenant: tenant.into(),
            key,
        }
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn trim_spaces(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&b| b != b' ').unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    &raw[start..end]
}

fn is_printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fn parse_plain(raw: &[u8]) -> Result<String, KeyError> {
    if raw.contains(&b',') {
        return Err(KeyError::Malformed(
            "a plain key may not contain a comma (a list of keys?)",
        ));
    }
    if !raw.iter().all(|&b| is_printable(b)) {
        return Err(KeyError::Malformed(
            "a key may only contain printable ASCII characters",
        ));
    }
    // Every byte is ASCII, so this cannot fail; map it anyway rather than unwrap.
    String::from_utf8(raw.to_vec()).map_err(|_| KeyError::Malformed("not ASCII"))
}

/// Decodes an RFC 8941 §3.3.3 sf-string, with nothing (no parameters) after it.
fn decode_sf_string(raw: &[u8]) -> Result<String, KeyError> {
    const BROKEN: KeyError = KeyError::Malformed("a quoted key must be a valid RFC 8941 string");
    let mut out = String::with_capacity(raw.len());
    let mut bytes = raw[1..].iter();
    loop {
        match bytes.next() {
            None => return Err(BROKEN),
            Some(b'\\') => match bytes.next() {
                Some(&c @ (b'"' | b'\\')) => out.push(char::from(c)),
                _ => return Err(BROKEN),
            },
            Some(b'"') => break,
            Some(&c) if is_printable(c) => out.push(char::from(c)),
            Some(_) => return Err(BROKEN),
        }
    }
    if bytes.next().is_some() {
        return Err(KeyError::Malformed(
            "nothing may follow a quoted key (no parameters or lists)",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<String, KeyError> {
        IdempotencyKey::parse(s.as_bytes()).map(|k| k.0)
    }

    #[test]
    fn a_decoded_key_comes_back_as_itself() {
        for raw in [&b"abc"[..], br#""q,k""#, br#""\"x""#, br#"" a ""#] {
            let key = IdempotencyKey::parse(raw).expect("valid");
            assert_eq!(IdempotencyKey::from_decoded(key.as_str()), Ok(key));
        }
        assert!(IdempotencyKey::from_decoded("").is_err());
        assert!(IdempotencyKey::from_decoded("tab\there").is_err());
    }

    #[test]
    fn plain_and_quoted_forms_name_the_same_key() {
        assert_eq!(parse("abc"), Ok("abc".into()));
        assert_eq!(parse("\"abc\""), Ok("abc".into()));
        assert_eq!(parse("  abc  "), Ok("abc".into()));
        assert_eq!(parse(r#""a\"b\\c""#), Ok(r#"a"b\c"#.into()));
        assert_eq!(parse("\"a,b\""), Ok("a,b".into()));
        assert_eq!(parse("a b"), Ok("a b".into()));
        assert_eq!(parse("a\"b"), Ok("a\"b".into()));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "   ",
            "a,b",
            "a\tb",
            "\tab",
            "\"\"",
            "\"abc",
            "\"abc\";p=1",
            "\"abc\", \"d\"",
            r#""a\nb""#,
            "caf\u{e9}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be malformed");
        }
        assert!(IdempotencyKey::parse(b"a\x01b").is_err());
        assert!(IdempotencyKey::parse(b"a\xffb").is_err());
    }

    #[test]
    fn length_limit_counts_decoded_characters() {
        assert!(parse(&"k".repeat(255)).is_ok());
        assert!(parse(&"k".repeat(256)).is_err());
        assert!(parse(&format!("\"{}\"", "k".repeat(255))).is_ok());
        assert!(parse(&format!("\"{}\"", "\\\\".repeat(255))).is_ok());
        assert!(parse(&format!("\"{}\"", "k".repeat(256))).is_err());
    }

    #[test]
    fn exactly_one_header_line_is_allowed() {
        let none: [&[u8]; 0] = [];
        assert_eq!(
            IdempotencyKey::from_header_lines(none.into_iter()),
            Err(KeyError::Missing)
        );
        let two: [&[u8]; 2] = [b"a", b"b"];
        assert!(IdempotencyKey::from_header_lines(two.into_iter()).is_err());
    }
}
