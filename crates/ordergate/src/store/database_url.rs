//! `--database`: which backend, from the URL, and the URL as the log may show it.

use std::fmt;
use std::path::PathBuf;

/// Which database, from the URL scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            return sqlite_path(path).map(Self::Sqlite);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        Err("the database URL must start with sqlite:// or postgres://".into())
    }
}

/// `sqlite://` takes a file path and nothing else: an in-memory database would lose
/// every acknowledged order on restart, and SQLite's URI forms would name one file two
/// ways, past the one-process lock.
fn sqlite_path(path: &str) -> Result<PathBuf, String> {
    const EXAMPLE: &str = "e.g. sqlite://ordergate.db or sqlite:///var/lib/ordergate/orders.db";
    if path.is_empty() {
        return Err(format!("sqlite:// needs a file path, {EXAMPLE}"));
    }
    if path == ":memory:" || path.contains("mode=memory") {
        return Err(format!(
            "an in-memory SQLite database would lose every order on restart; give a file path, {EXAMPLE}"
        ));
    }
    if path.starts_with("file:") || path.contains('?') {
        return Err(format!(
            "sqlite:// takes a plain file path, not a SQLite URI (file:..., ?options), {EXAMPLE}"
        ));
    }
    Ok(PathBuf::from(path))
}

impl fmt::Debug for DatabaseUrl {
    /// Never prints a PostgreSQL password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// The URL with every credential the driver would read replaced: the password of
/// the user info, and every query value but those known to hold none (keys
/// percent-decoded, as the driver reads them).
fn redact_password(url: &str) -> String {
    const SAFE: [&str; 13] = [
        "user",
        "dbname",
        "host",
        "hostaddr",
        "port",
        "application_name",
        "sslmode",
        "sslrootcert",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "target_session_attrs",
        "load_balance_hosts",
    ];
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<postgres url>".into();
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut redacted = format!("{scheme}://");
    match location.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let password = if user_info.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            redacted.push_str(&format!("{user}{password}@{host}"));
        }
        None => redacted.push_str(location),
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (key, _) = pair.split_once('=').unwrap_or((pair, ""));
                if SAFE.contains(&percent_decode(key).as_str()) {
                    pair.to_owned()
                } else {
                    format!("{key}=<redacted>")
                }
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// A query key as the driver reads it.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_select_the_backend() {
        assert_eq!(
            "sqlite://ordergate.db".parse(),
            Ok(DatabaseUrl::Sqlite("ordergate.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/ordergate/orders.db".parse(),
            Ok(DatabaseUrl::Sqlite("/var/lib/ordergate/orders.db".into()))
        );
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
        for refused in [
            "sqlite://",
            "sqlite://:memory:",
            "sqlite://file:orders.db?mode=memory&cache=shared",
            "sqlite://file:u.db",
            "sqlite://u.db?mode=rwc",
        ] {
            assert!(refused.parse::<DatabaseUrl>().is_err(), "{refused}");
        }
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_credentials() {
        for url in [
            "postgres://u:s3cr3t@h/db",
            "postgresql://u:s3cr3t@h1,h2:5433/db",
            "postgres://u:p%40s3cr3t@h/db",
            "postgres://u@h/db?password=s3cr3t",
            "postgres://u@h/db?sslmode=require&password=s3cr3t",
            "postgres://u@h/db?pass%77ord=s3cr3t",
            "postgres://h/db?user=u&password=s3cr3t&application_name=x",
        ] {
            let pg: DatabaseUrl = url.parse().expect("url");
            let shown = format!("{pg:?}");
            assert!(!shown.contains("s3cr3t"), "{url} shows {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let plain: DatabaseUrl = "postgres://u@h/db?sslmode=require".parse().expect("url");
        assert_eq!(format!("{plain:?}"), "postgres://u@h/db?sslmode=require");
    }
}
