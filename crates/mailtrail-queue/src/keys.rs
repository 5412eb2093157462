//! Every Redis key mailtrail uses, in one place.
//!
//! A queue is made of one or more **shards** (`MAILTRAIL_QUEUE_SHARDS`, default 1). Every key of
//! one shard starts with the shard's hash tag, `{tag}:` (written `{tag}:` below), so Redis
//! Cluster puts all of them in one slot and the scripts, which touch several keys of one shard,
//! run on a cluster as they do on a single node:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `{tag}:events` | list | backlog: the receiver LPUSHes envelopes, workers take from the right |
//! | `{tag}:processing:{worker}` | list | envelopes a worker has claimed and not yet acknowledged |
//! | `{tag}:workers` | set | worker ids that may own a processing list |
//! | `{tag}:worker:{worker}` | string, TTL | heartbeat lease `{renewed_ms}:{instance}`; gone means the worker is dead |
//! | `{tag}:dead` | list | dead letters: JSON `{reason, dead_at_ms, worker, envelope}` |
//! | `{tag}:token:{token}` | string, TTL | signature tokens already accepted (replay protection) |
//! | `{tag}:skipped` | hash | reason → count of events skipped for lack of custom variables |
//! | `{tag}:recovered` | hash | SHA-1 of an envelope → `{count}:{first_ms}`: times it was recovered from a dead worker since `first_ms` |
//! | `{tag}:reaped:{worker}` | hash, TTL | the recovery counts the last reap of `worker` added (SHA-1 → count), taken back if that worker turns out to be alive |
//! | `{tag}:settled:{batch}` | string, TTL | a claimed batch whose settle took effect; a repeated settle of it does nothing |
//! | `{tag}:reconcile:{domain}` | string | microseconds since the epoch up to which `mailtrail reconcile` has queued `domain`'s events; set in the same transaction as the push of the events it covers (shard 0's tag, the shard reconciliation pushes to) |
//!
//! **Tags.** The tag is the prefix (`MAILTRAIL_REDIS_PREFIX`, default `mailtrail:`) without its
//! trailing `:`: with one shard, `{mailtrail}:events`. With N shards, shard `s` takes the first
//! of `{mailtrail:s}`, `{mailtrail:s.1}`, `{mailtrail:s.2}`, ... whose hash slot lies in the
//! middle half of the `s`-th of N equal slot ranges, so on a cluster whose masters split the
//! slots evenly (what `redis-cli --cluster create` does) N shards on N masters land one per
//! master. The names depend only on the prefix and N, so every process computes the same ones.
//!
//! Before hash tags the keys were the prefix followed by the name (`mailtrail:events`); see
//! [`QueueKeys::legacy`] and `mailtrail queue migrate-keys`.
//!
//! **A shard is a whole queue.** Each shard has its own backlog, processing lists, leases,
//! dead letters and counters; a worker holds a lease and a processing list in every shard and
//! claims from each in turn. Invariants, per shard: an envelope is, at every instant, in exactly
//! one of `events`, some `processing:{worker}` or `dead` (briefly in two while a script moves it,
//! never in none), and a token key exists only if its envelope was pushed in the same atomic
//! step (the token picks the shard, so its marker and its backlog share the tag). A settle takes
//! effect at most once per claimed batch (its `settled:{batch}` marker is set in the same step),
//! and only while its worker's process holds the lease, so no settle reaches a processing list
//! that a reaper has emptied meanwhile.
//!
//! Every key a script touches is one of the script's `KEYS`, never built inside the script, so
//! the scripts stay valid on Redis Cluster. That is why the recovery counters are fields of one
//! hash rather than one key per envelope: a field has no TTL of its own, so its value carries the
//! start of its window, the requeue script ignores (and restarts) a counter whose window is over,
//! and the reaper prunes such fields a bounded number at a time.

/// The number of hash slots of Redis Cluster.
const CLUSTER_SLOTS: u32 = 16_384;

/// The key names of one shard of a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// The prefix as configured (`mailtrail:`).
    prefix: String,
    /// What every key of the shard starts with (`{mailtrail}:`).
    base: String,
    /// The shard's index.
    shard: u16,
}

