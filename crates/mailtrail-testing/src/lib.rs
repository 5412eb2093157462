//! mailtrail-testing: isolated real services for tests (never mocks), and the app built on them.
//!
//! - [`TestDatabase`] creates a uniquely named Postgres database, migrated, and drops it when the
//!   test ends (`DROP DATABASE ... WITH (FORCE)`, so a connection a test left open cannot keep it).
//! - [`TestRedis`] hands out a unique key prefix on the shared Redis and deletes its keys after.
//! - [`event_at`] and [`worker_row`] make the rows the worker would write, to seed the store.
//! - [`TestApp`] starts the real receiver (port 0) and worker in the test's process on both, and
//!   posts signed webhooks to it ([`fresh_token`], [`now_seconds`]); [`scrape`] and [`metric`] read
//!   what their `/metrics` answer.
//!
//! - [`ChaosProxy`] sits between a process and a server and can cut every connection, so a test
//!   can take Postgres or Redis "down" without touching the shared servers.
//! - [`PrivateRedis`] runs a `redis-server` of the test's own on a free port, to stop and restart.
//! - [`FakeMailgun`] serves Mailgun's Events and webhooks API on port 0, with faults on demand.
//! - [`RedisCluster`] runs a three-master Redis Cluster of the test's own; a [`TestRedis`] with a
//!   cluster [`QueueLayout`] starts one, so a test runs the same on a single server and a cluster.
//!
//! The shared servers' addresses come from `MAILTRAIL_TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `MAILTRAIL_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/`); unique names keep parallel tests and CI runs sharing the machine
//! apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod app;
mod chaos;
mod fake_mailgun;
mod metrics;
mod private_redis;
mod redis_cluster;
mod seed;
mod test_database;
mod test_redis;
mod webhooks;

pub use app::{TEST_WORKER_ID, TestApp, TestAppBuilder};
pub use chaos::ChaosProxy;
pub use fake_mailgun::{FAKE_API_KEY, FAKE_SENDING_KEY, FakeMailgun, Fault, SeenRequest};
pub use metrics::{metric, scrape};
pub use private_redis::{PrivateRedis, free_port};
pub use redis_cluster::{CLUSTER_MASTERS, RedisCluster};
pub use seed::{event_at, worker_row};
pub use test_database::TestDatabase;
pub use test_redis::{QueueLayout, Queued, TestRedis};
pub use webhooks::{TEST_SIGNING_KEY, fresh_token, now_seconds};

/// The admin URL of the Postgres server tests use.
pub fn admin_database_url() -> String {
    std::env::var("MAILTRAIL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of the Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("MAILTRAIL_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A name no other test, process or CI run on this machine is using.
pub fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!(
        "mailtrail_test_{kind}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
