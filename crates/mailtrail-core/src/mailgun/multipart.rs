//! Legacy `multipart/form-data` webhooks (bounces and drops that carried attachments).

use super::{ParseError, WebhookSignature};
use crate::event::MailgunEvent;

/// Pulls the signed fields out of a multipart legacy webhook.
pub fn read_signature(_body: &[u8], _boundary: &str) -> Result<WebhookSignature, ParseError> {
    Err(ParseError::UnsupportedContentType(
        "multipart/form-data".into(),
    ))
}

/// Reads a multipart legacy event.
pub fn parse_event(
    _body: &[u8],
    _boundary: &str,
    _fallback_micros: i64,
) -> Result<MailgunEvent, ParseError> {
    Err(ParseError::UnsupportedContentType(
        "multipart/form-data".into(),
    ))
}
