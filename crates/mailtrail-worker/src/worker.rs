//! The [`Worker`]: everything one running worker holds, and its start-up.
//!
//! Start-up, in order: connect to Redis and check it will not evict queued envelopes; serve
//! `/metrics`; take this worker id's lease (waiting out a dead predecessor's) and start its
//! heartbeat ([`crate::heartbeat`]); connect to Postgres and run pending migrations; requeue
//! whatever a previous run of this worker id left in flight. The loop itself is in
//! [`crate::run_loop`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailtrail_queue::{DurabilityError, WorkerQueue};

use crate::WorkerError;
use crate::backoff::{BACKOFF_MAX, with_redis_retry};
use crate::batch::{BatchWriter, connect_store};
use crate::config::WorkerConfig;
use crate::heartbeat::{HeartbeatSettings, LeaseHeartbeat, Progress};
use crate::metrics::{self, WorkerMetrics};
use crate::partition_upkeep::PartitionUpkeep;
use crate::shutdown::{self, Shutdown};

/// One running worker: its queue, its Postgres writer, its configuration, its identity, its
/// lease heartbeat and its metrics.
pub struct Worker {
    pub(crate) config: WorkerConfig,
    /// Settles only while this process holds the lease (`with_instance`).
    pub(crate) queue: WorkerQueue,
    pub(crate) writer: BatchWriter,
    /// Unique per process, so a second process started with the same worker id is told apart.
    pub(crate) instance: String,
    pub(crate) metrics: Arc<WorkerMetrics>,
    /// The stop request.
    pub(crate) shutdown: Shutdown,
    /// What the loop reports to the heartbeat.
    pub(crate) progress: Progress,
    pub(crate) heartbeat: LeaseHeartbeat,
    /// Fires on the stop request or on the loss of the lease: what the loop's waits listen to.
    pub(crate) interrupt: Shutdown,
    /// Creates `email_events` partitions ahead; runs as long as the worker.
    _partition_upkeep: PartitionUpkeep,
}

impl Worker {
    /// Starts a worker: Redis, lease and its heartbeat, Postgres, migrations, recovery. Returns
    /// [`WorkerError::Stopped`] if the stop is requested before it is ready.
    pub async fn start(config: WorkerConfig, mut shutdown: Shutdown) -> Result<Self, WorkerError> {
        let instance = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos())
                .unwrap_or(0)
        );
        let queue = WorkerQueue::connect(
            &config.queue_settings(),
            config.worker_id.clone(),
            config.claim_block,
        )?
        .with_instance(instance.clone());

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
        // From here on the lease is renewed on its own task, through migrations and outages.
        let progress = Progress::new();
        let (heartbeat, interrupt) =
            start_heartbeat(&queue, &config, &instance, &progress, &shutdown);

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
        let partition_upkeep = PartitionUpkeep::spawn(
            config.database_url.clone(),
            config.statement_timeout,
            shutdown.clone(),
        );
        let writer = BatchWriter::new(
            connection,
            config.database_url.clone(),
            config.statement_timeout,
            config.attribution_window_days,
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
            progress,
            heartbeat,
            interrupt,
            _partition_upkeep: partition_upkeep,
        })
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    /// Takes the lease again after it lapsed, and a fresh heartbeat with it. What the worker
    /// held is dropped by the caller first: a reaper may have handed it to another worker.
    pub(crate) async fn retake_lease(&mut self) -> Result<(), WorkerError> {
        let mut shutdown = self.shutdown.clone();
        acquire_lease(&self.queue, &self.config, &self.instance, &mut shutdown).await?;
        let (heartbeat, interrupt) = start_heartbeat(
            &self.queue,
            &self.config,
            &self.instance,
            &self.progress,
            &self.shutdown,
        );
        // Replacing the old heartbeat stops its task.
        self.heartbeat = heartbeat;
        self.interrupt = interrupt;
        Ok(())
    }
}

/// Starts the heartbeat of a lease just taken; returns it with the listener that fires on the
/// stop request or on the loss of the lease.
fn start_heartbeat(
    queue: &WorkerQueue,
    config: &WorkerConfig,
    instance: &str,
    progress: &Progress,
    shutdown: &Shutdown,
) -> (LeaseHeartbeat, Shutdown) {
    let (heartbeat, lease_lost) = LeaseHeartbeat::spawn(
        queue.queue().clone(),
        HeartbeatSettings {
            worker: config.worker_id.clone(),
            instance: instance.to_owned(),
            ttl: config.lease_ttl,
            stall_limit: stall_limit(config),
        },
        progress.clone(),
    );
    (heartbeat, shutdown::either(shutdown.clone(), lease_lost))
}

/// How long the loop may report no progress before the heartbeat deems it stuck. Every step it
/// takes between two reports is bounded: a write attempt by the statement timeout (at most half
/// the lease), a claim by its block (at most a third) plus the Redis timeout, a settle attempt by
/// the Redis timeout (twice, with a reconnection), a backoff sleep by [`BACKOFF_MAX`]. Twice the
/// lease, plus the backoff and three Redis timeouts, is more than any of them and their sums
/// between two reports; a loop silent for longer is stuck on something that is not a wait.
pub(crate) fn stall_limit(config: &WorkerConfig) -> Duration {
    config.lease_ttl * 2 + BACKOFF_MAX + config.redis_timeout * 3
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
