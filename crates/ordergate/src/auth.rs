//! API tokens: which tenant a bearer token belongs to.
//!
//! Tokens are compared in constant time (as SHA-256 digests, so lengths leak nothing
//! either) and never logged. The key file can be re-read at run time (SIGHUP).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use ordergate_core::intake::{self, Tenancy};
pub use ordergate_core::tokens::{ApiKey, OPEN_MODE_TENANT};
use ordergate_core::tokens::{SharedToken, TokenTable};

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
    #[error(transparent)]
    SharedToken(#[from] SharedToken),
    #[error("{} holds no API key", .0.display())]
    NoKeys(PathBuf),
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
        self.with_tenancy(|tenancy| intake::tenant(tenancy, authorization.into_iter()).ok())
    }

    /// Runs `judge` with who may call now: the core's rules decide from it.
    pub fn with_tenancy<R>(&self, judge: impl FnOnce(Tenancy<'_>) -> R) -> R {
        if self.is_open() {
            return judge(Tenancy::Open);
        }
        let table = self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        judge(Tenancy::Tokens(&table))
    }
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
