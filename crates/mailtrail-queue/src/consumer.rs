//! The consumer's side: a worker claims batches and settles them after Postgres commits.
//!
//! Invariants this module keeps:
//! - **claim moves, never copies**: [`WorkerQueue::claim_batch`] moves envelopes from the
//!   backlog's right end into the worker's own processing list (`LMOVE`/`BLMOVE`), so an
//!   envelope is never only in a worker's memory;
//! - **settle is one step and comes last**: [`WorkerQueue::settle`] dead-letters, removes the
//!   batch from the processing list and counts skips in one Lua script, and the worker calls it
//!   only after the batch's Postgres transaction committed. A crash before it leaves the batch in
//!   the processing list, to be requeued (see `lease.rs`) and written again, which
//!   the idempotent write makes harmless;
//! - **a settle takes effect once**: every claimed batch has an id ([`ClaimedBatch::id`],
//!   unique per process and batch), and the script that settles it sets `settled:{id}` in the
//!   same step, so a settle sent again (its reply was lost to a timeout, and the worker retried)
//!   finds the marker and does nothing, instead of dead-lettering and counting a second time;
//! - **only the lease holder settles**: with [`WorkerQueue::with_instance`], a settle takes
//!   effect only while that process holds the worker's lease. A lease that lapsed may have let a
//!   reaper hand the batch to another worker, which then dead-letters and counts it; the late
//!   owner's settle is refused ([`QueueError::LeaseLost`]) instead of doing so again;
//! - **a batch is the oldest part of its processing list**: claims only add at the head, so a
//!   batch settled whole is found by position at the tail (one `LTRIM`), and otherwise removed
//!   envelope by envelope from the tail, where it is.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::claim::Claimed;
use crate::dead_letters::DeadLetter;
use crate::error::QueueError;
use crate::keys::QueueKeys;
use crate::redis_connection::RedisConnection;
use crate::{Queue, QueueSettings, now_ms, scripts};

/// How long a settled batch's marker is kept. A settle is sent again only by the worker that
/// sent it, while it still holds the lease, within moments of a lost reply (or once Redis answers
/// again); a day is far beyond that. One short key per batch, at most one per webhook, weighs
/// less than the token markers the receiver keeps for 18 hours.
pub const SETTLED_MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

/// The worker's side of the queue: claiming needs a blocking command, which gets a connection of
/// its own so it never delays the short commands, and a response timeout longer than its block.
#[derive(Clone)]
pub struct WorkerQueue {
    pub(crate) queue: Queue,
    pub(crate) blocking: RedisConnection,
    pub(crate) worker: String,
    /// The shard a claim tries first, turn by turn, so every shard is served alike.
    pub(crate) claim_turn: Arc<AtomicUsize>,
    /// The process that must hold the worker's lease for a settle to take effect ('' = any).
    instance: String,
}

/// The outcome of processing one claimed batch.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Envelopes fully handled (written or skipped), to acknowledge.
    pub done: Vec<String>,
    /// Envelopes that can never succeed, with their reasons.
    pub dead: Vec<DeadEnvelope>,
    /// Skipped events by reason.
    pub skipped: Vec<SkippedCount>,
    /// The claimed batch this settles, when it settles all of it: lets the queue remove the
    /// batch by position instead of envelope by envelope.
    pub claimed: Option<ClaimedBatch>,
}

/// An envelope to dead-letter, and why it can never succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadEnvelope {
    /// The envelope exactly as claimed.
    pub envelope: String,
    /// Why it can never be processed (stored with the dead letter, read by operators).
    pub reason: String,
}

/// How many events were skipped for one reason (no custom variables to file them under).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedCount {
    /// Why (`missing_backer_id`, ...).
    pub reason: String,
    /// How many events.
    pub count: u64,
}

