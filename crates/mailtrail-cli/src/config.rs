//! The CLI's configuration, read once from the environment.
//!
//! Every variable is optional at read time: `mailtrail queue status` must work on a machine that
//! has no `DATABASE_URL`, and `mailtrail stats` on one without signing keys. Each command asks for
//! what it needs through [`CliConfig::database_url`] or [`CliConfig::signing_key`], which fail
//! with a message naming the missing variable.
//!
//! Secrets (the signing keys, and the Postgres and Redis URLs, which may carry passwords) are held
//! in [`SecretString`]s, so the derived `Debug` of both structs is safe to print.

use std::time::Duration;

use mailtrail_core::{SigningKey, SigningKeys};
use mailtrail_queue::QueueSettings;
use mailtrail_queue::defaults::{DEFAULT_QUEUE_SHARDS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How long one Redis command may take: generous, an operator is waiting, not Mailgun.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// Postgres statement timeout for the CLI: whole-system statistics at full volume scan a large
/// table, and an operator can always press Ctrl-C.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// Environment variables of `mailtrail` (names are the upper-cased field names).
#[derive(Clone, Debug, Deserialize)]
pub struct CliEnv {
    /// `DATABASE_URL`: needed by `migrate`, `stats` and `events` only.
    #[serde(default)]
    pub database_url: Option<SecretString>,
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
    /// `MAILTRAIL_SIGNING_KEYS`: comma-separated; `send-sample` signs with the first.
    #[serde(default)]
    pub mailtrail_signing_keys: Option<SecretString>,
    /// `MAILTRAIL_RECEIVER_URL`: where `send-sample` posts by default.
    #[serde(default = "default_receiver_url")]
    pub mailtrail_receiver_url: String,
    /// `MAILGUN_API_KEY`: an account API key, for `reconcile` and `mailgun webhooks`.
    #[serde(default)]
    pub mailgun_api_key: Option<SecretString>,
    /// `MAILGUN_DOMAIN`: the sending domain when `--domain` is not given.
    #[serde(default)]
    pub mailgun_domain: Option<String>,
    /// `MAILGUN_API_BASE`: the API of the domain's region.
    #[serde(default = "default_mailgun_api_base")]
    pub mailgun_api_base: String,
    /// `MAILTRAIL_ATTRIBUTION_WINDOW_DAYS`: the window `conversions reattribute` applies.
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
fn default_receiver_url() -> String {
    "http://127.0.0.1:8080".to_owned()
}
fn default_mailgun_api_base() -> String {
    mailtrail_mailgun::DEFAULT_API_BASE.to_owned()
}

/// The configuration; secrets are held but never printed.
#[derive(Clone, Debug)]
pub struct CliConfig {
    database_url: Option<SecretString>,
    redis_url: SecretString,
    redis_prefix: String,
    /// A Redis Cluster rather than one server.
    redis_cluster: bool,
    /// The queue's shards (at least 1).
    queue_shards: u16,
    signing_keys: Option<SigningKeys>,
    receiver_url: String,
    mailgun_api_key: Option<SecretString>,
    mailgun_domain: Option<String>,
    mailgun_api_base: String,
    attribution_window_days: u32,
}

/// A variable a command needs is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is malformed.
    #[error("{0}")]
    Env(#[from] envy::Error),
    /// `DATABASE_URL` is not set and the command reads or writes Postgres.
    #[error("DATABASE_URL is not set; `mailtrail {command}` needs it to reach Postgres")]
    MissingDatabaseUrl {
        /// The command that needs it.
        command: &'static str,
    },
    /// `MAILTRAIL_SIGNING_KEYS` holds no key.
    #[error("MAILTRAIL_SIGNING_KEYS is not set; `mailtrail send-sample` signs with its first key")]
    MissingSigningKey,
    /// `MAILGUN_API_KEY` is not set and the command calls Mailgun's API.
    #[error(
        "MAILGUN_API_KEY is not set; `mailtrail {command}` needs an account API key of Mailgun \
         (a domain sending key cannot read events or webhooks)"
    )]
    MissingMailgunKey {
        /// The command that needs it.
        command: &'static str,
    },
    /// Neither `--domain` nor `MAILGUN_DOMAIN` names the domain.
    #[error("no Mailgun domain: pass --domain or set MAILGUN_DOMAIN")]
    MissingMailgunDomain,
    /// `MAILTRAIL_ATTRIBUTION_WINDOW_DAYS` is out of range.
    #[error("MAILTRAIL_ATTRIBUTION_WINDOW_DAYS must be between 1 and 365")]
    InvalidAttributionWindow,
}

