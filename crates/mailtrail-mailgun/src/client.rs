//! [`MailgunClient`]: one blocking HTTPS client for Mailgun's API, and the one place where an
//! answer's status becomes a [`MailgunError`] or a retry.
//!
//! Blocking on purpose: the CLI that uses it must not link hyper or actix, and it makes a few
//! hundred requests at most, one after the other; an async caller runs calls on a blocking
//! thread (`tokio::task::spawn_blocking`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use ureq::Agent;
use ureq::http::Response;

use crate::error::MailgunError;
use crate::retry::RetryPolicy;

/// The largest answer read: a page of 300 events is well under a megabyte.
const ANSWER_LIMIT: u64 = 32 * 1024 * 1024;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Mailgun's US API, the default.
pub const DEFAULT_API_BASE: &str = "https://api.mailgun.net";

/// A client of one Mailgun region with one API key.
#[derive(Clone)]
pub struct MailgunClient {
    agent: Agent,
    base: String,
    /// `Basic base64(api:KEY)`, built once and never printed.
    authorization: SecretString,
    retry: RetryPolicy,
    /// Requests asked again after a 429 or a transient failure, by this client and its clones:
    /// the CLI sets up no logging, so its summary says this instead.
    retried: Arc<AtomicU64>,
}

impl std::fmt::Debug for MailgunClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailgunClient")
            .field("base", &self.base)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The HTTP methods the API calls use.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
}

impl MailgunClient {
    /// A client of the API at `base` (`https://api.mailgun.net`, `https://api.eu.mailgun.net`, or
    /// a test server), authenticating as `api` with `api_key`.
    pub fn new(
        base: &str,
        api_key: &SecretString,
        retry: RetryPolicy,
    ) -> Result<Self, MailgunError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(MailgunError::InvalidUrl {
                url: base,
                reason: "MAILGUN_API_BASE must start with https:// (or http:// for a test server)",
            });
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("api:{}", api_key.expose_secret()));
        let agent: Agent = Agent::config_builder()
            // Statuses are answers to read (429's headers above all), not transport errors.
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            // A redirect would carry the key to wherever it points; Mailgun's API never
            // redirects, so one is reported rather than followed.
            .max_redirects(0)
            .user_agent(concat!("mailtrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            base,
            authorization: format!("Basic {credentials}").into(),
            retry,
            retried: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The API base, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// How many requests were asked again after a 429 or a transient failure so far.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Waits `wait` before asking again, counting the retry.
    fn wait_to_retry(&self, wait: Duration) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(wait);
    }

    /// Calls `url` and returns the body of its 2xx answer, retrying rate limits and transient
    /// failures. `what` and `domain` name the call in errors.
    pub(crate) fn call(
        &self,
        method: Method,
        url: &str,
        form: Option<&str>,
        what: &str,
        domain: &str,
    ) -> Result<String, MailgunError> {
        self.check_scheme(url)?;
        let host = host_of(url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts.max(1);
            let response = match self.send(method, url, form) {
                Ok(response) => response,
                Err(error) if last => {
                    return Err(MailgunError::Unreachable {
                        host,
                        attempts: attempt,
                        cause: error.to_string(),
                    });
                }
                Err(error) => {
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(%error, host, attempt, wait_ms = wait.as_millis() as u64, "Mailgun unreachable; retrying");
                    self.wait_to_retry(wait);
                    continue;
                }
            };
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let (retry_after, reset) = (header("retry-after"), header("x-ratelimit-reset"));
            let body = match read_body(response) {
                Ok(body) => body,
                Err(error) if last => {
                    return Err(MailgunError::Unreachable {
                        host,
                        attempts: attempt,
                        cause: format!("the answer broke off: {error}"),
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, host, attempt, "Mailgun's answer broke off; retrying");
                    self.wait_to_retry(self.retry.backoff(attempt));
                    continue;
                }
            };
            match status {
                200..=299 => return Ok(body),
                429 if last => return Err(MailgunError::RateLimited { attempts: attempt }),
                429 => {
                    let wait =
                        self.retry
                            .rate_limit_wait(retry_after.as_deref(), reset.as_deref(), &body);
                    tracing::warn!(
                        host,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Mailgun rate limit (429); waiting as asked"
                    );
                    self.wait_to_retry(wait);
                }
                500..=599 if last => {
                    return Err(MailgunError::ServerError {
                        status,
                        attempts: attempt,
                    });
                }
                500..=599 => {
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(
                        status,
                        host,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Mailgun server error; retrying"
                    );
                    self.wait_to_retry(wait);
                }
                401 => return Err(MailgunError::Unauthorized),
                403 => {
                    return Err(MailgunError::Forbidden {
                        action: what.to_owned(),
                    });
                }
                404 => {
                    return Err(MailgunError::UnknownDomain {
                        domain: domain.to_owned(),
                        base: self.base.clone(),
                    });
                }
                _ => {
                    return Err(MailgunError::Unexpected {
                        status,
                        what: what.to_owned(),
                        message: message_of(&body),
                    });
                }
            }
        }
    }

    fn send(
        &self,
        method: Method,
        url: &str,
        form: Option<&str>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let authorization = self.authorization.expose_secret();
        let form_type = "application/x-www-form-urlencoded";
        match method {
            Method::Get => self
                .agent
                .get(url)
                .header("Authorization", authorization)
                .call(),
            Method::Post => self
                .agent
                .post(url)
                .header("Authorization", authorization)
                .header("Content-Type", form_type)
                .send(form.unwrap_or_default()),
            Method::Put => self
                .agent
                .put(url)
                .header("Authorization", authorization)
                .header("Content-Type", form_type)
                .send(form.unwrap_or_default()),
        }
    }

    /// Mailgun's `paging.next` is followed verbatim, wherever it points (Ghost lost every page
    /// after the first on EU domains by rebuilding it), but never from HTTPS down to plain HTTP,
    /// which would send the key in the clear.
    fn check_scheme(&self, url: &str) -> Result<(), MailgunError> {
        let secure_base = self.base.starts_with("https://");
        let allowed = url.starts_with("https://") || (!secure_base && url.starts_with("http://"));
        if allowed {
            Ok(())
        } else {
            Err(MailgunError::InvalidUrl {
                url: url.to_owned(),
                reason: "not an https:// URL",
            })
        }
    }
}

fn read_body(mut response: Response<ureq::Body>) -> Result<String, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT)
        .read_to_string()
}

