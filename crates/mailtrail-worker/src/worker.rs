//! The worker loop: claim a batch, classify it, write it, settle it.
//!
//! The order of steps is the reliability argument:
//!
//! 1. **claim** moves envelopes into this worker's processing list (they are never only in
//!    memory);
//! 2. **write** upserts the batch into Postgres in one statement; a transient failure keeps the
//!    batch in hand and retries it with backoff, for as long as it takes;
//! 3. **settle** removes the envelopes from the processing list, dead-letters the unreadable ones
//!    and counts the skipped ones, in one Lua script, only after the write committed (while the
//!    next batch is being written, so Postgres does not wait for Redis).
//!
//! A crash between 2 and 3 leaves the batch in the processing list; it is requeued (by this
//! worker at its next start, or by another worker's reaper once the lease expires) and written
//! again, which changes nothing because the write is idempotent. So every envelope is written at
//! least once and counted exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailtrail_queue::{
    ClaimedBatch, DeadEnvelope, DurabilityError, QueueSettings, Settlement, SkippedCount,
    WorkerQueue,
};
use mailtrail_store::{EventRow, StoreConnection, StoreError, UpsertCounts, upsert_events};
use tokio::sync::watch;

use crate::WorkerError;
use crate::classify::{Verdict, classify};
use crate::config::WorkerConfig;
use crate::metrics::{self, BatchReport, WorkerMetrics};

/// Backoff bounds for retrying Postgres or Redis.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Runs the worker until `shutdown` turns true; then finishes the batch in hand, releases its
/// lease and returns.
pub async fn run(
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let queue = WorkerQueue::connect(
        &QueueSettings {
            url: config.redis_url.clone(),
            prefix: config.redis_prefix.clone(),
            response_timeout: config.redis_timeout,
        },
        config.worker_id.clone(),
        config.claim_block,
    )?;
    let worker = config.worker_id.as_str();
    // Unique per process, so a second process started with the same worker id is told apart.
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
            Err(error) => tracing::warn!(bind, %error, "cannot serve /metrics; running without"),
        }
    }
    if !acquire_lease(&queue, &config, &instance, &mut shutdown).await? {
        return Ok(());
    }

    let Some(mut store) = connect_store(&config, &mut shutdown).await else {
        return Ok(());
    };
    if config.migrate {
        let (connection, applied) = mailtrail_store::migrate(store).await?;
        store = connection;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied migrations");
        }
    }

    // Whatever a previous run of this worker id left in flight goes back to the backlog first;
    // that run died holding it, so it counts towards poison detection.
    let recovered = with_redis_retry(&mut shutdown, "recover in-flight envelopes", || {
        queue.queue().requeue_in_flight(worker, true)
    })
    .await;
    if let Some(requeued) = recovered.filter(|requeued| requeued.moved + requeued.poisoned > 0) {
        tracing::warn!(
            worker,
            envelopes = requeued.moved,
            poisoned = requeued.poisoned,
            "requeued envelopes left in flight by a previous run"
        );
    }
    tracing::info!(
        worker,
        batch_size = config.batch_size,
        "mailtrail-worker started"
    );

    let heartbeat_every = config.lease_ttl / 3;
    let mut last_heartbeat: Option<Instant> = None;
    let mut last_reap = Instant::now();
    let mut redis_backoff = Backoff::new("redis");
    let mut prefetched: Option<SortedBatch> = None;
    let mut unsettled: Option<WrittenBatch> = None;

    while !*shutdown.borrow() {
        if last_heartbeat.is_none_or(|at| at.elapsed() >= heartbeat_every) {
            match queue
                .queue()
                .renew_lease(worker, &instance, config.lease_ttl)
                .await
            {
                Ok(true) => last_heartbeat = Some(Instant::now()),
                Ok(false) => return Err(WorkerError::WorkerIdInUse(worker.to_owned())),
                Err(error) => {
                    redis_backoff.failed(&error, &mut shutdown).await;
                    continue;
                }
            }
        }
        if last_reap.elapsed() >= config.lease_ttl {
            last_reap = Instant::now();
            reap_and_watch_backlog(&queue, &config).await;
        }

        let mut sorted = match prefetched.take() {
            Some(sorted) => sorted,
            None => {
                // About to wait for work: settle what was written first, so its envelopes do
                // not sit in the processing list for the length of the wait.
                if let Some(written) = unsettled.take()
                    && !settle(&queue, written, &metrics, shutdown.clone()).await
                {
                    break;
                }
                let batch = match queue
                    .claim_batch(config.batch_size, config.claim_block)
                    .await
                {
                    Ok(batch) => batch,
                    Err(error) => {
                        redis_backoff.failed(&error, &mut shutdown).await;
                        continue;
                    }
                };
                redis_backoff.recovered();
                if batch.is_empty() {
                    continue;
                }
                metrics.batch_claimed(batch.len());
                sort_batch(batch)
            }
        };
        let started = Instant::now();
        // While Postgres writes this batch, settle the previous one (committed already) and
        // claim and classify the next one if it is already waiting, so Redis, the worker's
        // parsing and Postgres work at the same time instead of taking turns. The next batch is
        // in the processing list like any claimed one, and the previous one stays there until
        // settled: a crash or a stop at any point requeues them.
        let previous = unsettled.take();
        let settle_shutdown = shutdown.clone();
        let (written, next, settled) = tokio::join!(
            write_batch(
                &config,
                &mut store,
                &mut sorted,
                &queue,
                &instance,
                &mut shutdown,
            ),
            prefetch(&queue, config.batch_size, &metrics),
            async {
                match previous {
                    Some(previous) => settle(&queue, previous, &metrics, settle_shutdown).await,
                    None => true,
                }
            },
        );
        prefetched = next;
        let Some(counts) = written else {
            // Shutting down during an outage: the batch stays in the processing list and is
            // requeued by `release` below.
            break;
        };
        unsettled = Some(WrittenBatch {
            settlement: sorted.settlement,
            counts,
            started,
        });
        if !settled {
            break;
        }
    }

    // A batch written just before the stop is settled now, so it is not written again.
    if let Some(written) = unsettled.take() {
        settle(&queue, written, &metrics, shutdown.clone()).await;
    }
    match queue.queue().release(worker).await {
        Ok(moved) => tracing::info!(worker, requeued = moved, "mailtrail-worker stopped"),
        Err(error) => {
            tracing::warn!(worker, %error, "could not release the lease; the reaper will")
        }
    }
    Ok(())
}

