//! mailtrail-queue: the Redis queue between the receiver and the worker.
//!
//! The receiver pushes envelopes with [`Queue::push_webhook`], which records the signature token
//! and pushes in one Lua script. Workers claim batches with [`WorkerQueue::claim_batch`] (LMOVE /
//! BLMOVE into their own processing list), and after Postgres commits they settle the batch with
//! [`WorkerQueue::settle`]: acknowledge, dead-letter and count skips in one atomic step, which
//! takes effect once however often it is sent, and only while the worker holds its lease. A
//! worker that dies leaves its processing list behind; its lease expires and any other worker's
//! reaper ([`Queue::reap_dead_workers`]) moves the list back onto the backlog, counting towards
//! poison detection unless the worker comes back ([`Queue::absolve`]). See [`keys`] for every key
//! and the invariants the scripts keep.
//!
//! One file per role, each adding its methods to [`Queue`]:
//!
//! | module | role |
//! |---|---|
//! | `connection` | [`Queue::connect`], the one way to a queue, and its shards; the Redis durability check |
//! | `redis_connection` | one Redis server or a Redis Cluster behind one connection type |
//! | `producer` | pushing envelopes onto the backlog |
//! | `checkpoint` | reconciliation's checkpoint per domain, advanced with the push of what it covers |
//! | `claim` | a worker's claim, fair over the shards ([`Claimed`]) |
//! | `consumer` | a worker's settle ([`WorkerQueue`]) |
//! | `lease` | leases, requeue of a dead worker's envelopes, poison detection, release |
//! | `dead_letters` | reading, replaying and purging dead letters |
//! | `dead_erasure` | finding and removing the dead letters that hold a person's address |
//! | `inspect` | read-only views: backlog, in flight, skip counts |
//! | `legacy_keys` | moving a queue from the key names before hash tags to the current ones |
//! | `scripts` | every Lua script, with the keys and arguments it takes |

mod checkpoint;
mod claim;
mod connection;
mod consumer;
mod dead_erasure;
mod dead_letters;
pub mod defaults;
mod error;
mod inspect;
pub mod keys;
mod lease;
mod legacy_keys;
mod producer;
mod redis_connection;
mod scripts;

pub use claim::Claimed;
pub use connection::{Queue, QueueSettings, RedisDurability};
pub use consumer::{
    ClaimedBatch, DeadEnvelope, SETTLED_MARKER_TTL, SettledBy, Settlement, SkippedCount,
    WorkerQueue,
};
pub use dead_letters::{DeadEntry, DeadLetter, PurgedWindow, ReplayableDeadLetter};
pub use error::{DurabilityError, QueueError};
pub use inspect::{BacklogSnapshot, InFlight};
pub use keys::QueueKeys;
pub use lease::{Heartbeat, POISON_CAP, POISON_WINDOW, ReapedWorker, Requeued};
pub use legacy_keys::LegacyKeys;
pub use producer::PushOutcome;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
