//! `mailtrail dead list | show | replay | purge`: the dead-letter list, for operators.
//!
//! Indices are those of `LRANGE` on the list: 0 is the newest dead letter. `replay` and `purge`
//! change the list only through the queue's scripts, so each entry moves or disappears in one
//! atomic step: a replay never queues an entry twice (an entry already gone is skipped), and an
//! entry is never purged after someone replayed it.
//!
//! Whole-list operations (`replay --all`, `purge`) work in windows of [`CHUNK`] entries from the
//! oldest end, up to the length the list had when they started: dead letters that arrive
//! meanwhile (possibly the very envelopes being replayed, failing again) land at the head and
//! are left for the next run, so the command always ends and never blocks Redis for long.
//!
//! `purge` asks before it deletes, unless `--yes`. An answer other than yes, or no answer at all
//! (a script whose stdin is no terminal), is a failure exit with the reason: a purge that did not
//! happen must not read as one that did.

mod purge;
mod replay;

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_core::Envelope;
use mailtrail_queue::{DeadEntry, Queue, now_ms};

use crate::clock::{format_age_ms, format_ms, parse_duration};
use crate::table::{Align, Table, clean, truncate};

/// Entries per Redis round trip (and per atomic script call) in whole-list operations.
pub const CHUNK: u64 = 500;

/// Longest binary body shown by `dead show`, in bytes.
const SHOWN_BINARY_BYTES: usize = 4096;

/// `mailtrail dead ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum DeadCommand {
    /// List dead letters, newest first (index 0 is the newest).
    List {
        /// How many to list.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Show one dead letter: why, when, which worker, and the envelope with its body.
    Show {
        /// Its index in `dead list`.
        index: u64,
        /// Print the stored entry exactly as it is in Redis (one line of JSON).
        #[arg(long)]
        raw: bool,
    },
    /// Move dead letters back onto the backlog, to be processed again.
    Replay(ReplayArgs),
    /// Delete dead letters older than a given age.
    Purge(PurgeArgs),
}

/// Arguments of `mailtrail dead replay`.
#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "indices"])))]
pub struct ReplayArgs {
    /// Replay every dead letter.
    #[arg(long)]
    pub all: bool,
    /// Indices from `dead list` to replay.
    #[arg(value_name = "INDEX")]
    pub indices: Vec<u64>,
    /// Say what would be replayed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `mailtrail dead purge`.
#[derive(Args, Clone, Debug)]
pub struct PurgeArgs {
    /// Delete dead letters older than this: 30m, 12h, 7d, 2w, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = OlderThan::parse)]
    pub older_than: OlderThan,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// An age threshold, keeping the operator's own spelling for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OlderThan {
    /// As typed.
    pub text: String,
    /// Parsed.
    pub duration: Duration,
}

impl OlderThan {
    /// Parses `7d`-style durations (clap value parser).
    pub fn parse(text: &str) -> Result<Self, crate::clock::DurationError> {
        Ok(Self {
            text: text.trim().to_owned(),
            duration: parse_duration(text)?,
        })
    }

