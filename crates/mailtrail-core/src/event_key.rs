//! The stable key that deduplicates events.
//!
//! Mailgun's `event-data.id` is unique within a day only, legacy webhooks carry none, and retries
//! may or may not be re-signed, so neither the id nor the token alone identifies an event. The
//! key hashes what makes an event itself: id, kind, exact time, message, recipient, and the
//! details that tell two events at the same instant apart.

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
