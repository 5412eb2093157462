//! `mailtrail migrate`: runs the embedded migrations (under the store's advisory lock, so it is
//! safe while workers start) and says which versions it applied.

use std::io::Write;

use anyhow::Context;

use crate::CliConfig;

/// Runs `mailtrail migrate`. Needs a multi-threaded runtime: diesel's migration harness blocks.
pub async fn run(config: &CliConfig, out: &mut dyn Write) -> anyhow::Result<()> {
    let connection = crate::connect_store(config, "migrate").await?;
    let (_, applied) = mailtrail_store::migrate(connection)
        .await
        .context("cannot run the migrations")?;
    if applied.is_empty() {
        writeln!(out, "migrations: up to date")?;
    } else {
        for version in &applied {
            writeln!(out, "applied migration {version}")?;
        }
        writeln!(out, "migrations: {} applied", applied.len())?;
    }
    Ok(())
}
