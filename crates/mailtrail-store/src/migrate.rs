//! Embedded migrations, run under an advisory lock.

use diesel_async::{AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{StoreConnection, StoreError};

/// The migrations in the repository's `migrations/` folder, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// An arbitrary constant naming mailtrail's migration lock ("mailtrl" in ASCII).
const MIGRATION_LOCK_ID: i64 = 0x006d_6169_6c74_726c;

/// Runs pending migrations while holding a session advisory lock, so workers that start together
/// run them once. Returns the versions applied. Needs a multi-threaded tokio runtime (diesel's
/// migration harness is synchronous and runs inside `block_in_place`).
pub async fn migrate(
    mut connection: StoreConnection,
) -> Result<(StoreConnection, Vec<String>), StoreError> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
        .execute(&mut connection)
        .await?;
    let mut harness = AsyncMigrationHarness::new(connection);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|error| StoreError::Migration(error.to_string()));
    let mut connection = harness.into_inner();
    // The lock is released with the session anyway; unlock explicitly to keep the connection.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
        .execute(&mut connection)
        .await?;
    Ok((connection, applied?))
}
