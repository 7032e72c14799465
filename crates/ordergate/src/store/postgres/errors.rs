//! PostgreSQL's errors, kept whole: the SQLSTATE beside the server's message, and at
//! start-up a sentence that says which failure it is and what to do.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// A driver error with its SQLSTATE in the message; the driver's own text (the
/// server's message, detail and hint) follows as its source.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL error{}", sqlstate(.0))]
pub struct PgError(#[source] pub tokio_postgres::Error);

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|code| format!(" (SQLSTATE {})", code.code()))
        .unwrap_or_default()
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::unavailable(PgError(e))
    }
}

/// Whether the server refused a write because it is read-only: a primary that was
/// demoted, or a standby reached through a stale connection. Such a connection will
/// never write again and must not go back to the pool.
pub fn refused_as_read_only(e: &StoreError) -> bool {
    let StoreError::Unavailable(cause) = e else {
        return false;
    };
    cause
        .downcast_ref::<PgError>()
        .and_then(|PgError(e)| e.code())
        .is_some_and(|code| *code == SqlState::READ_ONLY_SQL_TRANSACTION)
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => StoreError::unavailable(e),
        }
    }
}

/// Why the PostgreSQL store could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the PostgreSQL URL is invalid")]
    Url(#[source] tokio_postgres::Error),
    #[error("the PostgreSQL URL's TLS settings are unusable")]
    Tls(#[source] super::tls::TlsError),
    #[error("cannot build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("cannot start on PostgreSQL: {hint}")]
    Start {
        hint: &'static str,
        #[source]
        source: StoreError,
    },
}

impl OpenError {
    /// A start-up failure, with a hint chosen from its cause.
    pub fn start(source: StoreError) -> Self {
        Self::Start {
            hint: hint_for(&source),
            source,
        }
    }
}

fn hint_for(e: &StoreError) -> &'static str {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(c) = cause {
        if let Some(code) = c
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
        {
            return hint_for_sqlstate(code);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            // rustls reports through an io::Error that wraps it.
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return "the TLS handshake failed: check sslmode, sslrootcert and the server's certificate";
            }
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "nothing listens at the URL's host and port: is PostgreSQL running there?";
            }
        }
        cause = c.source();
    }
    "PostgreSQL did not answer: check the URL's host and port and the network"
}

fn hint_for_sqlstate(code: &SqlState) -> &'static str {
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        "PostgreSQL refused the login: check the user and password in the URL (and pg_hba.conf)"
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        "the database does not exist: create it (createdb NAME) or fix its name in the URL"
    } else if *code == SqlState::INVALID_PARAMETER_VALUE
        || *code == SqlState::UNDEFINED_OBJECT
        || *code == SqlState::INVALID_TEXT_REPRESENTATION
    {
        "PostgreSQL refused a setting: check the URL's options, --lease-ttl and --result-ttl"
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "the user may not create ordergate's tables: grant it CREATE on the database"
    } else if *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::TOO_MANY_CONNECTIONS {
        "PostgreSQL takes no connections now (starting, stopping or full): try again"
    } else {
        "PostgreSQL refused ordergate's set-up; its message follows"
    }
}
