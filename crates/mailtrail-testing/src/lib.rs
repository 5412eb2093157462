//! mailtrail-testing: isolated real services for tests (never mocks).
//!
//! - [`TestDatabase`] creates a uniquely named Postgres database, migrated, and drops it when the
//!   test ends (`DROP DATABASE ... WITH (FORCE)`, so a connection a test left open cannot keep it).
//! - [`TestRedis`] hands out a unique key prefix on the shared Redis and deletes its keys after.
//!
//! - [`ChaosProxy`] sits between a process and a server and can cut every connection, so a test
//!   can take Postgres or Redis "down" without touching the shared servers.
//! - [`PrivateRedis`] runs a `redis-server` of the test's own on a free port, to stop and restart.
//!
//! Both read the server addresses from `MAILTRAIL_TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `MAILTRAIL_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/`), so parallel tests and CI runs sharing the machine never collide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

mod chaos;
mod private_redis;

pub use chaos::ChaosProxy;
pub use private_redis::{PrivateRedis, free_port};

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

/// A fresh, migrated database, dropped on drop.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates and migrates a new database.
    pub async fn create() -> Self {
        let admin_url = admin_database_url();
        let name = unique_name("db");
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot reach test Postgres at {admin_url}: {error}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = database_url_for(&admin_url, &name);
        let connection = mailtrail_store::connect(&url, Duration::from_secs(30))
            .await
            .expect("connect to test database");
        mailtrail_store::migrate(connection)
            .await
            .expect("migrate test database");
        Self { name, url }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to it.
    pub async fn connect(&self) -> mailtrail_store::StoreConnection {
        mailtrail_store::connect(&self.url, Duration::from_secs(30))
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a plain thread with its own runtime can block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut admin = AsyncPgConnection::establish(&admin_database_url())
                    .await
                    .ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Replaces the database name in a Postgres URL.
fn database_url_for(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_credentials_and_options() {
        assert_eq!(
            database_url_for("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url_for("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(database_url_for("postgres://h", "x"), "postgres://h/x");
    }
}
