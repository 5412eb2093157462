//! [`TestRedis`]: a unique key prefix on the shared Redis, its keys deleted when the test ends.

use crate::{redis_url, unique_name};

/// A unique key prefix on the shared Redis; its keys are deleted on drop.
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

    /// The value of a key under the prefix (`events`, `dead`, ...) as a list.
    pub fn list(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(format!("{}{key}", self.prefix))
            .arg(0)
            .arg(-1)
            .query(&mut self.connection())
            .expect("LRANGE")
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
