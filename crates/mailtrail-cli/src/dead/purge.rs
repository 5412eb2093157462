//! `dead purge`: deleting old dead letters, after asking (or with `--yes`).

use super::replay::progress;
use super::*;

/// Counts the entries dead-lettered before `cutoff_ms`, reading every shard's list in windows.
pub(super) async fn count_older(queue: &Queue, total: u64, cutoff_ms: i64) -> anyhow::Result<u64> {
    let bar = progress(total, "counting");
    let mut older = 0;
    for shard in queue.shards() {
        let shard_total = shard
            .dead_len()
            .await
            .context("cannot read the dead-letter list")?;
        let mut examined = 0;
        while examined < shard_total {
            let window = shard
                .dead_letters_from_tail(examined, CHUNK.min(shard_total - examined))
                .await
                .context("cannot read the dead-letter list")?;
            if window.is_empty() {
                break;
            }
            examined += window.len() as u64;
            bar.inc(window.len() as u64);
            older += window
                .iter()
                .filter(
                    |entry| matches!(&entry.parsed, Ok(letter) if letter.dead_at_ms < cutoff_ms),
                )
                .count() as u64;
        }
    }
    bar.finish_and_clear();
    Ok(older)
}

/// What the operator answered to a confirmation.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// `y` or `yes`.
    Yes,
    /// Anything else.
    No,
    /// Standard input ended before a line: a script, or no terminal to ask on.
    Nothing,
}

/// Asks on stderr and reads one line; only `y` or `yes` agree.
pub(super) fn confirm(question: &str, input: &mut dyn BufRead) -> anyhow::Result<Answer> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    let read = input
        .read_line(&mut answer)
        .context("cannot read the answer from stdin")?;
    if read == 0 {
        // Nothing was typed, so end the prompt's line for whatever reads stderr next.
        eprintln!();
        return Ok(Answer::Nothing);
    }
    Ok(match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        _ => Answer::No,
    })
}

pub(super) async fn purge(
    queue: &Queue,
    args: &PurgeArgs,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> anyhow::Result<()> {
    let cutoff_ms = args.older_than.cutoff_ms(now_ms());
    let total = queue
        .dead_len()
        .await
        .context("cannot read the dead-letter list")?;
    let older = count_older(queue, total, cutoff_ms).await?;
    let threshold = format!(
        "older than {} (dead before {})",
        args.older_than.text,
        format_ms(cutoff_ms)
    );
    if older == 0 {
        writeln!(out, "no dead letters {threshold}; nothing to purge")?;
        return Ok(());
    }
    if !args.yes {
        let question = format!("purge {older} of {total} dead letters {threshold}?");
        match confirm(&question, input)? {
            Answer::Yes => {}
            Answer::No => bail!("aborted; nothing was purged"),
            Answer::Nothing => bail!(
                "no answer to the confirmation (stdin closed or not a terminal); nothing was \
                 purged. Pass --yes to purge without asking"
            ),
        }
    }
    let bar = progress(total, "purging");
    let mut removed = 0;
    for shard in queue.shards() {
        let shard_total = shard
            .dead_len()
            .await
            .context("cannot read the dead-letter list")?;
        let (mut examined, mut kept) = (0, 0);
        while examined < shard_total {
            let window = shard
                .purge_dead_window(cutoff_ms, kept, CHUNK.min(shard_total - examined))
                .await
                .context("cannot purge the dead letters")?;
            if window.examined == 0 {
                break;
            }
            examined += window.examined;
            kept += window.examined - window.removed;
            removed += window.removed;
            bar.inc(window.examined);
        }
    }
    bar.finish_and_clear();
    writeln!(out, "purged {removed} dead letters {threshold}")?;
    Ok(())
}
