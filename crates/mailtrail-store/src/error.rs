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
    /// No connection could be taken from the pool (Postgres unreachable or refusing).
    #[error("cannot get a Postgres connection from the pool: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    /// The pool could not be set up.
    #[error("cannot set up the Postgres pool: {0}")]
    PoolSetup(#[from] diesel_async::pooled_connection::deadpool::BuildError),
}

impl StoreError {
    /// True when retrying the same work later may succeed (connection lost or refused, server
    /// restarting, deadlock, timeout); false only when the data itself is at fault.
    ///
    /// Wrongly calling a data error transient stalls the queue (loudly, losing nothing); wrongly
    /// calling an outage permanent would dead-letter good events. So only what is known to be
    /// about the data is permanent.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Connection(_) | Self::Migration(_) | Self::Pool(_) | Self::PoolSetup(_) => true,
            // A row routed to email_events' default partition while a partition for its month
            // was being attached (the worker's partition upkeep) is refused with 23514, a check
            // violation, though nothing is wrong with it: the same insert, retried, goes to the
            // new partition. Only this message says so.
            Self::Query(Error::DatabaseError(_, info))
                if info.message().contains("violates partition constraint") =>
            {
                true
            }
            Self::Query(Error::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation => false,
                // diesel-async names no kind for most SQLSTATEs; data exceptions (class 22) are
                // recognised by their message.
                DatabaseErrorKind::Unknown => {
                    let message = info.message();
                    ![
                        "invalid input",
                        "invalid byte sequence",
                        "out of range",
                        "value too long",
                        "violates",
                        // 54000: an index entry over btree's size limit.
                        "exceeds",
                    ]
                    .iter()
                    .any(|pattern| message.contains(pattern))
                }
                // Connection lost (UnableToSendCommand, ClosedConnection), serialization
                // failures, read-only replicas during a failover, and kinds added later.
                _ => true,
            },
            Self::Query(
                Error::DeserializationError(_)
                | Error::SerializationError(_)
                | Error::QueryBuilderError(_),
            ) => false,
            Self::Query(_) => true,
        }
    }
}
