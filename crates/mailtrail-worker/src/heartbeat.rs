//! The lease heartbeat: a task of its own that keeps this worker's lease alive whatever the loop
//! is doing, and tells the loop when the lease is gone.
//!
//! The lease says "this worker is alive; leave its processing list alone". Renewed by the loop
//! between batches, it ran out whenever one batch took longer than the lease (a statement waiting
//! on a lock, a long Postgres outage), and another worker's reaper then handed the batch to
//! someone else while its owner was still writing it: written twice, dead-lettered twice, counted
//! towards poison though nobody died. So the heartbeat renews every third of the lease on its own
//! task, and the lease now expires only when the process is gone, frozen, cut off from Redis, or
//! its loop is stuck.
//!
//! - **A stuck loop is not kept alive.** The loop reports [`Progress`] at every step, and every
//!   step is bounded (a statement by the statement timeout, a Redis command by its timeout, a
//!   backoff sleep by 10 s, a claim by its block). When the loop has reported nothing for the
//!   stall limit, the heartbeat stops renewing, the lease runs out, and the batch in hand is
//!   reaped and counted towards poison, as a crash would be: an envelope that hangs a worker is
//!   poison as much as one that kills it.
//! - **A lost lease stops the loop before it settles.** [`Heartbeat::Lapsed`] means a reaper may
//!   have moved the batch in hand to another worker, which will dead-letter and count it; settling
//!   it here too would do that twice (the settle scripts also refuse a settle without the lease).
//!   The heartbeat records the loss and fires the loop's stop signal. The loop then drops what it
//!   holds and starts over with a fresh lease ([`crate::run_loop`]); a lease held by another
//!   process ends the worker with [`crate::WorkerError::WorkerIdInUse`].
//! - **A lapse that was no death is taken back.** Unless the heartbeat let the lease run out
//!   because the loop was stuck, the worker was alive all along (cut off from Redis, or the whole
//!   process frozen), so the recovery counts the reap added are taken back
//!   ([`mailtrail_queue::Queue::absolve`]): only real deaths count towards poison.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailtrail_queue::{Heartbeat, Queue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shutdown::{self, Shutdown, StopHandle};

/// When the loop last did something, shared with the heartbeat. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    inner: Arc<ProgressInner>,
}

#[derive(Debug)]
struct ProgressInner {
    since: Instant,
    /// Milliseconds from `since` to the last report, plus one; 0 before the loop's first report,
    /// so start-up (migrations may take a while) is never mistaken for a stall.
    last_ms: AtomicU64,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(ProgressInner {
                since: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Records that the loop is doing something.
    pub(crate) fn report(&self) {
        let now_ms = self.inner.since.elapsed().as_millis() as u64 + 1;
        self.inner.last_ms.store(now_ms, Ordering::Relaxed);
    }

    /// How long the loop has reported nothing; `None` before its first report.
    fn silent_for(&self) -> Option<Duration> {
        let last_ms = self.inner.last_ms.load(Ordering::Relaxed);
        (last_ms > 0).then(|| {
            self.inner
                .since
                .elapsed()
                .saturating_sub(Duration::from_millis(last_ms - 1))
        })
    }
}

/// Why the lease is no longer this process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseLoss {
    /// It ran out. `stalled` when the heartbeat let it, because the loop was stuck.
    Lapsed {
        /// The heartbeat withheld renewals since the last one succeeded.
        stalled: bool,
    },
    /// Another process holds it.
    HeldByAnother,
}

/// What the heartbeat needs to know.
#[derive(Clone, Debug)]
pub(crate) struct HeartbeatSettings {
    pub(crate) worker: String,
    pub(crate) instance: String,
    pub(crate) ttl: Duration,
    /// How long the loop may report nothing before it is deemed stuck.
    pub(crate) stall_limit: Duration,
}

/// The running heartbeat task. Dropping it stops the task (the lease then runs out), as a crash
/// would.
#[derive(Debug)]
pub(crate) struct LeaseHeartbeat {
    task: JoinHandle<()>,
    loss: watch::Receiver<Option<LeaseLoss>>,
    withheld: Arc<AtomicBool>,
}

impl LeaseHeartbeat {
    /// Starts renewing the lease (which the caller has just taken). The returned [`Shutdown`]
    /// fires when the lease is lost.
    pub(crate) fn spawn(
        queue: Queue,
        settings: HeartbeatSettings,
        progress: Progress,
    ) -> (Self, Shutdown) {
        let (lost, on_loss) = shutdown::channel();
        let (report, loss) = watch::channel(None);
        let withheld = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(beat(
            queue,
            settings,
            progress,
            Arc::clone(&withheld),
            report,
            lost,
        ));
        (
            Self {
                task,
                loss,
                withheld,
            },
            on_loss,
        )
    }

