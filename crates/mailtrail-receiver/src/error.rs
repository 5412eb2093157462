//! Every way a webhook can be refused, and the one place each maps to an HTTP status.
//!
//! Mailgun treats 200 as done, 406 as "rejected, never retry", and anything else as "retry for
//! about 8 hours". So:
//! - a body that can never be processed (not Mailgun's format, no signature, stale) gets 406;
//! - a signature that matches no configured key gets **401**, deliberately retryable: the usual
//!   cause is a key rotated at Mailgun before `MAILTRAIL_SIGNING_KEYS` was updated, and 8 hours of
//!   retries give the operator time to fix it without losing events. A forger gains nothing from
//!   a retry;
//! - Redis unavailable or the backlog at its cap gets 503 with `Retry-After`, so Mailgun retries.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use mailtrail_core::SignatureError;
use mailtrail_core::mailgun::ParseError;
use mailtrail_queue::QueueError;

use crate::metrics::Outcome;

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
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unprocessable(_) | Self::Refused(_) => StatusCode::NOT_ACCEPTABLE,
            Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::BacklogFull | Self::QueueUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let outcome = match self {
            Self::Unprocessable(_) | Self::Refused(SignatureError::Malformed) => {
                Outcome::unprocessable
            }
            Self::Refused(SignatureError::Stale { .. }) => Outcome::stale,
            Self::Refused(_) => Outcome::unprocessable,
            Self::BadSignature => Outcome::bad_signature,
            Self::BacklogFull => Outcome::backlog_full,
            Self::QueueUnavailable(_) => Outcome::queue_unavailable,
        };
        // Logged once, here, where the error becomes a response; never with the body or token.
        match self {
            Self::BadSignature | Self::Refused(SignatureError::Stale { .. }) => {
                tracing::warn!(error = %self, "webhook refused")
            }
            Self::QueueUnavailable(_) | Self::BacklogFull => {
                tracing::warn!(error = %self, "webhook not queued; Mailgun will retry")
            }
            _ => tracing::info!(error = %self, "webhook refused"),
        }
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("60")));
        }
        // A short, fixed text: never echo the body or the token back.
        let reason = match self {
            Self::Unprocessable(_) => "unprocessable webhook",
            Self::Refused(SignatureError::Stale { .. }) => "signature timestamp outside the window",
            Self::Refused(_) => "malformed signature",
            Self::BadSignature => "invalid signature",
            Self::BacklogFull => "backlog full, retry later",
            Self::QueueUnavailable(_) => "queue unavailable, retry later",
        };
        let mut response = response.body(reason);
        response.extensions_mut().insert(outcome);
        response
    }
}
