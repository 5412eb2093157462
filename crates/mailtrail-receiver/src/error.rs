//! Every way a webhook can be refused, and the one table that maps each to its answer.
//!
//! Mailgun treats 200 as done, 406 as "rejected, never retry", and anything else as "retry for
//! about 8 hours". So:
//! - a body that can never be processed (not Mailgun's format, no signature, stale) gets 406;
//! - a signature that matches no configured key gets **401**, deliberately retryable: the usual
//!   cause is a key rotated at Mailgun before `MAILTRAIL_SIGNING_KEYS` was updated, and 8 hours of
//!   retries give the operator time to fix it without losing events. A forger gains nothing from
//!   a retry;
//! - Redis unavailable or the backlog at its cap gets 503 with `Retry-After`, so Mailgun retries;
//! - a content encoding the receiver cannot decode gets 415, retryable: the bytes would reach the
//!   parser still encoded and be refused for good;
//! - a body that does not arrive within the body timeout gets 408 and the connection is closed
//!   (a sender that slow holds a connection and a buffer); over the size limit gets 413; both are
//!   retried, and a real Mailgun post gets through on the next attempt.
//!
//! [`WebhookError::response_parts`] is that table: status, metrics outcome, the text answered and
//! how loudly it is logged, one row per refusal. The [`Outcome`] of every webhook response, refused
//! or not, is defined here too, so the metrics and the routes both depend on this module and it
//! depends on neither.

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use mailtrail_core::mailgun::ParseError;
use mailtrail_core::{Excerpt, SignatureError};
use mailtrail_queue::QueueError;
use prometheus_client::encoding::EncodeLabelValue;
use tracing::Level;

/// How a webhook request ended (the `outcome` label of the request counter).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // Label values are written as they appear in Prometheus.
pub enum Outcome {
    /// Verified and pushed.
    queued,
    /// Token already used; nothing pushed.
    duplicate,
    /// Not a Mailgun webhook that could ever be processed.
    unprocessable,
    /// Signed timestamp outside the window.
    stale,
    /// Signature matches no configured key.
    bad_signature,
    /// Backlog at its cap.
    backlog_full,
    /// Redis failed or timed out.
    queue_unavailable,
    /// Body over the limit.
    too_large,
    /// Body not received within the body timeout.
    slow_body,
    /// The connection broke or sent a malformed body (chunked encoding, a corrupt gzip stream).
    broken_body,
    /// A `Content-Encoding` other than gzip or deflate.
    unsupported_encoding,
    /// Anything else (a request actix refused before the handler).
    other,
}

/// Why a webhook was not queued.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a Mailgun webhook this receiver can ever process.
    #[error("unprocessable webhook: {0}")]
    Unprocessable(#[from] ParseError),
    /// The signed timestamp is malformed or outside the window.
    #[error("refused signature: {0}")]
    Refused(SignatureError),
    /// The signature matches no configured key.
    #[error("the signature matches none of the configured signing keys")]
    BadSignature,
    /// The backlog is at its cap.
    #[error("the backlog is full")]
    BacklogFull,
    /// Redis failed or timed out.
    #[error("queue unavailable: {0}")]
    QueueUnavailable(#[from] QueueError),
    /// The body is larger than `MAILTRAIL_BODY_LIMIT_BYTES`.
    #[error("the body is over the size limit")]
    TooLarge,
    /// The body did not arrive within `MAILTRAIL_BODY_TIMEOUT_MS`.
    #[error("the body was not received within the body timeout")]
    SlowBody,
    /// The body could not be read (the connection broke, a malformed transfer encoding, a
    /// corrupt compressed stream).
    #[error("the body could not be read: {0}")]
    BrokenBody(PayloadError),
    /// A `Content-Encoding` the receiver does not decode.
    #[error("unsupported content encoding `{0}`")]
    UnsupportedEncoding(Excerpt),
}

/// How one refusal is answered, counted and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorParts {
    /// The HTTP status (it tells Mailgun whether to retry).
    pub status: StatusCode,
    /// The metrics outcome.
    pub outcome: Outcome,
    /// The body answered: a short, fixed text that never echoes the body or the token back.
    pub message: &'static str,
    /// How loudly it is logged: `WARN` for what an operator may need to act on.
    pub level: Level,
}

