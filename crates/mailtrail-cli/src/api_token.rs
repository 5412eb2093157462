//! `mailtrail api-token create | list | revoke`: the read API's tokens.
//!
//! `create` prints the new token once: only its SHA-256 is stored, so it cannot be shown again
//! (revoke it and create another if it is lost). A token made with `--project` reads that project
//! alone; one without reads everything.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use mailtrail_store::tokens::{self, TokenScope};

use crate::CliConfig;
use crate::table::{Align, Table};

/// `mailtrail api-token ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum ApiTokenCommand {
    /// Create a token and print it (once).
    Create {
        /// A name for it, unique among live tokens (who or what uses it).
        #[arg(long)]
        name: String,
        /// Limit it to this project (a project creator's token); without it, it reads everything.
        #[arg(long, value_name = "ID")]
        project: Option<i64>,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the live token with this name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `mailtrail api-token ...`.
pub async fn run(
    config: &CliConfig,
    command: &ApiTokenCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut connection = crate::connect_store(config, "api-token").await?;
    match command {
        ApiTokenCommand::Create { name, project } => {
            let scope = project.map_or(TokenScope::All, TokenScope::Project);
            let token = tokens::create_token(&mut connection, name, scope).await?;
            writeln!(out, "{token}")?;
        }
        ApiTokenCommand::List { json } => {
            let listed = tokens::list_tokens(&mut connection)
                .await
                .context("cannot list the tokens")?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
            } else {
                let mut table = Table::new(&[
                    ("name", Align::Left),
                    ("scope", Align::Left),
                    ("created", Align::Left),
                    ("last used", Align::Left),
                    ("revoked", Align::Left),
                ]);
                let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map_or_else(
                        || "-".to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M").to_string(),
                    )
                };
                for token in &listed {
                    table.row([
                        token.name.clone(),
                        token
                            .project_id
                            .map_or_else(|| "all".to_owned(), |id| format!("project {id}")),
                        time(Some(token.created_at)),
                        time(token.last_used_at),
                        time(token.revoked_at),
                    ]);
                }
                out.write_all(table.render().as_bytes())?;
            }
        }
        ApiTokenCommand::Revoke { name } => {
            let revoked = tokens::revoke_token(&mut connection, name)
                .await
                .context("cannot revoke the token")?;
            anyhow::ensure!(revoked, "no live token is named `{name}`");
            writeln!(out, "revoked `{name}`")?;
        }
    }
    Ok(())
}
