//! What to do with one queued envelope: for each event it carries, store it, skip it, or
//! dead-letter it. Pure: no I/O, so the worker, the benchmarks and the tests share one policy.
//!
//! Many emails are not instrumented with `backer_id`/`project_id`; their events are expected and
//! merely counted (skipped by reason). An envelope that can never be read (not JSON, not a body
//! its source sends) is a dead letter as a whole: retrying cannot help and it must not block the
//! queue. One body may carry several events (a page of Mailgun's Events API), and each gets its
//! own [`Verdict`].

use crate::envelope::Envelope;
use crate::event::Event;
use crate::event_key::event_key;
use crate::provider::{ReadError, read_events};
use crate::row::EventRow;

/// The longest message id or recipient accepted.
const MAX_KEY_BYTES: usize = 1000;

/// The verdict on one event.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A valid, instrumented event, as the row to write.
    Store(Box<EventRow>),
    /// A valid event mailtrail does not track; counted under the reason.
    Skip(&'static str),
    /// Can never be processed; its envelope is dead-lettered with the reason.
    Dead(String),
}

/// An envelope that cannot be read at all, with the reason its dead letter gives.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Reads one raw envelope as popped from Redis and gives a verdict per event it carries.
pub fn triage(raw: &str) -> Result<Vec<Verdict>, Unreadable> {
    let envelope = Envelope::from_json(raw)
        .map_err(|error| Unreadable(format!("unreadable envelope: {error}")))?;
    let events = read_events(&envelope).map_err(|error| match error {
        ReadError::Envelope(_) | ReadError::Body(_) | ReadError::Unsupported(_) => {
            Unreadable(error.to_string())
        }
    })?;
    Ok(events.iter().map(verdict).collect())
}

/// The verdict on one event: its identity and custom variables decide.
pub fn verdict(event: &Event) -> Verdict {
    let Some(message_id) = event.message_id.as_ref() else {
        return Verdict::Skip("missing_message_id");
    };
    let Some(recipient) = event.recipient.as_deref() else {
        return Verdict::Skip("missing_recipient");
    };
    // Both are keys of a btree index, whose entries must stay under ~2.7 kB; real ones are far
    // shorter (RFC 5321 caps an address at 254 bytes), so a longer one is not the provider's.
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
        event_key(event),
        event,
        message_id,
        recipient,
        backer_id,
        project_id,
        subject,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Source;

    fn envelope(content_type: &str, body: &str) -> String {
        Envelope::new(
            Source::Mailgun,
            1_700_000_000_000,
            content_type,
            body.as_bytes(),
        )
        .to_json()
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

    /// The verdict on an envelope that carries one event.
    fn only(raw: &str) -> Verdict {
        let mut verdicts = triage(raw).expect("a readable envelope");
        assert_eq!(verdicts.len(), 1);
        verdicts.remove(0)
    }

    #[test]
    fn an_instrumented_event_is_stored_with_its_ids_and_subject() {
        let Verdict::Store(row) = only(&json_event(
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
        let Verdict::Store(row) = only(&json_event(r#"{"backer_id": 1, "project_id": 2}"#)) else {
            panic!("expected a row");
        };
        assert_eq!(row.subject.as_deref(), Some("Header"));
    }

    #[test]
    fn uninstrumented_events_are_skipped_by_reason() {
        assert_eq!(only(&json_event("[]")), Verdict::Skip("missing_backer_id"));
        assert_eq!(
            only(&json_event(
                r#"{"backer_id": "%recipient.backer_id%", "project_id": 1}"#
            )),
            Verdict::Skip("missing_backer_id")
        );
        assert_eq!(
            only(&json_event(r#"{"backer_id": 1}"#)),
            Verdict::Skip("missing_project_id")
        );
        assert_eq!(
            only(&json_event(r#"{"backer_id": "abc", "project_id": 1}"#)),
            Verdict::Skip("invalid_backer_id")
        );
    }

    #[test]
    fn unreadable_envelopes_and_bodies_are_dead_letters_with_a_reason() {
        let Unreadable(reason) = triage("not an envelope").unwrap_err();
        assert!(reason.contains("unreadable envelope"), "{reason}");
        let Unreadable(reason) = triage(&envelope("application/json", "garbage")).unwrap_err();
        assert!(reason.contains("not valid JSON"), "{reason}");
        let Unreadable(reason) = triage(&envelope("text/plain", "x")).unwrap_err();
        assert!(reason.contains("unsupported content type"), "{reason}");
    }

    #[test]
    fn each_event_of_a_page_gets_its_own_verdict() {
        let item = |variables: &str| {
            format!(
                r#"{{"event": "delivered", "timestamp": 1700000000.5, "recipient": "a@example.com",
                    "message": {{"headers": {{"message-id": "m@x"}}}},
                    "user-variables": {variables}}}"#
            )
        };
        let page = format!(
            "[{}, {}]",
            item(r#"{"backer_id": 1, "project_id": 2}"#),
            item("{}")
        );
        let raw = Envelope::new(
            Source::MailgunEventsApi,
            1,
            "application/json",
            page.as_bytes(),
        )
        .to_json();
        let verdicts = triage(&raw).unwrap();
        assert!(matches!(verdicts[0], Verdict::Store(_)));
        assert_eq!(verdicts[1], Verdict::Skip("missing_backer_id"));
    }
}