/// How [`WorkerQueue::settle`] found the envelopes it removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettledBy {
    /// The whole batch, by its position at the tail of the processing list (one `LTRIM`).
    Position,
    /// Envelope by envelope (`LREM`), wherever each was.
    Value,
    /// An earlier send of this settlement already took effect (its reply was lost); nothing was
    /// done this time.
    Earlier,
}

/// A batch as claimed: its id, its shard, its size and its two ends, enough to find it again in
/// the processing list without sending every envelope back to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedBatch {
    id: String,
    shard: usize,
    len: usize,
    oldest: String,
    newest: String,
}

impl ClaimedBatch {
    /// Describes `batch` as returned by a claim (oldest first), under a new batch id; `None`
    /// when it is empty. Call it once per claim: the id is what makes its settle take effect
    /// once.
    pub fn of(batch: &Claimed) -> Option<Self> {
        Some(Self {
            id: next_batch_id(),
            shard: batch.shard(),
            len: batch.len(),
            oldest: batch.first()?.clone(),
            newest: batch.last()?.clone(),
        })
    }

    /// The batch id: this process's id and a counter, unique across processes and restarts.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A new batch id: `{process}-{n}`, where the process part (pid and start time in nanoseconds)
/// tells apart every process that ever settles on this Redis, and `n` counts its batches.
fn next_batch_id() -> String {
    static PROCESS: LazyLock<String> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        format!("{:x}.{nanos:x}", std::process::id())
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", *PROCESS, COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl WorkerQueue {
    /// The worker's connections (made on first use, like [`Queue::connect`]'s). `block` is the
    /// longest a claim waits for work.
    pub fn connect(
        settings: &QueueSettings,
        worker: impl Into<String>,
        block: Duration,
    ) -> Result<Self, QueueError> {
        let queue = Queue::connect(settings)?;
        let blocking = RedisConnection::open(
            &settings.url,
            settings.cluster,
            block + settings.response_timeout + Duration::from_secs(1),
        )?;
        Ok(Self {
            queue,
            blocking,
            worker: worker.into(),
            claim_turn: Arc::new(AtomicUsize::new(0)),
            instance: String::new(),
        })
    }

    /// Settles only while `instance` (the process, unique per start) holds the worker's lease:
    /// see [`WorkerQueue::settle`]. Without it, settles do not look at the lease.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = instance.into();
        self
    }

    /// The shared queue operations.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// This worker's id.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Dead-letters, acknowledges and counts a processed batch in one atomic step. Call only after
    /// the batch's Postgres transaction committed.
    ///
    /// Safe to send again after an error: a settlement of a claimed batch
    /// ([`Settlement::claimed`], which the worker always gives) takes effect once, and a repeat
    /// answers [`SettledBy::Earlier`]. A settlement without its claimed batch gets a new id on
    /// every call, so it is not protected against its own repetition. With
    /// [`WorkerQueue::with_instance`], fails with [`QueueError::LeaseLost`] (changing nothing)
    /// when that process no longer holds the worker's lease.
    pub async fn settle(&self, settlement: &Settlement) -> Result<SettledBy, QueueError> {
        let dead_entries = self.dead_entries(settlement)?;
        // A batch is claimed from one shard and settled there. A settlement without its claimed
        // batch settles on the first shard: only an unsharded queue's callers omit it.
        let shard = settlement
            .claimed
            .as_ref()
            .map_or(0, |claimed| claimed.shard);
        let queue = self
            .queue
            .shard(shard)
            .ok_or(QueueError::NoSuchShard { shard })?;
        let keys = queue.keys();
        let batch_id = settlement
            .claimed
            .as_ref()
            .map_or_else(next_batch_id, |claimed| claimed.id.clone());
        let settled_whole = settlement
            .claimed
            .as_ref()
            .filter(|claimed| claimed.len == settlement.done.len() + settlement.dead.len());
        if let Some(claimed) = settled_whole {
            let mut invocation = scripts::SETTLE_CLAIMED.prepare_invoke();
            self.guarded(&mut invocation, keys, &batch_id);
            invocation
                .arg(claimed.len)
                .arg(&claimed.oldest)
                .arg(&claimed.newest)
                .arg(dead_entries.len());
            append_dead_and_skipped(&mut invocation, &dead_entries, &settlement.skipped);
            let settled: i64 = invocation.invoke_async(&mut queue.connection()).await?;
            match self.guard_outcome(settled)? {
                Some(earlier) => return Ok(earlier),
                None if settled >= 0 => return Ok(SettledBy::Position),
                None => tracing::debug!(
                    worker = self.worker,
                    "the batch is not at the tail of the processing list; settling it by value"
                ),
            }
        }
        self.settle_by_value(&queue, settlement, &batch_id, &dead_entries)
            .await
    }