impl QueueKeys {
    /// The keys of an unsharded queue under `prefix` (with its trailing `:`): `{mailtrail}:...`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self::shard(prefix, 0, 1)
    }

    /// The keys of shard `shard` of a queue of `shards` shards under `prefix`.
    pub fn shard(prefix: impl Into<String>, shard: u16, shards: u16) -> Self {
        let prefix = prefix.into();
        let base = format!("{{{}}}:", shard_tag(&tag_stem(&prefix), shard, shards));
        Self {
            prefix,
            base,
            shard,
        }
    }

    /// The keys of every shard of a queue of `shards` shards (at least one) under `prefix`.
    pub fn shards(prefix: &str, shards: u16) -> Vec<Self> {
        let shards = shards.max(1);
        (0..shards)
            .map(|shard| Self::shard(prefix, shard, shards))
            .collect()
    }

    /// The names used before hash tags: the prefix followed by the name (`mailtrail:events`).
    /// Read only by `mailtrail queue migrate-keys`, which moves what they hold.
    pub fn legacy(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            base: prefix.clone(),
            prefix,
            shard: 0,
        }
    }

    /// The prefix as configured.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What every key of this shard starts with (`{mailtrail}:`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The shard's index (0 for an unsharded queue).
    pub fn shard_index(&self) -> u16 {
        self.shard
    }

    /// The backlog list.
    pub fn events(&self) -> String {
        format!("{}events", self.base)
    }

    /// A worker's in-flight list.
    pub fn processing(&self, worker: &str) -> String {
        format!("{}processing:{worker}", self.base)
    }

    /// The set of registered workers.
    pub fn workers(&self) -> String {
        format!("{}workers", self.base)
    }

    /// A worker's heartbeat lease.
    pub fn lease(&self, worker: &str) -> String {
        format!("{}worker:{worker}", self.base)
    }

    /// The dead-letter list.
    pub fn dead(&self) -> String {
        format!("{}dead", self.base)
    }

    /// The marker of an accepted signature token.
    pub fn token(&self, token: &str) -> String {
        format!("{}token:{token}", self.base)
    }

    /// The hash of per-envelope recovery counters (field: SHA-1 of the envelope).
    pub fn recovered(&self) -> String {
        format!("{}recovered", self.base)
    }

    /// The hash of skipped-event counts by reason.
    pub fn skipped(&self) -> String {
        format!("{}skipped", self.base)
    }

    /// What the last reap of `worker` added to the recovery counters.
    pub fn reaped(&self, worker: &str) -> String {
        format!("{}reaped:{worker}", self.base)
    }

    /// The marker of a settled batch.
    pub fn settled(&self, batch: &str) -> String {
        format!("{}settled:{batch}", self.base)
    }

    /// How far reconciliation with Mailgun's Events API got for `domain`.
    pub fn reconcile_checkpoint(&self, domain: &str) -> String {
        format!("{}reconcile:{domain}", self.base)
    }
}

/// The shard (of `shards`) a signature token's webhook goes to: its hash slot, modulo.
pub fn shard_of_token(token: &str, shards: u16) -> u16 {
    (hash_slot(token.as_bytes()) % shards.max(1) as u32) as u16
}

/// The prefix without its trailing `:`, braces removed (they would end the tag early) and never
/// empty (an empty tag `{}` is no tag: Redis would hash the whole key).
fn tag_stem(prefix: &str) -> String {
    let stem: String = prefix
        .trim_end_matches(':')
        .chars()
        .filter(|c| *c != '{' && *c != '}')
        .collect();
    if stem.is_empty() {
        "mailtrail".to_owned()
    } else {
        stem
    }
}

