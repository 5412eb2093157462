//! What to do with one claimed envelope: store it, skip it, or dead-letter it.
//!
//! Many emails are not instrumented with `backer_id`/`project_id`; their events are expected and
//! merely counted (skipped by reason). An envelope that can never be read (not JSON, not a
//! Mailgun webhook) is a dead letter: retrying cannot help and it must not block the queue.

use mailtrail_core::Envelope;
use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::{WebhookFormat, parse_event};
use mailtrail_store::EventRow;

/// The longest message id or recipient accepted.
const MAX_KEY_BYTES: usize = 1000;

/// The verdict on one envelope.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A valid, instrumented event.
    Store(Box<EventRow>),
    /// A valid event mailtrail does not track; counted under the reason.
    Skip(&'static str),
    /// Can never be processed; dead-lettered with the reason.
    Dead(String),
}

/// Classifies one raw envelope as popped from Redis.
pub fn classify(raw: &str) -> Verdict {
    let envelope = match Envelope::from_json(raw) {
        Ok(envelope) => envelope,
        Err(error) => return Verdict::Dead(format!("unreadable envelope: {error}")),
    };
    let format = match WebhookFormat::from_content_type(&envelope.content_type) {
        Ok(format) => format,
        Err(error) => return Verdict::Dead(error.to_string()),
    };
    let body = match envelope.body_bytes() {
        Ok(body) => body,
        Err(error) => return Verdict::Dead(format!("unreadable envelope: {error}")),
    };
    let event = match parse_event(&format, &body, envelope.received_at_ms.saturating_mul(1000)) {
        Ok(event) => event,
        Err(error) => return Verdict::Dead(error.to_string()),
    };
    let Some(message_id) = event.message_id.clone() else {
        return Verdict::Skip("missing_message_id");
    };
    let Some(recipient) = event.recipient.clone() else {
        return Verdict::Skip("missing_recipient");
    };
    // Both are keys of a btree index, whose entries must stay under ~2.7 kB; real ones are far
    // shorter (RFC 5321 caps an address at 254 bytes), so a longer one is not Mailgun's.
    if message_id.as_str().len() > MAX_KEY_BYTES || recipient.len() > MAX_KEY_BYTES {
        return Verdict::Dead(format!(
            "message id or recipient longer than {MAX_KEY_BYTES} bytes"
        ));
    }
    let backer_id = match event.variables.integer("backer_id") {
        Ok(Some(id)) => id,
        Ok(None) => return Verdict::Skip("missing_backer_id"),
        Err(_) => return Verdict::Skip("invalid_backer_id"),
    };
    let project_id = match event.variables.integer("project_id") {
        Ok(Some(id)) => id,
        Ok(None) => return Verdict::Skip("missing_project_id"),
        Err(_) => return Verdict::Skip("invalid_project_id"),
    };
    // The subject variable names the campaign's subject as the sender meant it; the header is the
    // fallback (opens and clicks carry neither, and the stored row keeps the first one known).
    let subject = event
        .variables
        .text("subject")
        .or_else(|| event.subject.clone());
    Verdict::Store(Box::new(EventRow::new(
        event_key(&event),
        &event,
        &message_id,
        &recipient,
        backer_id,
        project_id,
        subject,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(content_type: &str, body: &str) -> String {
        Envelope::new(1_700_000_000_000, content_type, body.as_bytes()).to_json()
    }

    fn json_event(variables: &str) -> String {
        envelope(
            "application/json",
            &format!(
                r#"{{"signature": {{"timestamp": "1", "token": "t", "signature": "s"}},
                    "event-data": {{"event": "delivered", "timestamp": 1700000000.5,
                      "recipient": "a@example.com",
                      "message": {{"headers": {{"message-id": "m@x", "subject": "Header"}}}},
                      "user-variables": {variables}}}}}"#
            ),
        )
    }

    #[test]
    fn an_instrumented_event_is_stored_with_its_ids_and_subject() {
        let Verdict::Store(row) = classify(&json_event(
            r#"{"backer_id": "42", "project_id": 7, "subject": "Your pledge"}"#,
        )) else {
            panic!("expected a row");
        };
        assert_eq!((row.backer_id, row.project_id), (42, 7));
        assert_eq!(row.subject.as_deref(), Some("Your pledge"));
        assert_eq!(row.status.as_deref(), Some("delivered"));
        assert_eq!(row.message_id, "m@x");
    }

    #[test]
    fn the_subject_header_is_the_fallback() {
        let Verdict::Store(row) = classify(&json_event(r#"{"backer_id": 1, "project_id": 2}"#))
        else {
            panic!("expected a row");
        };
        assert_eq!(row.subject.as_deref(), Some("Header"));
    }

    #[test]
    fn uninstrumented_events_are_skipped_by_reason() {
        assert_eq!(
            classify(&json_event("[]")),
            Verdict::Skip("missing_backer_id")
        );
        assert_eq!(
            classify(&json_event(
                r#"{"backer_id": "%recipient.backer_id%", "project_id": 1}"#
            )),
            Verdict::Skip("missing_backer_id")
        );
        assert_eq!(
            classify(&json_event(r#"{"backer_id": 1}"#)),
            Verdict::Skip("missing_project_id")
        );
        assert_eq!(
            classify(&json_event(r#"{"backer_id": "abc", "project_id": 1}"#)),
            Verdict::Skip("invalid_backer_id")
        );
    }

    #[test]
    fn unreadable_envelopes_and_bodies_are_dead_letters_with_a_reason() {
        let Verdict::Dead(reason) = classify("not an envelope") else {
            panic!("expected a dead letter");
        };
        assert!(reason.contains("unreadable envelope"), "{reason}");
        let Verdict::Dead(reason) = classify(&envelope("application/json", "garbage")) else {
            panic!("expected a dead letter");
        };
        assert!(reason.contains("not valid JSON"), "{reason}");
        let Verdict::Dead(reason) = classify(&envelope("text/plain", "x")) else {
            panic!("expected a dead letter");
        };
        assert!(reason.contains("unsupported content type"), "{reason}");
    }
}
