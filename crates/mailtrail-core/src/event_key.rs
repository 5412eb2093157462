//! The stable key that deduplicates events.
//!
//! Mailgun's `event-data.id` is unique within a day only, legacy webhooks carry none, and retries
//! may or may not be re-signed, so neither the id nor the token alone identifies an event. The
//! key hashes what makes an event itself: id, kind, exact time, message, recipient, and the
//! details that tell two events at the same instant apart. (Legacy opens and clicks get an id
//! from their token, `mailgun::form`, since two of them can be identical in everything else.)
//!
//! The rule must not change for events already stored: a JSON event whose key changed would be
//! stored again on redelivery. A test holds keys computed before the last change.

use sha2::{Digest, Sha256};

use crate::event::Event;

/// A hex SHA-256 over the event's identifying fields (version-prefixed so the rule can change).
pub fn event_key(event: &Event) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        // Length-prefix every field so ("ab","c") and ("a","bc") cannot collide.
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    };
    field("v1");
    field(event.event_id.as_deref().unwrap_or(""));
    field(event.kind.as_str());
    field(&event.occurred_at_micros.to_string());
    field(event.message_id.as_ref().map_or("", |id| id.as_str()));
    field(event.recipient.as_deref().unwrap_or(""));
    field(event.severity.map_or("", |severity| severity.as_str()));
    field(event.reason.as_deref().unwrap_or(""));
    field(event.delivery_code.as_deref().unwrap_or(""));
    field(event.url.as_deref().unwrap_or(""));
    hex::encode(hasher.finalize())
}

/// A 32-character hex digest of `text`, for ids that need to be stable, not secret.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, MessageId};
    use crate::mailgun::{WebhookFormat, parse_event};

    /// A current JSON webhook: a click with an event id, a URL and every identifying field.
    const JSON_CLICK: &str = r#"{
        "signature": {"timestamp": "1764000000", "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
                      "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55"},
        "event-data": {"event": "clicked", "id": "Ase7i2zsRYeDXztHGENqRA",
                       "timestamp": 1764000000.123456, "recipient": "alice@example.com",
                       "url": "https://example.com/pledge",
                       "message": {"headers": {"message-id": "20261124.1@mg.example.com"}},
                       "user-variables": {"backer_id": "42", "project_id": "7"}}}"#;

    /// A current JSON webhook: a permanent failure with severity, reason and code.
    const JSON_BOUNCE: &str = r#"{
        "signature": {"timestamp": "1764000000", "token": "b8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
                      "signature": "e2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55"},
        "event-data": {"event": "failed", "id": "G9Bn5sl1TC6nu79C8C0bwg", "severity": "permanent",
                       "reason": "bounce", "timestamp": 1764000001.5, "recipient": "bob@example.com",
                       "message": {"headers": {"message-id": "<20261124.2@mg.example.com>"}},
                       "delivery-status": {"code": 550}}}"#;

    #[test]
    fn the_keys_of_current_json_webhooks_never_change() {
        // Rows of email_events are deduplicated on these keys: a rule that computed another key
        // for the same JSON event would store every redelivery of it again and count it twice.
        // The expected values were computed before legacy events got an id from their token.
        for (body, expected) in [
            (
                JSON_CLICK,
                "69ef5556dbe2d2cc88caedf008f839e2a3437936cb1521ebefd379f83069d8ba",
            ),
            (
                JSON_BOUNCE,
                "1caa247b8fe39a3b959d40e2410b2ed4cebaa300e01385dbd128ef1d86331fa2",
            ),
        ] {
            let event = parse_event(&WebhookFormat::Json, body.as_bytes(), 0).unwrap();
            assert_eq!(event_key(&event), expected);
        }
    }

    /// A legacy form webhook of `event` signed with `token`, at the same second as every other.
    fn legacy(event: &str, token: &str) -> crate::event::Event {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("event", event),
                ("recipient", "alice@example.com"),
                ("message-id", "20261124.1@mg.example.com"),
                ("Message-Id", "<20261124.1@mg.example.com>"),
                ("url", "https://example.com/pledge"),
                ("timestamp", "1764000000"),
                ("token", token),
                ("signature", "0123"),
            ])
            .finish();
        parse_event(&WebhookFormat::FormUrlEncoded, body.as_bytes(), 0).unwrap()
    }

    #[test]
    fn two_legacy_clicks_in_one_second_are_told_apart_by_their_tokens() {
        for kind in ["clicked", "opened"] {
            let first = event_key(&legacy(kind, "token-one"));
            assert_ne!(first, event_key(&legacy(kind, "token-two")), "{kind}");
            // The same webhook delivered twice is still one event.
            assert_eq!(first, event_key(&legacy(kind, "token-one")), "{kind}");
        }
    }

    #[test]
    fn legacy_events_that_happen_once_per_message_keep_a_key_without_their_token() {
        // A delivery, bounce or complaint happens once per message and recipient, so two of
        // them with the same content are one event sent twice (a retry, perhaps re-signed).
        for kind in [
            "delivered",
            "bounced",
            "dropped",
            "complained",
            "unsubscribed",
        ] {
            let first = legacy(kind, "token-one");
            assert_eq!(first.event_id, None, "{kind}");
            assert_eq!(
                event_key(&first),
                event_key(&legacy(kind, "token-two")),
                "{kind}"
            );
        }
    }

    #[test]
    fn the_same_event_gets_the_same_key_and_a_different_one_does_not() {
        let mut event = Event::new(EventKind::Opened, 1_000);
        event.message_id = MessageId::parse("<a@b>");
        event.recipient = Some("r@example.com".into());
        let key = event_key(&event);
        assert_eq!(key.len(), 64);
        assert_eq!(key, event_key(&event.clone()));

        let mut later = event.clone();
        later.occurred_at_micros += 1;
        assert_ne!(key, event_key(&later));

        let mut clicked = event.clone();
        clicked.kind = EventKind::Clicked;
        assert_ne!(key, event_key(&clicked));
    }
}
