//! API tokens: which tenant a bearer token belongs to.
//!
//! Tokens are compared in constant time (as SHA-256 digests, so lengths leak nothing
//! either) and never logged. The key file can be re-read at run time (SIGHUP).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

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

/// Why the token configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the API keys file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("one token is given to two tenants ({0} and {1})")]
    SharedToken(String, String),
    #[error("{} holds no API key", .0.display())]
    NoKeys(PathBuf),
}

/// Digests of the known tokens with their tenants, found by the digest's first eight
/// bytes: a lookup costs the same for one tenant or a hundred thousand, and so does
/// a wrong token. The whole digest is then compared in constant time; timing can
/// only tell about digests, which nobody can aim at a token.
#[derive(Default)]
struct TokenTable(HashMap<u64, Vec<Entry>>);

/// A token's digest and its tenant.
type Entry = ([u8; 32], Arc<str>);

impl TokenTable {
    /// Builds the table in one pass over the keys.
    fn build(keys: &[ApiKey]) -> Result<Self, AuthError> {
        let mut table = Self(HashMap::with_capacity(keys.len()));
        for key in keys {
            let digest = digest(key.token.as_bytes());
            let bucket = table.0.entry(bucket_of(&digest)).or_default();
            match bucket.iter().find(|(d, _)| *d == digest) {
                Some((_, t)) if **t != *key.tenant => {
                    return Err(AuthError::SharedToken(t.to_string(), key.tenant.clone()));
                }
                Some(_) => {}
                None => bucket.push((digest, key.tenant.as_str().into())),
            }
        }
        Ok(table)
    }

    fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
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

/// The authenticator: fixed keys from the command line plus an optional key file.
pub struct Auth {
    fixed: Vec<ApiKey>,
    file: Option<PathBuf>,
    table: RwLock<Arc<TokenTable>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("fixed", &self.fixed)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Loads the keys. A keys file without any key is allowed at start (the server
    /// runs, and every request gets 401), but said loudly.
    pub fn new(fixed: Vec<ApiKey>, file: Option<PathBuf>) -> Result<Self, AuthError> {
        let auth = Self {
            fixed,
            file,
            table: RwLock::default(),
        };
        match auth.reload() {
            Err(AuthError::NoKeys(path)) => {
                tracing::warn!(
                    path = %path.display(),
                    "the API keys file holds no key: EVERY REQUEST WILL GET 401 until keys \
                     are added and the server gets SIGHUP"
                );
                if auth.fixed.is_empty() {
                    return Ok(auth);
                }
                auth.install(&auth.fixed)?;
            }
            loaded => {
                loaded?;
            }
        }
        Ok(auth)
    }

    /// Open mode: no keys configured at all, every request is tenant `default`.
    pub fn is_open(&self) -> bool {
        self.fixed.is_empty() && self.file.is_none()
    }

    /// Re-reads the key file; on error (an empty file included) the previous tokens
    /// stay in force. Blocks: call it off the async workers.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let mut keys = self.fixed.clone();
        if let Some(path) = &self.file {
            let from_file = read_keys_file(path)?;
            if from_file.is_empty() {
                return Err(AuthError::NoKeys(path.clone()));
            }
            keys.extend(from_file);
        }
        self.install(&keys)
    }

    fn install(&self, keys: &[ApiKey]) -> Result<usize, AuthError> {
        let table = TokenTable::build(keys)?;
        let count = table.len();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        Ok(count)
    }

    /// The tenant for an `Authorization` header value, if it holds a known bearer token.
    pub fn tenant(&self, authorization: Option<&[u8]>) -> Option<String> {
        if self.is_open() {
            return Some(OPEN_MODE_TENANT.to_owned());
        }
        let token = bearer_token(authorization?)?;
        let table = self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        table.tenant_for(token)
    }
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

fn read_keys_file(path: &Path) -> Result<Vec<ApiKey>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(line.parse().map_err(|reason| AuthError::Line {
            path: path.to_owned(),
            line: i + 1,
            reason,
        })?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ApiKey {
        s.parse().expect("valid key")
    }

    #[test]
    fn a_known_bearer_token_names_its_tenant() {
        let auth = Auth::new(vec![key("acme:s3cret"), key("globex:other")], None).expect("auth");
        assert_eq!(auth.tenant(Some(b"Bearer s3cret")).as_deref(), Some("acme"));
        assert_eq!(
            auth.tenant(Some(b"bearer other")).as_deref(),
            Some("globex")
        );
        assert_eq!(auth.tenant(Some(b"Bearer nope")), None);
        assert_eq!(auth.tenant(Some(b"Basic s3cret")), None);
        assert_eq!(auth.tenant(None), None);
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let auth = Auth::new(vec![key("acme:s3cret")], None).expect("auth");
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn many_tenants_each_find_their_own_and_a_wrong_token_finds_none() {
        let keys: Vec<ApiKey> = (0..100_000)
            .map(|i| key(&format!("tenant{i}:token-{i}")))
            .collect();
        let auth = Auth::new(keys, None).expect("auth");
        for i in [0, 1, 4_999, 99_999] {
            let header = format!("Bearer token-{i}");
            let expected = format!("tenant{i}");
            assert_eq!(
                auth.tenant(Some(header.as_bytes())).as_deref(),
                Some(expected.as_str())
            );
        }
        assert_eq!(auth.tenant(Some(b"Bearer token-100000")), None);
    }

    #[test]
    fn an_empty_keys_file_starts_but_is_never_reloaded() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys");
        std::fs::write(&path, "# nobody yet\n").expect("write");
        let auth = Auth::new(Vec::new(), Some(path.clone())).expect("starts");
        assert!(!auth.is_open(), "a keys file turns off open mode");
        assert_eq!(auth.tenant(Some(b"Bearer t")), None);
        std::fs::write(&path, "acme:t\n").expect("write");
        assert_eq!(auth.reload().expect("reload"), 1);
        assert_eq!(auth.tenant(Some(b"Bearer t")).as_deref(), Some("acme"));
        std::fs::write(&path, "").expect("write");
        assert!(matches!(auth.reload(), Err(AuthError::NoKeys(_))));
        assert_eq!(
            auth.tenant(Some(b"Bearer t")).as_deref(),
            Some("acme"),
            "kept"
        );
    }

    #[test]
    fn one_token_for_two_tenants_is_refused() {
        assert!(Auth::new(vec![key("a:t"), key("b:t")], None).is_err());
    }
}
