//! `mailtrail erase --recipient ADDRESS`: the GDPR erasure path (docs/operations.md).
//!
//! Removes every `sent_emails` row and every event addressed to the person (any spelling of the
//! address: addresses are stored lower-cased), in one Postgres statement whose DELETE trigger
//! takes the erased messages off the statistics counters in the same transaction; then every
//! dead letter that holds the address, as is or percent-encoded, through the queue's dead-letter
//! API. It reports what it removed.
//!
//! It cannot erase what is not stored yet: envelopes still waiting in the backlog or in a
//! worker's hands are written after it. It says when the backlog is not empty, so the operator
//! can run it again once the backlog has drained.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use mailtrail_queue::{DeadEntry, Queue};
use mailtrail_store::erase::{erase_recipient, normalised_address};

use crate::CliConfig;
use crate::dead::CHUNK;

/// Arguments of `mailtrail erase`.
#[derive(Args, Clone, Debug)]
pub struct EraseArgs {
    /// The person's email address (any letter case).
    #[arg(long, value_name = "ADDRESS")]
    pub recipient: String,
}

/// Runs `mailtrail erase`.
pub async fn run(
    config: &CliConfig,
    queue: &Queue,
    args: &EraseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let address = normalised_address(&args.recipient);
    if address.is_empty() || !address.contains('@') {
        bail!("--recipient must be an email address");
    }
    let mut connection = crate::connect_store(config, "erase").await?;
    let erased = erase_recipient(&mut connection, &address)
        .await
        .context("cannot erase the recipient's rows and events")?;
    writeln!(
        out,
        "erased from Postgres: {} sent_emails rows and {} events, of {} messages in {} projects \
         (their statistics dropped by as much)",
        erased.rows, erased.events, erased.messages, erased.projects
    )?;

    let dead_letters = erase_dead_letters(queue, &address).await?;
    writeln!(out, "erased from Redis: {dead_letters} dead letters")?;

    let backlog = queue
        .backlog_len()
        .await
        .context("cannot read the backlog's length")?;
    if backlog > 0 {
        writeln!(
            out,
            "note: {backlog} envelopes are still queued and may hold this address; run erase \
             again once the backlog has drained"
        )?;
    }
    Ok(())
}

/// Removes the dead letters that hold `address`; returns how many. The whole list is read first
/// (in windows from the newest) and the matches removed after, so removing cannot shift an
/// unread entry past the reading.
async fn erase_dead_letters(queue: &Queue, address: &str) -> anyhow::Result<u64> {
    let total = queue
        .dead_len()
        .await
        .context("cannot read the dead-letter list")?;
    let mut matching: Vec<DeadEntry> = Vec::new();
    let mut start = 0;
    while start < total {
        let window = queue
            .dead_letters(start, CHUNK)
            .await
            .context("cannot read the dead-letter list")?;
        if window.is_empty() {
            break;
        }
        start += window.len() as u64;
        matching.extend(
            window
                .into_iter()
                .filter(|entry| entry.mentions_address(address)),
        );
    }
    let entries: Vec<&DeadEntry> = matching.iter().collect();
    queue
        .remove_dead(&entries)
        .await
        .context("cannot remove the dead letters")
}
