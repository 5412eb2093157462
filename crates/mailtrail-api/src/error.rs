//! Every way a request can fail, and the one place each maps to a status and a JSON body
//! `{"error": "..."}`. Bad input is a 4xx naming what is wrong, never a 500 and never a panic.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use mailtrail_store::StoreError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is malformed or out of range.
    #[error("{name}: {problem}")]
    BadParameter {
        /// The parameter, as the client spelled it.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The query string as a whole could not be read (an unknown parameter, say).
    #[error("{0}")]
    BadQuery(String),
    /// No token, or one that is unknown or revoked.
    #[error("a valid API token is required: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The token's scope does not cover what was asked.
    #[error("this token cannot read that: it is limited to project {0}")]
    Forbidden(i64),
    /// Nothing by that name (or nothing the token may know of).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The route exists, with another method.
    #[error("this route answers {0} only")]
    MethodNotAllowed(&'static str),
    /// Postgres failed; the client may retry.
    #[error("the database is unavailable; retry later")]
    Unavailable(#[source] StoreError),
    /// Redis did not take a report; nothing was queued and the client may retry.
    #[error("the queue is unavailable; nothing was queued, retry later")]
    QueueUnavailable(#[source] mailtrail_queue::QueueError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } | Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::QueueUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Unavailable(error) = self {
            // Logged once, here; the client gets no internals.
            tracing::warn!(%error, "request failed on the database");
        }
        if let Self::QueueUnavailable(error) = self {
            tracing::warn!(%error, "could not queue a report");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            response.insert_header((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// Parses a path or query value as an id, naming the parameter when it is not one.
pub fn parse_id(name: &'static str, value: &str) -> Result<i64, ApiError> {
    value.parse::<i64>().map_err(|_| ApiError::BadParameter {
        name,
        problem: format!("expected an integer id, got `{}`", quoted(value)),
    })
}

/// At most 64 characters of a client's value, for an error message (never a whole body).
pub fn quoted(value: &str) -> String {
    value.chars().take(64).collect()
}
