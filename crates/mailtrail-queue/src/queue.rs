//! The queue operations, over one reconnecting Redis connection.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::QueueError;
use crate::keys::QueueKeys;
use crate::scripts;

/// How a push ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The envelope is on the backlog.
    Queued,
    /// The token was already used: a Mailgun retry or a replay; nothing was pushed.
    DuplicateToken,
    /// The backlog is at its cap; nothing was pushed.
    BacklogFull,
}

/// An envelope recovered from this many dead workers is presumed to be what kills them.
pub const POISON_CAP: u64 = 3;
/// The window over which recoveries are counted.
pub const POISON_WINDOW: Duration = Duration::from_secs(72 * 3600);

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

/// Redis' durability settings, as far as `CONFIG GET` tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisDurability {
    /// `maxmemory-policy`: anything but `noeviction` may silently drop queued envelopes.
    pub maxmemory_policy: Option<String>,
    /// `appendonly`: `no` loses everything since the last snapshot on a Redis restart.
    pub appendonly: Option<String>,
    /// `appendfsync`: `always` loses nothing acknowledged; `everysec` up to a second.
    pub appendfsync: Option<String>,
}

impl RedisDurability {
    /// True when Redis may evict keys, and so drop queued envelopes, under memory pressure.
    pub fn may_evict(&self) -> bool {
        self.maxmemory_policy
            .as_deref()
            .is_some_and(|policy| policy != "noeviction")
    }

    /// Warns about settings that can lose queued events. With `require_noeviction`, an evicting
    /// policy is refused instead: the error is the policy's name.
    pub fn check(&self, require_noeviction: bool) -> Result<(), String> {
        if self.may_evict() {
            let policy = self.maxmemory_policy.clone().unwrap_or_default();
            if require_noeviction {
                return Err(policy);
            }
            tracing::warn!(
                policy,
                "Redis maxmemory-policy is not noeviction: queued events may be evicted under memory pressure"
            );
        }
        if self.appendonly.as_deref() == Some("no") {
            tracing::warn!("Redis runs without AOF: queued events are lost if Redis restarts");
        }
        Ok(())
    }
}

/// A dead letter: an envelope that can never be processed, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why it can never succeed.
    pub reason: String,
    /// When it was dead-lettered, in milliseconds since the epoch.
    pub dead_at_ms: i64,
    /// The worker that gave up on it.
    pub worker: String,
    /// The envelope exactly as it was queued.
    pub envelope: String,
}

/// Connection settings for the queue.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// `redis://` URL.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// How long one command may take before it fails (bounds a webhook's wait for Redis).
    pub response_timeout: Duration,
}

/// The Redis queue. Cheap to clone: clones share one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct Queue {
    connection: ConnectionManager,
    keys: QueueKeys,
}

impl Queue {
    /// Connects with a connection that reconnects by itself after a Redis restart.
    pub async fn connect(settings: &QueueSettings) -> Result<Self, QueueError> {
        let connection = connect_manager(&settings.url, settings.response_timeout)?;
        Ok(Self {
            connection,
            keys: QueueKeys::new(settings.prefix.clone()),
        })
    }

    /// Like [`Queue::connect`], without awaiting: the connection is made on first use, by the
    /// async runtime that uses it first, which then drives it. The receiver opens one per HTTP
    /// worker thread this way, so a request and its Redis connection share a thread instead of
    /// handing every command to a connection task on another thread.
    pub fn connect_lazy(settings: &QueueSettings) -> Result<Self, QueueError> {
        let connection = connect_manager(&settings.url, settings.response_timeout)?;
        Ok(Self {
            connection,
            keys: QueueKeys::new(settings.prefix.clone()),
        })
    }

    /// The key names in use.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// A clone of the underlying connection, for callers with commands of their own.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Answers whether Redis responds.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    /// Marks `token` as used for `token_ttl` and pushes `envelope`, atomically; refuses when the
    /// backlog holds `backlog_cap` envelopes or more (0 means no cap).
    pub async fn push_webhook(
        &self,
        token: &str,
        token_ttl: Duration,
        envelope: &str,
        backlog_cap: u64,
    ) -> Result<PushOutcome, QueueError> {
        let mut connection = self.connection.clone();
        let outcome: i64 = scripts::PUSH
            .key(self.keys.token(token))
            .key(self.keys.events())
            .arg(token_ttl.as_secs().max(1))
            .arg(envelope)
            .arg(backlog_cap)
            .invoke_async(&mut connection)
            .await?;
        Ok(match outcome {
            1 => PushOutcome::Queued,
            0 => PushOutcome::DuplicateToken,
            _ => PushOutcome::BacklogFull,
        })
    }

