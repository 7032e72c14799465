//! API tokens: `TENANT:TOKEN` pairs, and which tenant a bearer token belongs to.
//!
//! Tokens are compared in constant time (as SHA-256 digests, so lengths leak nothing
//! either) and never shown: `Debug` redacts them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The tenant of every request in open mode.
pub const OPEN_MODE_TENANT: &str = "default";

/// One `TENANT:TOKEN` pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub tenant: String,
    token: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}:<redacted>)", self.tenant)
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (tenant, token) = s
            .trim()
            .split_once(':')
            .ok_or("an API key is TENANT:TOKEN")?;
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !printable(tenant) || !printable(token) {
            return Err("tenant and token must be non-empty printable ASCII without spaces".into());
        }
        Ok(Self {
            tenant: tenant.to_owned(),
            token: token.to_owned(),
        })
    }
}

impl ApiKey {
    /// A comma-separated list (`ORDERGATE_API_KEYS`); empty items are skipped.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// One token given to two tenants: which of them is meant would be a guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("one token is given to two tenants ({0} and {1})")]
pub struct SharedToken(pub String, pub String);

/// Digests of the known tokens with their tenants, found by the digest's first eight
/// bytes: a lookup costs the same for one tenant or a hundred thousand, and so does
/// a wrong token. The whole digest is then compared in constant time; timing can
/// only tell about digests, which nobody can aim at a token.
#[derive(Default)]
pub struct TokenTable(HashMap<u64, Vec<Entry>>);

/// A token's digest and its tenant.
type Entry = ([u8; 32], Arc<str>);

impl TokenTable {
    /// Builds the table in one pass over the keys.
    pub fn build(keys: &[ApiKey]) -> Result<Self, SharedToken> {
        let mut table = Self(HashMap::with_capacity(keys.len()));
        for key in keys {
            let digest = digest(key.token.as_bytes());
            let bucket = table.0.entry(bucket_of(&digest)).or_default();
            match bucket.iter().find(|(d, _)| *d == digest) {
                Some((_, t)) if **t != *key.tenant => {
                    return Err(SharedToken(t.to_string(), key.tenant.clone()));
                }
                Some(_) => {}
                None => bucket.push((digest, key.tenant.as_str().into())),
            }
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tenant of an `Authorization` header value, if it holds a known bearer token.
    pub fn tenant_for_header(&self, authorization: Option<&[u8]>) -> Option<String> {
        self.tenant_for(bearer_token(authorization?)?)
    }

    fn tenant_for(&self, token: &[u8]) -> Option<String> {
        let digest = digest(token);
        let mut found = None;
        for (known, tenant) in self.0.get(&bucket_of(&digest))? {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(tenant);
            }
        }
        found.map(|tenant| tenant.to_string())
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn bucket_of(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// `Bearer <token>`, scheme case-insensitive (RFC 9110 §11.1).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &str) -> TokenTable {
        TokenTable::build(&ApiKey::parse_list(keys).expect("keys")).expect("table")
    }

    #[test]
    fn a_known_bearer_token_names_its_tenant() {
        let table = table("acme:s3cret, globex:other");
        let tenant = |h: &[u8]| table.tenant_for_header(Some(h));
        assert_eq!(tenant(b"Bearer s3cret").as_deref(), Some("acme"));
        assert_eq!(tenant(b"bearer other").as_deref(), Some("globex"));
        assert_eq!(tenant(b"Bearer nope"), None);
        assert_eq!(tenant(b"Basic s3cret"), None);
        assert_eq!(table.tenant_for_header(None), None);
    }

    #[test]
    fn one_token_for_two_tenants_is_refused() {
        let keys = ApiKey::parse_list("a:t,b:t").expect("keys");
        assert!(TokenTable::build(&keys).is_err());
    }

    #[test]
    fn a_key_list_refuses_a_pair_without_a_token() {
        assert!(ApiKey::parse_list("acme:t,globex").is_err());
        assert_eq!(ApiKey::parse_list(" , ").expect("empty"), Vec::new());
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let key: ApiKey = "acme:s3cret".parse().expect("key");
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}
