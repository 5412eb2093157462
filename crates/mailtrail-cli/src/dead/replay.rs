//! `dead replay`: moving dead letters back onto the backlog, by index or all of them in windows.

use super::*;

pub(super) async fn replay_indices(
    queue: &Queue,
    indices: &[u64],
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut indices = indices.to_vec();
    indices.sort_unstable();
    indices.dedup();
    // Read them all before moving any, so a bad index replays nothing.
    let mut entries = Vec::with_capacity(indices.len());
    for index in &indices {
        let replayable = entry_at(queue, *index)
            .await?
            .into_replayable()
            .map_err(|error| {
                anyhow::anyhow!(
                    "dead letter {index} cannot be replayed: it holds no envelope ({error})"
                )
            })?;
        entries.push((*index, replayable));
    }
    for (index, entry) in &entries {
        let letter = &entry.letter;
        writeln!(
            out,
            "{} {index}: dead at {}, {}",
            if dry_run { "would replay" } else { "replaying" },
            format_ms(letter.dead_at_ms),
            truncate(&clean(&letter.reason), 80)
        )?;
    }
    if dry_run {
        writeln!(
            out,
            "dry run: would replay {} dead letters; nothing changed",
            entries.len()
        )?;
        return Ok(());
    }
    let replayable: Vec<_> = entries.into_iter().map(|(_, entry)| entry).collect();
    let moved = queue
        .replay_dead(&replayable)
        .await
        .context("cannot replay the dead letters")?;
    writeln!(out, "replayed {moved} dead letters onto the backlog")?;
    let gone = replayable.len() as u64 - moved;
    if gone > 0 {
        writeln!(
            out,
            "{gone} were no longer in the dead list (replayed or purged meanwhile)"
        )?;
    }
    Ok(())
}

/// A progress bar on stderr for long runs; hidden for short ones and when stderr is no terminal.
pub(super) fn progress(total: u64, message: &'static str) -> ProgressBar {
    if total <= CHUNK {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

pub(super) async fn replay_all(
    queue: &Queue,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let total = queue
        .dead_len()
        .await
        .context("cannot read the dead-letter list")?;
    if total == 0 {
        writeln!(out, "no dead letters")?;
        return Ok(());
    }
    let bar = progress(total, if dry_run { "reading" } else { "replaying" });
    let (mut readable, mut unreadable, mut moved) = (0, 0, 0);
    // Each shard has its own dead list, walked in windows from its tail.
    for shard in queue.shards() {
        let shard_total = shard
            .dead_len()
            .await
            .context("cannot read the dead-letter list")?;
        let (mut examined, mut kept, mut unreadable_here) = (0, 0, 0);
        while examined < shard_total {
            let window = shard
                .dead_letters_from_tail(kept, CHUNK.min(shard_total - examined))
                .await
                .context("cannot read the dead-letter list")?;
            if window.is_empty() {
                break;
            }
            examined += window.len() as u64;
            bar.inc(window.len() as u64);
            let mut replayable = Vec::with_capacity(window.len());
            for entry in window {
                match entry.into_replayable() {
                    Ok(entry) => replayable.push(entry),
                    Err(_) => unreadable_here += 1,
                }
            }
            readable += replayable.len() as u64;
            if dry_run {
                kept = examined;
                continue;
            }
            moved += shard
                .replay_dead(&replayable)
                .await
                .context("cannot replay the dead letters")?;
            // Replayed entries left the list; unreadable ones stay at the tail, so skip past them.
            kept = unreadable_here;
        }
        unreadable += unreadable_here;
    }
    bar.finish_and_clear();
    if dry_run {
        writeln!(
            out,
            "dry run: would replay {readable} dead letters; nothing changed"
        )?;
    } else {
        writeln!(out, "replayed {moved} dead letters onto the backlog")?;
        if moved < readable {
            writeln!(
                out,
                "{} were no longer in the dead list (replayed or purged meanwhile)",
                readable - moved
            )?;
        }
    }
    if unreadable > 0 {
        writeln!(
            out,
            "{unreadable} entries hold no readable envelope and stay in the dead list (see `mailtrail dead show`)"
        )?;
    }
    Ok(())
}
