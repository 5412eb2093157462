//! The HTTP routes: the webhook endpoint and the health checks.
//!
//! The webhook path is the hot path: read the body, find the signed fields, check the window and
//! the HMAC, then one Redis round trip (a Lua script that marks the token and pushes). Nothing is
//! parsed beyond what verification needs; the worker does the rest.
//!
//! The body is read here rather than by an extractor, so that receiving it has a deadline
//! (`MAILTRAIL_BODY_TIMEOUT_MS`): actix cuts slow headers at 5 s, but would wait for a trickled
//! body for ever, one connection and one buffer held per sender. A body sent with
//! `Content-Encoding: gzip` or `deflate` is decoded on the way in (the size limit holds for the
//! decoded body, so a compression bomb stops at the limit); any other encoding is answered 415,
//! which Mailgun retries, where the bytes would otherwise reach the parser still encoded and be
//! refused with a 406 that stops the retries for good.

use std::time::Duration;

use actix_web::body::{self, BodyStream};
use actix_web::dev::Decompress;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ContentEncoding};
use actix_web::{HttpRequest, HttpResponse, web};
use mailtrail_core::mailgun::{WebhookFormat, multipart, read_signature};
use mailtrail_core::{Envelope, Excerpt, SignatureError, SigningKeys, Source};
use mailtrail_queue::{PushOutcome, Queue, now_ms};

use crate::error::{Outcome, WebhookError};
use crate::metrics::ReceiverMetrics;

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
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Longest time to receive a body.
    pub body_timeout: Duration,
}

/// `POST /webhooks/mailgun`: verify, queue, answer.
pub async fn receive_webhook(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    metrics: web::Data<ReceiverMetrics>,
) -> Result<HttpResponse, WebhookError> {
    let body = read_body(
        &request,
        payload,
        state.body_limit_bytes,
        state.body_timeout,
    )
    .await?;
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
    let envelope = match &format {
        // Legacy bounces may carry the returned message as attachments: they never matter for
        // status and can be megabytes, so they are not copied into Redis.
        WebhookFormat::Multipart { boundary } => {
            let text_parts = multipart::without_file_parts(&body, boundary)?;
            Envelope::encode(Source::Mailgun, now_ms, content_type, &text_parts)
        }
        WebhookFormat::Json | WebhookFormat::FormUrlEncoded => {
            Envelope::encode(Source::Mailgun, now_ms, content_type, &body)
        }
    };
    let pushed_at = std::time::Instant::now();
    let pushed = state
        .queue
        .push_webhook(
            &signature.token,
            state.token_ttl,
            &envelope,
            state.backlog_cap,
        )
        .await;
    metrics.observe_push(pushed_at.elapsed());
    let (outcome, text) = match pushed? {
        PushOutcome::Queued => {
            tracing::debug!(key_index, body_bytes = body.len(), "webhook queued");
            (Outcome::queued, "queued")
        }
        PushOutcome::DuplicateToken => {
            tracing::debug!(
                key_index,
                "webhook token already used; answered 200, nothing queued"
            );
            (Outcome::duplicate, "duplicate")
        }
        PushOutcome::BacklogFull => return Err(WebhookError::BacklogFull),
    };
    let mut response = HttpResponse::Ok().body(text);
    response.extensions_mut().insert(outcome);
    Ok(response)
}

/// The whole body, within `limit` bytes and `timeout`.
async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, WebhookError> {
    // A declared length over the limit is refused before a byte is read.
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(WebhookError::TooLarge);
    }
    let encoding = content_encoding(request)?;
    let decoded = Decompress::new(payload.into_inner(), encoding);
    let read = body::to_bytes_limited(BodyStream::new(decoded), limit);
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(WebhookError::SlowBody),
        Ok(Err(_)) => Err(WebhookError::TooLarge),
        Ok(Ok(Err(error))) => Err(WebhookError::BrokenBody(error)),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// The body's `Content-Encoding`, if it is one the receiver decodes: none, `identity`, `gzip`
/// (also spelled `x-gzip`) or `deflate`. A list of encodings is refused like an unknown one.
fn content_encoding(request: &HttpRequest) -> Result<ContentEncoding, WebhookError> {
    let Some(value) = request.headers().get(CONTENT_ENCODING) else {
        return Ok(ContentEncoding::Identity);
    };
    let name = value.to_str().unwrap_or("").trim();
    match name.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(ContentEncoding::Identity),
        "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
        "deflate" => Ok(ContentEncoding::Deflate),
        _ => Err(WebhookError::UnsupportedEncoding(Excerpt::of(
            String::from_utf8_lossy(value.as_bytes()),
        ))),
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
