//! mailtrail-worker: the only writer to Postgres.
//!
//! A [`Worker`] claims batches of envelopes from the Redis backlog into its own processing list,
//! triages every event (store, skip, or dead-letter; `mailtrail_core::triage`), upserts the batch
//! in one statement, and only then acknowledges it. [`run`] starts one and runs it until the stop
//! is requested; see [`run_loop`] for why nothing is lost and nothing is counted twice when the
//! process is killed at any instant.
//!
//! | file | role |
//! |---|---|
//! | `worker.rs` | the [`Worker`] struct and its start-up (durability check, lease, migrations, recovery) |
//! | `run_loop.rs` | the loop: overlapped claim, write and settle; the lease's loss and recovery |
//! | `steps.rs` | one batch's steps (triage, settle, prefetch) and [`Worker::process_next_batch`] for tests |
//! | `heartbeat.rs` | the lease heartbeat task, and the loop's progress it watches |
//! | `batch.rs` | one batch: triage, write-with-split, what to settle |
//! | `backoff.rs` | waiting out a failing Redis or Postgres |
//! | `shutdown.rs` | the stop request |
//! | `partition_upkeep.rs` | `email_events`' monthly partitions created ahead, at start and hourly |
//! | `config.rs`, `metrics.rs` | configuration and `/metrics` |

mod backoff;
mod batch;
pub mod config;
mod heartbeat;
pub mod metrics;
mod partition_upkeep;
pub mod run_loop;
pub mod shutdown;
mod steps;
pub mod worker;

pub use config::{ConfigError, WorkerConfig};
pub use shutdown::{Shutdown, StopHandle};
pub use steps::BatchOutcome;
pub use worker::Worker;

/// Starts a worker and runs it until the stop is requested (a stop during start-up is not an
/// error).
pub async fn run(config: WorkerConfig, shutdown: Shutdown) -> Result<(), WorkerError> {
    match Worker::start(config, shutdown).await {
        Ok(worker) => worker.run().await,
        Err(WorkerError::Stopped) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Redis could not be set up, or failed where the caller must hear of it.
    #[error("queue: {0}")]
    Queue(#[from] mailtrail_queue::QueueError),
    /// Postgres or migrations failed at start.
    #[error("store: {0}")]
    Store(#[from] mailtrail_store::StoreError),
    /// Another live process holds this worker id.
    #[error(
        "worker id `{0}` is held by another live worker; give each worker its own MAILTRAIL_WORKER_ID"
    )]
    WorkerIdInUse(String),
    /// The lease lapsed while the worker held a batch, which a reaper may have handed to another
    /// worker; it was not settled here. (The loop takes the lease again by itself; only
    /// [`Worker::process_next_batch`] returns this.)
    #[error("worker `{0}` lost its lease while holding a batch; the batch was left to the reaper")]
    LeaseLapsed(String),
    /// Redis may evict keys and MAILTRAIL_REQUIRE_NOEVICTION is set.
    #[error(
        "Redis maxmemory-policy is `{0}`, which may evict queued events; set it to noeviction or unset MAILTRAIL_REQUIRE_NOEVICTION"
    )]
    EvictingRedis(String),
    /// The stop was requested before the work was done; what was in hand stays in the
    /// processing list and is requeued.
    #[error("stopped before the work was done")]
    Stopped,
}