impl CliConfig {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::from_vars(envy::from_env::<CliEnv>()?))
    }

    /// Takes already read variables; blank values count as unset.
    pub fn from_vars(env: CliEnv) -> Self {
        let present = |value: Option<SecretString>| {
            value.filter(|value| !value.expose_secret().trim().is_empty())
        };
        Self {
            database_url: present(env.database_url),
            redis_url: env.redis_url,
            redis_prefix: env.mailtrail_redis_prefix,
            redis_cluster: env.mailtrail_redis_cluster,
            queue_shards: env.mailtrail_queue_shards.max(1),
            signing_keys: env
                .mailtrail_signing_keys
                .and_then(|keys| SigningKeys::from_comma_separated(keys.expose_secret()).ok()),
            receiver_url: env.mailtrail_receiver_url,
            mailgun_api_key: present(env.mailgun_api_key),
            mailgun_domain: env
                .mailgun_domain
                .map(|domain| domain.trim().to_owned())
                .filter(|domain| !domain.is_empty()),
            mailgun_api_base: env.mailgun_api_base,
            attribution_window_days: env.mailtrail_attribution_window_days,
        }
    }

    /// The account API key for Mailgun, or an error naming `MAILGUN_API_KEY` and the `command`.
    pub fn mailgun_api_key(&self, command: &'static str) -> Result<&SecretString, ConfigError> {
        self.mailgun_api_key
            .as_ref()
            .ok_or(ConfigError::MissingMailgunKey { command })
    }

    /// The domain `--domain` gives, else `MAILGUN_DOMAIN`.
    pub fn mailgun_domain(&self, given: Option<&str>) -> Result<String, ConfigError> {
        given
            .map(str::to_owned)
            .or_else(|| self.mailgun_domain.clone())
            .ok_or(ConfigError::MissingMailgunDomain)
    }

    /// The base URL of Mailgun's API for the domain's region.
    pub fn mailgun_api_base(&self) -> &str {
        &self.mailgun_api_base
    }

    /// The attribution window in days, checked as the worker checks it.
    pub fn attribution_window_days(&self) -> Result<i32, ConfigError> {
        i32::try_from(self.attribution_window_days)
            .ok()
            .filter(|days| (1..=mailtrail_core::MAX_ATTRIBUTION_WINDOW_DAYS as i32).contains(days))
            .ok_or(ConfigError::InvalidAttributionWindow)
    }

    /// The Postgres URL, or an error naming `DATABASE_URL` and the `command` that needs it.
    pub fn database_url(&self, command: &'static str) -> Result<&str, ConfigError> {
        self.database_url
            .as_ref()
            .map(|url| url.expose_secret())
            .ok_or(ConfigError::MissingDatabaseUrl { command })
    }

    /// The key `send-sample` signs with: the first of `MAILTRAIL_SIGNING_KEYS`.
    pub fn signing_key(&self) -> Result<SigningKey, ConfigError> {
        self.signing_keys
            .as_ref()
            .and_then(SigningKeys::first)
            .cloned()
            .ok_or(ConfigError::MissingSigningKey)
    }

    /// The receiver's base URL.
    pub fn receiver_url(&self) -> &str {
        &self.receiver_url
    }

    /// The queue connection settings.
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            url: self.redis_url.expose_secret().to_owned(),
            prefix: self.redis_prefix.clone(),
            response_timeout: REDIS_TIMEOUT,
            cluster: self.redis_cluster,
            shards: self.queue_shards,
        }
    }

    /// The Postgres statement timeout for CLI queries.
    pub fn statement_timeout(&self) -> Duration {
        STATEMENT_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> CliConfig {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        CliConfig::from_vars(envy::from_iter::<_, CliEnv>(vars).unwrap())
    }

    #[test]
    fn nothing_is_required_until_a_command_asks() {
        let config = config(&[]);
        assert_eq!(config.queue_settings().prefix, "mailtrail:");
        assert_eq!(config.queue_settings().url, "redis://127.0.0.1:6379/");
        assert_eq!(config.receiver_url(), "http://127.0.0.1:8080");
        assert_eq!(config.mailgun_api_base(), "https://api.mailgun.net");
        let no_key = config.mailgun_api_key("reconcile").unwrap_err().to_string();
        assert!(no_key.contains("MAILGUN_API_KEY"), "{no_key}");
        assert!(config.mailgun_domain(None).is_err());
        assert_eq!(config.mailgun_domain(Some("mg.x")).unwrap(), "mg.x");
        let missing = config.database_url("stats").unwrap_err().to_string();
        assert!(missing.contains("DATABASE_URL"), "{missing}");
        assert!(missing.contains("mailtrail stats"), "{missing}");
        let no_key = config.signing_key().unwrap_err().to_string();
        assert!(no_key.contains("MAILTRAIL_SIGNING_KEYS"), "{no_key}");
    }

    #[test]
    fn blank_values_count_as_unset_and_secrets_never_print() {
        assert!(config(&[("DATABASE_URL", "  ")]).database_url("x").is_err());
        let vars = [
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            ("MAILTRAIL_SIGNING_KEYS", "key-one,key-two"),
            ("REDIS_URL", "redis://:redis-secret@h:6379/"),
            ("MAILGUN_API_KEY", "mailgun-secret"),
        ];
        let read =
            envy::from_iter::<_, CliEnv>(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .unwrap();
        let printed = format!("{read:?}");
        assert!(
            !printed.contains("secret") && !printed.contains("key-one"),
            "{printed}"
        );
        let config = config(&vars);
        assert_eq!(config.queue_settings().url, "redis://:redis-secret@h:6379/");
        assert_eq!(
            config.database_url("x").unwrap(),
            "postgres://u:secret@h/db"
        );
        let signed = config.signing_key().unwrap().sign("1", "t");
        assert_eq!(signed, SigningKey::new("key-one").sign("1", "t"));
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("secret") && !printed.contains("key-one"),
            "{printed}"
        );
    }
}
