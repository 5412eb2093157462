//! Dead letters: envelopes that can never be processed, kept with their reason for operators.
//!
//! Workers add dead letters as part of settling a batch (see `consumer.rs`), and
//! the requeue script adds poison; this module reads them, replays them onto the backlog and
//! purges old ones. Each entry is the JSON of a [`DeadLetter`].
//!
//! Dead letters are LPUSHed, so the list's tail holds the oldest. Operations over the whole list
//! walk it from the tail with *negative* indices: new dead letters arriving at the head while an
//! operator works do not shift the window, and entries an operation decides to keep stay at the
//! tail, so the next window simply starts past them (`skip`). A replay or purge changes the list
//! only through a script that checks each entry is still there, so an entry is never replayed
//! twice, nor purged after it was replayed.
//!
//! On a sharded queue every shard has its own dead list (a script dead-letters into the shard it
//! runs on). [`Queue::dead_len`] and [`Queue::dead_letters`] read them as one list, shard after
//! shard; each entry says its shard, and [`Queue::replay_dead`] puts it back on that shard's
//! backlog. The window operations ([`Queue::dead_letters_from_tail`],
//! [`Queue::purge_dead_window`]) act on one shard: callers run them on each of
//! [`Queue::shards`].

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::{Queue, scripts};

/// A dead letter: an envelope that can never be processed, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why it can never succeed.
    pub reason: String,
    /// When it was dead-lettered, in milliseconds since the epoch.
    pub dead_at_ms: i64,
    /// The worker that gave up on it.
    pub worker: String,
    /// The envelope exactly as it was queued.
    pub envelope: String,
}

/// An entry of the dead list as stored, with its parsed form (or why it does not parse: someone
/// else wrote it).
#[derive(Debug)]
pub struct DeadEntry {
    /// The shard whose dead list holds it.
    pub shard: usize,
    /// The entry exactly as stored; it identifies the entry to replay or remove.
    pub raw: String,
    /// The entry read as a dead letter.
    pub parsed: Result<DeadLetter, QueueError>,
}

impl DeadEntry {
    /// Reads a stored entry.
    fn parse(shard: usize, raw: String) -> Self {
        let parsed = serde_json::from_str(&raw).map_err(QueueError::from);
        Self { shard, raw, parsed }
    }

    /// The entry as one that can be replayed, if it is a dead letter mailtrail wrote.
    pub fn into_replayable(self) -> Result<ReplayableDeadLetter, QueueError> {
        Ok(ReplayableDeadLetter {
            letter: self.parsed?,
            raw: self.raw,
            shard: self.shard,
        })
    }
}

/// A dead letter that can be replayed: its stored entry and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayableDeadLetter {
    /// The entry exactly as stored (what the replay removes from the dead list).
    pub raw: String,
    /// The dead letter (its envelope is what the replay queues).
    pub letter: DeadLetter,
    /// The shard whose dead list holds it, and whose backlog it goes back to.
    pub shard: usize,
}

/// What one window of [`Queue::purge_dead_window`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgedWindow {
    /// Entries looked at (0 once the window is past the head of the list).
    pub examined: u64,
    /// Entries removed, being older than the cutoff.
    pub removed: u64,
}

impl Queue {
    /// How many envelopes are dead-lettered.
    pub async fn dead_len(&self) -> Result<u64, QueueError> {
        let mut length = 0;
        for shard in self.shards() {
            let in_shard: u64 = shard.connection().llen(shard.keys().dead()).await?;
            length += in_shard;
        }
        Ok(length)
    }