    /// The cutoff: entries dead-lettered before this instant (ms since the epoch) are older.
    pub fn cutoff_ms(&self, now_ms: i64) -> i64 {
        let age = i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(age)
    }
}

/// Runs `mailtrail dead ...`.
pub async fn run(
    queue: &Queue,
    command: &DeadCommand,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> anyhow::Result<()> {
    match command {
        DeadCommand::List { limit } => list(queue, *limit, out).await,
        DeadCommand::Show { index, raw } => show(queue, *index, *raw, out).await,
        DeadCommand::Replay(args) if args.all => replay::replay_all(queue, args.dry_run, out).await,
        DeadCommand::Replay(args) => {
            replay::replay_indices(queue, &args.indices, args.dry_run, out).await
        }
        DeadCommand::Purge(args) => purge::purge(queue, args, out, input).await,
    }
}

/// The envelope's content type and body size, or why they cannot be read.
fn envelope_summary(envelope: &str) -> (String, String) {
    match Envelope::from_json(envelope) {
        Ok(envelope) => {
            let size = envelope
                .body_bytes()
                .map_or_else(|_| "?".to_owned(), |body| body.len().to_string());
            (envelope.content_type, size)
        }
        Err(_) => (
            "(unreadable envelope)".to_owned(),
            envelope.len().to_string(),
        ),
    }
}

async fn list(queue: &Queue, limit: u64, out: &mut dyn Write) -> anyhow::Result<()> {
    let total = queue
        .dead_len()
        .await
        .context("cannot read the dead-letter list")?;
    let entries = queue
        .dead_letters(0, limit)
        .await
        .context("cannot read the dead-letter list")?;
    if total == 0 {
        writeln!(out, "no dead letters")?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("index", Align::Right),
        ("dead at", Align::Left),
        ("worker", Align::Left),
        ("reason", Align::Left),
        ("content type", Align::Left),
        ("size", Align::Right),
    ]);
    for (index, entry) in entries.iter().enumerate() {
        match &entry.parsed {
            Ok(letter) => {
                let (content_type, size) = envelope_summary(&letter.envelope);
                table.row([
                    index.to_string(),
                    format_ms(letter.dead_at_ms),
                    letter.worker.clone(),
                    truncate(&letter.reason, 60),
                    truncate(&content_type, 40),
                    size,
                ]);
            }
            Err(_) => {
                table.row([
                    index.to_string(),
                    "?".into(),
                    "?".into(),
                    "(unreadable entry)".into(),
                ]);
            }
        }
    }
    writeln!(
        out,
        "{total} dead letters; showing {} newest first",
        entries.len()
    )?;
    out.write_all(table.render().as_bytes())?;
    Ok(())
}

/// The entry at `index`, or an error saying how long the list is.
async fn entry_at(queue: &Queue, index: u64) -> anyhow::Result<DeadEntry> {
    let found = queue
        .dead_letters(index, 1)
        .await
        .context("cannot read the dead-letter list")?
        .into_iter()
        .next();
    match found {
        Some(entry) => Ok(entry),
        None => {
            let total = queue.dead_len().await.unwrap_or(0);
            bail!("no dead letter at index {index} (the list holds {total}; 0 is the newest)")
        }
    }
}

async fn show(queue: &Queue, index: u64, raw: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let DeadEntry {
        raw: entry, parsed, ..
    } = entry_at(queue, index).await?;
    if raw {
        writeln!(out, "{entry}")?;
        return Ok(());
    }
    let letter = match parsed {
        Ok(letter) => letter,
        Err(error) => {
            writeln!(
                out,
                "dead letter {index}: not an entry mailtrail wrote ({error})"
            )?;
            writeln!(out, "{}", escape_controls(&entry))?;
            return Ok(());
        }
    };
    writeln!(out, "dead letter {index}")?;
    writeln!(out, "reason:        {}", clean(&letter.reason))?;
    writeln!(
        out,
        "dead at:       {} ({} ago)",
        format_ms(letter.dead_at_ms),
        format_age_ms(now_ms() - letter.dead_at_ms)
    )?;
    writeln!(out, "worker:        {}", clean(&letter.worker))?;
    let envelope = match Envelope::from_json(&letter.envelope) {
        Ok(envelope) => envelope,
        Err(error) => {
            writeln!(out, "envelope:      unreadable ({error}), as stored:")?;
            writeln!(out, "{}", escape_controls(&letter.envelope))?;
            return Ok(());
        }
    };
    writeln!(out, "received at:   {}", format_ms(envelope.received_at_ms))?;
    writeln!(out, "content type:  {}", clean(&envelope.content_type))?;
    match (&envelope.body, envelope.body_bytes()) {
        (Some(text), _) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json) => {
                writeln!(out, "body:          {} bytes, JSON", text.len())?;
                // serde_json escapes control characters inside strings, so this is safe to print.
                writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
            }
            Err(_) => {
                writeln!(out, "body:          {} bytes, text", text.len())?;
                writeln!(out, "{}", escape_controls(text))?;
            }
        },
        (None, Ok(bytes)) => {
            let shown = bytes.len().min(SHOWN_BINARY_BYTES);
            writeln!(
                out,
                "body:          {} bytes, binary (hex, first {shown} bytes)",
                bytes.len()
            )?;
            let hex: String = bytes[..shown].iter().map(|b| format!("{b:02x}")).collect();
            for line in hex.as_bytes().chunks(64) {
                writeln!(out, "{}", String::from_utf8_lossy(line))?;
            }
        }
        (None, Err(error)) => writeln!(out, "body:          unreadable ({error})")?,
    }
    Ok(())
}

/// Escapes control characters other than newline and tab, so an untrusted body cannot drive the
/// operator's terminal.
fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::purge::{Answer, confirm};
    use super::*;

    #[test]
    fn the_cutoff_lies_the_given_age_before_now() {
        let older_than = OlderThan::parse("7d").unwrap();
        assert_eq!(older_than.text, "7d");
        assert_eq!(
            older_than.cutoff_ms(1_000_000_000_000),
            1_000_000_000_000 - 604_800_000
        );
        assert!(OlderThan::parse("soon").is_err());
    }

    #[test]
    fn bodies_cannot_smuggle_terminal_escapes() {
        assert_eq!(escape_controls("a\u{1b}[2Jb\nc\td"), "a\\u{1b}[2Jb\nc\td");
    }

    #[test]
    fn only_y_or_yes_confirms_and_no_answer_is_told_apart() {
        for (answer, expected) in [
            ("y\n", Answer::Yes),
            ("YES\n", Answer::Yes),
            ("n\n", Answer::No),
            ("\n", Answer::No),
            ("", Answer::Nothing),
        ] {
            let mut input = answer.as_bytes();
            assert_eq!(confirm("?", &mut input).unwrap(), expected, "{answer:?}");
        }
    }
}