/// `host[:port]` of a URL, for messages.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// Mailgun's `{"message": "..."}`, or the start of a body that is not that.
fn message_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> MailgunClient {
        MailgunClient::new(base, &"key-secret".into(), RetryPolicy::default()).unwrap()
    }

    #[test]
    fn the_key_never_prints() {
        let printed = format!("{:?}", client("https://api.mailgun.net/"));
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("https://api.mailgun.net\""), "{printed}");
    }

    #[test]
    fn an_https_base_never_follows_a_page_to_plain_http() {
        let secure = client("https://api.mailgun.net");
        assert!(secure.check_scheme("https://other.example/v3/x").is_ok());
        assert!(secure.check_scheme("http://api.mailgun.net/v3/x").is_err());
        let test_server = client("http://127.0.0.1:9");
        assert!(test_server.check_scheme("http://localhost:9/v3/x").is_ok());
        assert!(
            MailgunClient::new("api.mailgun.net", &"k".into(), RetryPolicy::default()).is_err()
        );
    }

    #[test]
    fn hosts_and_messages_are_read_for_errors() {
        assert_eq!(
            host_of("https://api.eu.mailgun.net/v3/x?y=1"),
            "api.eu.mailgun.net"
        );
        assert_eq!(
            message_of(r#"{"message": "Domain not found"}"#),
            "Domain not found"
        );
        assert_eq!(message_of("Forbidden"), "Forbidden");
    }
}
