//! `mailtrail queue status`: how far behind the workers are, and what they hold.
//!
//! - backlog: envelopes waiting, and the age of the oldest (the list's right end, taken next);
//! - in flight: per registered worker, envelopes claimed and not yet acknowledged, and how long
//!   ago its lease was renewed (an expired lease means the reaper will requeue the list);
//! - dead letters, and events skipped for lack of custom variables, by reason.
//!
//! The numbers are read with a few separate commands, so under load they are a near-instant
//! picture, not one snapshot; the backlog's length and oldest envelope are read together.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use mailtrail_core::Envelope;
use mailtrail_queue::{Queue, now_ms};
use serde::Serialize;

use crate::clock::{format_age_ms, format_ms};
use crate::table::{Align, Table};

/// Arguments of `mailtrail queue status`.
#[derive(Args, Clone, Debug)]
pub struct QueueStatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The queue's state, as printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// The backlog.
    pub backlog: Backlog,
    /// Per registered worker.
    pub in_flight: Vec<InFlight>,
    /// Dead letters.
    pub dead_letters: u64,
    /// Skipped events by reason, sorted by reason.
    pub skipped: Vec<Skipped>,
}

/// The backlog's length and oldest envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Envelopes waiting.
    pub length: u64,
    /// When the receiver accepted the oldest one (ms since the epoch); `None` when the backlog is
    /// empty or the envelope cannot be read.
    pub oldest_received_at_ms: Option<i64>,
    /// How long ago that was, in milliseconds.
    pub oldest_age_ms: Option<i64>,
}

/// One worker's claimed envelopes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// Worker id.
    pub worker: String,
    /// Envelopes claimed, not yet acknowledged.
    pub envelopes: u64,
    /// Milliseconds since the lease was renewed; `None` when it has expired.
    pub lease_age_ms: Option<i64>,
}

/// A skip reason and its count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Why the events were skipped (`missing_backer_id`, ...).
    pub reason: String,
    /// Events skipped so far.
    pub events: u64,
}

/// Reads the queue's state.
pub async fn read(queue: &Queue) -> anyhow::Result<QueueStatus> {
    let backlog = queue
        .backlog_snapshot()
        .await
        .context("cannot read the backlog")?;
    let oldest_received_at_ms = backlog
        .oldest
        .as_deref()
        .and_then(|line| Envelope::from_json(line).ok())
        .map(|envelope| envelope.received_at_ms);
    let now = now_ms();
    let in_flight = queue
        .in_flight()
        .await
        .context("cannot read the workers' in-flight lists")?
        .into_iter()
        .map(|worker| InFlight {
            worker: worker.worker,
            envelopes: worker.envelopes,
            lease_age_ms: worker.lease_age_ms,
        })
        .collect();
    let dead_letters = queue
        .dead_len()
        .await
        .context("cannot read the dead-letter list")?;
    let skipped = queue
        .skipped_counts()
        .await
        .context("cannot read the skipped-event counts")?
        .into_iter()
        .map(|skipped| Skipped {
            reason: skipped.reason,
            events: skipped.count,
        })
        .collect();
    Ok(QueueStatus {
        backlog: Backlog {
            length: backlog.length,
            oldest_received_at_ms,
            oldest_age_ms: oldest_received_at_ms.map(|at| now - at),
        },
        in_flight,
        dead_letters,
        skipped,
    })
}

/// The readable rendering.
pub fn render_text(status: &QueueStatus) -> String {
    let backlog = &status.backlog;
    let mut out = format!("backlog:       {} envelopes", backlog.length);
    match (
        backlog.length,
        backlog.oldest_received_at_ms,
        backlog.oldest_age_ms,
    ) {
        (0, _, _) => {}
        (_, Some(at), Some(age)) => out.push_str(&format!(
            ", oldest received {} ago ({})",
            format_age_ms(age),
            format_ms(at)
        )),
        _ => out.push_str(", oldest envelope unreadable"),
    }
    out.push('\n');
    out.push_str(&format!("dead letters:  {}\n", status.dead_letters));

    out.push_str("\nin flight:\n");
    if status.in_flight.is_empty() {
        out.push_str("  (no registered workers)\n");
    } else {
        let mut table = Table::new(&[
            ("worker", Align::Left),
            ("envelopes", Align::Right),
            ("lease", Align::Left),
        ]);
        for worker in &status.in_flight {
            let lease = worker.lease_age_ms.map_or_else(
                || "expired: the reaper will requeue its envelopes".to_owned(),
                |age| format!("renewed {} ago", format_age_ms(age)),
            );
            table.row([worker.worker.clone(), worker.envelopes.to_string(), lease]);
        }
        out.push_str(&indent(&table.render()));
    }

    out.push_str("\nskipped events:\n");
    if status.skipped.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut table = Table::new(&[("reason", Align::Left), ("events", Align::Right)]);
        for skipped in &status.skipped {
            table.row([skipped.reason.clone(), skipped.events.to_string()]);
        }
        out.push_str(&indent(&table.render()));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// Runs `mailtrail queue status`.
pub async fn run(queue: &Queue, args: &QueueStatusArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let status = read(queue).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &status)?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&status).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_part_even_when_empty() {
        let status = QueueStatus {
            backlog: Backlog {
                length: 0,
                oldest_received_at_ms: None,
                oldest_age_ms: None,
            },
            in_flight: vec![],
            dead_letters: 0,
            skipped: vec![],
        };
        let text = render_text(&status);
        assert_eq!(
            text,
            "backlog:       0 envelopes\ndead letters:  0\n\nin flight:\n  (no registered workers)\n\nskipped events:\n  (none)\n"
        );
    }

    #[test]
    fn expired_leases_are_called_out() {
        let status = QueueStatus {
            backlog: Backlog {
                length: 2,
                oldest_received_at_ms: Some(1_700_000_000_000),
                oldest_age_ms: Some(192_000),
            },
            in_flight: vec![
                InFlight {
                    worker: "w1".into(),
                    envelopes: 5,
                    lease_age_ms: Some(1_200),
                },
                InFlight {
                    worker: "w2".into(),
                    envelopes: 3,
                    lease_age_ms: None,
                },
            ],
            dead_letters: 1,
            skipped: vec![Skipped {
                reason: "missing_backer_id".into(),
                events: 4,
            }],
        };
        assert_eq!(
            render_text(&status),
            "\
backlog:       2 envelopes, oldest received 3m 12s ago (2023-11-14 22:13:20Z)
dead letters:  1

in flight:
  worker  envelopes  lease
  ------  ---------  ----------------------------------------------
  w1              5  renewed 1s ago
  w2              3  expired: the reaper will requeue its envelopes

skipped events:
  reason             events
  -----------------  ------
  missing_backer_id       4
"
        );
    }
}