    /// Reads Redis' durability settings. Managed Redis services often disable `CONFIG`; then
    /// every field is `None` and the caller cannot check.
    pub async fn durability(&self) -> Result<RedisDurability, QueueError> {
        let mut connection = self.connection.clone();
        let mut setting = async |name: &str| -> Result<Option<String>, QueueError> {
            let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut connection)
                .await;
            match reply {
                Ok(pair) => Ok(pair.into_iter().nth(1)),
                Err(error)
                    if error.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
                {
                    Ok(None)
                }
                Err(error) => Err(error.into()),
            }
        };
        Ok(RedisDurability {
            maxmemory_policy: setting("maxmemory-policy").await?,
            appendonly: setting("appendonly").await?,
            appendfsync: setting("appendfsync").await?,
        })
    }

    /// Pushes an envelope without a token (operators' replays, benchmarks, tests).
    pub async fn push_envelope(&self, envelope: &str) -> Result<(), QueueError> {
        let mut connection = self.connection.clone();
        let _: i64 = connection.lpush(self.keys.events(), envelope).await?;
        Ok(())
    }

    /// How many envelopes wait in the backlog.
    pub async fn backlog_len(&self) -> Result<u64, QueueError> {
        let mut connection = self.connection.clone();
        Ok(connection.llen(self.keys.events()).await?)
    }

    /// How many envelopes are dead-lettered.
    pub async fn dead_len(&self) -> Result<u64, QueueError> {
        let mut connection = self.connection.clone();
        Ok(connection.llen(self.keys.dead()).await?)
    }

    /// Dead letters from `start` (0 = newest) up to `count` of them, with their raw entries.
    pub async fn dead_letters(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<(String, Result<DeadLetter, QueueError>)>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let stop = (start + count - 1) as isize;
        let raw: Vec<String> = connection
            .lrange(self.keys.dead(), start as isize, stop)
            .await?;
        Ok(raw
            .into_iter()
            .map(|entry| {
                let parsed = serde_json::from_str(&entry).map_err(QueueError::from);
                (entry, parsed)
            })
            .collect())
    }

    /// Moves the given dead letters (raw entries, as returned by [`Queue::dead_letters`]) back
    /// onto the backlog; returns how many moved.
    pub async fn replay_dead(&self, entries: &[(String, DeadLetter)]) -> Result<u64, QueueError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut connection = self.connection.clone();
        let mut invocation = scripts::REPLAY.key(self.keys.dead());
        invocation.key(self.keys.events());
        for (raw, letter) in entries {
            invocation.arg(raw).arg(&letter.envelope);
        }
        Ok(invocation.invoke_async(&mut connection).await?)
    }

    /// Skipped-event counts by reason.
    pub async fn skipped_counts(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let mut connection = self.connection.clone();
        let mut counts: Vec<(String, u64)> = connection.hgetall(self.keys.skipped()).await?;
        counts.sort();
        Ok(counts)
    }

    /// Takes or renews `worker`'s lease for `ttl` on behalf of `instance` (unique per process).
    /// Returns false when another live process holds the lease.
    pub async fn renew_lease(
        &self,
        worker: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut connection = self.connection.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let held: i64 = scripts::LEASE
            .key(self.keys.lease(worker))
            .key(self.keys.workers())
            .arg(instance)
            .arg(now_ms())
            .arg(ttl_ms)
            .arg(worker)
            .invoke_async(&mut connection)
            .await?;
        Ok(held == 1)
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
        let mut connection = self.connection.clone();
        let (moved, poisoned): (i64, i64) = scripts::REQUEUE
            .key(self.keys.processing(worker))
            .key(self.keys.events())
            .key(self.keys.lease(worker))
            .key(self.keys.workers())
            .key(self.keys.dead())
            .arg(if only_if_dead { "1" } else { "0" })
            .arg(worker)
            .arg(if after_crash { "1" } else { "0" })
            .arg(POISON_CAP)
            .arg(POISON_WINDOW.as_secs())
            .arg(self.keys.recovered_prefix())
            .invoke_async(&mut connection)
            .await?;
        Ok(Requeued {
            alive: moved < 0,
            moved: moved.max(0) as u64,
            poisoned: poisoned.max(0) as u64,
        })
    }

    /// Releases `worker` on a clean stop: requeues anything in flight (without counting it as a
    /// crash), drops its lease and its registration.
    pub async fn release(&self, worker: &str) -> Result<u64, QueueError> {
        let requeued = self.requeue_in_flight(worker, false).await?;
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .del(self.keys.lease(worker))
            .ignore()
            .srem(self.keys.workers(), worker)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(requeued.moved)
    }

    /// Finds registered workers whose lease has expired and moves their in-flight envelopes back
    /// onto the backlog (dead-lettering poison). Returns (worker, what moved) per worker reaped.
    pub async fn reap_dead_workers(&self) -> Result<Vec<(String, Requeued)>, QueueError> {
        let mut connection = self.connection.clone();
        let workers: Vec<String> = connection.smembers(self.keys.workers()).await?;
        let mut reaped = Vec::new();
        for worker in workers {
            let requeued = self.requeue(&worker, true, true).await?;
            if !requeued.alive {
                reaped.push((worker, requeued));
            }
        }
        Ok(reaped)
    }

    /// In-flight envelopes per registered worker, with the age of each lease's last renewal
    /// (`None` when the lease has expired).
    pub async fn in_flight(&self) -> Result<Vec<(String, u64, Option<i64>)>, QueueError> {
        let mut connection = self.connection.clone();
        let mut workers: Vec<String> = connection.smembers(self.keys.workers()).await?;
        workers.sort();
        let mut rows = Vec::with_capacity(workers.len());
        for worker in workers {
            let len: u64 = connection.llen(self.keys.processing(&worker)).await?;
            let lease: Option<String> = connection.get(self.keys.lease(&worker)).await?;
            let renewed_ms = lease
                .as_deref()
                .and_then(|value| value.split(':').next())
                .and_then(|ms| ms.parse::<i64>().ok());
            rows.push((worker, len, renewed_ms.map(|at| now_ms() - at)));
        }
        Ok(rows)
    }
}

