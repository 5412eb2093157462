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
//! least once and counted exactly once:
//!
//! - a settle whose reply is lost (a Redis timeout) is sent again, and takes effect once: the
//!   batch's id is marked settled in the same script;
//! - the lease is renewed by the heartbeat ([`crate::heartbeat`]), not between batches, so a
//!   batch that takes longer than the lease (a statement waiting on a lock, an outage) is not
//!   reaped from a live worker;
//! - when the lease is lost all the same (cut off from Redis or frozen for longer than the lease,
//!   or a stuck loop), the loop stops before settling anything: a reaper may have handed its
//!   batches to another worker, which settles them. It then takes the lease again and starts
//!   over (or ends, if another process holds the lease).

use std::time::Instant;

use mailtrail_queue::Heartbeat;

use crate::WorkerError;
use crate::backoff::{Backoff, with_redis_retry};
use crate::batch::TriagedBatch;
use crate::heartbeat::LeaseLoss;
use crate::steps::{LoopContext, Settled, WrittenBatch, prefetch, settle, triage};
use crate::worker::Worker;

/// How one round of the loop (one holding of the lease) ended.
enum RoundEnd {
    /// The stop was requested; the batch in hand was settled.
    Stopped,
    /// The lease is no longer this process's; nothing in hand was settled.
    LeaseLost(LeaseLoss),
}

