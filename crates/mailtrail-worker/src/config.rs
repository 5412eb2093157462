//! The worker's configuration, read once from the environment.
//!
//! `DATABASE_URL` and `REDIS_URL` may carry passwords, so both are held in [`SecretString`]s and
//! the derived `Debug` of both structs is safe to log.

use std::time::Duration;

use mailtrail_queue::QueueSettings;
use mailtrail_queue::defaults::{DEFAULT_QUEUE_SHARDS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Environment variables of `mailtrail-worker` (names are the upper-cased field names).
#[derive(Clone, Debug, Deserialize)]
pub struct WorkerEnv {
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `REDIS_URL`.
    #[serde(default = "default_redis_url")]
    pub redis_url: SecretString,
    /// `MAILTRAIL_REDIS_PREFIX`.
    #[serde(default = "default_prefix")]
    pub mailtrail_redis_prefix: String,
    /// `MAILTRAIL_REDIS_CLUSTER`: `REDIS_URL` lists the seed nodes of a Redis Cluster.
    #[serde(default)]
    pub mailtrail_redis_cluster: bool,
    /// `MAILTRAIL_QUEUE_SHARDS`: how many shards the queue has (0 counts as 1).
    #[serde(default = "default_queue_shards")]
    pub mailtrail_queue_shards: u16,
    /// `MAILTRAIL_WORKER_ID`: unique per running worker; default host name and pid.
    #[serde(default)]
    pub mailtrail_worker_id: Option<String>,
    /// `MAILTRAIL_BATCH_SIZE`: envelopes per claim and per Postgres statement.
    #[serde(default = "default_batch_size")]
    pub mailtrail_batch_size: usize,
    /// `MAILTRAIL_CLAIM_BLOCK_MS`: longest wait for work (also bounds how fast SIGTERM is seen).
    #[serde(default = "default_claim_block_ms")]
    pub mailtrail_claim_block_ms: u64,
    /// `MAILTRAIL_LEASE_TTL_SECS`: a worker silent this long is presumed dead and reaped.
    #[serde(default = "default_lease_ttl_secs")]
    pub mailtrail_lease_ttl_secs: u64,
    /// `MAILTRAIL_MIGRATE`: run pending migrations at start (under an advisory lock).
    #[serde(default = "default_true")]
    pub mailtrail_migrate: bool,
    /// `MAILTRAIL_STATEMENT_TIMEOUT_MS`: Postgres statement timeout; unset, 15 s or half the
    /// lease, whichever is shorter.
    #[serde(default)]
    pub mailtrail_statement_timeout_ms: Option<u64>,
    /// `MAILTRAIL_REDIS_TIMEOUT_MS`: longest wait on one Redis command.
    #[serde(default = "default_redis_timeout_ms")]
    pub mailtrail_redis_timeout_ms: u64,
    /// `MAILTRAIL_BACKLOG_WARN`: log a warning while the backlog is longer than this.
    #[serde(default = "default_backlog_warn")]
    pub mailtrail_backlog_warn: u64,
    /// `MAILTRAIL_REQUIRE_NOEVICTION`: refuse to start when Redis may evict keys.
    #[serde(default)]
    pub mailtrail_require_noeviction: bool,
    /// `MAILTRAIL_METRICS_BIND`: where `/metrics` listens; empty disables it.
    #[serde(default = "default_metrics_bind")]
    pub mailtrail_metrics_bind: String,
    /// `MAILTRAIL_ATTRIBUTION_WINDOW_DAYS`: how many days before a conversion a click or open
    /// may take its credit (`docs/conversions.md`).
    #[serde(default = "default_attribution_window_days")]
    pub mailtrail_attribution_window_days: u32,
}

fn default_attribution_window_days() -> u32 {
    mailtrail_core::DEFAULT_ATTRIBUTION_WINDOW_DAYS
}

fn default_redis_url() -> SecretString {
    DEFAULT_REDIS_URL.into()
}
fn default_prefix() -> String {
    DEFAULT_REDIS_PREFIX.to_owned()
}
fn default_queue_shards() -> u16 {
    DEFAULT_QUEUE_SHARDS
}
fn default_batch_size() -> usize {
    1_000
}
fn default_claim_block_ms() -> u64 {
    1_000
}
fn default_lease_ttl_secs() -> u64 {
    30
}
fn default_true() -> bool {
    true
}
/// The statement timeout when `MAILTRAIL_STATEMENT_TIMEOUT_MS` is unset (or half the lease, if
/// that is shorter). A 1,000-row batch takes tens of milliseconds; a statement still running after
/// 15 s is waiting on a lock or an overloaded server, and is better retried.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);
fn default_redis_timeout_ms() -> u64 {
    2_000
}
fn default_metrics_bind() -> String {
    "127.0.0.1:9187".to_owned()
}
fn default_backlog_warn() -> u64 {
    100_000
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Postgres URL (may hold a password).
    pub database_url: SecretString,
    /// Redis URL (may hold a password).
    pub redis_url: SecretString,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// A Redis Cluster rather than one server.
    pub redis_cluster: bool,
    /// The queue's shards (at least 1).
    pub queue_shards: u16,
    /// This worker's id.
    pub worker_id: String,
    /// Envelopes per batch.
    pub batch_size: usize,
    /// Longest wait for work.
    pub claim_block: Duration,
    /// Heartbeat lease.
    pub lease_ttl: Duration,
    /// Run migrations at start.
    pub migrate: bool,
    /// Postgres statement timeout.
    pub statement_timeout: Duration,
    /// Redis command timeout.
    pub redis_timeout: Duration,
    /// Backlog length that triggers a warning.
    pub backlog_warn: u64,
    /// Refuse to start when Redis may evict keys.
    pub require_noeviction: bool,
    /// Where `/metrics` listens, if anywhere.
    pub metrics_bind: Option<String>,
    /// Days before a conversion a click or open may be credited with it.
    pub attribution_window_days: i32,
}

/// A configuration that cannot work, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is missing or malformed.
    #[error("{0}")]
    Env(#[from] envy::Error),
    /// A value out of range.
    #[error("{0}")]
    Invalid(&'static str),
}

impl WorkerConfig {
    /// Reads and validates the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(envy::from_env::<WorkerEnv>()?)
    }

    /// Validates already read variables.
    pub fn from_vars(env: WorkerEnv) -> Result<Self, ConfigError> {
        if env.mailtrail_batch_size == 0 || env.mailtrail_batch_size > 10_000 {
            return Err(ConfigError::Invalid(
                "MAILTRAIL_BATCH_SIZE must be between 1 and 10000",
            ));
        }
        if env.mailtrail_lease_ttl_secs < 3 {
            return Err(ConfigError::Invalid(
                "MAILTRAIL_LEASE_TTL_SECS must be at least 3",
            ));
        }
        let claim_block = Duration::from_millis(env.mailtrail_claim_block_ms.max(10));
        let lease_ttl = Duration::from_secs(env.mailtrail_lease_ttl_secs);
        if claim_block * 3 > lease_ttl {
            return Err(ConfigError::Invalid(
                "MAILTRAIL_CLAIM_BLOCK_MS must be at most a third of MAILTRAIL_LEASE_TTL_SECS",
            ));
        }
        // A statement must end well within the lease. The heartbeat renews the lease while one
        // runs, but the loop's progress is only seen between statements, and a loop silent for
        // too long is presumed stuck (see the worker's heartbeat module).
        let statement_timeout = match env.mailtrail_statement_timeout_ms {
            Some(ms) => {
                let statement_timeout = Duration::from_millis(ms.max(1));
                if statement_timeout * 2 > lease_ttl {
                    return Err(ConfigError::Invalid(
                        "MAILTRAIL_STATEMENT_TIMEOUT_MS must be at most half of MAILTRAIL_LEASE_TTL_SECS",
                    ));
                }
                statement_timeout
            }
            None => DEFAULT_STATEMENT_TIMEOUT.min(lease_ttl / 2),
        };
        let attribution_window_days = i32::try_from(env.mailtrail_attribution_window_days)
            .ok()
            .filter(|days| (1..=mailtrail_core::MAX_ATTRIBUTION_WINDOW_DAYS as i32).contains(days))
            .ok_or(ConfigError::Invalid(
                "MAILTRAIL_ATTRIBUTION_WINDOW_DAYS must be between 1 and 365",
            ))?;
        let worker_id = match env.mailtrail_worker_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => default_worker_id(),
        };
        Ok(Self {
            database_url: env.database_url,
            redis_url: env.redis_url,
            redis_prefix: env.mailtrail_redis_prefix,
            redis_cluster: env.mailtrail_redis_cluster,
            queue_shards: env.mailtrail_queue_shards.max(1),
            worker_id,
            batch_size: env.mailtrail_batch_size,
            claim_block,
            lease_ttl,
            migrate: env.mailtrail_migrate,
            statement_timeout,
            redis_timeout: Duration::from_millis(env.mailtrail_redis_timeout_ms.max(1)),
            backlog_warn: env.mailtrail_backlog_warn,
            require_noeviction: env.mailtrail_require_noeviction,
            metrics_bind: Some(env.mailtrail_metrics_bind.trim().to_owned())
                .filter(|bind| !bind.is_empty()),
            attribution_window_days,
        })
    }

    /// The queue connection settings.
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            url: self.redis_url.expose_secret().to_owned(),
            prefix: self.redis_prefix.clone(),
            response_timeout: self.redis_timeout,
            cluster: self.redis_cluster,
            shards: self.queue_shards,
        }
    }
}

