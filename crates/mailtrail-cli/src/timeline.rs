//! `mailtrail events`: a message's (or a recipient's) history from the append-only events table,
//! in event-time order, as a table or JSON.

use std::io::Write;

use anyhow::Context;
use chrono::SecondsFormat;
use clap::{ArgGroup, Args};
use mailtrail_core::MessageId;
use mailtrail_store::{TimelineEvent, TimelineFilter};

use crate::CliConfig;
use crate::table::{Align, Table, clean, truncate};

/// Arguments of `mailtrail events`.
#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("whose").required(true).args(["message_id", "recipient"])))]
pub struct EventsArgs {
    /// Every recipient of this message (with or without `<>`).
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
    /// Every message to this address.
    #[arg(long, value_name = "ADDRESS")]
    pub recipient: Option<String>,
    /// At most this many events, earliest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
    pub limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl EventsArgs {
    /// The store's filter; message ids are normalised as the worker stores them.
    pub fn filter(&self) -> anyhow::Result<TimelineFilter> {
        match (&self.message_id, &self.recipient) {
            (Some(raw), _) => MessageId::parse(raw)
                .map(|id| TimelineFilter::MessageId(id.as_str().to_owned()))
                .context("--message-id is empty"),
            (None, Some(address)) => Ok(TimelineFilter::Recipient(address.trim().to_owned())),
            (None, None) => anyhow::bail!("give --message-id or --recipient"),
        }
    }
}

/// What the status column says: the claimed status, plus failure details and bot marks.
fn detail(event: &TimelineEvent) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(severity) = &event.severity {
        parts.push(severity.clone());
    }
    if let Some(reason) = &event.reason {
        parts.push(reason.clone());
    }
    if let Some(code) = &event.delivery_code {
        parts.push(format!("code {code}"));
    }
    if event.bot {
        parts.push("bot".to_owned());
    }
    if let Some(url) = &event.url {
        parts.push(truncate(url, 60));
    }
    parts.join(", ")
}

/// The readable table; the column the filter fixes is left out.
pub fn render_table(filter: &TimelineFilter, events: &[TimelineEvent], limit: i64) -> String {
    let by_message = matches!(filter, TimelineFilter::MessageId(_));
    let other = if by_message {
        "recipient"
    } else {
        "message id"
    };
    let mut table = Table::new(&[
        ("time", Align::Left),
        (other, Align::Left),
        ("event", Align::Left),
        ("status", Align::Left),
        ("detail", Align::Left),
    ]);
    for event in events {
        let who = if by_message {
            &event.recipient
        } else {
            &event.message_id
        };
        table.row([
            event
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            truncate(who, 60),
            event.kind.clone(),
            event.status.clone().unwrap_or_else(|| "-".to_owned()),
            detail(event),
        ]);
    }
    let mut out = match filter {
        TimelineFilter::MessageId(id) => format!("events of message {}\n", clean(id)),
        TimelineFilter::Recipient(address) => format!("events to {}\n", clean(address)),
    };
    if events.is_empty() {
        out.push_str("(no events)\n");
        return out;
    }
    out.push_str(&table.render());
    if i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit {
        out.push_str(&format!(
            "(showing the first {limit} events; raise --limit to see more)\n"
        ));
    }
    out
}

/// Runs `mailtrail events`.
pub async fn run(config: &CliConfig, args: &EventsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let filter = args.filter()?;
    let mut connection = crate::connect_store(config, "events").await?;
    let events = mailtrail_store::timeline(&mut connection, &filter, args.limit)
        .await
        .context("cannot read the events")?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &events)?;
        writeln!(out)?;
    } else {
        out.write_all(render_table(&filter, &events, args.limit).as_bytes())?;
    }
    Ok(())
}
