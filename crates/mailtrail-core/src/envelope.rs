//! The queue envelope: what the receiver pushes onto Redis and the worker pops.
//!
//! One line of JSON, readable with `redis-cli LRANGE`, holding the raw body exactly as received
//! so that nothing is lost if parsing rules change: an envelope can always be re-parsed.

use serde::{Deserialize, Serialize};

/// The envelope format version written by this build.
pub const ENVELOPE_VERSION: u8 = 1;

/// One webhook as received, waiting to be processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`ENVELOPE_VERSION`]).
    pub v: u8,
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
    /// Not JSON of the envelope's shape.
    #[error("the envelope is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this build does not know.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// Neither `body` nor a valid `body_hex`.
    #[error("the envelope holds no readable body")]
    NoBody,
}

impl Envelope {
    /// Wraps a received body.
    pub fn new(received_at_ms: i64, content_type: &str, body: &[u8]) -> Self {
        let (body, body_hex) = match std::str::from_utf8(body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(hex::encode(body))),
        };
        Self {
            v: ENVELOPE_VERSION,
            received_at_ms,
            content_type: content_type.to_owned(),
            body,
            body_hex,
        }
    }

    /// Encodes a received body straight into the one-line JSON pushed onto Redis, without an
    /// intermediate copy of the body (the receiver's hot path: the body is the only large thing
    /// it holds, so it should exist once as received and once as queued).
    pub fn encode(received_at_ms: i64, content_type: &str, body: &[u8]) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u8,
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
        let envelope: Self = serde_json::from_str(text)?;
        if envelope.v != ENVELOPE_VERSION {
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
        let envelope = Envelope::new(1_700_000_000_000, "application/json", b"{\"a\":1}\n");
        let line = envelope.to_json();
        assert!(!line.contains('\n'));
        let back = Envelope::from_json(&line).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(&*back.body_bytes().unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn encoding_a_borrowed_body_writes_the_same_line_as_an_envelope() {
        for body in [&b"{\"a\":1}"[..], &[0xff, 0x00, b'a'][..]] {
            let line = Envelope::encode(5, "application/json", body);
            assert_eq!(line, Envelope::new(5, "application/json", body).to_json());
            assert_eq!(
                &*Envelope::from_json(&line).unwrap().body_bytes().unwrap(),
                body
            );
        }
    }

    #[test]
    fn binary_bodies_survive_as_hex() {
        let envelope = Envelope::new(1, "multipart/form-data; boundary=x", &[0xff, 0x00, b'a']);
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
    }
}