/// The worker's side of the queue: claiming needs a blocking command, which gets a connection of
/// its own so it never delays the short commands, and a response timeout longer than its block.
#[derive(Clone)]
pub struct WorkerQueue {
    queue: Queue,
    blocking: ConnectionManager,
    worker: String,
}

/// The outcome of processing one claimed batch.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Envelopes fully handled (written or skipped), to acknowledge.
    pub done: Vec<String>,
    /// Envelopes that can never succeed, with their reasons.
    pub dead: Vec<(String, String)>,
    /// Skipped events by reason.
    pub skipped: Vec<(String, u64)>,
    /// The claimed batch this settles, when it settles all of it: lets the queue remove the
    /// batch by position instead of envelope by envelope.
    pub claimed: Option<ClaimedBatch>,
}

/// How [`WorkerQueue::settle`] found the envelopes it removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettledBy {
    /// The whole batch, by its position at the tail of the processing list (one `LTRIM`).
    Position,
    /// Envelope by envelope (`LREM`), wherever each was.
    Value,
}

/// A batch as claimed: its size and its two ends, enough to find it again in the processing
/// list without sending every envelope back to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedBatch {
    len: usize,
    oldest: String,
    newest: String,
}

impl ClaimedBatch {
    /// Describes `batch` as returned by a claim (oldest first); `None` when it is empty.
    pub fn of(batch: &[String]) -> Option<Self> {
        Some(Self {
            len: batch.len(),
            oldest: batch.first()?.clone(),
            newest: batch.last()?.clone(),
        })
    }
}

impl WorkerQueue {
    /// Opens the worker's connections. `block` is the longest a claim waits for work.
    pub async fn connect(
        settings: &QueueSettings,
        worker: impl Into<String>,
        block: Duration,
    ) -> Result<Self, QueueError> {
        let queue = Queue::connect(settings).await?;
        let blocking = connect_manager(
            &settings.url,
            block + settings.response_timeout + Duration::from_secs(1),
        )?;
        Ok(Self {
            queue,
            blocking,
            worker: worker.into(),
        })
    }

    /// The shared queue operations.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// This worker's id.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Claims up to `max` envelopes into this worker's processing list, waiting up to `block` for
    /// the first one. Returns them oldest first; empty when the wait ran out.
    pub async fn claim_batch(
        &self,
        max: usize,
        block: Duration,
    ) -> Result<Vec<String>, QueueError> {
        let keys = self.queue.keys();
        let processing = keys.processing(&self.worker);
        let mut connection = self.queue.connection();
        let mut items: Vec<String> = scripts::CLAIM
            .key(keys.events())
            .key(&processing)
            .arg(max)
            .invoke_async(&mut connection)
            .await?;
        if !items.is_empty() || max == 0 {
            return Ok(items);
        }
        let mut blocking = self.blocking.clone();
        let first: Option<String> = blocking
            .blmove(
                keys.events(),
                &processing,
                redis::Direction::Right,
                redis::Direction::Left,
                block.as_secs_f64(),
            )
            .await?;
        let Some(first) = first else {
            return Ok(items);
        };
        items.push(first);
        if max > 1 {
            let more: Vec<String> = scripts::CLAIM
                .key(keys.events())
                .key(&processing)
                .arg(max - 1)
                .invoke_async(&mut connection)
                .await?;
            items.extend(more);
        }
        Ok(items)
    }

