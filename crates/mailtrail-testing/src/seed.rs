//! Events, and the rows the worker writes for them, for tests that fill the store directly
//! instead of through the receiver and the worker.

use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::status::mapped;
use mailtrail_core::{Event, EventKind, EventRow, MessageId};

/// A `kind` event for `message` (normalised as the parsers normalise it) to `recipient`, at
/// `at_seconds` since the epoch. Set its other fields before [`worker_row`].
pub fn event_at(kind: EventKind, message: &str, recipient: &str, at_seconds: i64) -> Event {
    let mut event = Event::new(kind, at_seconds * 1_000_000);
    event.message_id = MessageId::parse(message);
    event.recipient = Some(recipient.to_owned());
    event
}

/// The row the worker writes for `event`, sent to `backer_id` for `project_id`.
///
/// # Panics
/// When the event has no message id or no recipient (the worker skips those).
pub fn worker_row(
    event: &Event,
    backer_id: i64,
    project_id: i64,
    subject: Option<&str>,
) -> EventRow {
    // Mailgun's mapping decides the event's effect, as the parser does for the worker.
    let event = &mapped(event.clone());
    let message_id = event
        .message_id
        .clone()
        .expect("an event with a message id");
    let recipient = event.recipient.clone().expect("an event with a recipient");
    EventRow::new(
        event_key(event),
        event,
        &message_id,
        &recipient,
        backer_id,
        project_id,
        subject.map(str::to_owned),
    )
}
