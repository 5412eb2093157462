//! Mailgun, the first provider: its webhook bodies and what its events mean.
//!
//! Three wire formats carry the same events: the current JSON webhooks, and the legacy
//! urlencoded and multipart forms (retired by Mailgun in 2023, still accepted). The receiver only
//! needs the signed fields ([`read_signature`]); the worker needs the whole event
//! ([`parse_event`]). Both dispatch on the request's content type. [`status`] maps Mailgun's
//! events, codes and reasons to their effect on a row; nothing outside this module knows them.

pub mod form;
pub mod json;
pub mod multipart;
pub mod status;

use crate::event::Event;
use crate::excerpt::Excerpt;
use crate::signature::SignedToken;

/// The most fields a legacy form (urlencoded or multipart) may have; a body with more is refused.
///
/// Real legacy posts have a few dozen (Mailgun's own fields plus the custom variables). The cap
/// bounds what one body can make the parser hold: a 10 MiB body of `a&a&a…` is five million
/// fields, a quarter of a gigabyte of field handles, where 10,000 are half a megabyte.
pub const MAX_FORM_FIELDS: usize = 10_000;

/// The most distinct tags kept per event; further tags are ignored. Mailgun allows three per
/// message, and mailtrail stores none, so this only bounds what an event holds in memory.
pub const MAX_TAGS: usize = 100;

/// The wire format of a webhook, from its `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// `application/json`: current webhooks.
    Json,
    /// `application/x-www-form-urlencoded`: legacy webhooks.
    FormUrlEncoded,
    /// `multipart/form-data`: legacy webhooks that carried attachments.
    Multipart {
        /// The multipart boundary from the content type.
        boundary: String,
    },
}

impl WebhookFormat {
    /// Recognises the formats Mailgun sends; anything else can never be processed.
    pub fn from_content_type(content_type: &str) -> Result<Self, ParseError> {
        let mut parts = content_type.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Self::Json),
            "application/x-www-form-urlencoded" => Ok(Self::FormUrlEncoded),
            "multipart/form-data" => {
                let boundary = parts
                    .filter_map(|param| param.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
                    .map(|(_, value)| value.trim().trim_matches('"').to_owned())
                    .filter(|boundary| !boundary.is_empty())
                    .ok_or(ParseError::MissingBoundary)?;
                Ok(Self::Multipart { boundary })
            }
            _ => Err(ParseError::UnsupportedContentType(Excerpt::of(
                content_type,
            ))),
        }
    }
}

/// The signed fields of a webhook, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSignature {
    /// Integer seconds, as signed.
    pub timestamp: String,
    /// The single-use token.
    pub token: String,
    /// Hex HMAC of `timestamp + token` under the account's key.
    pub signature: String,
    /// Subaccount events: the same HMAC under the parent account's key.
    pub parent_signature: Option<String>,
}

impl WebhookSignature {
    /// The triple to verify with the account's key.
    pub fn signed(&self) -> SignedToken<'_> {
        SignedToken {
            timestamp: &self.timestamp,
            token: &self.token,
            signature: &self.signature,
        }
    }

    /// The triple to verify with the parent account's key, for subaccount events.
    pub fn parent_signed(&self) -> Option<SignedToken<'_>> {
        self.parent_signature
            .as_deref()
            .map(|signature| SignedToken {
                timestamp: &self.timestamp,
                token: &self.token,
                signature,
            })
    }
}

/// Why a webhook body could not be read.
///
/// What a variant quotes from the request is an [`Excerpt`], so a message stays short however
/// large the body: these messages are logged and become dead-letter reasons.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not a content type Mailgun sends.
    #[error("unsupported content type `{0}`")]
    UnsupportedContentType(Excerpt),
    /// `multipart/form-data` without a boundary.
    #[error("multipart content type without a boundary")]
    MissingBoundary,
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(Excerpt),
    /// The body is not a valid form.
    #[error("the body is not a valid form: {0}")]
    InvalidForm(Excerpt),
    /// The body has no `signature` block or no timestamp/token/signature fields.
    #[error("the body carries no signature, token or timestamp")]
    MissingSignature,
    /// A JSON webhook without `event-data`.
    #[error("the body has no event-data object")]
    MissingEventData,
    /// No `event` field: not an event webhook (an inbound route posting here, say).
    #[error("the body names no event (an inbound message or another kind of post?)")]
    MissingEvent,
}

