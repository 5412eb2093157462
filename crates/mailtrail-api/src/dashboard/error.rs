//! Every way a page can fail, and the one place each becomes what a person sees: a redirect to
//! sign in, or an error page that says what happened and what to do.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use mailtrail_store::StoreError;

use super::pages::ErrorPage;
use super::render;
use super::session::SESSION_COOKIE;
use crate::error::ApiError;

/// Why a page was not shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session: sign in first.
    #[error("sign in first")]
    SignedOut,
    /// The session's token was revoked (or never existed).
    #[error("the token was revoked or is unknown")]
    TokenRejected,
    /// The token's scope does not cover the page.
    #[error("this token is limited to project {0}")]
    NoAccess(i64),
    /// Nothing by that name (or nothing the token may know of).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A parameter is malformed.
    #[error("{0}")]
    BadParameter(String),
    /// A POST without this session's CSRF token, or from another origin.
    #[error("the form came from elsewhere or has expired")]
    Forgery,
    /// Postgres failed.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    /// Redis failed (no page queues anything today; here so every API error has a page).
    #[error("the queue is unavailable")]
    QueueUnavailable(#[source] mailtrail_queue::QueueError),
    /// A template failed to render (a bug, logged).
    #[error("the page could not be drawn")]
    Render(#[from] askama::Error),
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Forbidden(own) => Self::NoAccess(own),
            ApiError::Unauthorized => Self::TokenRejected,
            ApiError::NotFound(what) => Self::NotFound(what),
            ApiError::Unavailable(error) => Self::Unavailable(error),
            ApiError::QueueUnavailable(error) => Self::QueueUnavailable(error),
            other @ (ApiError::BadParameter { .. }
            | ApiError::BadQuery(_)
            | ApiError::MethodNotAllowed(_)) => Self::BadParameter(other.to_string()),
        }
    }
}

impl PageError {
    /// The page's heading and explanation.
    fn explain(&self) -> (String, String) {
        match self {
            Self::NoAccess(own) => (
                "No access".to_owned(),
                format!(
                    "Your token is limited to project {own}, so this page is not yours to see."
                ),
            ),
            Self::NotFound(what) => (
                "Not found".to_owned(),
                format!("There is no such {what}, or it belongs to a project you cannot see."),
            ),
            Self::BadParameter(problem) => (
                "That address is not quite right".to_owned(),
                format!("{problem}. Go back and correct it."),
            ),
            Self::Forgery => (
                "The form has expired".to_owned(),
                "It came from another site or an old page. Reload the page and try again."
                    .to_owned(),
            ),
            Self::Unavailable(_) | Self::QueueUnavailable(_) | Self::Render(_) => (
                "Something went wrong on our side".to_owned(),
                "The figures could not be read just now. Try again in a moment.".to_owned(),
            ),
            Self::SignedOut | Self::TokenRejected => ("Sign in".to_owned(), String::new()),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignedOut | Self::TokenRejected => StatusCode::SEE_OTHER,
            Self::NoAccess(_) | Self::Forgery => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadParameter(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) | Self::QueueUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignedOut => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/sign-in"))
                    .finish();
            }
            Self::TokenRejected => {
                let mut removal = Cookie::build(SESSION_COOKIE, "").path("/").finish();
                removal.make_removal();
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/sign-in?problem=expired"))
                    .cookie(removal)
                    .finish();
            }
            // Logged once, here; the person gets no internals.
            Self::Unavailable(error) => {
                tracing::warn!(%error, "dashboard page failed on the database")
            }
            Self::QueueUnavailable(error) => {
                tracing::warn!(%error, "dashboard page failed on Redis")
            }
            Self::Render(error) => tracing::error!(%error, "dashboard template failed"),
            _ => {}
        }
        let (title, detail) = self.explain();
        render::page(
            self.status_code(),
            &ErrorPage {
                nav: None,
                title,
                detail,
            },
        )
        .unwrap_or_else(|_| HttpResponse::build(self.status_code()).body(self.to_string()))
    }
}
