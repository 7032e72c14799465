//! The HTTP-level checks of a request, in the contract's order: bearer token (401),
//! media type and encoding (415), body size (413), then the `Idempotency-Key` header
//! (400). Each driver reads the request's header lines its own way into
//! [`PostHeaders`], calls [`before_body`], reads the body within the limit
//! ([`check_body_length`] as it goes), then calls [`after_body`]: the order is
//! composed here, once, and so are the rules.

use crate::key::{IdempotencyKey, KeyError};
use crate::refusal::Refusal;
use crate::tokens::{OPEN_MODE_TENANT, TokenTable};

/// Who may call: the token table, or open mode (every request is tenant `default`).
pub enum Tenancy<'a> {
    Tokens(&'a TokenTable),
    Open,
}

/// A request path's segments as the server's router matches them: one leading `/`,
/// then segments that are never empty (`//orders` and `/orders/` name no route).
/// Segments stay percent-encoded; an order id is decoded where it is read.
pub fn path_segments(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    segments.iter().all(|s| !s.is_empty()).then_some(segments)
}

/// The lines of a header as the Fetch API hands them over: joined into one value with
/// `", "`. A runtime that cannot see the lines themselves (the edge build) splits them
/// here, so that two lines count as two there as on the server. Each line loses the
/// spaces and tabs around it, as an HTTP/1.1 parser drops them (RFC 9110 §5.5).
pub fn joined_lines(joined: Option<&[u8]>) -> Vec<&[u8]> {
    let Some(joined) = joined else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut rest = joined;
    while let Some(at) = rest.windows(2).position(|w| w == b", ") {
        lines.push(without_whitespace(&rest[..at]));
        rest = &rest[at + 2..];
    }
    lines.push(without_whitespace(rest));
    lines
}

/// A field value without the optional whitespace (spaces and tabs) around it.
fn without_whitespace(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// The header lines of a `POST /orders` that its checks read, every line of each.
#[derive(Debug, Default)]
pub struct PostHeaders<'a> {
    pub authorization: Vec<&'a [u8]>,
    pub content_type: Vec<&'a [u8]>,
    pub content_encoding: Vec<&'a [u8]>,
    pub content_length: Option<&'a [u8]>,
    pub idempotency_key: Vec<&'a [u8]>,
}

/// Steps 2 to 4 before the body is read: the tenant (401), the media type and
/// encoding (415), a declared length over `max_body` (413: the driver then drops the
/// body unread, up to [`DISCARD_LIMIT`]).
pub fn before_body(
    tenancy: Tenancy<'_>,
    headers: &PostHeaders<'_>,
    max_body: u64,
) -> Result<String, Refusal> {
    let tenant = tenant(tenancy, headers.authorization.iter().copied())?;
    check_media_type(
        headers.content_type.iter().copied(),
        headers.content_encoding.iter().copied(),
    )?;
    check_declared_length(headers.content_length, max_body)?;
    Ok(tenant)
}

/// Step 5, once the body is read: exactly one well-formed `Idempotency-Key` line.
pub fn after_body(headers: &PostHeaders<'_>) -> Result<IdempotencyKey, Refusal> {
    idempotency_key(headers.idempotency_key.iter().copied())
}

/// Step 2: the tenant of the bearer token, from every `Authorization` line: exactly
/// one is allowed, since which of two credentials counts would be a guess.
pub fn tenant<'a>(
    tenancy: Tenancy<'_>,
    mut authorization: impl Iterator<Item = &'a [u8]>,
) -> Result<String, Refusal> {
    match tenancy {
        Tenancy::Open => Ok(OPEN_MODE_TENANT.to_owned()),
        Tenancy::Tokens(table) => {
            let first = authorization.next();
            if authorization.next().is_some() {
                return Err(Refusal::Unauthorized);
            }
            table.tenant_for_header(first).ok_or(Refusal::Unauthorized)
        }
    }
}

