//! The receiver's configuration, read once from the environment.
//!
//! Secrets (the signing keys, and `REDIS_URL`, which may carry a password) are held in
//! [`SecretString`]s, so the derived `Debug` of both structs is safe to log.

use std::time::Duration;

use mailtrail_core::SigningKeys;
use mailtrail_queue::QueueSettings;
use mailtrail_queue::defaults::{DEFAULT_QUEUE_SHARDS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Environment variables of `mailtrail-receiver` (names are the upper-cased field names).
#[derive(Clone, Debug, Deserialize)]
pub struct ReceiverEnv {
    /// `REDIS_URL`.
    #[serde(default = "default_redis_url")]
    pub redis_url: SecretString,
    /// `MAILTRAIL_SIGNING_KEYS`: comma-separated webhook signing keys, all valid.
    pub mailtrail_signing_keys: SecretString,
    /// `MAILTRAIL_BIND`.
    #[serde(default = "default_bind")]
    pub mailtrail_bind: String,
    /// `MAILTRAIL_REDIS_PREFIX`.
    #[serde(default = "default_prefix")]
    pub mailtrail_redis_prefix: String,
    /// `MAILTRAIL_REDIS_CLUSTER`: `REDIS_URL` lists the seed nodes of a Redis Cluster.
    #[serde(default)]
    pub mailtrail_redis_cluster: bool,
    /// `MAILTRAIL_QUEUE_SHARDS`: how many shards the queue has (0 counts as 1).
    #[serde(default = "default_queue_shards")]
    pub mailtrail_queue_shards: u16,
    /// `MAILTRAIL_TIMESTAMP_WINDOW_SECS`: how far a signed timestamp may be from now.
    #[serde(default = "default_window")]
    pub mailtrail_timestamp_window_secs: u64,
    /// `MAILTRAIL_TOKEN_TTL_SECS`: how long a used token is remembered.
    #[serde(default = "default_token_ttl")]
    pub mailtrail_token_ttl_secs: u64,
    /// `MAILTRAIL_BACKLOG_CAP`: refuse (503) when this many envelopes wait; 0 = no cap.
    #[serde(default = "default_backlog_cap")]
    pub mailtrail_backlog_cap: u64,
    /// `MAILTRAIL_BODY_LIMIT_BYTES`: largest accepted body (legacy bounces carry attachments).
    #[serde(default = "default_body_limit")]
    pub mailtrail_body_limit_bytes: usize,
    /// `MAILTRAIL_BODY_TIMEOUT_MS`: longest time to receive a body once its headers are in
    /// (answered 408 beyond it).
    #[serde(default = "default_body_timeout_ms")]
    pub mailtrail_body_timeout_ms: u64,
    /// `MAILTRAIL_REDIS_TIMEOUT_MS`: longest a webhook waits on Redis before answering 503.
    #[serde(default = "default_redis_timeout_ms")]
    pub mailtrail_redis_timeout_ms: u64,
    /// `MAILTRAIL_HTTP_WORKERS`: actix worker threads; 0 = one per core.
    #[serde(default)]
    pub mailtrail_http_workers: usize,
    /// `MAILTRAIL_REQUIRE_NOEVICTION`: refuse to start when Redis may evict keys.
    #[serde(default)]
    pub mailtrail_require_noeviction: bool,
    /// `MAILTRAIL_METRICS_BIND`: where `/metrics` listens, apart from the webhook port; empty
    /// disables it.
    #[serde(default = "default_metrics_bind")]
    pub mailtrail_metrics_bind: String,
}

fn default_redis_url() -> SecretString {
    DEFAULT_REDIS_URL.into()
}
fn default_bind() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_prefix() -> String {
    DEFAULT_REDIS_PREFIX.to_owned()
}
fn default_queue_shards() -> u16 {
    DEFAULT_QUEUE_SHARDS
}
/// Nine hours: Mailgun retries a failed webhook for about eight, and does not document whether a
/// retry is re-signed. A shorter window would turn every retry of an outage into a loss.
fn default_window() -> u64 {
    9 * 3600
}
/// Twice the window: a token must be remembered for as long as its signature can pass the
/// window check, on either side of now.
fn default_token_ttl() -> u64 {
    18 * 3600
}
fn default_backlog_cap() -> u64 {
    1_000_000
}
fn default_body_limit() -> usize {
    10 * 1024 * 1024
}
/// Ten seconds: a 10 MiB body at 10 Mbit/s takes eight. Headers are cut at actix's 5 s.
fn default_body_timeout_ms() -> u64 {
    10_000
}
fn default_redis_timeout_ms() -> u64 {
    1_000
}
/// Loopback: the webhook port faces the internet (Mailgun must reach it), the metrics do not need
/// to. Next to the worker's default, 9187.
fn default_metrics_bind() -> String {
    "127.0.0.1:9188".to_owned()
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Redis URL (may hold a password).
    pub redis_url: SecretString,
    /// Valid signing keys.
    pub signing_keys: SigningKeys,
    /// Listen address (`host:port`; port 0 picks a free one).
    pub bind: String,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// A Redis Cluster rather than one server.
    pub redis_cluster: bool,
    /// The queue's shards (at least 1).
    pub queue_shards: u16,
    /// Accepted distance of a signed timestamp from now.
    pub timestamp_window: Duration,
    /// How long a used token is remembered.
    pub token_ttl: Duration,
    /// Backlog length at which webhooks are refused with 503 (0 = no cap).
    pub backlog_cap: u64,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Longest time to receive a body.
    pub body_timeout: Duration,
    /// Longest wait on Redis.
    pub redis_timeout: Duration,
    /// actix worker threads (0 = one per core).
    pub http_workers: usize,
    /// Refuse to start when Redis may evict keys.
    pub require_noeviction: bool,
    /// Where `/metrics` listens, if anywhere (never on the webhook port).
    pub metrics_bind: Option<String>,
}

/// A configuration that cannot work, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is missing or malformed.
    #[error("{0}")]
    Env(#[from] envy::Error),
    /// `MAILTRAIL_SIGNING_KEYS` holds no key.
    #[error("MAILTRAIL_SIGNING_KEYS must hold at least one webhook signing key")]
    NoSigningKeys,
    /// The token TTL is shorter than the window, which would let a replay through.
    #[error(
        "MAILTRAIL_TOKEN_TTL_SECS ({ttl}) must be at least twice MAILTRAIL_TIMESTAMP_WINDOW_SECS ({window})"
    )]
    TokenTtlTooShort {
        /// Configured TTL.
        ttl: u64,
        /// Configured window.
        window: u64,
    },
}

