//! A pool of Postgres connections, for a process that answers many requests at once (the read
//! API) rather than working through one batch at a time (the worker, the CLI).
//!
//! The pool is deadpool's, through diesel-async. Every connection it opens gets the statement
//! timeout before anyone can take it, so no request can hold a connection (and the Postgres
//! backend behind it) for longer than that; the setting is per session, so it survives the
//! connection's trips back to the pool. A connection taken out again is first checked with a
//! ping (diesel-async's `Verified` recycling), so one that Postgres closed meanwhile is replaced
//! instead of failing a request.

use std::time::Duration;

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};

use crate::connection::set_statement_timeout;
use crate::{StoreConnection, StoreError};

/// A pool of Postgres connections, each with the statement timeout set.
pub type StorePool = Pool<StoreConnection>;

/// A connection taken from a [`StorePool`]: it goes back to the pool when dropped, and `&mut
/// *pooled` is the `&mut StoreConnection` every function of the store takes.
pub type PooledConnection = Object<StoreConnection>;

/// A pool of at most `max_size` connections (at least one) to `database_url`, each with
/// `statement_timeout` set. The first connection is opened now, so a wrong URL or an
/// unreachable server is reported at start rather than by the first request.
pub async fn connect_pool(
    database_url: &str,
    max_size: usize,
    statement_timeout: Duration,
) -> Result<StorePool, StoreError> {
    let mut config = ManagerConfig::default();
    config.custom_setup =
        Box::new(move |url| Box::pin(establish(url.to_owned(), statement_timeout)));
    let manager = AsyncDieselConnectionManager::new_with_config(database_url, config);
    // An empty pool would make every checkout wait forever.
    let pool = Pool::builder(manager).max_size(max_size.max(1)).build()?;
    drop(pool.get().await?);
    Ok(pool)
}

/// Opens one pooled connection: connects, then sets the statement timeout.
async fn establish(url: String, statement_timeout: Duration) -> ConnectionResult<StoreConnection> {
    let mut connection = StoreConnection::establish(&url).await?;
    set_statement_timeout(&mut connection, statement_timeout)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(connection)
}
