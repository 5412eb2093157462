//! Read-only views of the queue, for operators (`mailtrail queue status`) and metrics: the
//! backlog, what each worker holds, and the skip counts.
//!
//! Each view is read with its own commands, so under load a set of them is a near-instant
//! picture rather than one snapshot; [`Queue::backlog_snapshot`] reads the backlog's length and
//! oldest envelope together, in one transaction, so the two agree. Nothing here writes.

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
        Ok(self.connection().llen(self.keys().events()).await?)
    }

    /// The backlog's length and its oldest envelope, read together.
    pub async fn backlog_snapshot(&self) -> Result<BacklogSnapshot, QueueError> {
        let events = self.keys().events();
        let (length, oldest): (u64, Option<String>) = redis::pipe()
            .atomic()
            .llen(&events)
            .lindex(&events, -1)
            .query_async(&mut self.connection())
            .await?;
        Ok(BacklogSnapshot { length, oldest })
    }

    /// In-flight envelopes per registered worker, sorted by worker id, with the age of each
    /// lease's last renewal.
    pub async fn in_flight(&self) -> Result<Vec<InFlight>, QueueError> {
        let mut connection = self.connection();
        let mut workers: Vec<String> = connection.smembers(self.keys().workers()).await?;
        workers.sort();
        let mut rows = Vec::with_capacity(workers.len());
        for worker in workers {
            let envelopes: u64 = connection.llen(self.keys().processing(&worker)).await?;
            let lease: Option<String> = connection.get(self.keys().lease(&worker)).await?;
            // The lease's value is `{renewed_ms}:{instance}`.
            let renewed_ms = lease
                .as_deref()
                .and_then(|value| value.split(':').next())
                .and_then(|ms| ms.parse::<i64>().ok());
            rows.push(InFlight {
                worker,
                envelopes,
                lease_age_ms: renewed_ms.map(|at| now_ms() - at),
            });
        }
        Ok(rows)
    }

    /// Events skipped for lack of custom variables, by reason, sorted by reason.
    pub async fn skipped_counts(&self) -> Result<Vec<SkippedCount>, QueueError> {
        let mut counts: Vec<(String, u64)> =
            self.connection().hgetall(self.keys().skipped()).await?;
        counts.sort();
        Ok(counts
            .into_iter()
            .map(|(reason, count)| SkippedCount { reason, count })
            .collect())
    }
}
