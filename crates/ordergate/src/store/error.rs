//! What a store call can fail with, for both halves of every backend.

/// A boxed cause, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A store failure. The cause is for the log; clients only learn "unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not do what was asked (down, refused, full disk, ...).
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// The request's lease ran out while it waited for the store.
    #[error("the request's lease ran out while it waited for the store")]
    LeaseExpired,
    /// Something stored breaks a rule the store relies on: a bug, or a tampered row.
    #[error("broken invariant: {0}")]
    Invariant(&'static str),
    /// The store is closed (the server is shutting down).
    #[error("the store is closed")]
    Closed,
}

impl From<ordergate_core::CorruptRecord> for StoreError {
    fn from(corrupt: ordergate_core::CorruptRecord) -> Self {
        Self::Invariant(corrupt.what())
    }
}

impl StoreError {
    /// Every [`StoreError::kind`], so that each series exists from the start.
    pub const KINDS: [&'static str; 4] = ["unavailable", "lease_expired", "invariant", "closed"];

    /// The label of the `store_errors` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::LeaseExpired => "lease_expired",
            Self::Invariant(_) => "invariant",
            Self::Closed => "closed",
        }
    }

    /// A database failure with a cause of its own.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }
}