    /// Dead letters from `start` (0 = newest) up to `count` of them, with their raw entries; on
    /// a sharded queue, of the shards' dead lists one after the other (each newest first).
    pub async fn dead_letters(&self, start: u64, count: u64) -> Result<Vec<DeadEntry>, QueueError> {
        let mut entries = Vec::new();
        let mut start = start;
        for (index, shard) in self.shards().into_iter().enumerate() {
            let wanted = count.saturating_sub(entries.len() as u64);
            if wanted == 0 {
                break;
            }
            let length: u64 = shard.connection().llen(shard.keys().dead()).await?;
            if start >= length {
                start -= length;
                continue;
            }
            let stop = (start + wanted - 1) as isize;
            let raw: Vec<String> = shard
                .connection()
                .lrange(shard.keys().dead(), start as isize, stop)
                .await?;
            entries.extend(raw.into_iter().map(|raw| DeadEntry::parse(index, raw)));
            start = 0;
        }
        Ok(entries)
    }

    /// Up to `count` dead letters ending `skip` entries before the oldest, in list order (newest
    /// first, like [`Queue::dead_letters`]); empty once the window passes the head.
    pub async fn dead_letters_from_tail(
        &self,
        skip: u64,
        count: u64,
    ) -> Result<Vec<DeadEntry>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let start = -tail_offset(skip.saturating_add(count));
        let stop = -tail_offset(skip.saturating_add(1));
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys().dead())
            .arg(start)
            .arg(stop)
            .query_async(&mut self.connection())
            .await?;
        let shard = self.keys().shard_index() as usize;
        Ok(raw
            .into_iter()
            .map(|raw| DeadEntry::parse(shard, raw))
            .collect())
    }

    /// Moves the given dead letters back onto the backlog (to be taken next); returns how many
    /// moved. One no longer in the dead list (replayed or purged meanwhile) is skipped.
    pub async fn replay_dead(&self, entries: &[ReplayableDeadLetter]) -> Result<u64, QueueError> {
        let mut moved = 0;
        for shard in self.shards() {
            let index = shard.keys().shard_index() as usize;
            let here: Vec<&ReplayableDeadLetter> = entries
                .iter()
                .filter(|entry| entry.shard == index || self.shard_count() == 1)
                .collect();
            if here.is_empty() {
                continue;
            }
            let mut invocation = scripts::REPLAY.key(shard.keys().dead());
            invocation.key(shard.keys().events());
            for entry in here {
                invocation.arg(&entry.raw).arg(&entry.letter.envelope);
            }
            let in_shard: u64 = invocation.invoke_async(&mut shard.connection()).await?;
            moved += in_shard;
        }
        Ok(moved)
    }

    /// Removes dead letters older than `cutoff_ms` from one window of `count` entries that ends
    /// `skip` entries before the oldest. Callers loop, skipping the entries kept so far, until
    /// they have examined what they meant to.
    pub async fn purge_dead_window(
        &self,
        cutoff_ms: i64,
        skip: u64,
        count: u64,
    ) -> Result<PurgedWindow, QueueError> {
        if count == 0 {
            return Ok(PurgedWindow::default());
        }
        let (examined, removed): (u64, u64) = scripts::PURGE_OLDER
            .key(self.keys().dead())
            .arg(cutoff_ms)
            .arg(skip)
            .arg(count)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(PurgedWindow { examined, removed })
    }
}

/// A distance from the tail as a Redis index magnitude (lists never reach `i64::MAX`).
fn tail_offset(distance: u64) -> i64 {
    i64::try_from(distance).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offsets_saturate_instead_of_wrapping() {
        assert_eq!(tail_offset(3), 3);
        assert_eq!(tail_offset(u64::MAX), i64::MAX);
    }

    #[test]
    fn only_an_entry_mailtrail_wrote_can_be_replayed() {
        let letter = DeadLetter {
            reason: "bad".into(),
            dead_at_ms: 1,
            worker: "w".into(),
            envelope: "e".into(),
        };
        let raw = serde_json::to_string(&letter).unwrap();
        let replayable = DeadEntry::parse(2, raw.clone()).into_replayable().unwrap();
        assert_eq!(
            replayable,
            ReplayableDeadLetter {
                raw,
                letter,
                shard: 2
            }
        );
        assert!(
            DeadEntry::parse(0, "not json".into())
                .into_replayable()
                .is_err()
        );
    }
}