/// Pulls the signed fields out of a webhook body (the receiver's cheap check).
pub fn read_signature(format: &WebhookFormat, body: &[u8]) -> Result<WebhookSignature, ParseError> {
    match format {
        WebhookFormat::Json => json::read_signature(body),
        WebhookFormat::FormUrlEncoded => form::read_signature(body),
        WebhookFormat::Multipart { boundary } => multipart::read_signature(body, boundary),
    }
}

/// Reads the whole event. `fallback_micros` is used when the payload has no event time.
pub fn parse_event(
    format: &WebhookFormat,
    body: &[u8],
    fallback_micros: i64,
) -> Result<Event, ParseError> {
    match format {
        WebhookFormat::Json => json::parse_event(body, fallback_micros),
        WebhookFormat::FormUrlEncoded => form::parse_event(body, fallback_micros),
        WebhookFormat::Multipart { boundary } => {
            multipart::parse_event(body, boundary, fallback_micros)
        }
    }
}

/// The shared Mailgun corpus for tests: `MAILTRAIL_CORPUS_DIR`, relative to the workspace root
/// (cargo runs tests in the crate's folder). Unset is a skip locally and a failure on CI.
#[cfg(test)]
pub(crate) fn corpus_dir() -> Option<std::path::PathBuf> {
    let Some(dir) = std::env::var_os("MAILTRAIL_CORPUS_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "MAILTRAIL_CORPUS_DIR is unset on CI: the corpus tests cannot be skipped there"
        );
        eprintln!("note: MAILTRAIL_CORPUS_DIR is unset; skipping a Mailgun corpus test");
        return None;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    assert!(
        dir.is_dir(),
        "MAILTRAIL_CORPUS_DIR: {} is not a directory",
        dir.display()
    );
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_pick_the_format() {
        assert_eq!(
            WebhookFormat::from_content_type("application/json; charset=utf-8"),
            Ok(WebhookFormat::Json)
        );
        assert_eq!(
            WebhookFormat::from_content_type("application/x-www-form-urlencoded"),
            Ok(WebhookFormat::FormUrlEncoded)
        );
        assert_eq!(
            WebhookFormat::from_content_type("multipart/form-data; boundary=\"abc\""),
            Ok(WebhookFormat::Multipart {
                boundary: "abc".into()
            })
        );
        assert_eq!(
            WebhookFormat::from_content_type("multipart/form-data"),
            Err(ParseError::MissingBoundary)
        );
        assert!(WebhookFormat::from_content_type("text/plain").is_err());
    }

    /// The message of an error that must happen.
    fn refusal<T>(result: Result<T, impl std::fmt::Display>) -> String {
        match result {
            Ok(_) => panic!("expected a refusal"),
            Err(error) => error.to_string(),
        }
    }

    /// The error messages requests quoting one huge string cause, from the receiver's checks to
    /// the worker's envelope.
    fn errors_quoting(huge: &str) -> Vec<String> {
        // serde_json quotes a string of the wrong type whole: `invalid type: string "…"`.
        let json = serde_json::to_vec(&serde_json::json!({"signature": huge, "event-data": {}}))
            .unwrap_or_default();
        vec![
            refusal(read_signature(&WebhookFormat::Json, &json)),
            refusal(parse_event(&WebhookFormat::Json, &json, 0)),
            refusal(WebhookFormat::from_content_type(&format!("text/{huge}"))),
            refusal(crate::Envelope::from_json(&format!(
                "{{\"v\": {}}}",
                serde_json::Value::from(huge)
            ))),
        ]
    }

    #[test]
    fn errors_quote_at_most_an_excerpt_of_a_huge_body() {
        for unit in ["A", "é", "😀", "\n"] {
            let huge = unit.repeat(200_000 / unit.len());
            for message in errors_quoting(&huge) {
                assert!(
                    message.chars().count() < 400,
                    "{unit:?}: a {} character error: {}…",
                    message.chars().count(),
                    message.chars().take(120).collect::<String>()
                );
                assert!(!message.contains('\n'), "{unit:?}: {message}");
            }
        }
    }
}
