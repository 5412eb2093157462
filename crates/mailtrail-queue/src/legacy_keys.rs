//! Moving a queue from the key names used before hash tags (`mailtrail:events`, ...) to the
//! current ones (`{mailtrail}:events`, see [`crate::keys`]), for `mailtrail queue migrate-keys`.
//!
//! Only a single Redis server can hold old names (a cluster refused the old scripts), and there
//! every key is reachable from one connection, so each move is one Redis command:
//!
//! - the **backlog** and the **dead letters** go to the first shard's lists, one `LMOVE` per
//!   entry, behind what is there already: they are older than anything queued under the new names
//!   (the old backlog's oldest envelope ends at the new backlog's consumer end, taken first);
//! - **in-flight** lists of workers that ran the old version are requeued the same way, behind
//!   the backlog's consumer end, as a reaper would; so this is refused while any of those workers
//!   still holds a lease under the old names ([`QueueError::LegacyWorkersAlive`]);
//! - **skip counts** are added to the first shard's, **recovery counters** merged (a counter
//!   already under the new names wins), and both old hashes removed;
//! - **token markers** are renamed into the shard each token's webhook goes to, keeping their
//!   TTL, so a Mailgun retry of a webhook accepted before the move is still recognised.
//!
//! Every `LMOVE` moves one entry atomically, so an envelope is always in exactly one list, and a
//! migration cut short is finished by running it again; on a queue with nothing under the old
//! names it does nothing. Leases, registrations and settle markers under the old names belong to
//! stopped workers and are left to expire (or removed with the workers set).

use redis::AsyncCommands;

use crate::Queue;
use crate::error::QueueError;
use crate::keys::QueueKeys;

/// What is stored under the old key names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyKeys {
    /// Envelopes in the old backlog.
    pub backlog: u64,
    /// Envelopes in old workers' in-flight lists.
    pub in_flight: u64,
    /// Old dead letters.
    pub dead: u64,
    /// Reasons in the old skip counts.
    pub skip_reasons: u64,
    /// Old recovery (poison) counters.
    pub recovery_counters: u64,
    /// Old signature-token markers.
    pub tokens: u64,
    /// Workers that hold a lease under the old names (must be stopped first).
    pub live_workers: Vec<String>,
}

impl LegacyKeys {
    /// True when nothing is left to move.
    pub fn is_empty(&self) -> bool {
        self.backlog == 0
            && self.in_flight == 0
            && self.dead == 0
            && self.skip_reasons == 0
            && self.recovery_counters == 0
            && self.tokens == 0
    }
}

impl Queue {
    /// What the old key names hold (nothing on a cluster).
    pub async fn legacy_keys(&self) -> Result<LegacyKeys, QueueError> {
        if self.is_cluster() {
            return Ok(LegacyKeys::default());
        }
        let old = QueueKeys::legacy(self.keys().prefix());
        let mut connection = self.connection();
        let mut found = LegacyKeys {
            backlog: connection.llen(old.events()).await?,
            dead: connection.llen(old.dead()).await?,
            skip_reasons: connection.hlen(old.skipped()).await?,
            recovery_counters: connection.hlen(old.recovered()).await?,
            ..LegacyKeys::default()
        };
        for list in self.scan(&old.processing("*")).await? {
            let length: u64 = connection.llen(&list).await?;
            found.in_flight += length;
        }
        found.tokens = self.scan(&old.token("*")).await?.len() as u64;
        let lease_prefix = old.lease("");
        found.live_workers = self
            .scan(&old.lease("*"))
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&lease_prefix).map(str::to_owned))
            .collect();
        found.live_workers.sort();
        Ok(found)
    }

    /// Moves everything under the old key names to the current ones (see the module doc), and
    /// returns what it moved. Refused while old workers hold leases, and on a cluster.
    pub async fn migrate_legacy_keys(&self) -> Result<LegacyKeys, QueueError> {
        if self.is_cluster() {
            return Err(QueueError::LegacyKeysOnCluster);
        }
        let before = self.legacy_keys().await?;
        if !before.live_workers.is_empty() {
            return Err(QueueError::LegacyWorkersAlive {
                workers: before.live_workers,
            });
        }
        let old = QueueKeys::legacy(self.keys().prefix());
        let first = self.keys().clone();
        let mut moved = LegacyKeys {
            backlog: self.move_list(&old.events(), &first.events()).await?,
            ..LegacyKeys::default()
        };
        for list in self.scan(&old.processing("*")).await? {
            moved.in_flight += self.move_list(&list, &first.events()).await?;
        }
        moved.dead = self.move_list(&old.dead(), &first.dead()).await?;
        let mut connection = self.connection();
        let skipped: Vec<(String, i64)> = connection.hgetall(old.skipped()).await?;
        for (reason, count) in &skipped {
            connection
                .hincr::<_, _, _, ()>(first.skipped(), reason, *count)
                .await?;
        }
        moved.skip_reasons = skipped.len() as u64;
        let counters: Vec<(String, String)> = connection.hgetall(old.recovered()).await?;
        for (field, value) in &counters {
            connection
                .hset_nx::<_, _, _, ()>(first.recovered(), field, value)
                .await?;
        }
        moved.recovery_counters = counters.len() as u64;
        connection
            .del::<_, ()>(&[old.skipped(), old.recovered(), old.workers()])
            .await?;
        let token_prefix = old.token("");
        for key in self.scan(&old.token("*")).await? {
            let Some(token) = key.strip_prefix(&token_prefix) else {
                continue;
            };
            let target = self.keys_for_token(token).token(token);
            // A marker may expire between the scan and the rename; that is not an error.
            let renamed: redis::RedisResult<()> = connection.rename(&key, &target).await;
            if renamed.is_ok() {
                moved.tokens += 1;
            }
        }
        Ok(moved)
    }

    /// Moves every entry of `from` behind the consumer end of `to`, newest first, so the oldest
    /// ends up taken first; returns how many moved.
    async fn move_list(&self, from: &str, to: &str) -> Result<u64, QueueError> {
        let mut connection = self.connection();
        let mut moved = 0;
        loop {
            let entry: Option<String> = connection
                .lmove(from, to, redis::Direction::Left, redis::Direction::Right)
                .await?;
            if entry.is_none() {
                return Ok(moved);
            }
            moved += 1;
        }
    }

    /// Every key matching `pattern`, by `SCAN` (never `KEYS`, which would block Redis).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let mut connection = self.connection();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            keys.extend(batch);
            if next == 0 {
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }
}
