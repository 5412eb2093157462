//! Claiming: a worker moves envelopes from a backlog into its own processing list.
//!
//! **Claim moves, never copies**: [`WorkerQueue::claim_batch`] moves envelopes from a backlog's
//! right end into the worker's processing list of the same shard (`LMOVE`/`BLMOVE`), so an
//! envelope is never only in a worker's memory. A batch comes from one shard ([`Claimed`] says
//! which), because it is settled there in one script.
//!
//! **Every shard is served alike**: each claim starts at the next shard in turn and takes the
//! first one that has work; only when none has does it block, on the shard whose turn it is, for
//! a share of the wait (so a worker with nothing to do still looks at every shard within
//! `block`).

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;

use crate::error::QueueError;
use crate::{Queue, WorkerQueue, scripts};

/// Envelopes claimed from one shard, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    shard: usize,
    envelopes: Vec<String>,
}

impl Claimed {
    /// The envelopes `envelopes` (oldest first) as claimed from shard `shard`.
    pub fn new(shard: usize, envelopes: Vec<String>) -> Self {
        Self { shard, envelopes }
    }

    /// The shard they were claimed from (0 on an unsharded queue).
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The envelopes, oldest first.
    pub fn into_envelopes(self) -> Vec<String> {
        self.envelopes
    }
}

impl Deref for Claimed {
    type Target = Vec<String>;

    fn deref(&self) -> &Vec<String> {
        &self.envelopes
    }
}

impl IntoIterator for Claimed {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    fn into_iter(self) -> Self::IntoIter {
        self.envelopes.into_iter()
    }
}

impl<T> PartialEq<Vec<T>> for Claimed
where
    String: PartialEq<T>,
{
    fn eq(&self, other: &Vec<T>) -> bool {
        self.envelopes == *other
    }
}

impl<T, const N: usize> PartialEq<[T; N]> for Claimed
where
    String: PartialEq<T>,
{
    fn eq(&self, other: &[T; N]) -> bool {
        self.envelopes == *other
    }
}

impl WorkerQueue {
    /// Claims up to `max` envelopes into this worker's processing list, waiting up to `block` for
    /// the first one. Returns them oldest first; empty when the wait ran out.
    pub async fn claim_batch(&self, max: usize, block: Duration) -> Result<Claimed, QueueError> {
        let shards = self.queue.shards();
        let start = self.next_turn(shards.len());
        let waiting = self.claim_from_any(&shards, start, max).await?;
        if !waiting.is_empty() || max == 0 {
            return Ok(waiting);
        }
        let shard = &shards[start];
        let keys = shard.keys();
        let processing = keys.processing(&self.worker);
        // With several shards, block on this one for its share of the wait: the next claim
        // looks at every shard again.
        let wait = block / u32::try_from(shards.len()).unwrap_or(u32::MAX);
        let mut blocking = self.blocking.clone();
        let first: Option<String> = blocking
            .blmove(
                keys.events(),
                &processing,
                redis::Direction::Right,
                redis::Direction::Left,
                wait.as_secs_f64().max(0.01),
            )
            .await?;
        let Some(first) = first else {
            return Ok(Claimed::new(start, Vec::new()));
        };
        let mut items = vec![first];
        if max > 1 {
            items.extend(claim_waiting_in(shard, &self.worker, max - 1).await?);
        }
        Ok(Claimed::new(start, items))
    }

    /// Claims up to `max` envelopes that are already waiting, without blocking: empty when every
    /// backlog is. Lets the worker fetch its next batch while the current one is being written.
    pub async fn claim_waiting(&self, max: usize) -> Result<Claimed, QueueError> {
        if max == 0 {
            return Ok(Claimed::default());
        }
        let shards = self.queue.shards();
        let start = self.next_turn(shards.len());
        self.claim_from_any(&shards, start, max).await
    }

    /// The first non-empty claim over the shards, starting at `start`.
    async fn claim_from_any(
        &self,
        shards: &[Queue],
        start: usize,
        max: usize,
    ) -> Result<Claimed, QueueError> {
        for offset in 0..shards.len() {
            let index = (start + offset) % shards.len();
            let items = claim_waiting_in(&shards[index], &self.worker, max).await?;
            if !items.is_empty() {
                return Ok(Claimed::new(index, items));
            }
        }
        Ok(Claimed::new(start, Vec::new()))
    }

    /// The shard the next claim starts at.
    fn next_turn(&self, shards: usize) -> usize {
        self.claim_turn.fetch_add(1, Ordering::Relaxed) % shards.max(1)
    }
}

/// Moves up to `max` waiting envelopes of `shard`'s backlog into `worker`'s processing list.
async fn claim_waiting_in(
    shard: &Queue,
    worker: &str,
    max: usize,
) -> Result<Vec<String>, QueueError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let keys = shard.keys();
    Ok(scripts::CLAIM
        .key(keys.events())
        .key(keys.processing(worker))
        .arg(max)
        .invoke_async(&mut shard.connection())
        .await?)
}
