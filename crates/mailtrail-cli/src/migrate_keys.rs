//! `mailtrail queue migrate-keys`: moves what a queue holds under the key names used before hash
//! tags (`mailtrail:events`, ...) to the current ones (`{mailtrail}:events`, ...).
//!
//! Run once after upgrading every receiver and worker of a single-Redis deployment; the new
//! processes already use the new names, so nothing waits for it except what the old ones left
//! behind. It says what it found first; `--dry-run` stops there. It refuses while a worker of the
//! old version holds a lease (its in-flight envelopes are not yet the migration's to move), and
//! running it again finishes a migration cut short. See `docs/operations.md`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use mailtrail_queue::{LegacyKeys, Queue};

/// `mailtrail queue migrate-keys` options.
#[derive(Args, Clone, Debug)]
pub struct MigrateKeysArgs {
    /// Say what would move, and move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `mailtrail queue migrate-keys`.
pub async fn run(queue: &Queue, args: &MigrateKeysArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if queue.is_cluster() {
        writeln!(
            out,
            "the queue is on a Redis Cluster, where the old key names were never used; nothing to migrate"
        )?;
        return Ok(());
    }
    let found = queue
        .legacy_keys()
        .await
        .context("cannot read the old key names")?;
    if found.is_empty() {
        writeln!(out, "nothing under the old key names; nothing to migrate")?;
        return Ok(());
    }
    writeln!(out, "under the old key names:")?;
    write_counts(out, &found)?;
    if args.dry_run {
        writeln!(out, "dry run: nothing moved")?;
        return Ok(());
    }
    let moved = queue
        .migrate_legacy_keys()
        .await
        .context("cannot migrate the queue's keys")?;
    writeln!(out, "moved to the new key names:")?;
    write_counts(out, &moved)?;
    Ok(())
}

fn write_counts(out: &mut dyn Write, keys: &LegacyKeys) -> anyhow::Result<()> {
    writeln!(out, "  backlog:            {} envelopes", keys.backlog)?;
    writeln!(
        out,
        "  in flight:          {} envelopes (back onto the backlog)",
        keys.in_flight
    )?;
    writeln!(out, "  dead letters:       {}", keys.dead)?;
    writeln!(out, "  skip counts:        {} reasons", keys.skip_reasons)?;
    writeln!(out, "  recovery counters:  {}", keys.recovery_counters)?;
    writeln!(out, "  token markers:      {}", keys.tokens)?;
    if !keys.live_workers.is_empty() {
        writeln!(
            out,
            "  live old workers:   {} (stop them before migrating)",
            keys.live_workers.join(", ")
        )?;
    }
    Ok(())
}