/// `host-pid`: unique among live workers on a network of hosts with distinct names.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        WorkerConfig::from_vars(envy::from_iter::<_, WorkerEnv>(vars)?)
    }

    #[test]
    fn defaults_apply_and_the_database_url_never_prints() {
        let config = env(&[("DATABASE_URL", "postgres://u:secret@h/db")]).unwrap();
        assert_eq!(config.batch_size, 1_000);
        assert_eq!(config.redis_prefix, "mailtrail:");
        assert_eq!(config.queue_settings().url, "redis://127.0.0.1:6379/");
        assert!(
            config
                .worker_id
                .ends_with(&format!("-{}", std::process::id()))
        );
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(
            config.database_url.expose_secret(),
            "postgres://u:secret@h/db"
        );
    }

    #[test]
    fn neither_the_variables_nor_the_configuration_print_a_password() {
        let vars = [
            ("DATABASE_URL", "postgres://u:pg-hunter2@h/db"),
            ("REDIS_URL", "redis://:redis-hunter2@h:6379/"),
        ];
        let read = envy::from_iter::<_, WorkerEnv>(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
        let config = WorkerConfig::from_vars(read.clone()).unwrap();
        for printed in [format!("{read:?}"), format!("{config:?}")] {
            assert!(!printed.contains("hunter2"), "{printed}");
        }
        assert_eq!(
            config.queue_settings().url,
            "redis://:redis-hunter2@h:6379/"
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let missing = env(&[]).unwrap_err().to_string();
        assert!(missing.to_lowercase().contains("database_url"), "{missing}");
        let zero = env(&[("DATABASE_URL", "x"), ("MAILTRAIL_BATCH_SIZE", "0")]).unwrap_err();
        assert!(zero.to_string().contains("MAILTRAIL_BATCH_SIZE"));
        let id = env(&[("DATABASE_URL", "x"), ("MAILTRAIL_WORKER_ID", " w7 ")]).unwrap();
        assert_eq!(id.worker_id, "w7");
        assert_eq!(id.attribution_window_days, 7);
        let window = env(&[
            ("DATABASE_URL", "x"),
            ("MAILTRAIL_ATTRIBUTION_WINDOW_DAYS", "0"),
        ])
        .unwrap_err();
        assert!(
            window
                .to_string()
                .contains("MAILTRAIL_ATTRIBUTION_WINDOW_DAYS")
        );
    }

    #[test]
    fn a_statement_timeout_not_clearly_shorter_than_the_lease_is_refused() {
        let defaults = env(&[("DATABASE_URL", "x")]).unwrap();
        assert_eq!(defaults.lease_ttl, Duration::from_secs(30));
        assert_eq!(defaults.statement_timeout, Duration::from_secs(15));
        let as_long = env(&[
            ("DATABASE_URL", "x"),
            ("MAILTRAIL_STATEMENT_TIMEOUT_MS", "30000"),
        ])
        .unwrap_err();
        assert!(
            as_long
                .to_string()
                .contains("MAILTRAIL_STATEMENT_TIMEOUT_MS"),
            "{as_long}"
        );
        let half = env(&[
            ("DATABASE_URL", "x"),
            ("MAILTRAIL_LEASE_TTL_SECS", "10"),
            ("MAILTRAIL_STATEMENT_TIMEOUT_MS", "5000"),
        ])
        .unwrap();
        assert_eq!(half.statement_timeout, Duration::from_secs(5));
        // Unset, it follows a short lease down.
        let short = env(&[("DATABASE_URL", "x"), ("MAILTRAIL_LEASE_TTL_SECS", "3")]).unwrap();
        assert_eq!(short.statement_timeout, Duration::from_millis(1500));
    }
}
