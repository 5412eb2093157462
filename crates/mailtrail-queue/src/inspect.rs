//! Read-only views of the queue, for operators (`mailtrail queue status`) and metrics: the
//! backlog, what each worker holds, and the skip counts.
//!
//! Each view is read with its own commands, so under load a set of them is a near-instant
//! picture rather than one snapshot; [`Queue::backlog_snapshot`] reads the backlog's length and
//! oldest envelope together, in one transaction, so the two agree. Nothing here writes.
//!
//! On a sharded queue each view adds up the shards: the backlog's length is the sum and its
//! oldest envelope the one received first, a worker's in-flight count is over all its processing
//! lists, skip counts are summed by reason.

use std::collections::BTreeMap;

use mailtrail_core::Envelope;
use redis::AsyncCommands;

use crate::consumer::SkippedCount;
use crate::error::QueueError;
use crate::{Queue, now_ms};

/// The backlog's length and the envelope taken next, read together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BacklogSnapshot {
    /// Envelopes waiting.
    pub length: u64,
    /// The oldest envelope (the right end, taken next); `None` when the backlog is empty.
    pub oldest: Option<String>,
}

/// What one registered worker holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The worker's id.
    pub worker: String,
    /// Envelopes it claimed and has not acknowledged.
    pub envelopes: u64,
    /// Milliseconds since its lease was last renewed; `None` when the lease has expired (the
    /// reaper will requeue its envelopes).
    pub lease_age_ms: Option<i64>,
}

impl Queue {
    /// How many envelopes wait in the backlog.
    pub async fn backlog_len(&self) -> Result<u64, QueueError> {
        let mut length = 0;
        for shard in self.shards() {
            let in_shard: u64 = shard.connection().llen(shard.keys().events()).await?;
            length += in_shard;
        }
        Ok(length)
    }

    /// The backlog's length and its oldest envelope, read together (shard by shard; of the
    /// shards' oldest envelopes, the one received first).
    pub async fn backlog_snapshot(&self) -> Result<BacklogSnapshot, QueueError> {
        let mut snapshot = BacklogSnapshot::default();
        let mut oldest_at = i64::MAX;
        for shard in self.shards() {
            let events = shard.keys().events();
            let (length, oldest): (u64, Option<String>) = redis::pipe()
                .atomic()
                .llen(&events)
                .lindex(&events, -1)
                .query_async(&mut shard.connection())
                .await?;
            snapshot.length += length;
            let Some(oldest) = oldest else { continue };
            // An envelope that does not parse has no age; it is shown only if nothing else is.
            let received_at = Envelope::from_json(&oldest)
                .map(|envelope| envelope.received_at_ms)
                .unwrap_or(i64::MAX);
            if snapshot.oldest.is_none() || received_at < oldest_at {
                oldest_at = received_at;
                snapshot.oldest = Some(oldest);
            }
        }
        Ok(snapshot)
    }

    /// In-flight envelopes per registered worker, sorted by worker id, with the age of each
    /// lease's last renewal.
    ///
    /// On a sharded queue a worker's envelopes are counted over all its processing lists, and
    /// the age is that of its most recently renewed lease.
    pub async fn in_flight(&self) -> Result<Vec<InFlight>, QueueError> {
        let mut rows: BTreeMap<String, InFlight> = BTreeMap::new();
        for shard in self.shards() {
            let mut connection = shard.connection();
            let workers: Vec<String> = connection.smembers(shard.keys().workers()).await?;
            for worker in workers {
                let envelopes: u64 = connection.llen(shard.keys().processing(&worker)).await?;
                let lease: Option<String> = connection.get(shard.keys().lease(&worker)).await?;
                // The lease's value is `{renewed_ms}:{instance}`.
                let lease_age_ms = lease
                    .as_deref()
                    .and_then(|value| value.split(':').next())
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .map(|at| now_ms() - at);
                let row = rows.entry(worker.clone()).or_insert(InFlight {
                    worker,
                    envelopes: 0,
                    lease_age_ms: None,
                });
                row.envelopes += envelopes;
                row.lease_age_ms = match (row.lease_age_ms, lease_age_ms) {
                    (Some(known), Some(found)) => Some(known.min(found)),
                    (known, found) => known.or(found),
                };
            }
        }
        Ok(rows.into_values().collect())
    }

    /// Events skipped for lack of custom variables, by reason, sorted by reason.
    pub async fn skipped_counts(&self) -> Result<Vec<SkippedCount>, QueueError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for shard in self.shards() {
            let in_shard: Vec<(String, u64)> =
                shard.connection().hgetall(shard.keys().skipped()).await?;
            for (reason, count) in in_shard {
                *counts.entry(reason).or_default() += count;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(reason, count)| SkippedCount { reason, count })
            .collect())
    }
}
