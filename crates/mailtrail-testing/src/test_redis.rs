//! [`TestRedis`]: a unique key prefix on a Redis server (or a Redis Cluster of the test's own),
//! its keys deleted when the test ends, and the looks at the queue's keys tests assert on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailtrail_core::Envelope;
use mailtrail_queue::{Queue, QueueKeys, QueueSettings, WorkerQueue};
use serde_json::Value;

use crate::{RedisCluster, redis_url, unique_name};

/// Where a test's queue lives: the shared Redis server, or a Redis Cluster started for the test,
/// with so many shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueLayout {
    /// The shared single Redis server, one shard (what most tests use).
    Single,
    /// A local three-master Redis Cluster of the test's own, with `shards` shards.
    Cluster {
        /// `MAILTRAIL_QUEUE_SHARDS`.
        shards: u16,
    },
}

impl QueueLayout {
    /// The cluster layouts the end-to-end, reliability and CLI tests also run on.
    pub const ON_CLUSTER: [QueueLayout; 2] = [
        QueueLayout::Cluster { shards: 1 },
        QueueLayout::Cluster { shards: 3 },
    ];
}

/// A unique key prefix on the shared Redis (or another server, or a cluster); its keys are
/// deleted on drop.
pub struct TestRedis {
    prefix: String,
    url: String,
    /// The cluster the prefix lives on, kept running as long as the prefix.
    cluster: Option<Arc<RedisCluster>>,
    /// Every shard's keys.
    shards: Vec<QueueKeys>,
}

impl TestRedis {
    /// A new prefix (`mailtrail_test_redis_…:`).
    pub fn new() -> Self {
        Self::on(&redis_url())
    }

    /// A new prefix on another server than the shared one: a [`crate::PrivateRedis`], or an
    /// address nothing listens on.
    pub fn on(url: &str) -> Self {
        let prefix = format!("{}:", unique_name("redis"));
        Self {
            shards: QueueKeys::shards(&prefix, 1),
            prefix,
            url: url.to_owned(),
            cluster: None,
        }
    }

    /// A new prefix laid out as `layout` says (a cluster layout starts a cluster of its own).
    pub fn with_layout(layout: QueueLayout) -> Self {
        match layout {
            QueueLayout::Single => Self::new(),
            QueueLayout::Cluster { shards } => {
                let cluster = RedisCluster::start();
                let prefix = format!("{}:", unique_name("redis"));
                Self {
                    shards: QueueKeys::shards(&prefix, shards),
                    prefix,
                    url: cluster.url(),
                    cluster: Some(Arc::new(cluster)),
                }
            }
        }
    }

