//! `mailtrail retention --events-older-than 13mo [--yes]`: dropping events past retention.
//!
//! Events are kept in monthly partitions, so retention drops whole months: a month goes once all
//! of it is older than the cutoff (a month that straddles it is kept, and named, until then).
//! Without `--yes` it only says what it would do; with `--yes` it detaches and drops those
//! partitions, then deletes the rows of the default partition older than the cutoff (they have no
//! month of their own to drop; `partitions ensure` normally leaves none there), and says so.
//! `sent_emails` and the statistics are not touched: they summarise the events and are kept.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Months, Utc};
use clap::Args;
use mailtrail_store::partitions::{
    DEFAULT_PARTITION, RetentionPlan, apply_retention, retention_plan,
};

use crate::CliConfig;
use crate::clock::parse_duration;
use crate::partitions::{rows_text, size_text};

/// Arguments of `mailtrail retention`.
#[derive(Args, Clone, Debug)]
pub struct RetentionArgs {
    /// Drop events older than this: months (`13mo`), years (`2y`), or days and weeks (`400d`).
    #[arg(long, value_name = "AGE", value_parser = EventAge::parse)]
    pub events_older_than: EventAge,
    /// Do it; without this, only say what would be dropped.
    #[arg(long)]
    pub yes: bool,
}

/// How old an event must be to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAge {
    /// Calendar months.
    Months(u32),
    /// A fixed length of time.
    Fixed(Duration),
}

impl EventAge {
    /// Parses `13mo`, `2y`, or a duration of at least a day (`400d`, `8w`). Shorter durations
    /// are refused: `13m` is 13 minutes, and retention that short is a typo for `13mo`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let calendar = |digits: &str, per: u32| {
            digits
                .parse::<u32>()
                .ok()
                .and_then(|amount| amount.checked_mul(per))
                .map(Self::Months)
        };
        if let Some(digits) = trimmed.strip_suffix("mo") {
            return calendar(digits, 1)
                .ok_or_else(|| format!("`{text}` is not a number of months"));
        }
        if let Some(digits) = trimmed.strip_suffix('y') {
            return calendar(digits, 12)
                .ok_or_else(|| format!("`{text}` is not a number of years"));
        }
        let duration = parse_duration(trimmed).map_err(|error| error.to_string())?;
        if duration < Duration::from_secs(86_400) {
            return Err(format!(
                "`{text}` is shorter than a day; for months write `mo` (e.g. 13mo)"
            ));
        }
        Ok(Self::Fixed(duration))
    }

    /// The instant before which events are past retention, seen from `now`.
    pub fn cutoff(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Months(months) => now.checked_sub_months(Months::new(months)),
            Self::Fixed(duration) => chrono::Duration::from_std(duration)
                .ok()
                .and_then(|duration| now.checked_sub_signed(duration)),
        }
    }
}

/// Runs `mailtrail retention`.
pub async fn run(
    config: &CliConfig,
    args: &RetentionArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let Some(cutoff) = args.events_older_than.cutoff(Utc::now()) else {
        bail!("--events-older-than reaches before the calendar begins");
    };
    let mut connection = crate::connect_store(config, "retention").await?;
    let plan = retention_plan(&mut connection, cutoff)
        .await
        .context("cannot list the email_events partitions")?;
    write!(out, "{}", render_plan(&plan, args.yes))?;
    if plan.is_empty() || !args.yes {
        return Ok(());
    }
    let outcome = apply_retention(&mut connection, &plan)
        .await
        .context("cannot drop the partitions past retention")?;
    for name in &outcome.dropped {
        writeln!(out, "dropped {name}")?;
    }
    writeln!(
        out,
        "deleted {} rows from {DEFAULT_PARTITION}",
        outcome.default_rows_deleted
    )?;
    Ok(())
}

/// What the plan will do (`apply`) or would do.
pub fn render_plan(plan: &RetentionPlan, apply: bool) -> String {
    let cutoff = plan.cutoff.format("%Y-%m-%d %H:%M UTC");
    let mut text = String::new();
    if plan.is_empty() {
        text.push_str(&format!("no events older than {cutoff} to drop\n"));
    } else {
        let verb = if apply { "dropping" } else { "would drop" };
        text.push_str(&format!("events older than {cutoff}, {verb}:\n"));
        for partition in &plan.drop {
            text.push_str(&format!(
                "  partition {} ({} rows, {})\n",
                partition.name,
                rows_text(partition),
                size_text(partition.bytes)
            ));
        }
        if plan.default_rows > 0 {
            text.push_str(&format!(
                "  {} rows of {DEFAULT_PARTITION} older than the cutoff (deleted)\n",
                plan.default_rows
            ));
        }
    }
    for partition in &plan.straddling {
        text.push_str(&format!(
            "kept: {} straddles the cutoff; it goes once all of its month is older\n",
            partition.name
        ));
    }
    if !apply && !plan.is_empty() {
        text.push_str("nothing changed; run again with --yes to drop them\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ages_are_months_years_or_at_least_a_day() {
        assert_eq!(EventAge::parse("13mo"), Ok(EventAge::Months(13)));
        assert_eq!(EventAge::parse("2y"), Ok(EventAge::Months(24)));
        assert_eq!(
            EventAge::parse("400d"),
            Ok(EventAge::Fixed(Duration::from_secs(400 * 86_400)))
        );
        assert!(EventAge::parse("13m").unwrap_err().contains("13mo"));
        assert!(EventAge::parse("mo").is_err());
        assert!(EventAge::parse("13").is_err());
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap();
        assert_eq!(
            EventAge::Months(13).cutoff(now),
            Utc.with_ymd_and_hms(2025, 11, 5, 9, 0, 0).single()
        );
    }
}