/// Takes this worker id's lease. If a previous run with the same id died, its lease runs out
/// within one TTL, so wait that long; a lease still renewed after that belongs to a live process.
async fn acquire_lease(
    queue: &WorkerQueue,
    config: &WorkerConfig,
    instance: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, WorkerError> {
    let worker = config.worker_id.as_str();
    let deadline = Instant::now() + config.lease_ttl + Duration::from_secs(1);
    let mut announced = false;
    loop {
        match queue
            .queue()
            .renew_lease(worker, instance, config.lease_ttl)
            .await
        {
            Ok(true) => return Ok(true),
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
            _ = shutdown.changed() => return Ok(false),
        }
    }
}

/// Requeues dead workers' in-flight envelopes and warns while the backlog is long.
async fn reap_and_watch_backlog(queue: &WorkerQueue, config: &WorkerConfig) {
    match queue.queue().reap_dead_workers().await {
        Ok(reaped) => {
            for reaped in reaped {
                tracing::warn!(
                    dead_worker = reaped.worker,
                    envelopes = reaped.requeued.moved,
                    poisoned = reaped.requeued.poisoned,
                    "reaped a dead worker's in-flight envelopes"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "reaping dead workers failed; will retry"),
    }
    if let Ok(backlog) = queue.queue().backlog_len().await
        && backlog > config.backlog_warn
    {
        tracing::warn!(
            backlog,
            warn_level = config.backlog_warn,
            "the backlog is growing past its warning level"
        );
    }
}

/// A claimed batch, sorted by verdict.
struct SortedBatch {
    /// Rows to write.
    rows: Vec<EventRow>,
    /// The envelope each row came from, index for index (kept apart so the rows can be
    /// written as one slice without copying them).
    row_envelopes: Vec<String>,
    /// Envelopes done without a write (skipped), and dead letters.
    settlement: Settlement,
}

/// A batch whose write committed, waiting to be settled in Redis.
struct WrittenBatch {
    settlement: Settlement,
    counts: UpsertCounts,
    /// When its write started.
    started: Instant,
}

/// Settles a written batch, retrying Redis until it answers; false if the worker was told to
/// stop first (the batch then stays in the processing list and is requeued, and writing it again
/// changes nothing).
async fn settle(
    queue: &WorkerQueue,
    written: WrittenBatch,
    metrics: &WorkerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let WrittenBatch {
        settlement,
        counts,
        started,
    } = written;
    let Some(settled_by) =
        with_redis_retry(&mut shutdown, "settle batch", || queue.settle(&settlement)).await
    else {
        return false;
    };
    tracing::debug!(
        batch.size = settlement.done.len() + settlement.dead.len(),
        events.inserted = counts.events_inserted,
        rows.upserted = counts.rows_upserted,
        dead = settlement.dead.len(),
        ?settled_by,
        duration_ms = started.elapsed().as_millis() as u64,
        "batch settled"
    );
    for dead in &settlement.dead {
        tracing::warn!(reason = dead.reason, "dead-lettered an envelope");
    }
    let skipped: u64 = settlement.skipped.iter().map(|skipped| skipped.count).sum();
    metrics.batch_settled(&BatchReport {
        stored: (settlement.done.len() as u64).saturating_sub(skipped),
        skipped: &settlement.skipped,
        dead: settlement.dead.len() as u64,
        events_inserted: counts.events_inserted.max(0) as u64,
        rows_upserted: counts.rows_upserted.max(0) as u64,
        duration: started.elapsed(),
    });
    true
}

/// Claims the next batch if one is already waiting, and classifies it off the async threads.
/// `None` when the backlog is empty or Redis failed; the loop then claims the usual way.
async fn prefetch(queue: &WorkerQueue, max: usize, metrics: &WorkerMetrics) -> Option<SortedBatch> {
    let batch = match queue.claim_waiting(max).await {
        Ok(batch) => batch,
        Err(error) => {
            tracing::debug!(%error, "could not claim the next batch ahead; claiming it later");
            return None;
        }
    };
    if batch.is_empty() {
        return None;
    }
    metrics.batch_claimed(batch.len());
    match tokio::task::spawn_blocking(move || sort_batch(batch)).await {
        Ok(sorted) => Some(sorted),
        // A panic while classifying must crash the worker as it would without the prefetch, so
        // the batch is requeued and counted towards poison detection.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down; the batch is requeued at the next start.
        Err(_) => None,
    }
}

/// Splits a claimed batch into rows to write and what to settle after the write.
fn sort_batch(batch: Vec<String>) -> SortedBatch {
    let mut rows = Vec::with_capacity(batch.len());
    let mut row_envelopes = Vec::with_capacity(batch.len());
    let mut settlement = Settlement {
        claimed: ClaimedBatch::of(&batch),
        ..Settlement::default()
    };
    let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
    for raw in batch {
        match classify(&raw) {
            Verdict::Store(row) => {
                rows.push(*row);
                row_envelopes.push(raw);
            }
            Verdict::Skip(reason) => {
                *skipped.entry(reason).or_default() += 1;
                settlement.done.push(raw);
            }
            Verdict::Dead(reason) => settlement.dead.push(DeadEnvelope {
                envelope: raw,
                reason,
            }),
        }
    }
    settlement.skipped = skipped
        .into_iter()
        .map(|(reason, count)| SkippedCount {
            reason: reason.to_owned(),
            count,
        })
        .collect();
    SortedBatch {
        rows,
        row_envelopes,
        settlement,
    }
}

/// Writes the batch's rows and moves their envelopes into the settlement. A batch Postgres
/// refuses for its data (not its connection) is split: rows are written one by one so the good
/// ones commit and only the offenders are dead-lettered. `None` means shutdown came first.
async fn write_batch(
    config: &WorkerConfig,
    store: &mut StoreConnection,
    batch: &mut SortedBatch,
    queue: &WorkerQueue,
    instance: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<UpsertCounts> {
    let mut total = UpsertCounts::default();
    match write_with_retry(config, store, &batch.rows, queue, instance, shutdown).await? {
        Ok(counts) => {
            total = counts;
            batch.rows.clear();
            let envelopes = batch.row_envelopes.drain(..);
            batch.settlement.done.extend(envelopes);
        }
        Err(error) => {
            tracing::warn!(%error, batch.size = batch.rows.len(), "Postgres refused the batch; writing its rows one by one");
            let rows = std::mem::take(&mut batch.rows);
            let envelopes = std::mem::take(&mut batch.row_envelopes);
            for (row, raw) in rows.into_iter().zip(envelopes) {
                match write_with_retry(
                    config,
                    store,
                    std::slice::from_ref(&row),
                    queue,
                    instance,
                    shutdown,
                )
                .await?
                {
                    Ok(counts) => {
                        total.events_inserted += counts.events_inserted;
                        total.rows_upserted += counts.rows_upserted;
                        batch.settlement.done.push(raw);
                    }
                    Err(error) => batch.settlement.dead.push(DeadEnvelope {
                        envelope: raw,
                        reason: format!("Postgres refused the event: {error}"),
                    }),
                }
            }
        }
    }
    Some(total)
}

/// Writes `rows`, retrying transient failures (reconnecting as needed) until it succeeds, fails
/// for good (the data is at fault), or the worker is told to stop (`None`).
async fn write_with_retry(
    config: &WorkerConfig,
    store: &mut StoreConnection,
    rows: &[EventRow],
    queue: &WorkerQueue,
    instance: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Result<UpsertCounts, StoreError>> {
    let mut backoff = Backoff::new("postgres");
    let mut reconnect = false;
    loop {
        if reconnect {
            match mailtrail_store::connect(&config.database_url, config.statement_timeout).await {
                Ok(connection) => *store = connection,
                Err(error) => {
                    if !backoff.failed(&error, shutdown).await {
                        return None;
                    }
                    continue;
                }
            }
        }
        match upsert_events(store, rows).await {
            Ok(counts) => {
                backoff.recovered();
                return Some(Ok(counts));
            }
            Err(error) if error.is_transient() => {
                reconnect = true;
                // Keep the lease alive while waiting: the batch is still ours.
                let _ = queue
                    .queue()
                    .renew_lease(queue.worker(), instance, config.lease_ttl)
                    .await;
                if !backoff.failed(&error, shutdown).await {
                    return None;
                }
            }
            Err(error) => return Some(Err(error)),
        }
    }
}

/// Runs a Redis step until it succeeds or the worker is told to stop.
async fn with_redis_retry<T, F, Fut>(
    shutdown: &mut watch::Receiver<bool>,
    what: &'static str,
    mut step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, mailtrail_queue::QueueError>>,
{
    let mut backoff = Backoff::new(what);
    loop {
        match step().await {
            Ok(value) => {
                backoff.recovered();
                return Some(value);
            }
            Err(error) => {
                if !backoff.failed(&error, shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Connects to Postgres, retrying until it answers or the worker is told to stop.
async fn connect_store(
    config: &WorkerConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<StoreConnection> {
    let mut backoff = Backoff::new("postgres");
    loop {
        match mailtrail_store::connect(&config.database_url, config.statement_timeout).await {
            Ok(connection) => {
                backoff.recovered();
                return Some(connection);
            }
            Err(error) => {
                if !backoff.failed(&error, shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Exponential, jittered backoff that logs once per outage, not once per attempt.
struct Backoff {
    what: &'static str,
    delay: Duration,
    failing_since: Option<Instant>,
}

impl Backoff {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            delay: BACKOFF_MIN,
            failing_since: None,
        }
    }

    /// Records a failure and sleeps; false if shutdown was requested meanwhile.
    async fn failed(
        &mut self,
        error: &(dyn std::fmt::Display + Sync),
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::warn!(dependency = self.what, %error, "dependency failing; retrying with backoff");
        }
        // Full jitter from the clock's sub-second noise: good enough to spread workers apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let sleep = self.delay.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        tokio::select! {
            () = tokio::time::sleep(sleep) => !*shutdown.borrow(),
            _ = shutdown.changed() => false,
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                dependency = self.what,
                outage_ms = since.elapsed().as_millis() as u64,
                "dependency recovered"
            );
        }
        self.delay = BACKOFF_MIN;
    }
}

impl From<StoreError> for WorkerError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}
