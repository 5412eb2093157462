//! The queue envelope: what the receiver pushes onto Redis and the worker pops.
//!
//! One line of JSON, readable with `redis-cli LRANGE`, holding the raw body exactly as received
//! so that nothing is lost if parsing rules change: an envelope can always be re-parsed.
//!
//! Version 2 names the envelope's [`Source`], which picks the parser (see [`crate::provider`]):
//! `{"v":2,"source":"mailgun","received_at_ms":…,"content_type":"…","body":"…"}`. Version 1
//! envelopes (written before sources existed, and possibly still waiting in a backlog or a
//! dead-letter list) have no `source` and are read as `mailgun` webhooks, which is all they could
//! be.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::excerpt::Excerpt;

/// The envelope format version written by this build.
pub const ENVELOPE_VERSION: u8 = 2;

/// The oldest envelope version this build still reads.
const OLDEST_READABLE_VERSION: u8 = 1;

/// Where an envelope's body came from, and so which parser reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A Mailgun webhook as posted to the receiver (JSON, urlencoded or multipart). The default,
    /// for version 1 envelopes.
    #[default]
    Mailgun,
    /// Items of Mailgun's Events API (one `event-data` object, or an array of them).
    MailgunEventsApi,
    /// A conversion reported by the application.
    App,
}

impl Source {
    /// The name written in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mailgun => "mailgun",
            Self::MailgunEventsApi => "mailgun-events-api",
            Self::App => "app",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One report as received, waiting to be processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`ENVELOPE_VERSION`]; 1 is still read).
    pub v: u8,
    /// Where the body came from (absent in version 1: `mailgun`).
    #[serde(default)]
    pub source: Source,
    /// When the receiver accepted it, in milliseconds since the epoch.
    pub received_at_ms: i64,
    /// The request's `Content-Type` header.
    pub content_type: String,
    /// The raw body, when it is valid UTF-8 (always for JSON and urlencoded webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The raw body as hex, when it is not UTF-8 (multipart posts with binary attachments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON of the envelope's shape (serde_json's message, which may quote the envelope).
    #[error("the envelope is not valid JSON: {0}")]
    Json(Excerpt),
    /// A version this build does not know.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// Neither `body` nor a valid `body_hex`.
    #[error("the envelope holds no readable body")]
    NoBody,
}

impl Envelope {
    /// Wraps a received body.
    pub fn new(source: Source, received_at_ms: i64, content_type: &str, body: &[u8]) -> Self {
        let (body, body_hex) = match std::str::from_utf8(body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(hex::encode(body))),
        };
        Self {
            v: ENVELOPE_VERSION,
            source,
            received_at_ms,
            content_type: content_type.to_owned(),
            body,
            body_hex,
        }
    }

    /// Encodes a received body straight into the one-line JSON pushed onto Redis, without an
    /// intermediate copy of the body (the receiver's hot path: the body is the only large thing
    /// it holds, so it should exist once as received and once as queued).
    pub fn encode(source: Source, received_at_ms: i64, content_type: &str, body: &[u8]) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u8,
            source: Source,
            received_at_ms: i64,
            content_type: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            body: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            body_hex: Option<String>,
        }
        let (text, body_hex) = match std::str::from_utf8(body) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(hex::encode(body))),
        };
        // Serialising strings and integers cannot fail.
        serde_json::to_string(&Borrowed {
            v: ENVELOPE_VERSION,
            source,
            received_at_ms,
            content_type,
            body: text,
            body_hex,
        })
        .unwrap_or_default()
    }

    /// The one-line JSON pushed onto Redis.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an envelope popped from Redis.
    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        let envelope: Self =
            serde_json::from_str(text).map_err(|error| EnvelopeError::Json(Excerpt::of(error)))?;
        if !(OLDEST_READABLE_VERSION..=ENVELOPE_VERSION).contains(&envelope.v) {
            return Err(EnvelopeError::Version(envelope.v));
        }
        Ok(envelope)
    }

    /// The raw body bytes.
    pub fn body_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, EnvelopeError> {
        match (&self.body, &self.body_hex) {
            (Some(body), _) => Ok(std::borrow::Cow::Borrowed(body.as_bytes())),
            (None, Some(encoded)) => hex::decode(encoded)
                .map(std::borrow::Cow::Owned)
                .map_err(|_| EnvelopeError::NoBody),
            (None, None) => Err(EnvelopeError::NoBody),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_one_line_of_json() {
        let envelope = Envelope::new(
            Source::Mailgun,
            1_700_000_000_000,
            "application/json",
            b"{\"a\":1}\n",
        );
        let line = envelope.to_json();
        assert!(!line.contains('\n'));
        let back = Envelope::from_json(&line).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(&*back.body_bytes().unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn encoding_a_borrowed_body_writes_the_same_line_as_an_envelope() {
        for body in [&b"{\"a\":1}"[..], &[0xff, 0x00, b'a'][..]] {
            let line = Envelope::encode(Source::MailgunEventsApi, 5, "application/json", body);
            assert_eq!(
                line,
                Envelope::new(Source::MailgunEventsApi, 5, "application/json", body).to_json()
            );
            assert_eq!(
                &*Envelope::from_json(&line).unwrap().body_bytes().unwrap(),
                body
            );
        }
    }

    #[test]
    fn binary_bodies_survive_as_hex() {
        let envelope = Envelope::new(
            Source::Mailgun,
            1,
            "multipart/form-data; boundary=x",
            &[0xff, 0x00, b'a'],
        );
        let back = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(&*back.body_bytes().unwrap(), &[0xff, 0x00, b'a']);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert!(matches!(
            Envelope::from_json(r#"{"v":9,"received_at_ms":1,"content_type":"x","body":""}"#),
            Err(EnvelopeError::Version(9))
        ));
        assert!(Envelope::from_json("not json").is_err());
        assert!(
            Envelope::from_json(
                r#"{"v":2,"source":"sendgrid","received_at_ms":1,"content_type":"x","body":""}"#
            )
            .is_err()
        );
    }

    #[test]
    fn version_1_envelopes_are_read_as_mailgun_webhooks() {
        let v1 = r#"{"v":1,"received_at_ms":7,"content_type":"application/json","body":"{}"}"#;
        let envelope = Envelope::from_json(v1).unwrap();
        assert_eq!((envelope.v, envelope.source), (1, Source::Mailgun));
        assert_eq!(&*envelope.body_bytes().unwrap(), b"{}");
    }

    #[test]
    fn version_2_names_its_source() {
        let line = Envelope::new(Source::App, 1, "application/json", b"{}").to_json();
        assert!(line.starts_with(r#"{"v":2,"source":"app","#), "{line}");
        for source in [Source::Mailgun, Source::MailgunEventsApi, Source::App] {
            let line = Envelope::encode(source, 1, "application/json", b"{}");
            assert_eq!(Envelope::from_json(&line).unwrap().source, source);
            assert!(line.contains(&format!(r#""source":"{source}""#)), "{line}");
        }
    }
}
