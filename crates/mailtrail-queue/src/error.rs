//! Queue errors.

/// Anything that went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused, timed out or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A dead letter or envelope is not the JSON we wrote.
    #[error("queue entry is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// This process no longer holds the worker's lease, so the step was refused: the lease ran
    /// out, and a reaper may have handed the worker's envelopes to another worker.
    #[error("worker `{worker}` no longer holds its lease")]
    LeaseLost {
        /// The worker id.
        worker: String,
    },
    /// A batch names a shard the queue does not have (it was claimed under another
    /// `MAILTRAIL_QUEUE_SHARDS`).
    #[error("the queue has no shard {shard}")]
    NoSuchShard {
        /// The shard's index.
        shard: usize,
    },
    /// Workers of a version before hash tags still hold leases under the old key names, so their
    /// in-flight envelopes cannot be moved yet.
    #[error(
        "workers still hold leases under the old key names ({}); stop them (or wait for their leases to lapse) first",
        workers.join(", ")
    )]
    LegacyWorkersAlive {
        /// Their worker ids.
        workers: Vec<String>,
    },
    /// The old key names were never usable on a Redis Cluster, so there is nothing to move
    /// there (and moving between slots is not one command).
    #[error("the queue is on a Redis Cluster, where the old key names were never used")]
    LegacyKeysOnCluster,
}

impl QueueError {
    /// True when retrying cannot help: the lease is gone.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost { .. })
    }
}

/// Why Redis' settings were refused by [`Queue::check_durability`](crate::Queue::check_durability).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    /// `maxmemory-policy` lets Redis evict keys, so queued envelopes could vanish under memory
    /// pressure, and the caller asked for `noeviction`.
    #[error("Redis maxmemory-policy is `{policy}`, which may evict queued events")]
    Evicting {
        /// The policy Redis reported.
        policy: String,
    },
}
