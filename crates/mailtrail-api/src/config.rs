//! The read API's configuration, read once from the environment.

use std::time::Duration;

use mailtrail_queue::QueueSettings;
use mailtrail_queue::defaults::{DEFAULT_QUEUE_SHARDS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Environment variables of `mailtrail-api` (names are the upper-cased field names).
#[derive(Clone, Debug, Deserialize)]
pub struct ApiEnv {
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `MAILTRAIL_API_BIND`: listen address.
    #[serde(default = "default_bind")]
    pub mailtrail_api_bind: String,
    /// `MAILTRAIL_API_METRICS_BIND`: where `/metrics` is served; empty disables it.
    #[serde(default = "default_metrics_bind")]
    pub mailtrail_api_metrics_bind: String,
    /// `MAILTRAIL_API_POOL_SIZE`: Postgres connections of the API's own pool.
    #[serde(default = "default_pool_size")]
    pub mailtrail_api_pool_size: usize,
    /// `MAILTRAIL_API_STATEMENT_TIMEOUT_MS`: longest a query of the API may run.
    #[serde(default = "default_statement_timeout_ms")]
    pub mailtrail_api_statement_timeout_ms: u64,
    /// `MAILTRAIL_HTTP_WORKERS`: actix worker threads; 0 = one per core.
    #[serde(default)]
    pub mailtrail_http_workers: usize,
    /// `REDIS_URL`: the queue reported conversions go onto.
    #[serde(default = "default_redis_url")]
    pub redis_url: SecretString,
    /// `MAILTRAIL_REDIS_PREFIX`.
    #[serde(default = "default_redis_prefix")]
    pub mailtrail_redis_prefix: String,
    /// `MAILTRAIL_REDIS_TIMEOUT_MS`: longest a report waits on Redis before answering 503.
    #[serde(default = "default_redis_timeout_ms")]
    pub mailtrail_redis_timeout_ms: u64,
    /// `MAILTRAIL_REDIS_CLUSTER`: `REDIS_URL` lists a Redis Cluster's seed nodes.
    #[serde(default)]
    pub mailtrail_redis_cluster: bool,
    /// `MAILTRAIL_QUEUE_SHARDS`: how many shards the queue has (0 counts as 1).
    #[serde(default = "default_queue_shards")]
    pub mailtrail_queue_shards: u16,
}

fn default_queue_shards() -> u16 {
    DEFAULT_QUEUE_SHARDS
}

fn default_redis_url() -> SecretString {
    DEFAULT_REDIS_URL.into()
}
fn default_redis_prefix() -> String {
    DEFAULT_REDIS_PREFIX.to_owned()
}
/// As the receiver's: a client waiting on Redis gets its 503 within a second.
fn default_redis_timeout_ms() -> u64 {
    1_000
}

fn default_bind() -> String {
    "127.0.0.1:8081".to_owned()
}
/// Loopback by default: request counts are for the operator, not for the API's clients.
fn default_metrics_bind() -> String {
    "127.0.0.1:9189".to_owned()
}
fn default_pool_size() -> usize {
    16
}
/// A statistics question answers in milliseconds; anything near this is a fault to cut short.
fn default_statement_timeout_ms() -> u64 {
    5_000
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Postgres URL.
    pub database_url: SecretString,
    /// Listen address (`127.0.0.1:0` in tests).
    pub bind: String,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_bind: Option<String>,
    /// Pool size.
    pub pool_size: usize,
    /// Statement timeout of the pool's connections.
    pub statement_timeout: Duration,
    /// HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// Redis URL (may hold a password).
    pub redis_url: SecretString,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Longest wait on one Redis command.
    pub redis_timeout: Duration,
    /// A Redis Cluster rather than one server.
    pub redis_cluster: bool,
    /// The queue's shards (at least 1).
    pub queue_shards: u16,
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is missing or malformed.
    #[error("{0}")]
    Env(#[from] envy::Error),
    /// The pool would have no connection.
    #[error("MAILTRAIL_API_POOL_SIZE must be at least 1")]
    EmptyPool,
}

impl ApiConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(envy::from_env()?)
    }

    /// Validates already-read variables.
    pub fn from_vars(env: ApiEnv) -> Result<Self, ConfigError> {
        if env.mailtrail_api_pool_size == 0 {
            return Err(ConfigError::EmptyPool);
        }
        Ok(Self {
            database_url: env.database_url,
            bind: env.mailtrail_api_bind,
            metrics_bind: Some(env.mailtrail_api_metrics_bind).filter(|bind| !bind.is_empty()),
            pool_size: env.mailtrail_api_pool_size,
            statement_timeout: Duration::from_millis(env.mailtrail_api_statement_timeout_ms.max(1)),
            http_workers: env.mailtrail_http_workers,
            redis_url: env.redis_url,
            redis_prefix: env.mailtrail_redis_prefix,
            redis_timeout: Duration::from_millis(env.mailtrail_redis_timeout_ms.max(1)),
            redis_cluster: env.mailtrail_redis_cluster,
            queue_shards: env.mailtrail_queue_shards.max(1),
        })
    }

    /// The queue connection settings (reported conversions are queued).
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
