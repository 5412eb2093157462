//! When to ask Mailgun again, and how long to wait first.
//!
//! Mailgun documents no rate limit for the Events API, only a generic `429 Too many requests`
//! (and 300 requests a minute for the webhooks API, answered with `{"retry-seconds": 60}`). Ghost,
//! which polls the Events API for thousands of sites, reads `X-RateLimit-Reset` as an absolute
//! Unix time in **milliseconds** and honours the later of it and `Retry-After`; we do the same,
//! and also accept the reset in seconds or as a delay, since nothing promises the unit. Other
//! transient failures (connection errors, 5xx) back off exponentially with jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often and how long to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests made at most for one call (the first included).
    pub attempts: u32,
    /// The wait after the first transient failure; doubled each time after.
    pub first_backoff: Duration,
    /// The longest wait between two requests, whatever Mailgun asks.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after a transient failure of attempt `attempt`
    /// (1-based): exponential, with up to a quarter added at random so that many clients
    /// failing together do not come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .first_backoff
            .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)));
        let jitter = base.mul_f64(f64::from(jitter_percent()) / 400.0);
        (base + jitter).min(self.max_wait)
    }

    /// The wait a 429 asks for, from its headers and body, at least one second, at most
    /// [`Self::max_wait`].
    pub fn rate_limit_wait(
        &self,
        retry_after: Option<&str>,
        rate_limit_reset: Option<&str>,
        body: &str,
    ) -> Duration {
        let now_ms = now_ms();
        let asked = [
            retry_after.and_then(parse_retry_after),
            rate_limit_reset.and_then(|reset| parse_reset(reset, now_ms)),
            retry_seconds_in_body(body),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Duration::from_secs(1));
        asked.max(Duration::from_secs(1)).min(self.max_wait)
    }
}

/// `Retry-After: <seconds>` (the HTTP-date form is not used by Mailgun and is ignored).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// `X-RateLimit-Reset`: an absolute Unix time in milliseconds (what Mailgun sends, per Ghost's
/// code), in seconds, or a small number of seconds to wait.
fn parse_reset(value: &str, now_ms: u64) -> Option<Duration> {
    let number: u64 = value.trim().parse().ok()?;
    let reset_ms = if number >= 100_000_000_000 {
        number // milliseconds since the epoch
    } else if number >= 1_000_000_000 {
        number.saturating_mul(1000) // seconds since the epoch
    } else {
        return Some(Duration::from_secs(number)); // a delay
    };
    Some(Duration::from_millis(reset_ms.saturating_sub(now_ms)))
}

/// The webhooks API's `{"retry-seconds": 60}`.
fn retry_seconds_in_body(body: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let seconds = value.get("retry-seconds")?.as_f64()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// 0..100 from the clock's nanoseconds: jitter needs no better randomness.
fn jitter_percent() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos() % 100)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_of_retry_after_and_the_reset_is_honoured() {
        let policy = RetryPolicy::default();
        let now = now_ms();
        let in_5s = (now + 5_000).to_string();
        let wait = policy.rate_limit_wait(Some("2"), Some(&in_5s), "");
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        let wait = policy.rate_limit_wait(Some("7"), Some(&in_5s), "");
        assert_eq!(wait, Duration::from_secs(7));
    }

    #[test]
    fn the_reset_may_be_milliseconds_seconds_or_a_delay() {
        let now = 1_700_000_000_000;
        assert_eq!(
            parse_reset("1700000003000", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_reset("1700000004", now), Some(Duration::from_secs(4)));
        assert_eq!(parse_reset("9", now), Some(Duration::from_secs(9)));
        assert_eq!(parse_reset("1699999999000", now), Some(Duration::ZERO));
        assert_eq!(parse_reset("soon", now), None);
    }

    #[test]
    fn waits_are_at_least_a_second_and_at_most_the_cap() {
        let policy = RetryPolicy {
            max_wait: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.rate_limit_wait(None, None, ""),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.rate_limit_wait(Some("0"), None, ""),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.rate_limit_wait(None, None, r#"{"retry-seconds": 60}"#),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(5),
        };
        let first = policy.backoff(1);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1250));
        let third = policy.backoff(3);
        assert!(third >= Duration::from_secs(4), "{third:?}");
        assert_eq!(policy.backoff(9), Duration::from_secs(5));
    }
}
