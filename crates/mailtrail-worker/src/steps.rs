//! The steps every batch goes through, shared by the loop (which overlaps them) and by
//! [`Worker::process_next_batch`] (which runs them one after the other, for tests): triage off
//! the async threads, settle after the write committed, and the prefetch of the next batch.

use std::time::Instant;

use mailtrail_queue::{Claimed, SettledBy, Settlement, WorkerQueue};
use mailtrail_store::BatchCounts;

use crate::WorkerError;
use crate::backoff::with_redis_retry_reporting;
use crate::batch::TriagedBatch;
use crate::heartbeat::Progress;
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
    /// Conversions new to the `conversions` table.
    pub conversions_inserted: u64,
}

/// A batch whose write committed, waiting to be settled in Redis.
pub(crate) struct WrittenBatch {
    pub(crate) settlement: Settlement,
    pub(crate) counts: BatchCounts,
    /// When its write started.
    pub(crate) started: Instant,
}

/// How settling a written batch ended.
pub(crate) enum Settled {
    /// Settled (now or by an earlier send).
    Done,
    /// The stop came first; the batch stays in the processing list.
    Stopped,
    /// The lease is gone; the batch was not settled.
    LeaseLost,
}

impl Worker {
    /// Claims the next batch (waiting up to `MAILTRAIL_CLAIM_BLOCK_MS` for one), triages, writes
    /// and settles it, one step after the other. `None` when no envelope came. Tests drain the
    /// backlog with it deterministically; the loop does the same steps, overlapped.
    pub async fn process_next_batch(&mut self) -> Result<Option<BatchOutcome>, WorkerError> {
        if self.heartbeat.loss().is_some() {
            return Err(WorkerError::LeaseLapsed(self.config.worker_id.clone()));
        }
        self.progress.report();
        let claimed = self
            .queue
            .claim_batch(self.config.batch_size, self.config.claim_block)
            .await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        self.metrics.batch_claimed(claimed.len());
        let started = Instant::now();
        let mut batch = triage(claimed).await.ok_or(WorkerError::Stopped)?;
        let envelopes = batch.len() as u64;
        let mut interrupt = self.interrupt.clone();
        let Some(counts) = self
            .writer
            .write(&mut batch, &self.progress, &mut interrupt)
            .await
        else {
            return Err(match self.heartbeat.loss() {
                Some(_) => WorkerError::LeaseLapsed(self.config.worker_id.clone()),
                None => WorkerError::Stopped,
            });
        };
        let settlement = batch.into_settlement();
        let outcome = BatchOutcome {
            envelopes,
            done: settlement.done.len() as u64,
            dead: settlement.dead.len() as u64,
            skipped: settlement.skipped.iter().map(|skipped| skipped.count).sum(),
            events_inserted: counts.events.events_inserted.max(0) as u64,
            rows_upserted: counts.events.rows_upserted.max(0) as u64,
            conversions_inserted: counts.conversions_inserted.max(0) as u64,
        };
        let written = WrittenBatch {
            settlement,
            counts,
            started,
        };
        match settle(&self.queue, written, &self.metrics, self.loop_context()).await {
            Settled::Done => Ok(Some(outcome)),
            Settled::Stopped => Err(WorkerError::Stopped),
            Settled::LeaseLost => Err(WorkerError::LeaseLapsed(self.config.worker_id.clone())),
        }
    }

    /// Stops this worker cleanly without running the loop: requeues anything in flight and
    /// gives up the lease (what the loop does on its way out).
    pub async fn release(self) -> Result<u64, WorkerError> {
        let mut worker = self;
        // The heartbeat stops first, or it would take the release for a lapse.
        worker.heartbeat.stop();
        Ok(worker
            .queue
            .queue()
            .release(&worker.config.worker_id)
            .await?)
    }
}

/// The loop's side of a settle: what interrupts its retries, and where it reports progress.
pub(crate) struct LoopContext {
    pub(crate) interrupt: Shutdown,
    pub(crate) progress: Progress,
}

/// Triages a claimed batch off the async threads, so a slow batch never delays the lease
/// heartbeat or the other tasks. `None` only when the runtime is shutting down (the batch stays
/// in the processing list and is requeued at the next start).
pub(crate) async fn triage(claimed: Claimed) -> Option<TriagedBatch> {
    match tokio::task::spawn_blocking(move || TriagedBatch::of(claimed)).await {
        Ok(triaged) => Some(triaged),
        // A panic while triaging crashes the worker as it would on the async thread, so the
        // batch is requeued and counted towards poison detection.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => None,
    }
}

/// Settles a written batch, retrying Redis until it answers. A settle that reached Redis before
/// its reply was lost takes effect once all the same (see `mailtrail_queue::WorkerQueue::settle`).
pub(crate) async fn settle(
    queue: &WorkerQueue,
    written: WrittenBatch,
    metrics: &WorkerMetrics,
    context: LoopContext,
) -> Settled {
    let WrittenBatch {
        settlement,
        counts,
        started,
    } = written;
    let LoopContext {
        mut interrupt,
        progress,
    } = context;
    // A lost lease is an answer, not a failure to retry.
    let settled = with_redis_retry_reporting(&mut interrupt, "settle batch", &progress, || async {
        match queue.settle(&settlement).await {
            Ok(settled_by) => Ok(Some(settled_by)),
            Err(error) if error.is_lease_lost() => Ok(None),
            Err(error) => Err(error),
        }
    })
    .await;
    let settled_by = match settled {
        None => return Settled::Stopped,
        Some(None) => {
            tracing::warn!(
                batch.size = settlement.done.len() + settlement.dead.len(),
                "the lease lapsed before the batch was settled; leaving it to whoever holds it now"
            );
            return Settled::LeaseLost;
        }
        Some(Some(settled_by)) => settled_by,
    };
    progress.report();
    tracing::debug!(
        batch.size = settlement.done.len() + settlement.dead.len(),
        events.inserted = counts.events.events_inserted,
        rows.upserted = counts.events.rows_upserted,
        conversions.inserted = counts.conversions_inserted,
        conversions.reattributed = counts.conversions_reattributed,
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
        events_inserted: counts.events.events_inserted.max(0) as u64,
        rows_upserted: counts.events.rows_upserted.max(0) as u64,
        duration: started.elapsed(),
    });
    Settled::Done
}

/// Claims the next batch if one is already waiting, and triages it off the async threads.
/// `None` when the backlog is empty or Redis failed; the loop then claims the usual way. The
/// flag says the claim failed, so it may have moved envelopes all the same.
pub(crate) async fn prefetch(
    queue: &WorkerQueue,
    max: usize,
    metrics: &WorkerMetrics,
) -> (Option<TriagedBatch>, bool) {
    let batch = match queue.claim_waiting(max).await {
        Ok(batch) => batch,
        Err(error) => {
            tracing::debug!(%error, "could not claim the next batch ahead; claiming it later");
            return (None, true);
        }
    };
    if batch.is_empty() {
        return (None, false);
    }
    metrics.batch_claimed(batch.len());
    match tokio::task::spawn_blocking(move || TriagedBatch::of(batch)).await {
        Ok(triaged) => (Some(triaged), false),
        // A panic while triaging must crash the worker as it would without the prefetch, so
        // the batch is requeued and counted towards poison detection.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down; the batch is requeued at the next start.
        Err(_) => (None, false),
    }
}