    /// The prefix, with its trailing `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis URL (on a cluster, the comma-separated seed list).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True on a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// How many shards the queue has.
    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
    }

    /// The name of queue key `name` (`events`, `token:t1`, ...) in the first shard.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.shards[0].base())
    }

    /// The variables that point a mailtrail process at this prefix.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_URL", self.url.clone()),
            ("MAILTRAIL_REDIS_PREFIX", self.prefix.clone()),
            ("MAILTRAIL_REDIS_CLUSTER", self.is_cluster().to_string()),
            ("MAILTRAIL_QUEUE_SHARDS", self.shard_count().to_string()),
        ]
    }

    /// A plain synchronous connection for assertions, to the node that holds the first shard.
    pub fn connection(&self) -> redis::Connection {
        self.shard_connection(0).expect("connect to test Redis")
    }

    /// A connection to the node that holds `shard` (on a single server, the server).
    fn shard_connection(&self, shard: usize) -> Option<redis::Connection> {
        let Some(cluster) = &self.cluster else {
            return redis::Client::open(self.url.as_str())
                .and_then(|client| client.get_connection())
                .ok();
        };
        let key = self.shards.get(shard)?.events();
        cluster.node_urls().iter().find_map(|url| {
            let mut connection = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection())
                .ok()?;
            // A node that does not hold the key's slot answers MOVED, an error.
            redis::cmd("TYPE")
                .arg(&key)
                .query::<String>(&mut connection)
                .ok()
                .map(|_| connection)
        })
    }

    /// `LPUSH`es `values` onto a list of the first shard (`events`, `dead`, ...), in order: the
    /// last one given ends at the head.
    pub fn lpush(&self, key: &str, values: impl redis::ToRedisArgs) {
        redis::cmd("LPUSH")
            .arg(self.key(key))
            .arg(values)
            .query::<i64>(&mut self.connection())
            .expect("LPUSH");
    }

    /// A list of the queue (`events`, `dead`, ...): every shard's, one after the other.
    pub fn list(&self, key: &str) -> Vec<String> {
        let mut items = Vec::new();
        for (index, keys) in self.shards.iter().enumerate() {
            let mut connection = self.shard_connection(index).expect("connect to test Redis");
            let in_shard: Vec<String> = redis::cmd("LRANGE")
                .arg(format!("{}{key}", keys.base()))
                .arg(0)
                .arg(-1)
                .query(&mut connection)
                .expect("LRANGE");
            items.extend(in_shard);
        }
        items
    }

    /// The `event-data` of every JSON webhook waiting in the backlog, newest first.
    ///
    /// # Panics
    /// When an envelope in the backlog is not a JSON webhook.
    pub fn queued_event_data(&self) -> Vec<Value> {
        self.list("events")
            .iter()
            .map(|line| {
                let envelope = Envelope::from_json(line).expect("a queued envelope");
                let body = envelope.body_bytes().expect("the envelope's body");
                let mut webhook: Value =
                    serde_json::from_slice(&body).expect("a JSON webhook in the backlog");
                webhook["event-data"].take()
            })
            .collect()
    }

    /// The counters of a hash under the prefix (`skipped`, ...) by field; empty if it does not
    /// exist.
    pub fn counters(&self, key: &str) -> BTreeMap<String, i64> {
        let mut counters = BTreeMap::new();
        for (index, keys) in self.shards.iter().enumerate() {
            let mut connection = self.shard_connection(index).expect("connect to test Redis");
            let in_shard: BTreeMap<String, i64> = redis::cmd("HGETALL")
                .arg(format!("{}{key}", keys.base()))
                .query(&mut connection)
                .expect("HGETALL");
            for (field, count) in in_shard {
                *counters.entry(field).or_default() += count;
            }
        }
        counters
    }

    /// What is still queued under the prefix. Redis not answering counts as not drained.
    pub fn queued(&self) -> Queued {
        let mut queued = Queued {
            backlog: 0,
            in_flight: Vec::new(),
        };
        for (index, keys) in self.shards.iter().enumerate() {
            let Some(mut connection) = self.shard_connection(index) else {
                queued.backlog = -1;
                return queued;
            };
            let backlog: i64 = redis::cmd("LLEN")
                .arg(keys.events())
                .query(&mut connection)
                .unwrap_or(-1);
            if backlog < 0 {
                queued.backlog = -1;
                return queued;
            }
            queued.backlog += backlog;
            let in_flight: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}processing:*", keys.base()))
                .query(&mut connection)
                .unwrap_or_default();
            queued.in_flight.extend(in_flight);
        }
        queued
    }

    /// Waits until the backlog and every worker's processing list are empty, whoever empties
    /// them; panics with what is left after `within`.
    pub async fn wait_drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let queued = self.queued();
            if queued.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained: backlog {}, in flight {:?}",
                queued.backlog,
                queued.in_flight
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Settings for the queue's own clients on this prefix, with a timeout generous enough for
    /// a loaded machine (no test is about the timeout).
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            response_timeout: Duration::from_secs(5),
            cluster: self.is_cluster(),
            shards: self.shard_count(),
        }
    }

    /// A client of the queue on this prefix, as the receiver and the CLI hold one.
    pub fn queue(&self) -> Queue {
        Queue::connect(&self.queue_settings()).expect("connect to the test queue")
    }

    /// Worker `id`'s client of the queue on this prefix; a claim waits at most 100 ms.
    pub fn worker_queue(&self, id: &str) -> WorkerQueue {
        WorkerQueue::connect(&self.queue_settings(), id, Duration::from_millis(100))
            .expect("connect to the test queue")
    }
}

/// The envelopes still queued under a prefix: waiting in the backlog, or claimed by a worker and
/// not yet settled.
#[derive(Debug)]
pub struct Queued {
    /// The backlog's length (-1 when Redis did not answer).
    pub backlog: i64,
    /// The processing lists that hold envelopes (Redis deletes a list once it is empty).
    pub in_flight: Vec<String>,
}

impl Queued {
    /// Nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.backlog == 0 && self.in_flight.is_empty()
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // A cluster of the test's own goes away with its keys.
        if self.cluster.is_some() {
            return;
        }
        let Some(mut connection) = self.shard_connection(0) else {
            return;
        };
        // The queue's keys (`{tag}:...`), and any under the bare prefix (the names before hash
        // tags, which the key migration's tests write).
        let patterns = self
            .shards
            .iter()
            .map(|keys| format!("{}*", keys.base()))
            .chain([format!("{}*", self.prefix)]);
        for pattern in patterns {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        }
    }
}
