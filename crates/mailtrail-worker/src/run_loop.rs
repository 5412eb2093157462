//! The worker loop: claim a batch, triage it, write it, settle it.
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

use std::time::Instant;

use mailtrail_queue::{SettledBy, Settlement, WorkerQueue};
use mailtrail_store::UpsertCounts;

use crate::WorkerError;
use crate::backoff::{Backoff, with_redis_retry};
use crate::batch::{LeaseKeeper, TriagedBatch};
use crate::metrics::{BatchReport, WorkerMetrics};
use crate::shutdown::Shutdown;
use crate::worker::Worker;

/// What one processed batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Envelopes claimed.
    pub envelopes: u64,
    /// Envelopes acknowledged (all their events stored or skipped).
    pub done: u64,
    /// Envelopes dead-lettered.
    pub dead: u64,
    /// Events skipped for lack of custom variables (of acknowledged envelopes).
    pub skipped: u64,
    /// Events new to `email_events`.
    pub events_inserted: u64,
    /// `sent_emails` rows inserted or updated.
    pub rows_upserted: u64,
}

/// A batch whose write committed, waiting to be settled in Redis.
struct WrittenBatch {
    settlement: Settlement,
    counts: UpsertCounts,
    /// When its write started.
    started: Instant,
}

impl Worker {
    /// Runs until the stop is requested; then finishes the batch in hand, releases the lease and
    /// returns.
    pub async fn run(mut self) -> Result<(), WorkerError> {
        let worker = self.config.worker_id.clone();
        let heartbeat_every = self.config.lease_ttl / 3;
        let mut last_heartbeat: Option<Instant> = None;
        let mut last_reap = Instant::now();
        let mut redis_backoff = Backoff::new("redis");
        let mut prefetched: Option<TriagedBatch> = None;
        let mut unsettled: Option<WrittenBatch> = None;

        while !self.shutdown.is_requested() {
            if last_heartbeat.is_none_or(|at| at.elapsed() >= heartbeat_every) {
                match self
                    .queue
                    .queue()
                    .renew_lease(&worker, &self.instance, self.config.lease_ttl)
                    .await
                {
                    Ok(true) => last_heartbeat = Some(Instant::now()),
                    Ok(false) => return Err(WorkerError::WorkerIdInUse(worker)),
                    Err(error) => {
                        redis_backoff.failed(&error, &mut self.shutdown).await;
                        continue;
                    }
                }
            }
            if last_reap.elapsed() >= self.config.lease_ttl {
                last_reap = Instant::now();
                self.reap_and_watch_backlog().await;
            }

            let mut batch = match prefetched.take() {
                Some(batch) => batch,
                None => {
                    // About to wait for work: settle what was written first, so its envelopes
                    // do not sit in the processing list for the length of the wait.
                    if let Some(written) = unsettled.take()
                        && !settle(&self.queue, written, &self.metrics, self.shutdown.clone()).await
                    {
                        break;
                    }
                    let claimed = match self
                        .queue
                        .claim_batch(self.config.batch_size, self.config.claim_block)
                        .await
                    {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            redis_backoff.failed(&error, &mut self.shutdown).await;
                            continue;
                        }
                    };
                    redis_backoff.recovered();
                    if claimed.is_empty() {
                        continue;
                    }
                    self.metrics.batch_claimed(claimed.len());
                    TriagedBatch::of(claimed)
                }
            };
            let started = Instant::now();
            // While Postgres writes this batch, settle the previous one (committed already) and
            // claim and triage the next one if it is already waiting, so Redis, the worker's
            // parsing and Postgres work at the same time instead of taking turns. The next batch
            // is in the processing list like any claimed one, and the previous one stays there
            // until settled: a crash or a stop at any point requeues them.
            let previous = unsettled.take();
            let lease = LeaseKeeper {
                queue: &self.queue,
                instance: &self.instance,
                ttl: self.config.lease_ttl,
            };
            let mut write_shutdown = self.shutdown.clone();
            let settle_shutdown = self.shutdown.clone();
            let (written, next, settled) = tokio::join!(
                self.writer.write(&mut batch, &lease, &mut write_shutdown),
                prefetch(&self.queue, self.config.batch_size, &self.metrics),
                async {
                    match previous {
                        Some(previous) => {
                            settle(&self.queue, previous, &self.metrics, settle_shutdown).await
                        }
                        None => true,
                    }
                },
            );
            prefetched = next;
            let Some(counts) = written else {
                // Stopping during an outage: the batch stays in the processing list and is
                // requeued by `release` below.
                break;
            };
            unsettled = Some(WrittenBatch {
                settlement: batch.into_settlement(),
                counts,
                started,
            });
            if !settled {
                break;
            }
        }

