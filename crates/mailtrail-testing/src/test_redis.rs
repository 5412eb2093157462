//! [`TestRedis`]: a unique key prefix on a Redis server, its keys deleted when the test ends,
//! and the looks at the queue's keys tests assert on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mailtrail_core::Envelope;
use mailtrail_queue::{Queue, QueueSettings, WorkerQueue};
use serde_json::Value;

use crate::{redis_url, unique_name};

/// A unique key prefix on the shared Redis (or another server); its keys are deleted on drop.
pub struct TestRedis {
    prefix: String,
    url: String,
}

impl TestRedis {
    /// A new prefix (`mailtrail_test_redis_…:`).
    pub fn new() -> Self {
        Self {
            prefix: format!("{}:", unique_name("redis")),
            url: redis_url(),
        }
    }

    /// A new prefix on another server than the shared one: a [`crate::PrivateRedis`], or an
    /// address nothing listens on.
    pub fn on(url: &str) -> Self {
        Self {
            prefix: format!("{}:", unique_name("redis")),
            url: url.to_owned(),
        }
    }

    /// The prefix, with its trailing `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain synchronous connection for assertions.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection())
            .expect("connect to test Redis")
    }

    /// `LPUSH`es `values` onto a list under the prefix (`events`, `dead`, ...), in order: the last
    /// one given ends at the head.
    pub fn lpush(&self, key: &str, values: impl redis::ToRedisArgs) {
        redis::cmd("LPUSH")
            .arg(format!("{}{key}", self.prefix))
            .arg(values)
            .query::<i64>(&mut self.connection())
            .expect("LPUSH");
    }

    /// The value of a key under the prefix (`events`, `dead`, ...) as a list.
    pub fn list(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(format!("{}{key}", self.prefix))
            .arg(0)
            .arg(-1)
            .query(&mut self.connection())
            .expect("LRANGE")
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
        redis::cmd("HGETALL")
            .arg(format!("{}{key}", self.prefix))
            .query(&mut self.connection())
            .expect("HGETALL")
    }

    /// What is still queued under the prefix. Redis not answering counts as not drained.
    pub fn queued(&self) -> Queued {
        let Ok(mut connection) =
            redis::Client::open(self.url.as_str()).and_then(|client| client.get_connection())
        else {
            return Queued {
                backlog: -1,
                in_flight: Vec::new(),
            };
        };
        let backlog = redis::cmd("LLEN")
            .arg(format!("{}events", self.prefix))
            .query(&mut connection)
            .unwrap_or(-1);
        let in_flight = redis::cmd("KEYS")
            .arg(format!("{}processing:*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        Queued { backlog, in_flight }
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
        let Ok(mut connection) =
            redis::Client::open(self.url.as_str()).and_then(|client| client.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}
