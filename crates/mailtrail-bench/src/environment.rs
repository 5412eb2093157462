//! The environment `mailtrail-bench` reads: the same variables, with the same defaults, as the
//! receiver and the operator CLI, so `scripts/bench.sh` sets them once for every process.
//!
//! Every variable is optional at read time, since each mode needs only some: `--fill` needs
//! Redis, `--sql-baseline` Postgres, the HTTP mode a receiver and a signing key. A mode asks for
//! what it needs, and a missing variable is reported by name.

use std::time::Duration;

use anyhow::Context;
use mailtrail_core::{SigningKey, SigningKeys};
use mailtrail_queue::{Queue, QueueSettings};
use mailtrail_store::StoreConnection;
use serde::Deserialize;

/// How long one Redis command may take outside the timed sends.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// Postgres statement timeout: generous, a baseline of a million events is one long run.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// Environment variables of `mailtrail-bench` (names are the upper-cased field names).
#[derive(Clone, Deserialize)]
pub struct BenchEnv {
    /// `DATABASE_URL`: needed by `--sql-baseline` only.
    #[serde(default)]
    pub database_url: Option<String>,
    /// `REDIS_URL`.
    #[serde(default = "default_redis_url")]
    pub redis_url: String,
    /// `MAILTRAIL_REDIS_PREFIX`.
    #[serde(default = "default_prefix")]
    pub mailtrail_redis_prefix: String,
    /// `MAILTRAIL_REDIS_CLUSTER`: `REDIS_URL` lists the seed nodes of a Redis Cluster.
    #[serde(default)]
    pub mailtrail_redis_cluster: bool,
    /// `MAILTRAIL_QUEUE_SHARDS`: how many shards the queue has.
    #[serde(default = "default_queue_shards")]
    pub mailtrail_queue_shards: u16,
    /// `MAILTRAIL_SIGNING_KEYS`: comma-separated; the webhooks are signed with the first.
    #[serde(default)]
    pub mailtrail_signing_keys: Option<String>,
    /// `MAILTRAIL_RECEIVER_URL`: where webhooks are posted without `--url`.
    #[serde(default = "default_receiver_url")]
    pub mailtrail_receiver_url: String,
}

fn default_redis_url() -> String {
    "redis://127.0.0.1:6379/".to_owned()
}
fn default_prefix() -> String {
    "mailtrail:".to_owned()
}
fn default_queue_shards() -> u16 {
    mailtrail_queue::defaults::DEFAULT_QUEUE_SHARDS
}
fn default_receiver_url() -> String {
    "http://127.0.0.1:8080".to_owned()
}

/// A variable a mode needs is missing.
#[derive(Debug, thiserror::Error)]
pub enum BenchConfigError {
    /// A variable is malformed.
    #[error("{0}")]
    Env(#[from] envy::Error),
    /// `DATABASE_URL` is not set and the mode writes Postgres.
    #[error("DATABASE_URL is not set; `mailtrail-bench {mode}` needs it to reach Postgres")]
    MissingDatabaseUrl {
        /// The mode that needs it.
        mode: &'static str,
    },
    /// `MAILTRAIL_SIGNING_KEYS` holds no key.
    #[error(
        "MAILTRAIL_SIGNING_KEYS is not set; `mailtrail-bench` signs the webhooks it posts with its first key"
    )]
    MissingSigningKey,
}

/// The configuration; secrets are held but never printed.
#[derive(Clone)]
pub struct BenchConfig {
    database_url: Option<String>,
    redis_url: String,
    redis_prefix: String,
    redis_cluster: bool,
    queue_shards: u16,
    signing_keys: Option<SigningKeys>,
    receiver_url: String,
}

impl std::fmt::Debug for BenchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchConfig")
            .field("database_url", &self.database_url.as_ref().map(|_| "***"))
            .field("redis_prefix", &self.redis_prefix)
            .field("signing_keys", &self.signing_keys)
            .field("receiver_url", &self.receiver_url)
            .finish_non_exhaustive()
    }
}

impl BenchConfig {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, BenchConfigError> {
        Ok(Self::from_vars(envy::from_env::<BenchEnv>()?))
    }

    /// Takes already read variables; blank values count as unset.
    pub fn from_vars(env: BenchEnv) -> Self {
        let present = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        Self {
            database_url: present(env.database_url),
            redis_url: env.redis_url,
            redis_prefix: env.mailtrail_redis_prefix,
            redis_cluster: env.mailtrail_redis_cluster,
            queue_shards: env.mailtrail_queue_shards.max(1),
            signing_keys: env
                .mailtrail_signing_keys
                .and_then(|keys| SigningKeys::from_comma_separated(&keys).ok()),
            receiver_url: env.mailtrail_receiver_url,
        }
    }

    /// The key webhooks are signed with: the first of `MAILTRAIL_SIGNING_KEYS`.
    pub fn signing_key(&self) -> Result<SigningKey, BenchConfigError> {
        self.signing_keys
            .as_ref()
            .and_then(SigningKeys::first)
            .cloned()
            .ok_or(BenchConfigError::MissingSigningKey)
    }

    /// The receiver's base URL.
    pub fn receiver_url(&self) -> &str {
        &self.receiver_url
    }

    /// The queue connection settings.
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            url: self.redis_url.clone(),
            prefix: self.redis_prefix.clone(),
            response_timeout: REDIS_TIMEOUT,
            cluster: self.redis_cluster,
            shards: self.queue_shards,
        }
    }

    /// The queue, checked with a PING so an unreachable Redis is reported as such.
    pub async fn connect_queue(&self) -> anyhow::Result<Queue> {
        let queue = Queue::connect(&self.queue_settings())
            .context("REDIS_URL is not a usable Redis URL")?;
        queue
            .ping()
            .await
            .context("cannot reach Redis at REDIS_URL")?;
        Ok(queue)
    }

    /// A Postgres connection for `mode`, or an error naming `DATABASE_URL`.
    pub async fn connect_store(&self, mode: &'static str) -> anyhow::Result<StoreConnection> {
        let url = self
            .database_url
            .as_deref()
            .ok_or(BenchConfigError::MissingDatabaseUrl { mode })?;
        mailtrail_store::connect(url, STATEMENT_TIMEOUT)
            .await
            .context("cannot connect to Postgres at DATABASE_URL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BenchConfig {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        BenchConfig::from_vars(envy::from_iter::<_, BenchEnv>(vars).unwrap())
    }

    #[test]
    fn defaults_match_the_receivers_and_secrets_never_print() {
        let empty = config(&[("MAILTRAIL_SIGNING_KEYS", " ")]);
        assert_eq!(empty.queue_settings().prefix, "mailtrail:");
        assert_eq!(empty.queue_settings().url, "redis://127.0.0.1:6379/");
        assert_eq!(empty.receiver_url(), "http://127.0.0.1:8080");
        let no_key = empty.signing_key().unwrap_err().to_string();
        assert!(no_key.contains("MAILTRAIL_SIGNING_KEYS"), "{no_key}");

        let configured = config(&[
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            ("MAILTRAIL_SIGNING_KEYS", "key-one,key-two"),
        ]);
        let signed = configured.signing_key().unwrap().sign("1", "t");
        assert_eq!(signed, SigningKey::new("key-one").sign("1", "t"));
        let printed = format!("{configured:?}");
        assert!(
            !printed.contains("secret") && !printed.contains("key-one"),
            "{printed}"
        );
    }
}
