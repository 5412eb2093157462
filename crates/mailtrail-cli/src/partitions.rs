//! `mailtrail partitions ensure | list`: the monthly partitions of `email_events`.
//!
//! `ensure` creates this month's partition and the next ones (the worker does the same at start
//! and hourly, so this is for a first deployment, a worker that has not run yet, or a check), and
//! one for every month that has rows in the default partition, moving them in. `list` shows every
//! partition with its rows and size: the default partition should hold nothing for long.

use std::io::Write;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use mailtrail_store::partitions::{
    DEFAULT_MONTHS_AHEAD, DEFAULT_PARTITION, EventPartition, ensure_partitions, list_partitions,
};

use crate::CliConfig;
use crate::table::{Align, Table};

/// `mailtrail partitions ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum PartitionsCommand {
    /// Create the partitions of this month and the next ones, and of any month with rows in the
    /// default partition (moving them in).
    Ensure {
        /// Months to create ahead of the current one.
        #[arg(long, default_value_t = DEFAULT_MONTHS_AHEAD)]
        months_ahead: u32,
    },
    /// List the partitions of email_events with their rows and sizes.
    List,
}

/// Runs `mailtrail partitions ...`.
pub async fn run(
    config: &CliConfig,
    command: &PartitionsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut connection = crate::connect_store(config, "partitions").await?;
    match command {
        PartitionsCommand::Ensure { months_ahead } => {
            let ensured = ensure_partitions(&mut connection, Utc::now(), *months_ahead)
                .await
                .context("cannot create the email_events partitions")?;
            for partition in &ensured {
                if partition.created {
                    writeln!(
                        out,
                        "created {} ({} rows moved in from {DEFAULT_PARTITION})",
                        partition.partition_name, partition.moved_from_default
                    )?;
                } else {
                    writeln!(out, "exists  {}", partition.partition_name)?;
                }
            }
        }
        PartitionsCommand::List => {
            let partitions = list_partitions(&mut connection)
                .await
                .context("cannot list the email_events partitions")?;
            write!(out, "{}", render_partitions(&partitions))?;
        }
    }
    Ok(())
}

/// A partition's rows as shown: `~` marks the planner's estimate.
pub fn rows_text(partition: &EventPartition) -> String {
    if partition.rows_estimated {
        format!("~{}", partition.rows)
    } else {
        partition.rows.to_string()
    }
}

/// A size in bytes, in the largest whole unit.
pub fn size_text(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// The partitions as a table.
pub fn render_partitions(partitions: &[EventPartition]) -> String {
    let mut table = Table::new(&[
        ("partition", Align::Left),
        ("rows", Align::Right),
        ("size", Align::Right),
    ]);
    for partition in partitions {
        table.row(vec![
            partition.name.clone(),
            rows_text(partition),
            size_text(partition.bytes),
        ]);
    }
    table.render()
}
