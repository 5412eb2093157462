//! mailtrail-queue: the Redis queue between the receiver and the worker.
//!
//! The receiver pushes envelopes with [`Queue::push_webhook`], which records the signature token
//! and pushes in one Lua script. Workers claim batches with [`WorkerQueue::claim_batch`] (LMOVE /
//! BLMOVE into their own processing list), and after Postgres commits they settle the batch with
//! [`WorkerQueue::settle`]: acknowledge, dead-letter and count skips in one atomic step. A worker
//! that dies leaves its processing list behind; its lease expires and any other worker's reaper
//! ([`Queue::reap_dead_workers`]) moves the list back onto the backlog. See [`keys`] for every key
//! and the invariants the scripts keep.

pub mod defaults;
mod error;
mod inspect;
pub mod keys;
mod queue;
mod scripts;

pub use error::QueueError;
pub use keys::QueueKeys;
pub use queue::{
    ClaimedBatch, DeadLetter, POISON_CAP, POISON_WINDOW, PushOutcome, Queue, QueueSettings,
    RedisDurability, Requeued, SettledBy, Settlement, WorkerQueue, now_ms,
};
