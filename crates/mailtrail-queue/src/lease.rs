//! Leases and recovery: who may hold a processing list, and what happens to it when they die.
//!
//! A worker holds a lease (`{tag}:worker:{worker}`, TTL) that it renews while it runs, and is
//! registered in `{tag}:workers`. On a sharded queue it holds one in every shard, taken, renewed
//! and given up together (each shard's scripts can only see that shard's keys); every method
//! here acts on each shard the handle covers and adds up what they did. Invariants:
//! - **one process per worker id**: [`Queue::renew_lease`] takes a lease only if it is free or
//!   already this process's, so two processes never requeue each other's in-flight envelopes;
//! - **recovery moves before it removes**: the `REQUEUE` script pushes each
//!   in-flight envelope back onto the backlog's consumer end before popping it from the
//!   processing list, in one script, so a crash at any instant loses nothing;
//! - **a live worker keeps its list**: the reaper's "lease expired" check is repeated inside the
//!   script, so a worker that renewed meanwhile is left alone;
//! - **a running worker learns of a lapse**: [`Queue::heartbeat`] renews only a lease this
//!   process still holds and reports a lapsed one instead of taking it again, so a worker whose
//!   envelopes may have been handed to another never goes on as if nothing happened;
//! - **poison stops**: an envelope recovered from dead workers more than [`POISON_CAP`] times
//!   within [`POISON_WINDOW`] is dead-lettered instead of being fed to the next worker. The
//!   counters are fields of one hash (`{tag}:recovered`), which the reaper prunes of fields
//!   whose window is over, a bounded number per pass;
//! - **only deaths count**: a reap cannot tell a dead worker from one cut off from Redis (or
//!   frozen) for longer than its lease, so it records what it counted (`{tag}:reaped:{worker}`),
//!   and a worker that comes back to a lapsed lease takes those counts back
//!   ([`Queue::absolve`]). A restart under the same id removes the record instead: the previous
//!   process did die.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;

use crate::error::QueueError;
use crate::{Queue, now_ms, scripts};

/// An envelope recovered from this many dead workers is presumed to be what kills them.
pub const POISON_CAP: u64 = 3;
/// The window over which recoveries are counted.
pub const POISON_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// Recovery counters examined per reaper pass when pruning stale ones: enough to keep up with
/// any realistic crash rate (the reaper runs once per lease TTL), small enough to stay a short
/// script.
const PRUNE_PER_PASS: u64 = 1000;

/// What a requeue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// The worker renewed its lease meanwhile; nothing was touched.
    pub alive: bool,
    /// Envelopes moved back onto the backlog.
    pub moved: u64,
    /// Envelopes dead-lettered as poison.
    pub poisoned: u64,
}

/// What a running worker's [`Queue::heartbeat`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was this process's and is renewed.
    Renewed,
    /// The lease had run out: a reaper may have moved the worker's envelopes. Not taken again.
    Lapsed,
    /// Another process holds the worker's lease.
    HeldByAnother,
}

/// A dead worker the reaper recovered, and what became of its in-flight envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReapedWorker {
    /// The dead worker's id.
    pub worker: String,
    /// What moved back onto the backlog and what was dead-lettered as poison.
    pub requeued: Requeued,
}

impl Queue {
    /// Runs one of the two lease scripts on every shard, which take the same keys and arguments
    /// (lease, workers set; instance, now, TTL in ms, worker id) and differ in what they do with
    /// a lapsed lease; returns each shard's answer. The first shard that answers anything but 1
    /// (held) stops the round: a lease another process holds must not be taken in the other
    /// shards.
    async fn lease_script(
        &self,
        script: &redis::Script,
        worker: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<i64, QueueError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        for shard in self.shards() {
            let answer: i64 = script
                .key(shard.keys().lease(worker))
                .key(shard.keys().workers())
                .arg(instance)
                .arg(now_ms())
                .arg(ttl_ms)
                .arg(worker)
                .invoke_async(&mut shard.connection())
                .await?;
            if answer != 1 {
                return Ok(answer);
            }
        }
        Ok(1)
    }

    /// Takes or renews `worker`'s lease for `ttl` on behalf of `instance` (unique per process).
    /// Returns false when another live process holds the lease.
    pub async fn renew_lease(
        &self,
        worker: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let held = self
            .lease_script(&scripts::LEASE, worker, instance, ttl)
            .await?;
        Ok(held == 1)
    }