/// Step 3: JSON (`application/json` or any `+json` type) or no type; no encoding
/// other than `identity`. Each iterator yields every line of its header.
/// `Content-Encoding` is a list (RFC 9110 §8.4): each line holds comma-separated
/// codings, empty elements are ignored, and an empty list is no encoding.
pub fn check_media_type<'a>(
    mut content_types: impl Iterator<Item = &'a [u8]>,
    encodings: impl Iterator<Item = &'a [u8]>,
) -> Result<(), Refusal> {
    if let Some(value) = content_types.next()
        && (content_types.next().is_some() || !is_json(value))
    {
        return Err(Refusal::UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let codings = encodings.flat_map(|line| line.split(|&b| b == b','));
    for coding in codings.map(<[u8]>::trim_ascii).filter(|c| !c.is_empty()) {
        if !coding.eq_ignore_ascii_case(b"identity") {
            return Err(Refusal::UnsupportedMediaType(
                "encoded bodies are not accepted (Content-Encoding must be identity)",
            ));
        }
    }
    Ok(())
}

fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_graphic() && *b != b'/');
    token(kind) && token(subtype) && (essence == b"application/json" || subtype.ends_with(b"+json"))
}

/// Step 4, before reading: a declared `Content-Length` over the limit is refused
/// without reading the body.
pub fn check_declared_length(content_length: Option<&[u8]>, max: u64) -> Result<(), Refusal> {
    let declared = content_length
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > max => Err(Refusal::PayloadTooLarge(max)),
        _ => Ok(()),
    }
}

/// Most bytes of an oversized body read and dropped after it was refused, so that a
/// client still sending it can read the 413 instead of a reset connection.
pub const DISCARD_LIMIT: usize = 1 << 20;

/// Step 4, while reading: the body read so far.
pub fn check_body_length(read: usize, max: u64) -> Result<(), Refusal> {
    if u64::try_from(read).unwrap_or(u64::MAX) > max {
        return Err(Refusal::PayloadTooLarge(max));
    }
    Ok(())
}

/// Step 5: exactly one well-formed `Idempotency-Key` line.
pub fn idempotency_key<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<IdempotencyKey, Refusal> {
    Ok(IdempotencyKey::from_header_lines(lines)?)
}

/// The lookup's query parameter.
pub const LOOKUP_PARAMETER: &str = "idempotencyKey";