impl ReceiverConfig {
    /// Reads and validates the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(envy::from_env::<ReceiverEnv>()?)
    }

    /// Validates already read variables.
    pub fn from_vars(env: ReceiverEnv) -> Result<Self, ConfigError> {
        let signing_keys =
            SigningKeys::from_comma_separated(env.mailtrail_signing_keys.expose_secret())
                .map_err(|_| ConfigError::NoSigningKeys)?;
        let window = env.mailtrail_timestamp_window_secs;
        if env.mailtrail_token_ttl_secs < window.saturating_mul(2) {
            return Err(ConfigError::TokenTtlTooShort {
                ttl: env.mailtrail_token_ttl_secs,
                window,
            });
        }
        Ok(Self {
            redis_url: env.redis_url,
            signing_keys,
            bind: env.mailtrail_bind,
            redis_prefix: env.mailtrail_redis_prefix,
            redis_cluster: env.mailtrail_redis_cluster,
            queue_shards: env.mailtrail_queue_shards.max(1),
            timestamp_window: Duration::from_secs(window),
            token_ttl: Duration::from_secs(env.mailtrail_token_ttl_secs),
            backlog_cap: env.mailtrail_backlog_cap,
            body_limit_bytes: env.mailtrail_body_limit_bytes,
            body_timeout: Duration::from_millis(env.mailtrail_body_timeout_ms.max(1)),
            redis_timeout: Duration::from_millis(env.mailtrail_redis_timeout_ms.max(1)),
            http_workers: env.mailtrail_http_workers,
            require_noeviction: env.mailtrail_require_noeviction,
            metrics_bind: Some(env.mailtrail_metrics_bind.trim().to_owned())
                .filter(|bind| !bind.is_empty()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<ReceiverConfig, ConfigError> {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        ReceiverConfig::from_vars(envy::from_iter::<_, ReceiverEnv>(vars)?)
    }

    #[test]
    fn defaults_apply_when_only_the_keys_are_set() {
        let config = env(&[("MAILTRAIL_SIGNING_KEYS", "k1,k2")]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert_eq!(config.redis_prefix, "mailtrail:");
        assert_eq!(config.queue_settings().url, "redis://127.0.0.1:6379/");
        assert_eq!(config.signing_keys.len(), 2);
        assert_eq!(config.timestamp_window, Duration::from_secs(9 * 3600));
        assert_eq!(config.metrics_bind.as_deref(), Some("127.0.0.1:9188"));
    }

    #[test]
    fn an_empty_metrics_bind_disables_the_metrics_listener() {
        let config = env(&[
            ("MAILTRAIL_SIGNING_KEYS", "k"),
            ("MAILTRAIL_METRICS_BIND", " "),
        ])
        .unwrap();
        assert_eq!(config.metrics_bind, None);
    }

    #[test]
    fn neither_the_variables_nor_the_configuration_print_a_secret() {
        let vars = [
            ("MAILTRAIL_SIGNING_KEYS", "key-alpha,key-beta"),
            ("REDIS_URL", "redis://:hunter2@redis.internal:6379/"),
        ];
        let read = envy::from_iter::<_, ReceiverEnv>(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
        let config = ReceiverConfig::from_vars(read.clone()).unwrap();
        for printed in [format!("{read:?}"), format!("{config:?}")] {
            for secret in ["key-alpha", "key-beta", "hunter2"] {
                assert!(!printed.contains(secret), "{printed}");
            }
        }
        assert_eq!(
            config.queue_settings().url,
            "redis://:hunter2@redis.internal:6379/"
        );
    }

    #[test]
    fn missing_keys_and_a_short_token_ttl_are_refused_by_name() {
        let missing = env(&[]).unwrap_err().to_string();
        assert!(
            missing.to_lowercase().contains("mailtrail_signing_keys"),
            "{missing}"
        );
        assert!(matches!(
            env(&[("MAILTRAIL_SIGNING_KEYS", " , ")]),
            Err(ConfigError::NoSigningKeys)
        ));
        assert!(matches!(
            env(&[
                ("MAILTRAIL_SIGNING_KEYS", "k"),
                ("MAILTRAIL_TIMESTAMP_WINDOW_SECS", "600"),
                ("MAILTRAIL_TOKEN_TTL_SECS", "900"),
            ]),
            Err(ConfigError::TokenTtlTooShort { .. })
        ));
    }
}