    /// Renews `worker`'s lease for `ttl` if `instance` still holds it; a running worker's
    /// heartbeat. Unlike [`Queue::renew_lease`], a lapsed lease is reported, not taken again.
    pub async fn heartbeat(
        &self,
        worker: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<Heartbeat, QueueError> {
        let answer = self
            .lease_script(&scripts::RENEW, worker, instance, ttl)
            .await?;
        Ok(match answer {
            1 => Heartbeat::Renewed,
            0 => Heartbeat::Lapsed,
            _ => Heartbeat::HeldByAnother,
        })
    }

    /// Takes back the recovery counts the last reap of `worker` added, for a worker that found
    /// its lease lapsed but was alive all along (cut off from Redis, or frozen): its envelopes
    /// were not what stopped it. Returns how many counters were lowered.
    pub async fn absolve(&self, worker: &str) -> Result<u64, QueueError> {
        let mut lowered = 0;
        for shard in self.shards() {
            let in_shard: u64 = scripts::ABSOLVE
                .key(shard.keys().reaped(worker))
                .key(shard.keys().recovered())
                .invoke_async(&mut shard.connection())
                .await?;
            lowered += in_shard;
        }
        Ok(lowered)
    }

    /// Forgets what the last reap of `worker` counted, so the counts stand: the worker's loop was
    /// stuck, which is what a poison envelope does.
    pub async fn confirm_reap(&self, worker: &str) -> Result<(), QueueError> {
        for shard in self.shards() {
            shard
                .connection()
                .del::<_, ()>(shard.keys().reaped(worker))
                .await?;
        }
        Ok(())
    }

    /// Moves `worker`'s in-flight envelopes back onto the backlog. `after_crash` counts each
    /// envelope's recovery (for poison detection); a clean stop does not.
    pub async fn requeue_in_flight(
        &self,
        worker: &str,
        after_crash: bool,
    ) -> Result<Requeued, QueueError> {
        self.requeue(worker, false, after_crash).await
    }

    async fn requeue(
        &self,
        worker: &str,
        only_if_dead: bool,
        after_crash: bool,
    ) -> Result<Requeued, QueueError> {
        let mut total = Requeued::default();
        for shard in self.shards() {
            let requeued = shard
                .requeue_in_shard(worker, only_if_dead, after_crash)
                .await?;
            total.alive |= requeued.alive;
            total.moved += requeued.moved;
            total.poisoned += requeued.poisoned;
        }
        Ok(total)
    }

    /// [`Queue::requeue`] on this handle's first shard.
    async fn requeue_in_shard(
        &self,
        worker: &str,
        only_if_dead: bool,
        after_crash: bool,
    ) -> Result<Requeued, QueueError> {
        let keys = self.keys();
        let (moved, poisoned): (i64, i64) = scripts::REQUEUE
            .key(keys.processing(worker))
            .key(keys.events())
            .key(keys.lease(worker))
            .key(keys.workers())
            .key(keys.dead())
            .key(keys.recovered())
            .key(keys.reaped(worker))
            .arg(if only_if_dead { "1" } else { "0" })
            .arg(worker)
            .arg(if after_crash { "1" } else { "0" })
            .arg(POISON_CAP)
            .arg(poison_window_ms())
            .invoke_async(&mut self.connection())
            .await?;
        Ok(Requeued {
            alive: moved < 0,
            moved: moved.max(0) as u64,
            poisoned: poisoned.max(0) as u64,
        })
    }

    /// Releases `worker` on a clean stop: requeues anything in flight (without counting it as a
    /// crash), drops its lease and its registration. Returns how many envelopes went back.
    pub async fn release(&self, worker: &str) -> Result<u64, QueueError> {
        let requeued = self.requeue_in_flight(worker, false).await?;
        for shard in self.shards() {
            redis::pipe()
                .atomic()
                .del(shard.keys().lease(worker))
                .ignore()
                .srem(shard.keys().workers(), worker)
                .ignore()
                .query_async::<()>(&mut shard.connection())
                .await?;
        }
        Ok(requeued.moved)
    }

    /// Finds registered workers whose lease has expired and moves their in-flight envelopes back
    /// onto the backlog (dead-lettering poison); then prunes a bounded number of recovery
    /// counters whose window is over. Returns the workers reaped.
    ///
    /// Each shard is reaped on its own (a worker's leases in the shards lapse independently);
    /// a worker reaped in several shards is reported once, with what all of them moved.
    pub async fn reap_dead_workers(&self) -> Result<Vec<ReapedWorker>, QueueError> {
        let mut reaped: Vec<ReapedWorker> = Vec::new();
        for shard in self.shards() {
            for found in shard.reap_shard().await? {
                match reaped.iter_mut().find(|known| known.worker == found.worker) {
                    Some(known) => {
                        known.requeued.moved += found.requeued.moved;
                        known.requeued.poisoned += found.requeued.poisoned;
                    }
                    None => reaped.push(found),
                }
            }
        }
        Ok(reaped)
    }

    /// [`Queue::reap_dead_workers`] on this handle's first shard.
    async fn reap_shard(&self) -> Result<Vec<ReapedWorker>, QueueError> {
        let workers: Vec<String> = self.connection().smembers(self.keys().workers()).await?;
        let mut reaped = Vec::new();
        for worker in workers {
            let requeued = self.requeue_in_shard(&worker, true, true).await?;
            if !requeued.alive {
                reaped.push(ReapedWorker { worker, requeued });
            }
        }
        // Housekeeping only: the requeues above are done whatever happens here.
        if let Err(error) = self.prune_recoveries().await {
            tracing::warn!(%error, "pruning recovery counters failed; the next pass retries");
        }
        Ok(reaped)
    }

    /// One step of the sweep over the recovery counters: removes the stale ones among about
    /// [`PRUNE_PER_PASS`] fields, and remembers where to go on. Returns how many were removed.
    async fn prune_recoveries(&self) -> Result<u64, QueueError> {
        let cursor = self.first_shard().prune_cursor.load(Ordering::Relaxed);
        let (next, removed): (String, u64) = scripts::PRUNE_RECOVERED
            .key(self.keys().recovered())
            .arg(cursor)
            .arg(PRUNE_PER_PASS)
            .arg(poison_window_ms())
            .invoke_async(&mut self.connection())
            .await?;
        // A cursor that does not parse restarts the sweep: at worst some fields are seen twice.
        self.first_shard()
            .prune_cursor
            .store(next.parse().unwrap_or(0), Ordering::Relaxed);
        if removed > 0 {
            tracing::debug!(removed, "pruned expired recovery counters");
        }
        Ok(removed)
    }
}

/// [`POISON_WINDOW`] in milliseconds, as the scripts compare it with Redis' clock.
fn poison_window_ms() -> u64 {
    u64::try_from(POISON_WINDOW.as_millis()).unwrap_or(u64::MAX)
}
