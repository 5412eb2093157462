//! mailtrail-cli: the operator's command line, `mailtrail`.
//!
//! | command | module | needs |
//! |---|---|---|
//! | `migrate` | [`migrate`] | Postgres |
//! | `stats --backer N \| --project N [--by-subject] \| --all [--since D] [--until D] [--daily] [--json]` | [`stats`] | Postgres |
//! | `rollups rebuild \| verify` | [`rollups`] | Postgres |
//! | `conversions import FILE.csv` | [`conversions`] | Redis |
//! | `conversions reattribute` | [`conversions`] | Postgres |
//! | `api-token create --name N [--project ID] \| list \| revoke NAME` | [`api_token`] | Postgres |
//! | `events --message-id ID \| --recipient ADDR [--limit N] [--json]` | [`timeline`] | Postgres |
//! | `queue status [--json]` | [`queue_status`] | Redis |
//! | `dead list \| show \| replay \| purge` | [`dead`] | Redis |
//! | `send-sample [--url URL] [--backers N] [--projects N]` | [`sample`] (posting with [`http_post`]) | a receiver |
//! | `reconcile [--domain D] [--since T] [--until T] [--trust-after 30m]` | [`reconcile`] | Mailgun's API, Redis |
//! | `mailgun webhooks install --url URL [--replace] \| list` | [`mailgun_webhooks`] | Mailgun's API |
//! | `partitions ensure [--months-ahead N] \| list` | [`partitions`] | Postgres |
//! | `retention --events-older-than AGE [--yes]` | [`retention`] | Postgres |
//! | `erase --recipient ADDRESS` | [`erase`] | Postgres and Redis |
//!
//! `main.rs` only parses the arguments, reads [`CliConfig`] and calls [`run`]; every command
//! writes to the `out` it is given, so the binary stays thin and the rendering is testable.
//! Errors are `anyhow` with context: this crate is the edge where they meet a person.
//!
//! The figures of `stats` come from `mailtrail_store::report`, shared with the read API; this
//! crate only presents them. The load generator is a binary of its own (`mailtrail-bench`), so
//! the operator's tool links no HTTP stack and not the worker.

pub mod api_token;
pub mod clock;
pub mod config;
pub mod conversions;
pub mod dead;
pub mod erase;
pub mod http_post;
pub mod mailgun_webhooks;
pub mod migrate;
pub mod migrate_keys;
pub mod partitions;
pub mod queue_status;
pub mod reconcile;
pub mod retention;
pub mod rollups;
pub mod sample;
pub mod stats;
pub mod table;
pub mod timeline;

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mailtrail_queue::Queue;
use mailtrail_store::StoreConnection;

pub use config::{CliConfig, CliEnv, ConfigError};

/// `mailtrail`: operate a mailtrail deployment.
#[derive(Parser, Clone, Debug)]
#[command(name = "mailtrail", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (their names are a contract with operators' scripts).
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Run pending database migrations (safe while workers run).
    Migrate,
    /// Delivery status counts and rates for a backer, a project, or everything.
    Stats(stats::StatsArgs),
    /// Post realistic, signed sample webhooks to a receiver.
    SendSample(sample::SampleArgs),
    /// Inspect the Redis queue.
    Queue {
        /// What to inspect.
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Inspect, replay or purge dead letters.
    Dead {
        /// What to do.
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
    /// The event history of a message or a recipient.
    Events(timeline::EventsArgs),
    /// Create, list or revoke read API tokens.
    ApiToken {
        /// What to do.
        #[command(subcommand)]
        command: api_token::ApiTokenCommand,
    },
    /// Import past conversions, or recompute every conversion's credit.
    Conversions {
        /// What to do.
        #[command(subcommand)]
        command: conversions::ConversionsCommand,
    },
    /// Rebuild or verify the statistics counters.
    Rollups {
        /// What to do.
        #[command(subcommand)]
        command: rollups::RollupsCommand,
    },
    /// Queue what the webhooks missed, from Mailgun's Events API.
    Reconcile(reconcile::ReconcileArgs),
    /// Set up Mailgun: the domain's webhooks.
    Mailgun {
        /// What to do.
        #[command(subcommand)]
        command: mailgun_webhooks::MailgunCommand,
    },
    /// Create or list the monthly partitions of the events table.
    Partitions {
        /// What to do.
        #[command(subcommand)]
        command: partitions::PartitionsCommand,
    },
    /// Drop events past retention, whole months at a time (says what first; --yes to do it).
    Retention(retention::RetentionArgs),
    /// Erase a person: their rows, events and dead letters (the GDPR erasure path).
    Erase(erase::EraseArgs),
}

/// `mailtrail queue ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum QueueCommand {
    /// Backlog, in-flight envelopes per worker, dead letters and skipped events.
    Status(queue_status::QueueStatusArgs),
    /// Move what the queue holds under the key names before hash tags to the current ones.
    MigrateKeys(migrate_keys::MigrateKeysArgs),
}

