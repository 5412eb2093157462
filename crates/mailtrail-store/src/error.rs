//! Store errors.

/// Anything that went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not connect.
    #[error("cannot connect to Postgres: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// A query failed.
    #[error("Postgres query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Migrations failed.
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// True when retrying the same work later may succeed (connection lost, serialization
    /// failure, deadlock, timeout); false when the data itself is at fault.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Connection(_) | Self::Migration(_) => true,
            Self::Query(Error::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::ReadOnlyTransaction => true,
                // Deadlocks (40P01), lock and statement timeouts (55P03, 57014), shutdowns and
                // connection failures (57P0x, 08xxx) carry no kind of their own in diesel.
                _ => {
                    let message = info.message();
                    message.contains("deadlock")
                        || message.contains("timeout")
                        || message.contains("terminating connection")
                        || message.contains("shutting down")
                }
            },
            Self::Query(Error::DeserializationError(_) | Error::SerializationError(_)) => false,
            Self::Query(Error::QueryBuilderError(_)) => false,
            // Broken connections surface as other errors in diesel-async.
            Self::Query(_) => true,
        }
    }
}
