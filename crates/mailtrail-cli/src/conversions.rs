//! `mailtrail conversions import FILE.csv | reattribute`: the platform's past conversions, and
//! the credit of every conversion recomputed after the attribution window changed.
//!
//! `import` reads a CSV file with a header row naming the fields of `POST /v1/conversions`
//! (`id`, `backer_id`, `project_id`, `kind`, `occurred_at`, `value_cents` optional, in any
//! order), checks every line with the rules the API and the worker apply, and queues the good
//! ones as the API does: reports of up to 1,000 conversions, envelopes of source `app`, which
//! the worker stores and credits (so the one-writer rule holds and an import run twice stores
//! nothing twice). A bad line is refused with its number and the reason; the others are queued.
//!
//! `reattribute` recomputes every conversion's credit with `MAILTRAIL_ATTRIBUTION_WINDOW_DAYS`
//! (workers wait meanwhile); set the workers' variable to the same value.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_core::conversion::report_body;
use mailtrail_core::{Conversion, Envelope, MAX_CONVERSIONS_PER_REPORT, Source};
use mailtrail_queue::Queue;

use crate::CliConfig;

/// Reports pushed per Redis command while importing.
const REPORTS_PER_PUSH: usize = 10;

/// The columns a conversions file must have.
const REQUIRED_COLUMNS: [&str; 5] = ["id", "backer_id", "project_id", "kind", "occurred_at"];

/// Most refused lines listed; the count is always given.
const MAX_LISTED: usize = 50;

/// `mailtrail conversions ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum ConversionsCommand {
    /// Queue past conversions from a CSV file with a header row (id, backer_id, project_id,
    /// kind, occurred_at, value_cents).
    Import(ImportArgs),
    /// Recompute every conversion's credit with MAILTRAIL_ATTRIBUTION_WINDOW_DAYS.
    Reattribute,
}

/// `mailtrail conversions import`.
#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
}

/// What an import came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Conversions queued.
    pub queued: u64,
    /// Reports (envelopes) they were queued in.
    pub reports: u64,
    /// Refused lines: (line number, reason).
    pub refused: Vec<(u64, String)>,
}

/// Runs `mailtrail conversions ...`.
pub async fn run(
    config: &CliConfig,
    command: &ConversionsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        ConversionsCommand::Import(args) => {
            let queue = crate::connect_queue(config).await?;
            let summary = import(&queue, &args.file).await?;
            print_summary(&summary, out)?;
            if !summary.refused.is_empty() {
                // Non-zero for scripts; the good lines are queued all the same.
                out.flush()?;
                bail!(
                    "{} lines of {} were refused; the others are queued",
                    summary.refused.len(),
                    args.file.display()
                );
            }
        }
        ConversionsCommand::Reattribute => {
            let window = config.attribution_window_days()?;
            let mut connection = crate::connect_store(config, "conversions reattribute").await?;
            let changed = mailtrail_store::reattribute_all(&mut connection, window)
                .await
                .context("cannot recompute the credit of the conversions")?;
            writeln!(
                out,
                "conversions: credit recomputed with a window of {window} days; {changed} changed"
            )?;
        }
    }
    Ok(())
}

/// Reads `file` and queues its good lines; the summary says what was queued and refused.
pub async fn import(queue: &Queue, file: &Path) -> anyhow::Result<ImportSummary> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("cannot read the header row of {}", file.display()))?
        .clone();
    let column = |name: &str| header.iter().position(|column| column == name);
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|name| column(name).is_none()) {
        bail!(
            "the header row of {} has no `{missing}` column",
            file.display()
        );
    }
    let columns: Vec<(&'static str, Option<usize>)> = REQUIRED_COLUMNS
        .iter()
        .chain(&["value_cents"])
        .map(|name| (*name, column(name)))
        .collect();

    let bar = progress(size);
    let now_ms = mailtrail_queue::now_ms();
    let mut summary = ImportSummary::default();
    let mut pending: Vec<Conversion> = Vec::new();
    let mut reports: Vec<String> = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                summary
                    .refused
                    .push((line, format!("not a CSV line: {error}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |position| position.line());
        bar.set_position(record.position().map_or(0, |position| position.byte()));
        let field = |name: &'static str| {
            columns
                .iter()
                .find(|(column, _)| *column == name)
                .and_then(|(_, index)| index.and_then(|index| record.get(index)))
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        match Conversion::from_text_fields(field, now_ms) {
            Ok(conversion) => pending.push(conversion),
            Err(error) => summary.refused.push((line, error.to_string())),
        }
        if pending.len() == MAX_CONVERSIONS_PER_REPORT {
            reports.push(envelope(&std::mem::take(&mut pending)));
            summary.queued += MAX_CONVERSIONS_PER_REPORT as u64;
        }
        if reports.len() == REPORTS_PER_PUSH {
            push(queue, &mut reports, &mut summary).await?;
        }
    }
    if !pending.is_empty() {
        summary.queued += pending.len() as u64;
        reports.push(envelope(&pending));
    }
    push(queue, &mut reports, &mut summary).await?;
    bar.finish_and_clear();
    Ok(summary)
}

/// One report of `conversions`, as the API queues it.
fn envelope(conversions: &[Conversion]) -> String {
    Envelope::encode(
        Source::App,
        mailtrail_queue::now_ms(),
        "application/json",
        report_body(conversions).as_bytes(),
    )
}

async fn push(
    queue: &Queue,
    reports: &mut Vec<String>,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    queue
        .push_envelopes(reports)
        .await
        .context("cannot queue the conversions (Redis at REDIS_URL); lines before this one are queued, an import run again stores nothing twice")?;
    summary.reports += reports.len() as u64;
    reports.clear();
    Ok(())
}

fn progress(size: u64) -> ProgressBar {
    let bar = ProgressBar::new(size);
    if let Ok(style) = ProgressStyle::with_template("importing [{bar:40}] {percent}% ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn print_summary(summary: &ImportSummary, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "conversions: {} queued in {} reports, {} lines refused",
        summary.queued,
        summary.reports,
        summary.refused.len()
    )?;
    for (line, reason) in summary.refused.iter().take(MAX_LISTED) {
        writeln!(out, "  line {line}: {reason}")?;
    }
    if summary.refused.len() > MAX_LISTED {
        writeln!(out, "  ... and {} more", summary.refused.len() - MAX_LISTED)?;
    }
    Ok(())
}