/// Runs one command, writing its output to `out` and reading confirmations from `input`.
pub async fn run(
    cli: &Cli,
    config: &CliConfig,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> anyhow::Result<()> {
    match &cli.command {
        Command::Migrate => migrate::run(config, out).await?,
        Command::Stats(args) => stats::run(config, args, out).await?,
        Command::SendSample(args) => sample::run(config, args, out).await?,
        Command::Events(args) => timeline::run(config, args, out).await?,
        Command::Rollups { command } => rollups::run(config, command, out).await?,
        Command::ApiToken { command } => api_token::run(config, command, out).await?,
        Command::Conversions { command } => conversions::run(config, command, out).await?,
        Command::Queue {
            command: QueueCommand::Status(args),
        } => queue_status::run(&connect_queue(config).await?, args, out).await?,
        Command::Queue {
            command: QueueCommand::MigrateKeys(args),
        } => migrate_keys::run(&connect_queue(config).await?, args, out).await?,
        Command::Dead { command } => {
            dead::run(&connect_queue(config).await?, command, out, input).await?;
        }
        Command::Reconcile(args) => reconcile::run(config, args, out).await?,
        Command::Mailgun { command } => mailgun_webhooks::run(config, command, out).await?,
        Command::Partitions { command } => partitions::run(config, command, out).await?,
        Command::Retention(args) => retention::run(config, args, out).await?,
        Command::Erase(args) => {
            erase::run(config, &connect_queue(config).await?, args, out).await?
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// A Postgres connection for `command`, or an error naming `DATABASE_URL`.
async fn connect_store(
    config: &CliConfig,
    command: &'static str,
) -> anyhow::Result<StoreConnection> {
    let url = config.database_url(command)?;
    mailtrail_store::connect(url, config.statement_timeout())
        .await
        .context("cannot connect to Postgres at DATABASE_URL")
}

/// The queue, checked with a PING so an unreachable Redis is reported as such.
async fn connect_queue(config: &CliConfig) -> anyhow::Result<Queue> {
    let queue =
        Queue::connect(&config.queue_settings()).context("REDIS_URL is not a usable Redis URL")?;
    queue
        .ping()
        .await
        .context("cannot reach Redis at REDIS_URL")?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parses(args: &[&str]) -> bool {
        Cli::try_parse_from([&["mailtrail"], args].concat()).is_ok()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scopes_and_selections_are_exclusive_and_required() {
        assert!(parses(&["stats", "--backer", "1"]));
        assert!(parses(&[
            "stats",
            "--project",
            "1",
            "--by-subject",
            "--json"
        ]));
        assert!(parses(&["stats", "--all"]));
        assert!(!parses(&["stats"]));
        assert!(!parses(&["stats", "--all", "--backer", "1"]));
        assert!(!parses(&["stats", "--backer", "1", "--by-subject"]));

        assert!(parses(&["events", "--message-id", "m@x", "--limit", "5"]));
        assert!(!parses(&["events"]));
        assert!(!parses(&[
            "events",
            "--message-id",
            "m",
            "--recipient",
            "r"
        ]));
        assert!(!parses(&["events", "--recipient", "r", "--limit", "0"]));

        assert!(parses(&["dead", "replay", "--all", "--dry-run"]));
        assert!(parses(&["dead", "replay", "0", "3"]));
        assert!(!parses(&["dead", "replay"]));
        assert!(!parses(&["dead", "replay", "--all", "2"]));
        assert!(parses(&["dead", "purge", "--older-than", "30m", "--yes"]));
        assert!(!parses(&["dead", "purge"]));
        assert!(parses(&["queue", "status", "--json"]));
        assert!(parses(&["queue", "migrate-keys", "--dry-run"]));
        assert!(parses(&[
            "send-sample",
            "--backers",
            "2",
            "--projects",
            "1"
        ]));
        assert!(!parses(&["send-sample", "--backers", "0"]));
        assert!(parses(&["reconcile"]));
        assert!(parses(&[
            "reconcile",
            "--domain",
            "mg.example.com",
            "--since",
            "2026-12-05T10:00:00Z",
            "--until",
            "1h",
            "--trust-after",
            "10m"
        ]));
        assert!(!parses(&["reconcile", "--since", "yesterday"]));
        assert!(parses(&["mailgun", "webhooks", "list"]));
        assert!(parses(&[
            "mailgun",
            "webhooks",
            "install",
            "--url",
            "https://h/webhooks/mailgun",
            "--replace"
        ]));
        assert!(!parses(&["mailgun", "webhooks", "install"]));
        assert!(parses(&["partitions", "ensure", "--months-ahead", "6"]));
        assert!(parses(&[
            "retention",
            "--events-older-than",
            "13mo",
            "--yes"
        ]));
        assert!(!parses(&["retention", "--events-older-than", "13m"]));
        assert!(!parses(&["retention"]));
        assert!(parses(&["erase", "--recipient", "a@example.com"]));
        assert!(!parses(&["erase"]));
        assert!(parses(&["conversions", "import", "pledges.csv"]));
        assert!(parses(&["conversions", "reattribute"]));
        assert!(!parses(&["conversions", "import"]));
        // The load generator is `mailtrail-bench` now.
        assert!(!parses(&["load", "--fill", "1000"]));
    }
}