    /// Claims up to `max` envelopes that are already waiting, without blocking: empty when the
    /// backlog is. Lets the worker fetch its next batch while the current one is being written.
    pub async fn claim_waiting(&self, max: usize) -> Result<Vec<String>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let keys = self.queue.keys();
        let mut connection = self.queue.connection();
        Ok(scripts::CLAIM
            .key(keys.events())
            .key(keys.processing(&self.worker))
            .arg(max)
            .invoke_async(&mut connection)
            .await?)
    }

    /// Dead-letters, acknowledges and counts a processed batch in one atomic step. Call only after
    /// the batch's Postgres transaction committed.
    pub async fn settle(&self, settlement: &Settlement) -> Result<SettledBy, QueueError> {
        let dead_entries = self.dead_entries(settlement)?;
        let settled_whole = settlement
            .claimed
            .as_ref()
            .filter(|claimed| claimed.len == settlement.done.len() + settlement.dead.len());
        if let Some(claimed) = settled_whole {
            let keys = self.queue.keys();
            let mut invocation = scripts::SETTLE_CLAIMED.key(keys.processing(&self.worker));
            invocation
                .key(keys.dead())
                .key(keys.skipped())
                .arg(claimed.len)
                .arg(&claimed.oldest)
                .arg(&claimed.newest)
                .arg(dead_entries.len());
            append_dead_and_skipped(&mut invocation, &dead_entries, &settlement.skipped);
            let mut connection = self.queue.connection();
            let settled: i64 = invocation.invoke_async(&mut connection).await?;
            if settled >= 0 {
                return Ok(SettledBy::Position);
            }
            tracing::debug!(
                worker = self.worker,
                "the batch is not at the tail of the processing list; settling it by value"
            );
        }
        self.settle_by_value(settlement, &dead_entries).await?;
        Ok(SettledBy::Value)
    }

    /// Removes each settled envelope by value (`LREM`), wherever it is in the processing list.
    async fn settle_by_value(
        &self,
        settlement: &Settlement,
        dead_entries: &[String],
    ) -> Result<(), QueueError> {
        let keys = self.queue.keys();
        let removed: Vec<&String> = settlement
            .done
            .iter()
            .chain(settlement.dead.iter().map(|(envelope, _)| envelope))
            .collect();
        let mut invocation = scripts::SETTLE.key(keys.processing(&self.worker));
        invocation
            .key(keys.dead())
            .key(keys.skipped())
            .arg(removed.len())
            .arg(dead_entries.len());
        // In claim order, oldest first: a batch is the oldest part of the processing list, at
        // its tail, and the script removes from the tail, so each LREM finds its envelope at
        // once even while the next batch (claimed during this one's write) sits at the head.
        for envelope in &removed {
            invocation.arg(*envelope);
        }
        append_dead_and_skipped(&mut invocation, dead_entries, &settlement.skipped);
        let mut connection = self.queue.connection();
        let _: i64 = invocation.invoke_async(&mut connection).await?;
        Ok(())
    }

    /// The settlement's dead letters, as stored in the dead list.
    fn dead_entries(&self, settlement: &Settlement) -> Result<Vec<String>, QueueError> {
        let dead_at_ms = now_ms();
        Ok(settlement
            .dead
            .iter()
            .map(|(envelope, reason)| {
                serde_json::to_string(&DeadLetter {
                    reason: reason.clone(),
                    dead_at_ms,
                    worker: self.worker.clone(),
                    envelope: envelope.clone(),
                })
            })
            .collect::<Result<_, _>>()?)
    }
}

/// The tail both settle scripts share: the dead entries, then (reason, count) pairs.
fn append_dead_and_skipped(
    invocation: &mut redis::ScriptInvocation<'_>,
    dead_entries: &[String],
    skipped: &[(String, u64)],
) {
    for entry in dead_entries {
        invocation.arg(entry);
    }
    for (reason, count) in skipped {
        invocation.arg(reason).arg(*count);
    }
}

fn connect_manager(url: &str, response_timeout: Duration) -> Result<ConnectionManager, QueueError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(response_timeout))
        // Few, quick reconnection attempts per failure: a request waiting on Redis must fail
        // within its bound so the receiver can answer 503; the next request tries again.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    // Lazy: a service that starts while Redis is down comes up anyway and answers 503 (or
    // waits) until Redis is back, instead of crash-looping.
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
