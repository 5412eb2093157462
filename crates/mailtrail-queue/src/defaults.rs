//! Defaults every binary that reaches the queue shares, defined once.
//!
//! The receiver, the worker and the CLI each read `REDIS_URL` and `MAILTRAIL_REDIS_PREFIX`; if
//! their defaults drifted apart, a receiver and a worker started without those variables would
//! silently use different queues. The README's configuration table lists the same values, and a
//! test in `mailtrail-cli` compares it with the configuration structs.

/// `REDIS_URL` when unset: a Redis on the local machine, database 0.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// `MAILTRAIL_REDIS_PREFIX` when unset; every key name starts with it (see [`crate::keys`]).
pub const DEFAULT_REDIS_PREFIX: &str = "mailtrail:";

/// `MAILTRAIL_QUEUE_SHARDS` when unset: one backlog, as before shards existed.
pub const DEFAULT_QUEUE_SHARDS: u16 = 1;
