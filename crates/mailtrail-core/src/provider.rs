//! The provider seam: which parser reads an envelope, by its [`Source`].
//!
//! Every provider turns a body into zero or more provider-neutral [`Event`]s with their effects
//! decided. A Mailgun webhook carries one event; a page of Mailgun's Events API carries many; a
//! provider added later (another ESP's webhooks, say) is one more arm here and one more module
//! beside [`crate::mailgun`], with nothing downstream changed.

use serde_json::Value;

use crate::envelope::{Envelope, EnvelopeError, Source};
use crate::event::Event;
use crate::excerpt::Excerpt;
use crate::mailgun::{self, ParseError, WebhookFormat};

/// Why an envelope's body could not be read into events.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The envelope itself is unreadable (no body).
    #[error("unreadable envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The body is not what its source sends.
    #[error("{0}")]
    Body(#[from] ParseError),
    /// A source this build does not process yet; the envelope can be replayed once it does.
    #[error("envelopes of source `{0}` are not processed by this version")]
    Unsupported(Source),
}

/// Reads every event an envelope carries. Events without their own time take the receive time.
pub fn read_events(envelope: &Envelope) -> Result<Vec<Event>, ReadError> {
    let fallback_micros = envelope.received_at_ms.saturating_mul(1000);
    match envelope.source {
        Source::Mailgun => {
            let format = WebhookFormat::from_content_type(&envelope.content_type)?;
            let body = envelope.body_bytes()?;
            Ok(vec![mailgun::parse_event(&format, &body, fallback_micros)?])
        }
        Source::MailgunEventsApi => {
            let body = envelope.body_bytes()?;
            events_api_items(&body, fallback_micros)
        }
        // Conversions are not email events: `triage` reads them with `crate::conversion`.
        Source::App => Err(ReadError::Unsupported(Source::App)),
    }
}

/// Items of Mailgun's Events API: one `event-data` object, or an array of them (a page).
fn events_api_items(body: &[u8], fallback_micros: i64) -> Result<Vec<Event>, ReadError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ParseError::InvalidJson(Excerpt::of(error)))?;
    let items = match value {
        Value::Object(item) => vec![item],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(item) => Ok(item),
                _ => Err(ParseError::MissingEventData),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ParseError::MissingEventData.into()),
    };
    Ok(items
        .iter()
        .map(|item| mailgun::json::event_from_data(item, fallback_micros))
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::status::{DeliveryStatus, Effect};

    const ITEM: &str = r#"{"event": "delivered", "timestamp": 1700000000.25, "id": "e1",
        "recipient": "a@example.com", "message": {"headers": {"message-id": "m@x"}}}"#;

    fn envelope(source: Source, body: &str) -> Envelope {
        Envelope::new(
            source,
            1_700_000_000_000,
            "application/json",
            body.as_bytes(),
        )
    }

    #[test]
    fn an_events_api_item_reads_like_a_webhooks_event_data() {
        let events = read_events(&envelope(Source::MailgunEventsApi, ITEM)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Delivered);
        assert_eq!(events[0].effect, Effect::Status(DeliveryStatus::Delivered));
        assert_eq!(events[0].occurred_at_micros, 1_700_000_000_250_000);

        let webhook = format!(
            r#"{{"signature": {{"timestamp": "1", "token": "t", "signature": "s"}}, "event-data": {ITEM}}}"#
        );
        let from_webhook = read_events(&envelope(Source::Mailgun, &webhook)).unwrap();
        assert_eq!(from_webhook, events);
    }

    #[test]
    fn a_page_of_items_is_several_events() {
        let page = format!("[{ITEM}, {}]", ITEM.replace("delivered", "opened"));
        let events = read_events(&envelope(Source::MailgunEventsApi, &page)).unwrap();
        let kinds: Vec<_> = events.iter().map(|event| event.kind.clone()).collect();
        assert_eq!(kinds, [EventKind::Delivered, EventKind::Opened]);
        assert!(matches!(
            read_events(&envelope(Source::MailgunEventsApi, "[1]")),
            Err(ReadError::Body(ParseError::MissingEventData))
        ));
    }

    #[test]
    fn sources_not_processed_yet_are_named_in_the_error() {
        let error = read_events(&envelope(Source::App, "{}")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "envelopes of source `app` are not processed by this version"
        );
    }
}