/// The tag of shard `shard` of `shards`: see the module doc.
fn shard_tag(stem: &str, shard: u16, shards: u16) -> String {
    if shards <= 1 {
        return stem.to_owned();
    }
    let width = CLUSTER_SLOTS / shards as u32;
    let low = shard as u32 * width + width / 4;
    let high = shard as u32 * width + width * 3 / 4;
    let first = format!("{stem}:{shard}");
    // About 2 tries on average; the bound only guards against a pathological stem.
    (0..10_000)
        .map(|attempt| match attempt {
            0 => first.clone(),
            _ => format!("{stem}:{shard}.{attempt}"),
        })
        .find(|tag| (low..high).contains(&hash_slot(tag.as_bytes())))
        .unwrap_or(first)
}

/// Redis Cluster's hash slot of a key: CRC-16/XMODEM of its hash tag (or of the whole key when
/// it has none), modulo 16384.
pub fn hash_slot(key: &[u8]) -> u32 {
    let hashed = key
        .iter()
        .position(|byte| *byte == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|byte| *byte == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(hashed) as u32 % CLUSTER_SLOTS
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes with.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= (*byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_names() {
        let keys = QueueKeys::new("mailtrail:");
        assert_eq!(keys.events(), "{mailtrail}:events");
        assert_eq!(keys.processing("w1"), "{mailtrail}:processing:w1");
        assert_eq!(keys.workers(), "{mailtrail}:workers");
        assert_eq!(keys.lease("w1"), "{mailtrail}:worker:w1");
        assert_eq!(keys.dead(), "{mailtrail}:dead");
        assert_eq!(keys.token("abc"), "{mailtrail}:token:abc");
        assert_eq!(keys.skipped(), "{mailtrail}:skipped");
        assert_eq!(keys.recovered(), "{mailtrail}:recovered");
        assert_eq!(keys.reaped("w1"), "{mailtrail}:reaped:w1");
        assert_eq!(keys.settled("b7"), "{mailtrail}:settled:b7");
        assert_eq!(
            keys.reconcile_checkpoint("mg.example.com"),
            "{mailtrail}:reconcile:mg.example.com"
        );
        assert_eq!(keys.prefix(), "mailtrail:");
    }

    #[test]
    fn legacy_names_are_the_prefix_and_the_name() {
        let keys = QueueKeys::legacy("mailtrail:");
        assert_eq!(keys.events(), "mailtrail:events");
        assert_eq!(keys.processing("w1"), "mailtrail:processing:w1");
        assert_eq!(keys.dead(), "mailtrail:dead");
    }

    #[test]
    fn hash_slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"somekey"), 11058);
        assert_eq!(hash_slot(b"{foo}:bar"), 12182);
        assert_eq!(hash_slot(b"{}foo"), hash_slot(b"{}foo"));
        assert_ne!(hash_slot(b"{}foo"), hash_slot(b"foo"));
    }

    #[test]
    fn every_key_of_a_shard_shares_its_slot() {
        for keys in QueueKeys::shards("mailtrail:", 3) {
            let slot = hash_slot(keys.events().as_bytes());
            for key in [
                keys.processing("w"),
                keys.workers(),
                keys.lease("w"),
                keys.dead(),
                keys.token("t"),
                keys.skipped(),
                keys.recovered(),
                keys.reaped("w"),
                keys.settled("b"),
            ] {
                assert_eq!(hash_slot(key.as_bytes()), slot, "{key}");
            }
        }
    }

    #[test]
    fn shards_spread_over_equal_slot_ranges() {
        for prefix in ["mailtrail:", "x:", "mailtrail_test_redis_1_2_3:"] {
            for shards in [2u16, 3, 5] {
                let width = CLUSTER_SLOTS / shards as u32;
                for keys in QueueKeys::shards(prefix, shards) {
                    let slot = hash_slot(keys.events().as_bytes());
                    assert_eq!(slot / width, keys.shard_index() as u32, "{}", keys.base());
                }
            }
        }
    }

    #[test]
    fn a_token_always_goes_to_the_same_shard() {
        assert_eq!(shard_of_token("abc", 1), 0);
        assert_eq!(shard_of_token("abc", 3), shard_of_token("abc", 3));
        let used: std::collections::BTreeSet<u16> = (0..100)
            .map(|n| shard_of_token(&format!("token-{n}"), 3))
            .collect();
        assert_eq!(used.len(), 3);
    }
}
