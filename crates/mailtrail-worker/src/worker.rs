//! The [`Worker`]: everything one running worker holds, and its start-up.
//!
//! Start-up, in order: connect to Redis and check it will not evict queued envelopes; serve
//! `/metrics`; take this worker id's lease (waiting out a dead predecessor's); connect to Postgres
//! and run pending migrations; requeue whatever a previous run of this worker id left in flight.
//! The loop itself is in [`crate::run_loop`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailtrail_queue::{DurabilityError, WorkerQueue};

use crate::WorkerError;
use crate::backoff::with_redis_retry;
use crate::batch::{BatchWriter, connect_store};
use crate::config::WorkerConfig;
use crate::metrics::{self, WorkerMetrics};
use crate::shutdown::Shutdown;

/// One running worker: its queue, its Postgres writer, its configuration, its identity and its
/// metrics.
pub struct Worker {
    pub(crate) config: WorkerConfig,
    pub(crate) queue: WorkerQueue,
    pub(crate) writer: BatchWriter,
    /// Unique per process, so a second process started with the same worker id is told apart.
    pub(crate) instance: String,
    pub(crate) metrics: Arc<WorkerMetrics>,
    pub(crate) shutdown: Shutdown,
}

impl Worker {
    /// Starts a worker: Redis, lease, Postgres, migrations, recovery. Returns
    /// [`WorkerError::Stopped`] if the stop is requested before it is ready.
    pub async fn start(config: WorkerConfig, mut shutdown: Shutdown) -> Result<Self, WorkerError> {
        let queue = WorkerQueue::connect(
            &config.queue_settings(),
            config.worker_id.clone(),
            config.claim_block,
        )?;
        let instance = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos())
                .unwrap_or(0)
        );

        // Warns (or refuses, when configured) if Redis may evict queued envelopes; the bound is
        // that of its three `CONFIG GET`s.
        queue
            .queue()
            .check_durability(config.require_noeviction, config.redis_timeout * 3)
            .await
            .map_err(|DurabilityError::Evicting { policy }| WorkerError::EvictingRedis(policy))?;
        let metrics = Arc::new(WorkerMetrics::new());
        if let Some(bind) = &config.metrics_bind {
            // Metrics are not worth stopping the data path for: without them, warn and go on.
            match metrics::spawn_listener(bind, Arc::clone(&metrics), queue.queue().clone()) {
                Ok(()) => tracing::info!(bind, "serving /metrics"),
                Err(error) => {
                    tracing::warn!(bind, %error, "cannot serve /metrics; running without")
                }
            }
        }
        acquire_lease(&queue, &config, &instance, &mut shutdown).await?;

        let mut connection = connect_store(
            &config.database_url,
            config.statement_timeout,
            &mut shutdown,
        )
        .await
        .ok_or(WorkerError::Stopped)?;
        if config.migrate {
            let (migrated, applied) = mailtrail_store::migrate(connection).await?;
            connection = migrated;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "applied migrations");
            }
        }
        let writer = BatchWriter::new(
            connection,
            config.database_url.clone(),
            config.statement_timeout,
        );

        // Whatever a previous run of this worker id left in flight goes back to the backlog
        // first; that run died holding it, so it counts towards poison detection.
        let worker = config.worker_id.as_str();
        let recovered = with_redis_retry(&mut shutdown, "recover in-flight envelopes", || {
            queue.queue().requeue_in_flight(worker, true)
        })
        .await
        .ok_or(WorkerError::Stopped)?;
        if recovered.moved + recovered.poisoned > 0 {
            tracing::warn!(
                worker,
                envelopes = recovered.moved,
                poisoned = recovered.poisoned,
                "requeued envelopes left in flight by a previous run"
            );
        }
        tracing::info!(
            worker,
            batch_size = config.batch_size,
            "mailtrail-worker started"
        );
        Ok(Self {
            config,
            queue,
            writer,
            instance,
            metrics,
            shutdown,
        })
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }
}

/// Takes this worker id's lease. If a previous run with the same id died, its lease runs out
/// within one TTL, so wait that long; a lease still renewed after that belongs to a live process.
async fn acquire_lease(
    queue: &WorkerQueue,
    config: &WorkerConfig,
    instance: &str,
    shutdown: &mut Shutdown,
) -> Result<(), WorkerError> {
    let worker = config.worker_id.as_str();
    let deadline = Instant::now() + config.lease_ttl + Duration::from_secs(1);
    let mut announced = false;
    loop {
        match queue
            .queue()
            .renew_lease(worker, instance, config.lease_ttl)
            .await
        {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() >= deadline => {
                return Err(WorkerError::WorkerIdInUse(worker.to_owned()));
            }
            Ok(false) => {
                if !announced {
                    announced = true;
                    tracing::warn!(
                        worker,
                        "worker id is leased; waiting for a dead predecessor's lease to run out"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "cannot reach Redis to take the lease; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = shutdown.requested() => return Err(WorkerError::Stopped),
        }
    }
}
