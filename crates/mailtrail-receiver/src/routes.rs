//! The HTTP routes: the webhook endpoint and the health checks.
//!
//! The webhook path is the hot path: read the body, find the signed fields, check the window and
//! the HMAC, then one Redis round trip (a Lua script that marks the token and pushes). Nothing is
//! parsed beyond what verification needs; the worker does the rest.

use std::time::Duration;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use mailtrail_core::mailgun::{WebhookFormat, read_signature};
use mailtrail_core::{Envelope, SignatureError, SigningKeys};
use mailtrail_queue::{PushOutcome, Queue, now_ms};

use crate::error::WebhookError;

/// What every request handler shares.
pub struct AppState {
    /// The Redis queue.
    pub queue: Queue,
    /// Valid signing keys.
    pub signing_keys: SigningKeys,
    /// Accepted distance of a signed timestamp from now, in seconds.
    pub timestamp_window_secs: i64,
    /// How long a used token is remembered.
    pub token_ttl: Duration,
    /// Backlog cap (0 = none).
    pub backlog_cap: u64,
}

/// `POST /webhooks/mailgun`: verify, queue, answer.
pub async fn receive_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let format = WebhookFormat::from_content_type(content_type)?;
    let signature = read_signature(&format, &body)?;
    let signed = signature.signed();
    let now_ms = now_ms();
    signed
        .check_fresh(now_ms / 1000, state.timestamp_window_secs)
        .map_err(WebhookError::Refused)?;
    let key_index = match state.signing_keys.verify(&signed) {
        Ok(index) => index,
        // Subaccount events also carry the parent account's signature.
        Err(error) => match signature.parent_signed() {
            Some(parent) => state
                .signing_keys
                .verify(&parent)
                .map_err(|_| refusal(error))?,
            None => return Err(refusal(error)),
        },
    };
    let envelope = Envelope::new(now_ms, content_type, &body).to_json();
    let outcome = state
        .queue
        .push_webhook(
            &signature.token,
            state.token_ttl,
            &envelope,
            state.backlog_cap,
        )
        .await?;
    match outcome {
        PushOutcome::Queued => {
            tracing::debug!(key_index, body_bytes = body.len(), "webhook queued");
            Ok(HttpResponse::Ok().body("queued"))
        }
        PushOutcome::DuplicateToken => {
            tracing::debug!(
                key_index,
                "webhook token already used; answered 200, nothing queued"
            );
            Ok(HttpResponse::Ok().body("duplicate"))
        }
        PushOutcome::BacklogFull => Err(WebhookError::BacklogFull),
    }
}

fn refusal(error: SignatureError) -> WebhookError {
    match error {
        SignatureError::Mismatch => WebhookError::BadSignature,
        other => WebhookError::Refused(other),
    }
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// `GET /readyz`: Redis answers, so webhooks can be queued.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.queue.ping().await {
        Ok(()) => HttpResponse::Ok().body("ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed: Redis does not answer");
            HttpResponse::ServiceUnavailable().body("redis unavailable")
        }
    }
}
