//! mailtrail-worker: the only writer to Postgres.
//!
//! [`run`] claims batches of envelopes from the Redis backlog into the worker's own processing
//! list, [`classify`](classify::classify)s each (store, skip, or dead-letter), upserts the batch
//! in one statement, and only then acknowledges it. See [`worker`] for why nothing is lost and
//! nothing is counted twice when the process is killed at any instant.

pub mod classify;
pub mod config;
pub mod metrics;
pub mod worker;

pub use config::{ConfigError, WorkerConfig};
pub use worker::run;

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Redis could not be set up.
    #[error("queue: {0}")]
    Queue(#[from] mailtrail_queue::QueueError),
    /// Postgres or migrations failed at start.
    #[error("store: {0}")]
    Store(mailtrail_store::StoreError),
    /// Another live process holds this worker id.
    #[error(
        "worker id `{0}` is held by another live worker; give each worker its own MAILTRAIL_WORKER_ID"
    )]
    WorkerIdInUse(String),
    /// Redis may evict keys and MAILTRAIL_REQUIRE_NOEVICTION is set.
    #[error(
        "Redis maxmemory-policy is `{0}`, which may evict queued events; set it to noeviction or unset MAILTRAIL_REQUIRE_NOEVICTION"
    )]
    EvictingRedis(String),
}
