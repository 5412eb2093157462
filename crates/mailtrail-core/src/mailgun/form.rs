//! Legacy `application/x-www-form-urlencoded` webhooks.

use super::{ParseError, WebhookSignature};
use crate::event::MailgunEvent;

/// Pulls the signed fields out of a legacy form (the last `signature`, `timestamp` and `token`).
pub fn read_signature(_body: &[u8]) -> Result<WebhookSignature, ParseError> {
    Err(ParseError::UnsupportedContentType(
        "application/x-www-form-urlencoded".into(),
    ))
}

/// Reads a legacy form event.
pub fn parse_event(_body: &[u8], _fallback_micros: i64) -> Result<MailgunEvent, ParseError> {
    Err(ParseError::UnsupportedContentType(
        "application/x-www-form-urlencoded".into(),
    ))
}