/// `GET /orders?idempotencyKey=K`: exactly one parameter with a well-formed key, from
/// the decoded query pairs (`None`: the query string was not URL-encoded UTF-8).
pub fn lookup_key<'a>(
    pairs: Option<impl Iterator<Item = (&'a str, &'a str)>>,
) -> Result<IdempotencyKey, Refusal> {
    let Some(pairs) = pairs else {
        return Err(Refusal::LookupKey(
            "the query string is not valid URL-encoded UTF-8",
        ));
    };
    let mut values = pairs.filter(|(name, _)| *name == LOOKUP_PARAMETER);
    let (_, value) = values.next().ok_or(Refusal::MissingLookupKey)?;
    if values.next().is_some() {
        return Err(Refusal::LookupKey("the parameter is given more than once"));
    }
    IdempotencyKey::parse(value.as_bytes()).map_err(|e| match e {
        KeyError::Malformed(reason) => Refusal::LookupKey(reason),
        KeyError::Missing => Refusal::MissingLookupKey,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.acme.order+json",
            "application/problem+json;v=1",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "json",
            "application/",
            "application/jsonx",
            "application/json, application/json",
            "",
        ] {
            assert!(!is_json(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn encodings_are_lists_of_identity_or_nothing() {
        let check = |lines: &[&[u8]]| check_media_type(std::iter::empty(), lines.iter().copied());
        for ok in [
            &[][..],
            &[&b"identity"[..]],
            &[b"identity", b"Identity"],
            &[b"identity, identity"],
            &[b""],
            &[b" , "],
        ] {
            assert!(check(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &[&b"gzip"[..]][..],
            &[b"identity, gzip"],
            &[b"identity", b"br"],
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_match_as_the_router_matches_them() {
        assert_eq!(path_segments("/orders"), Some(vec!["orders"]));
        assert_eq!(
            path_segments("/orders/a%2Db"),
            Some(vec!["orders", "a%2Db"])
        );
        for none in ["", "/", "//orders", "/orders/", "orders", "/orders//x"] {
            assert_eq!(path_segments(none), None, "{none:?}");
        }
    }

    #[test]
    fn joined_header_values_split_back_into_their_lines() {
        assert!(joined_lines(None).is_empty());
        assert_eq!(joined_lines(Some(b"")), [&b""[..]]);
        assert_eq!(joined_lines(Some(b"one")), [&b"one"[..]]);
        assert_eq!(
            joined_lines(Some(b"\"split, tail\"")),
            [&b"\"split"[..], b"tail\""]
        );
        assert_eq!(joined_lines(Some(b"a,b")), [&b"a,b"[..]]);
        assert_eq!(joined_lines(Some(b"\tkey\t ")), [&b"key"[..]]);
        assert_eq!(joined_lines(Some(b"a\tb")), [&b"a\tb"[..]]);
    }

    #[test]
    fn the_checks_before_the_body_answer_in_the_contracts_order() {
        let keys = crate::tokens::ApiKey::parse_list("acme:t").expect("keys");
        let table = TokenTable::build(&keys).expect("table");
        let everything_wrong = PostHeaders {
            authorization: vec![b"Bearer nope"],
            content_type: vec![b"text/plain"],
            content_encoding: vec![],
            content_length: Some(b"100"),
            idempotency_key: vec![],
        };
        let check = |h: &PostHeaders<'_>| before_body(Tenancy::Tokens(&table), h, 10);
        assert_eq!(check(&everything_wrong), Err(Refusal::Unauthorized));
        let authorized = PostHeaders {
            authorization: vec![b"Bearer t"],
            ..everything_wrong
        };
        assert!(matches!(
            check(&authorized),
            Err(Refusal::UnsupportedMediaType(_))
        ));
        let json = PostHeaders {
            content_type: vec![b"application/json"],
            ..authorized
        };
        assert_eq!(check(&json), Err(Refusal::PayloadTooLarge(10)));
        let small = PostHeaders {
            content_length: Some(b"5"),
            ..json
        };
        assert_eq!(check(&small).as_deref(), Ok("acme"));
        assert_eq!(after_body(&small), Err(Refusal::from(KeyError::Missing)));
    }

    #[test]
    fn two_authorization_lines_are_unauthorized() {
        let keys = crate::tokens::ApiKey::parse_list("acme:t").expect("keys");
        let table = TokenTable::build(&keys).expect("table");
        let one: [&[u8]; 1] = [b"Bearer t"];
        assert_eq!(
            tenant(Tenancy::Tokens(&table), one.into_iter()).as_deref(),
            Ok("acme")
        );
        let two: [&[u8]; 2] = [b"Bearer t", b"Bearer t"];
        assert_eq!(
            tenant(Tenancy::Tokens(&table), two.into_iter()),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert!(check_declared_length(Some(b"65537"), 65536).is_err());
        assert!(check_declared_length(Some(b"65536"), 65536).is_ok());
        assert!(check_declared_length(None, 1).is_ok());
    }

    #[test]
    fn a_lookup_needs_exactly_one_well_formed_key() {
        let one = [("idempotencyKey", "k")];
        assert!(lookup_key(Some(one.into_iter())).is_ok());
        let two = [("idempotencyKey", "k"), ("idempotencyKey", "k")];
        assert!(lookup_key(Some(two.into_iter())).is_err());
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            lookup_key(Some(none.into_iter())),
            Err(Refusal::MissingLookupKey)
        );
    }
}