    /// Removes each settled envelope by value (`LREM`), wherever it is in the processing list.
    async fn settle_by_value(
        &self,
        queue: &Queue,
        settlement: &Settlement,
        batch_id: &str,
        dead_entries: &[String],
    ) -> Result<SettledBy, QueueError> {
        let removed: Vec<&String> = settlement
            .done
            .iter()
            .chain(settlement.dead.iter().map(|dead| &dead.envelope))
            .collect();
        let mut invocation = scripts::SETTLE.prepare_invoke();
        self.guarded(&mut invocation, queue.keys(), batch_id);
        invocation.arg(removed.len()).arg(dead_entries.len());
        // In claim order, oldest first: a batch is the oldest part of the processing list, at
        // its tail, and the script removes from the tail, so each LREM finds its envelope at
        // once even while the next batch (claimed during this one's write) sits at the head.
        for envelope in &removed {
            invocation.arg(*envelope);
        }
        append_dead_and_skipped(&mut invocation, dead_entries, &settlement.skipped);
        let settled: i64 = invocation.invoke_async(&mut queue.connection()).await?;
        Ok(self.guard_outcome(settled)?.unwrap_or(SettledBy::Value))
    }

    /// The keys and leading arguments both settle scripts share (see `scripts::SETTLE_GUARD`).
    fn guarded(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        keys: &QueueKeys,
        batch_id: &str,
    ) {
        invocation
            .key(keys.processing(&self.worker))
            .key(keys.dead())
            .key(keys.skipped())
            .key(keys.settled(batch_id))
            .key(keys.lease(&self.worker))
            .arg(&self.instance)
            .arg(SETTLED_MARKER_TTL.as_secs());
    }

    /// What the guard of a settle script answered: `Some(Earlier)` for a repeat, an error when
    /// the lease is lost, `None` when the script went on.
    fn guard_outcome(&self, answer: i64) -> Result<Option<SettledBy>, QueueError> {
        match answer {
            -2 => Ok(Some(SettledBy::Earlier)),
            -3 => Err(QueueError::LeaseLost {
                worker: self.worker.clone(),
            }),
            _ => Ok(None),
        }
    }

    /// The settlement's dead letters, as stored in the dead list.
    fn dead_entries(&self, settlement: &Settlement) -> Result<Vec<String>, QueueError> {
        let dead_at_ms = now_ms();
        Ok(settlement
            .dead
            .iter()
            .map(|dead| {
                serde_json::to_string(&DeadLetter {
                    reason: dead.reason.clone(),
                    dead_at_ms,
                    worker: self.worker.clone(),
                    envelope: dead.envelope.clone(),
                })
            })
            .collect::<Result<_, _>>()?)
    }
}

/// The tail both settle scripts share: the dead entries, then (reason, count) pairs.
fn append_dead_and_skipped(
    invocation: &mut redis::ScriptInvocation<'_>,
    dead_entries: &[String],
    skipped: &[SkippedCount],
) {
    for entry in dead_entries {
        invocation.arg(entry);
    }
    for skipped in skipped {
        invocation.arg(&skipped.reason).arg(skipped.count);
    }
}
