//! What can go wrong talking to Mailgun, each with what the operator should do about it.
//!
//! The messages are written for a person reading one line at a terminal or in the journal: what
//! is wrong, then what to do. They never hold the API key.

/// A failed call to Mailgun's API.
#[derive(Debug, thiserror::Error)]
pub enum MailgunError {
    /// 401: the key is wrong, revoked, or of the wrong kind.
    #[error(
        "Mailgun refused the API key (401 Unauthorized): set MAILGUN_API_KEY to an account API \
         key of this region (a domain sending key or a webhook signing key will not do)"
    )]
    Unauthorized,
    /// 403: the key is valid but may not do this; a domain sending key may only send.
    #[error(
        "Mailgun forbids this key to {action} (403 Forbidden): a domain sending key can only \
         send messages; set MAILGUN_API_KEY to an account API key"
    )]
    Forbidden {
        /// What was asked, e.g. `read events of example.com`.
        action: String,
    },
    /// 404: no such domain in this region (or no such webhook).
    #[error(
        "Mailgun knows no domain `{domain}` at {base} (404 Not Found): check --domain or \
         MAILGUN_DOMAIN, and MAILGUN_API_BASE (https://api.eu.mailgun.net for an EU domain)"
    )]
    UnknownDomain {
        /// The domain asked for.
        domain: String,
        /// The API base it was asked of.
        base: String,
    },
    /// 429 every time, after waiting as told.
    #[error(
        "Mailgun kept answering 429 Too Many Requests after {attempts} attempts: another client \
         of this account may be using up its rate limit; try again later"
    )]
    RateLimited {
        /// Requests made.
        attempts: u32,
    },
    /// The connection failed every time (DNS, refused, TLS, timeout).
    #[error(
        "cannot reach Mailgun at {host} after {attempts} attempts ({cause}): check the network \
         and MAILGUN_API_BASE"
    )]
    Unreachable {
        /// The host asked.
        host: String,
        /// Requests made.
        attempts: u32,
        /// The last transport error.
        cause: String,
    },
    /// 5xx every time.
    #[error(
        "Mailgun answered {status} after {attempts} attempts: its API is having trouble; try \
         again later"
    )]
    ServerError {
        /// The last status.
        status: u16,
        /// Requests made.
        attempts: u32,
    },
    /// Any other status: a request mailtrail got wrong, or an API change.
    #[error("Mailgun answered {status} to {what}: {message}")]
    Unexpected {
        /// The status.
        status: u16,
        /// What was asked.
        what: String,
        /// Mailgun's `message`, or the start of the body.
        message: String,
    },
    /// A 2xx answer of a shape mailtrail does not know.
    #[error("Mailgun's answer to {what} is not what its API documents: {reason}")]
    InvalidResponse {
        /// What was asked.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL mailtrail will not call (a malformed base, or a `next` page that would send the key
    /// over plain HTTP when the base is HTTPS).
    #[error("refusing to call {url}: {reason}")]
    InvalidUrl {
        /// The URL, which never holds the key.
        url: String,
        /// Why.
        reason: &'static str,
    },
}

impl MailgunError {
    /// Whether trying again later might succeed (the network, rate limits, Mailgun's own errors),
    /// as opposed to a configuration the operator must fix.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unreachable { .. } | Self::ServerError { .. }
        )
    }
}