impl WebhookError {
    /// The one table from refusal to status, outcome, answer and log level.
    pub fn response_parts(&self) -> ErrorParts {
        use StatusCode as S;
        let (status, outcome, message, level) = match self {
            Self::Unprocessable(_) => (
                S::NOT_ACCEPTABLE,
                Outcome::unprocessable,
                "unprocessable webhook",
                Level::INFO,
            ),
            // A stale timestamp is worth a warning: usually a clock off, or a replay.
            Self::Refused(SignatureError::Stale { .. }) => (
                S::NOT_ACCEPTABLE,
                Outcome::stale,
                "signature timestamp outside the window",
                Level::WARN,
            ),
            Self::Refused(_) => (
                S::NOT_ACCEPTABLE,
                Outcome::unprocessable,
                "malformed signature",
                Level::INFO,
            ),
            Self::BadSignature => (
                S::UNAUTHORIZED,
                Outcome::bad_signature,
                "invalid signature",
                Level::WARN,
            ),
            Self::BacklogFull => (
                S::SERVICE_UNAVAILABLE,
                Outcome::backlog_full,
                "backlog full, retry later",
                Level::WARN,
            ),
            Self::QueueUnavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                Outcome::queue_unavailable,
                "queue unavailable, retry later",
                Level::WARN,
            ),
            Self::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                Outcome::too_large,
                "body too large",
                Level::WARN,
            ),
            // Info, not warn: a flood of slow senders must not become a flood of warnings.
            Self::SlowBody => (
                S::REQUEST_TIMEOUT,
                Outcome::slow_body,
                "body not received in time",
                Level::INFO,
            ),
            Self::BrokenBody(_) => (
                S::BAD_REQUEST,
                Outcome::broken_body,
                "body could not be read",
                Level::INFO,
            ),
            // Warn: if Mailgun ever sends it, every webhook is refused until the receiver learns
            // the encoding, and the retries last about 8 hours.
            Self::UnsupportedEncoding(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                Outcome::unsupported_encoding,
                "unsupported content encoding; gzip and deflate are decoded",
                Level::WARN,
            ),
        };
        ErrorParts {
            status,
            outcome,
            message,
            level,
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        self.response_parts().status
    }

    fn error_response(&self) -> HttpResponse {
        let parts = self.response_parts();
        let retried = parts.status == StatusCode::SERVICE_UNAVAILABLE;
        // Logged once, here, where the error becomes a response; never with the body or token.
        let log = if retried {
            "webhook not queued; Mailgun will retry"
        } else {
            "webhook refused"
        };
        if parts.level == Level::WARN {
            tracing::warn!(error = %self, "{log}");
        } else {
            tracing::info!(error = %self, "{log}");
        }
        let mut response = HttpResponse::build(parts.status);
        if retried {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("60")));
        }
        if matches!(self, Self::SlowBody | Self::BrokenBody(_)) {
            // The rest of the body may still be on its way: the connection cannot be reused.
            response.force_close();
        }
        let mut response = response.body(parts.message);
        response.extensions_mut().insert(parts.outcome);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_could_still_succeed_is_answered_with_a_status_mailgun_retries() {
        let never = [
            WebhookError::Unprocessable(ParseError::MissingSignature),
            WebhookError::Refused(SignatureError::Malformed),
            WebhookError::Refused(SignatureError::Stale { age_seconds: 9_999 }),
        ];
        for error in &never {
            assert_eq!(error.status_code(), StatusCode::NOT_ACCEPTABLE, "{error}");
        }
        let later = [
            (WebhookError::BadSignature, StatusCode::UNAUTHORIZED),
            (WebhookError::BacklogFull, StatusCode::SERVICE_UNAVAILABLE),
            (WebhookError::TooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            (WebhookError::SlowBody, StatusCode::REQUEST_TIMEOUT),
            (
                WebhookError::UnsupportedEncoding(Excerpt::of("br")),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                WebhookError::BrokenBody(PayloadError::Incomplete(None)),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (error, status) in &later {
            assert_eq!(error.status_code(), *status, "{error}");
        }
    }

    #[test]
    fn each_refusal_has_its_outcome_and_a_fixed_answer() {
        let stale = WebhookError::Refused(SignatureError::Stale { age_seconds: 9_999 });
        assert_eq!(
            stale.response_parts(),
            ErrorParts {
                status: StatusCode::NOT_ACCEPTABLE,
                outcome: Outcome::stale,
                message: "signature timestamp outside the window",
                level: Level::WARN,
            }
        );
        let malformed = WebhookError::Refused(SignatureError::Malformed).response_parts();
        assert_eq!(
            (malformed.outcome, malformed.level),
            (Outcome::unprocessable, Level::INFO)
        );
        let full = WebhookError::BacklogFull.error_response();
        assert_eq!(full.headers().get(RETRY_AFTER).unwrap(), "60");
        assert_eq!(
            full.extensions().get::<Outcome>(),
            Some(&Outcome::backlog_full)
        );
    }
}