        // A batch written just before the stop is settled now, so it is not written again.
        if let Some(written) = unsettled.take() {
            settle(&self.queue, written, &self.metrics, self.shutdown.clone()).await;
        }
        match self.queue.queue().release(&worker).await {
            Ok(moved) => tracing::info!(worker, requeued = moved, "mailtrail-worker stopped"),
            Err(error) => {
                tracing::warn!(worker, %error, "could not release the lease; the reaper will")
            }
        }
        Ok(())
    }

    /// Claims the next batch (waiting up to `MAILTRAIL_CLAIM_BLOCK_MS` for one), triages, writes
    /// and settles it, one step after the other. `None` when no envelope came. Tests drain the
    /// backlog with it deterministically; the loop does the same steps, overlapped.
    pub async fn process_next_batch(&mut self) -> Result<Option<BatchOutcome>, WorkerError> {
        let claimed = self
            .queue
            .claim_batch(self.config.batch_size, self.config.claim_block)
            .await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        self.metrics.batch_claimed(claimed.len());
        let started = Instant::now();
        let mut batch = TriagedBatch::of(claimed);
        let envelopes = batch.len() as u64;
        let lease = LeaseKeeper {
            queue: &self.queue,
            instance: &self.instance,
            ttl: self.config.lease_ttl,
        };
        let mut shutdown = self.shutdown.clone();
        let counts = self
            .writer
            .write(&mut batch, &lease, &mut shutdown)
            .await
            .ok_or(WorkerError::Stopped)?;
        let settlement = batch.into_settlement();
        let outcome = BatchOutcome {
            envelopes,
            done: settlement.done.len() as u64,
            dead: settlement.dead.len() as u64,
            skipped: settlement.skipped.iter().map(|skipped| skipped.count).sum(),
            events_inserted: counts.events_inserted.max(0) as u64,
            rows_upserted: counts.rows_upserted.max(0) as u64,
        };
        let written = WrittenBatch {
            settlement,
            counts,
            started,
        };
        if !settle(&self.queue, written, &self.metrics, self.shutdown.clone()).await {
            return Err(WorkerError::Stopped);
        }
        Ok(Some(outcome))
    }

    /// Stops this worker cleanly without running the loop: requeues anything in flight and
    /// gives up the lease (what the loop does on its way out).
    pub async fn release(self) -> Result<u64, WorkerError> {
        Ok(self.queue.queue().release(&self.config.worker_id).await?)
    }

    /// Requeues dead workers' in-flight envelopes and warns while the backlog is long.
    async fn reap_and_watch_backlog(&self) {
        let queue = self.queue.queue();
        match queue.reap_dead_workers().await {
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
        if let Ok(backlog) = queue.backlog_len().await
            && backlog > self.config.backlog_warn
        {
            tracing::warn!(
                backlog,
                warn_level = self.config.backlog_warn,
                "the backlog is growing past its warning level"
            );
        }
    }
}

/// Settles a written batch, retrying Redis until it answers; false if the stop was requested
/// first (the batch then stays in the processing list and is requeued, and writing it again
/// changes nothing). A settle that reached Redis before its reply was lost takes effect once all
/// the same (see `mailtrail_queue::WorkerQueue::settle`).
async fn settle(
    queue: &WorkerQueue,
    written: WrittenBatch,
    metrics: &WorkerMetrics,
    mut shutdown: Shutdown,
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
    if settled_by == SettledBy::Earlier {
        tracing::info!("a settle whose reply was lost had taken effect; not repeated");
    }
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

/// Claims the next batch if one is already waiting, and triages it off the async threads.
/// `None` when the backlog is empty or Redis failed; the loop then claims the usual way.
async fn prefetch(
    queue: &WorkerQueue,
    max: usize,
    metrics: &WorkerMetrics,
) -> Option<TriagedBatch> {
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
    match tokio::task::spawn_blocking(move || TriagedBatch::of(batch)).await {
        Ok(triaged) => Some(triaged),
        // A panic while triaging must crash the worker as it would without the prefetch, so
        // the batch is requeued and counted towards poison detection.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down; the batch is requeued at the next start.
        Err(_) => None,
    }
}
