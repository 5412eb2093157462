//! The queue handle and its connection: how it is made, and whether Redis keeps what it holds.
//!
//! [`Queue::connect`] is the only way to get a [`Queue`]. It never waits for Redis: the
//! connection is made on first use, by the async runtime that uses it first, which then drives
//! it. So a service that starts while Redis is down comes up anyway (and answers 503, or waits)
//! instead of crash-looping, and the receiver can open one queue per HTTP worker thread inside
//! actix's synchronous app factory, each driven by the thread that uses it.
//!
//! The connection reconnects by itself and fails a command within `response_timeout`, so a
//! webhook waiting on Redis gets its 503 within a known bound. It is never handed out: every
//! Redis command mailtrail sends is a method of the queue (in the module of its role), so the
//! keys a command touches are always the ones [`QueueKeys`] documents.
//!
//! [`Queue::check_durability`] is the one start-up check, shared by the receiver and the worker,
//! that Redis will not silently drop queued envelopes (eviction, no append-only file).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use crate::error::{DurabilityError, QueueError};
use crate::keys::QueueKeys;
use crate::redis_connection::RedisConnection;

/// Connection settings for the queue.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// `redis://` URL; on a cluster, a comma-separated list of seed nodes' URLs.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// How long one command may take before it fails (bounds a webhook's wait for Redis).
    pub response_timeout: Duration,
    /// `url` names the seed nodes of a Redis Cluster (`MAILTRAIL_REDIS_CLUSTER`).
    pub cluster: bool,
    /// How many shards the queue has (`MAILTRAIL_QUEUE_SHARDS`; 0 is taken as 1).
    pub shards: u16,
}

impl QueueSettings {
    /// Settings for an unsharded queue on a single Redis server.
    pub fn single(url: impl Into<String>, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            response_timeout: timeout,
            cluster: false,
            shards: 1,
        }
    }
}

/// The Redis queue. Cheap to clone: clones share one multiplexed, self-reconnecting connection.
///
/// A handle covers every shard of the queue; [`Queue::shards`] gives a handle on each shard
/// alone, on which the same methods act on that shard only.
#[derive(Clone)]
pub struct Queue {
    connection: RedisConnection,
    /// The shards this handle covers, in order (never empty).
    shards: Arc<[Arc<Shard>]>,
    /// Which shard the next push without a token goes to, turn by turn.
    pub(crate) push_turn: Arc<AtomicUsize>,
}

/// One shard's keys, and where the reaper's pruning of its stale recovery counters goes on.
pub(crate) struct Shard {
    keys: QueueKeys,
    /// An `HSCAN` cursor; kept here rather than in Redis because losing it only means the next
    /// pass starts over.
    pub(crate) prune_cursor: AtomicU64,
}

impl Queue {
    /// A queue over a connection that is made on first use and reconnects by itself after a
    /// Redis restart. Fails only when the URL is unusable.
    pub fn connect(settings: &QueueSettings) -> Result<Self, QueueError> {
        let connection =
            RedisConnection::open(&settings.url, settings.cluster, settings.response_timeout)?;
        Ok(Self::over(connection, settings))
    }

    /// The queue of `settings` over an open connection.
    pub(crate) fn over(connection: RedisConnection, settings: &QueueSettings) -> Self {
        let shards = QueueKeys::shards(&settings.prefix, settings.shards)
            .into_iter()
            .map(|keys| {
                Arc::new(Shard {
                    keys,
                    prune_cursor: AtomicU64::new(0),
                })
            })
            .collect();
        Self {
            connection,
            shards,
            push_turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The key names of this handle's first shard (the only one of an unsharded queue, or of a
    /// handle from [`Queue::shards`]).
    pub fn keys(&self) -> &QueueKeys {
        &self.shards[0].keys
    }

    /// The key names of shard `index` of this handle (the first past the last: callers take
    /// the index modulo [`Queue::shard_count`]).
    pub(crate) fn shard_keys(&self, index: usize) -> &QueueKeys {
        &self.shards.get(index).unwrap_or(&self.shards[0]).keys
    }

    /// How many shards this handle covers.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A handle on each shard alone, in order; the handle itself when it covers one shard.
    pub fn shards(&self) -> Vec<Queue> {
        (0..self.shards.len())
            .filter_map(|index| self.shard(index))
            .collect()
    }

    /// The handle on shard `index` alone (`None` past the last shard).
    pub fn shard(&self, index: usize) -> Option<Queue> {
        if self.shards.len() == 1 {
            return (index == 0).then(|| self.clone());
        }
        let shard = self.shards.get(index)?;
        Some(Queue {
            connection: self.connection.clone(),
            shards: Arc::from([shard.clone()]),
            push_turn: self.push_turn.clone(),
        })
    }

    /// This handle's first shard.
    pub(crate) fn first_shard(&self) -> &Shard {
        &self.shards[0]
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.connection.is_cluster()
    }

    /// A handle on the shared connection, for this crate's commands.
    pub(crate) fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// Answers whether Redis responds.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Reads Redis' durability settings. Managed Redis services often disable `CONFIG`; then
    /// every field is `None` and the caller cannot check.
    pub async fn durability(&self) -> Result<RedisDurability, QueueError> {
        let mut connection = self.connection();
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

    /// Warns about Redis settings that can lose queued events; with `require_noeviction`, refuses
    /// an evicting `maxmemory-policy` instead. Redis not answering within `timeout` (or at all)
    /// is not an error: services start while Redis is down, so the check is then skipped with a
    /// warning.
    pub async fn check_durability(
        &self,
        require_noeviction: bool,
        timeout: Duration,
    ) -> Result<(), DurabilityError> {
        let durability = match tokio::time::timeout(timeout, self.durability()).await {
            Ok(Ok(durability)) => durability,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read Redis settings; durability not checked");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "Redis did not answer in time; durability not checked"
                );
                return Ok(());
            }
        };
        durability.check(require_noeviction)
    }
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
    /// policy is refused instead.
    pub fn check(&self, require_noeviction: bool) -> Result<(), DurabilityError> {
        if self.may_evict() {
            let policy = self.maxmemory_policy.clone().unwrap_or_default();
            if require_noeviction {
                return Err(DurabilityError::Evicting { policy });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_evicting_policy_can_be_refused() {
        let evicting = RedisDurability {
            maxmemory_policy: Some("allkeys-lru".into()),
            ..RedisDurability::default()
        };
        assert_eq!(
            evicting.check(true),
            Err(DurabilityError::Evicting {
                policy: "allkeys-lru".into()
            })
        );
        assert_eq!(evicting.check(false), Ok(()));
        let safe = RedisDurability {
            maxmemory_policy: Some("noeviction".into()),
            appendonly: Some("no".into()),
            appendfsync: None,
        };
        assert_eq!(
            safe.check(true),
            Ok(()),
            "no AOF is warned about, not refused"
        );
        assert_eq!(
            RedisDurability::default().check(true),
            Ok(()),
            "unreadable settings cannot be refused"
        );
    }
}
