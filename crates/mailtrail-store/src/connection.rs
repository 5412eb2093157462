//! Opening a Postgres connection.

use std::time::Duration;

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::StoreError;

/// A Postgres connection.
pub type StoreConnection = AsyncPgConnection;

/// Connects to `database_url` and sets a statement timeout, so a stuck query fails (and is
/// retried) instead of holding a batch forever.
pub async fn connect(
    database_url: &str,
    statement_timeout: Duration,
) -> Result<StoreConnection, StoreError> {
    let mut connection = AsyncPgConnection::establish(database_url).await?;
    set_statement_timeout(&mut connection, statement_timeout).await?;
    Ok(connection)
}

/// Sets the session's statement timeout (at least one millisecond: zero would mean none).
pub(crate) async fn set_statement_timeout(
    connection: &mut StoreConnection,
    statement_timeout: Duration,
) -> QueryResult<()> {
    diesel::sql_query(format!(
        "SET statement_timeout = {}",
        statement_timeout.as_millis().max(1)
    ))
    .execute(connection)
    .await?;
    Ok(())
}