impl Worker {
    /// Runs until the stop is requested; then finishes the batch in hand, releases the lease and
    /// returns. A lease that lapsed meanwhile (this process was cut off from Redis or frozen for
    /// longer than the lease, or its loop stuck) is taken again after dropping whatever the
    /// worker held, which a reaper may have handed to another worker; a lease another process
    /// holds ends the worker with [`WorkerError::WorkerIdInUse`].
    pub async fn run(mut self) -> Result<(), WorkerError> {
        let worker = self.config.worker_id.clone();
        loop {
            match self.run_round().await {
                RoundEnd::Stopped => break,
                RoundEnd::LeaseLost(LeaseLoss::HeldByAnother) => {
                    // Its processing list is the other process's now: touch nothing.
                    tracing::error!(
                        worker,
                        "another process took this worker id's lease; stopping without settling"
                    );
                    return Err(WorkerError::WorkerIdInUse(worker));
                }
                RoundEnd::LeaseLost(LeaseLoss::Lapsed { stalled }) => {
                    match self.start_over_after_lapse(stalled).await {
                        Ok(()) => {}
                        Err(WorkerError::Stopped) => return Ok(()),
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        // Stop the heartbeat before the lease goes, or it would report the release as a lapse.
        self.heartbeat.stop();
        self.release_lease().await;
        Ok(())
    }

    /// One holding of the lease: claim, write and settle until the stop is requested or the lease
    /// is lost.
    async fn run_round(&mut self) -> RoundEnd {
        let mut last_reap = Instant::now();
        let mut redis_backoff = Backoff::new("redis").reporting_to(&self.progress);
        let mut prefetched: Option<TriagedBatch> = None;
        let mut unsettled: Option<WrittenBatch> = None;
        // A claim that failed may still have moved envelopes into the processing list (Redis ran
        // it, then the reply was lost: a restart, a timeout). Nobody else would ever requeue them
        // while this worker lives, so the next time it holds nothing, whatever is in its list is
        // such an orphan and goes back to the backlog.
        let mut claim_uncertain = false;

        while !self.interrupt.is_requested() {
            self.progress.report();
            if last_reap.elapsed() >= self.config.lease_ttl {
                last_reap = Instant::now();
                self.reap_and_watch_backlog().await;
            }

            let mut batch = match prefetched.take() {
                Some(batch) => batch,
                None => {
                    // About to wait for work: settle what was written first, so its envelopes
                    // do not sit in the processing list for the length of the wait.
                    if let Some(written) = unsettled.take() {
                        match settle(&self.queue, written, &self.metrics, self.loop_context()).await
                        {
                            Settled::Done => {}
                            Settled::Stopped => break,
                            Settled::LeaseLost => {
                                return RoundEnd::LeaseLost(self.lease_loss().await);
                            }
                        }
                    }
                    if claim_uncertain {
                        match self
                            .queue
                            .queue()
                            .requeue_in_flight(&self.config.worker_id, false)
                            .await
                        {
                            Ok(requeued) => {
                                claim_uncertain = false;
                                if requeued.moved > 0 {
                                    tracing::warn!(
                                        envelopes = requeued.moved,
                                        "requeued envelopes a failed claim had moved"
                                    );
                                }
                            }
                            Err(error) => {
                                redis_backoff.failed(&error, &mut self.interrupt).await;
                                continue;
                            }
                        }
                    }
                    let claimed = match self
                        .queue
                        .claim_batch(self.config.batch_size, self.config.claim_block)
                        .await
                    {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            claim_uncertain = true;
                            redis_backoff.failed(&error, &mut self.interrupt).await;
                            continue;
                        }
                    };
                    redis_backoff.recovered();
                    if claimed.is_empty() {
                        continue;
                    }
                    self.metrics.batch_claimed(claimed.len());
                    self.progress.report();
                    match triage(claimed).await {
                        Some(batch) => batch,
                        None => break,
                    }
                }
            };
            let started = Instant::now();
            // While Postgres writes this batch, settle the previous one (committed already) and
            // claim and triage the next one if it is already waiting, so Redis, the worker's
            // parsing and Postgres work at the same time instead of taking turns. The next batch
            // is in the processing list like any claimed one, and the previous one stays there
            // until settled: a crash or a stop at any point requeues them.
            let previous = unsettled.take();
            let mut write_interrupt = self.interrupt.clone();
            let settle_context = self.loop_context();
            let (written, next, settled) = tokio::join!(
                self.writer
                    .write(&mut batch, &self.progress, &mut write_interrupt),
                prefetch(&self.queue, self.config.batch_size, &self.metrics),
                async {
                    match previous {
                        Some(previous) => {
                            settle(&self.queue, previous, &self.metrics, settle_context).await
                        }
                        None => Settled::Done,
                    }
                },
            );
            let (next, prefetch_failed) = next;
            prefetched = next;
            claim_uncertain |= prefetch_failed;
            if let Settled::LeaseLost = settled {
                return RoundEnd::LeaseLost(self.lease_loss().await);
            }
            let Some(counts) = written else {
                // Stopping during an outage, or the lease is gone: the batch stays in the
                // processing list.
                break;
            };
            unsettled = Some(WrittenBatch {
                settlement: batch.into_settlement(),
                counts,
                started,
            });
            if let Settled::Stopped = settled {
                break;
            }
        }

        if let Some(loss) = self.heartbeat.loss() {
            // Whatever is in hand may be another worker's now: it is not settled here.
            return RoundEnd::LeaseLost(loss);
        }
        // A batch written just before the stop is settled now, so it is not written again.
        if let Some(written) = unsettled.take()
            && let Settled::LeaseLost =
                settle(&self.queue, written, &self.metrics, self.loop_context()).await
        {
            return RoundEnd::LeaseLost(self.lease_loss().await);
        }
        RoundEnd::Stopped
    }

    /// What the loop's settles need besides the batch: the interrupt and the progress.
    pub(crate) fn loop_context(&self) -> LoopContext {
        LoopContext {
            interrupt: self.interrupt.clone(),
            progress: self.progress.clone(),
        }
    }

    /// Why the lease is gone, once a settle was refused for the lack of it: the heartbeat's
    /// finding if it has one yet, else Redis' answer.
    async fn lease_loss(&self) -> LeaseLoss {
        if let Some(loss) = self.heartbeat.loss() {
            return loss;
        }
        let stalled = self.heartbeat.withheld();
        let mut shutdown = self.shutdown.clone();
        let answer = with_redis_retry(&mut shutdown, "check the lease", || {
            self.queue.queue().heartbeat(
                &self.config.worker_id,
                &self.instance,
                self.config.lease_ttl,
            )
        })
        .await;
        match answer {
            Some(Heartbeat::HeldByAnother) => LeaseLoss::HeldByAnother,
            // The settle saw the lease gone, and only this process's start-up takes it again.
            _ => LeaseLoss::Lapsed { stalled },
        }
    }

    /// After a lapse: takes the lease again, requeues what is left in this worker's processing
    /// list (claimed after the reap, or never reaped), and, unless the loop itself was stuck,
    /// takes back the recovery counts the reap added, since this worker did not die.
    async fn start_over_after_lapse(&mut self, stalled: bool) -> Result<(), WorkerError> {
        let worker = self.config.worker_id.clone();
        tracing::warn!(
            worker,
            stalled,
            "the lease lapsed while this worker held envelopes; dropping them and starting over"
        );
        self.retake_lease().await?;
        let queue = self.queue.queue();
        let mut shutdown = self.shutdown.clone();
        let requeued = with_redis_retry(&mut shutdown, "requeue after a lapse", || {
            queue.requeue_in_flight(&worker, false)
        })
        .await
        .ok_or(WorkerError::Stopped)?;
        let absolved = if stalled {
            // A stuck loop is what poison does: the reap's counts stand.
            with_redis_retry(&mut shutdown, "keep the reap's counts", || {
                queue.confirm_reap(&worker)
            })
            .await
            .map(|()| 0)
        } else {
            with_redis_retry(&mut shutdown, "take back the reap's counts", || {
                queue.absolve(&worker)
            })
            .await
        }
        .ok_or(WorkerError::Stopped)?;
        tracing::info!(
            worker,
            requeued = requeued.moved,
            counts_taken_back = absolved,
            "took the lease again"
        );
        Ok(())
    }

    /// Requeues anything in flight and gives up the lease, on the way out.
    async fn release_lease(&self) {
        let worker = &self.config.worker_id;
        match self.queue.queue().release(worker).await {
            Ok(moved) => tracing::info!(worker, requeued = moved, "mailtrail-worker stopped"),
            Err(error) => {
                tracing::warn!(worker, %error, "could not release the lease; the reaper will")
            }
        }
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