    /// The loss the heartbeat found, if any.
    pub(crate) fn loss(&self) -> Option<LeaseLoss> {
        *self.loss.borrow()
    }

    /// Stops renewing (the caller releases the lease or lets it run out). The loop's interrupt
    /// fires, as when the lease is lost, but [`LeaseHeartbeat::loss`] stays `None`.
    pub(crate) fn stop(&mut self) {
        self.task.abort();
    }

    /// True when the heartbeat has withheld renewals since the last successful one (the loop
    /// was stuck).
    pub(crate) fn withheld(&self) -> bool {
        self.withheld.load(Ordering::Relaxed)
    }
}

impl Drop for LeaseHeartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The heartbeat task: renews every third of the lease; retries sooner after a Redis error;
/// ends when the lease is lost.
async fn beat(
    queue: Queue,
    settings: HeartbeatSettings,
    progress: Progress,
    withheld: Arc<AtomicBool>,
    report: watch::Sender<Option<LeaseLoss>>,
    lost: StopHandle,
) {
    let HeartbeatSettings {
        worker,
        instance,
        ttl,
        stall_limit,
    } = settings;
    let every = ttl / 3;
    let retry = (ttl / 15).max(Duration::from_millis(100));
    let mut last_beat = Instant::now();
    let mut failing = false;
    loop {
        tokio::time::sleep(if failing { retry } else { every }).await;
        // A gap far longer than the sleep means the whole process was frozen (or starved), not
        // just the loop: the loop's silence then proves nothing, so renew and let it catch up.
        let frozen = last_beat.elapsed() > every * 2;
        last_beat = Instant::now();
        if !frozen && let Some(silent) = progress.silent_for().filter(|s| *s > stall_limit) {
            if !withheld.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    worker,
                    silent_ms = silent.as_millis() as u64,
                    stall_limit_ms = stall_limit.as_millis() as u64,
                    "the worker loop is stuck; no longer renewing the lease, so its batch is reaped"
                );
            }
            failing = false;
            continue;
        }
        let loss = match queue.heartbeat(&worker, &instance, ttl).await {
            Ok(Heartbeat::Renewed) => {
                if failing {
                    tracing::info!(worker, "the lease is renewed again");
                }
                failing = false;
                withheld.store(false, Ordering::Relaxed);
                continue;
            }
            Ok(Heartbeat::Lapsed) => LeaseLoss::Lapsed {
                stalled: withheld.load(Ordering::Relaxed),
            },
            Ok(Heartbeat::HeldByAnother) => LeaseLoss::HeldByAnother,
            Err(error) => {
                if !failing {
                    tracing::warn!(worker, %error, "cannot renew the lease; retrying");
                }
                failing = true;
                continue;
            }
        };
        report.send_replace(Some(loss));
        lost.stop();
        return;
    }
}

#[cfg(test)]
mod tests {
    use mailtrail_queue::QueueSettings;
    use mailtrail_testing::TestRedis;

    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_loop_that_reports_nothing_lets_the_lease_lapse() {
        let redis = TestRedis::new();
        let queue = Queue::connect(&QueueSettings::single(
            redis.url(),
            redis.prefix(),
            Duration::from_secs(2),
        ))
        .unwrap();
        let ttl = Duration::from_millis(600);
        assert!(queue.renew_lease("w", "i", ttl).await.unwrap());
        let progress = Progress::new();
        progress.report();
        let (heartbeat, mut lost) = LeaseHeartbeat::spawn(
            queue.clone(),
            HeartbeatSettings {
                worker: "w".to_owned(),
                instance: "i".to_owned(),
                ttl,
                stall_limit: Duration::from_millis(300),
            },
            progress.clone(),
        );
        // A loop that makes progress keeps its lease for as long as it runs.
        for _ in 0..10 {
            progress.report();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(heartbeat.loss(), None);
        // A loop stuck on one step does not: the lease runs out, so its batch can be reaped.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(heartbeat.withheld());
        let lease: i64 = redis::cmd("EXISTS")
            .arg(redis.key("worker:w"))
            .query(&mut redis.connection())
            .unwrap();
        assert_eq!(lease, 0);
        // When it moves again, it learns its lease lapsed because it was stuck.
        progress.report();
        tokio::time::timeout(Duration::from_secs(5), lost.requested())
            .await
            .expect("the loss is signalled");
        assert_eq!(heartbeat.loss(), Some(LeaseLoss::Lapsed { stalled: true }));
    }

    #[test]
    fn progress_counts_silence_only_after_the_first_report() {
        let progress = Progress::new();
        assert_eq!(progress.silent_for(), None);
        progress.report();
        let silent = progress.silent_for().unwrap();
        assert!(silent < Duration::from_secs(1), "{silent:?}");
    }
}
