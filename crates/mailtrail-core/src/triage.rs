//! What to do with one queued envelope: for each event it carries, store it, skip it, or
//! dead-letter it. Pure: no I/O, so the worker, the benchmarks and the tests share one policy.
//!
//! Many emails are not instrumented with `backer_id`/`project_id`; their events are expected and
//! merely counted (skipped by reason). An envelope that can never be read (not JSON, not a body
//! its source sends) is a dead letter as a whole: retrying cannot help and it must not block the
//! queue. One body may carry several events (a page of Mailgun's Events API), and each gets its
//! own [`Verdict`].
//!
//! An event's time is the sender's claim too, and the status rule ranks equal tiers by it: an
//! event dated in the year 201609 would win every tie-break of its tier for ever. So an event
//! time more than [`MAX_AHEAD_OF_RECEIPT_MICROS`] (a day) after the envelope was received, or
//! before [`EARLIEST_EVENT_MICROS`] (2000), is a dead letter with the reason. The bound on the
//! past is absolute, not relative to the receipt: the Events API legitimately delivers events up
//! to 30 days old, and a retried webhook arrives up to 8 hours late.

use chrono::DateTime;

use crate::conversion::{Conversion, parse_report};
use crate::envelope::{Envelope, Source};
use crate::event::Event;
use crate::event_key::event_key;
use crate::provider::{ReadError, read_events};
use crate::row::EventRow;

/// The longest message id or recipient accepted.
const MAX_KEY_BYTES: usize = 1000;

/// How far after its receipt an event may be dated: generous for a provider's clock running
/// ahead of ours, far short of anything that would win tie-breaks for long.
pub const MAX_AHEAD_OF_RECEIPT_MICROS: i64 = 24 * 3600 * 1_000_000;

/// The earliest believable event time, 2000-01-01T00:00:00Z (Mailgun started in 2010; old test
/// payloads in the wild are dated 2009).
pub const EARLIEST_EVENT_MICROS: i64 = 946_684_800 * 1_000_000;

/// The verdict on one event.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A valid, instrumented event, as the row to write.
    Store(Box<EventRow>),
    /// A valid conversion reported by the application, to store and attribute.
    Convert(Box<Conversion>),
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
    if envelope.source == Source::App {
        return conversions(&envelope);
    }
    let events = read_events(&envelope).map_err(|error| match error {
        ReadError::Envelope(_) | ReadError::Body(_) | ReadError::Unsupported(_) => {
            Unreadable(error.to_string())
        }
    })?;
    Ok(events
        .iter()
        .map(|event| verdict(event, envelope.received_at_ms))
        .collect())
}

/// The conversions an envelope of source `app` carries: all of them, or a dead letter naming
/// the first that fails the checks the API made (a queued envelope is input like any other).
fn conversions(envelope: &Envelope) -> Result<Vec<Verdict>, Unreadable> {
    let body = envelope
        .body_bytes()
        .map_err(|error| Unreadable(format!("unreadable envelope: {error}")))?;
    let conversions = parse_report(&body, envelope.received_at_ms)
        .map_err(|error| Unreadable(format!("unreadable conversion report: {error}")))?;
    Ok(conversions
        .into_iter()
        .map(|conversion| Verdict::Convert(Box::new(conversion)))
        .collect())
}

/// The verdict on one event received at `received_at_ms`: its time, its identity and its custom
/// variables decide.
pub fn verdict(event: &Event, received_at_ms: i64) -> Verdict {
    if let Some(reason) = implausible_time(event.occurred_at_micros, received_at_ms) {
        return Verdict::Dead(reason);
    }
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

/// Why an event time cannot be believed, if it cannot.
fn implausible_time(occurred_at_micros: i64, received_at_ms: i64) -> Option<String> {
    let received_at_micros = received_at_ms.saturating_mul(1000);
    if occurred_at_micros < EARLIEST_EVENT_MICROS {
        return Some(format!(
            "event time {} is before 2000: not a time the provider can have meant",
            rfc3339(occurred_at_micros)
        ));
    }
    if occurred_at_micros > received_at_micros.saturating_add(MAX_AHEAD_OF_RECEIPT_MICROS) {
        return Some(format!(
            "event time {} is more than a day after it was received ({}): it would outrank \
             every real event of its tier",
            rfc3339(occurred_at_micros),
            rfc3339(received_at_micros)
        ));
    }
    None
}

/// A time for a reason: RFC 3339 when representable, else the raw microseconds.
fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map_or_else(|| format!("{micros} µs"), |time| time.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            1_700_000_000_000,
            "application/json",
            page.as_bytes(),
        )
        .to_json();
        let verdicts = triage(&raw).unwrap();
        assert!(matches!(verdicts[0], Verdict::Store(_)));
        assert_eq!(verdicts[1], Verdict::Skip("missing_backer_id"));
    }

    #[test]
    fn a_conversion_report_is_one_verdict_per_conversion() {
        let body = r#"[{"id": "a", "backer_id": 1, "project_id": 2, "kind": "pledge",
            "occurred_at": "2023-11-14T22:00:00Z"},
            {"id": "b", "backer_id": 1, "project_id": 2, "kind": "pledge",
            "occurred_at": "2023-11-14T22:00:00Z", "value_cents": 100}]"#;
        let raw = Envelope::new(
            Source::App,
            1_700_000_000_000,
            "application/json",
            body.as_bytes(),
        );
        let verdicts = triage(&raw.to_json()).unwrap();
        assert!(
            matches!(&verdicts[..], [Verdict::Convert(a), Verdict::Convert(b)]
            if a.id == "a" && b.value_cents == Some(100))
        );
        let bad = Envelope::new(Source::App, 1, "application/json", b"{}");
        let Unreadable(reason) = triage(&bad.to_json()).unwrap_err();
        assert!(reason.contains("conversion"), "{reason}");
    }

    /// The verdict on a delivered event at `event_micros`, received at `received_at_ms`.
    fn at(source: Source, event_micros: i64, received_at_ms: i64) -> Verdict {
        let seconds = event_micros as f64 / 1e6;
        let item = format!(
            r#"{{"event": "delivered", "timestamp": {seconds:.6}, "recipient": "a@example.com",
                "message": {{"headers": {{"message-id": "m@x"}}}},
                "user-variables": {{"backer_id": 1, "project_id": 2}}}}"#
        );
        let body = match source {
            Source::MailgunEventsApi => item,
            _ => format!(
                r#"{{"signature": {{"timestamp": "1", "token": "t", "signature": "s"}},
                    "event-data": {item}}}"#
            ),
        };
        let raw = Envelope::new(source, received_at_ms, "application/json", body.as_bytes());
        only(&raw.to_json())
    }

    const RECEIVED_MS: i64 = 1_764_000_000_000;
    const RECEIVED_MICROS: i64 = RECEIVED_MS * 1000;
    const DAY_MICROS: i64 = 86_400 * 1_000_000;

    #[test]
    fn an_event_time_far_after_its_receipt_is_a_dead_letter_with_the_reason() {
        // The year 201609: stored, it would win every tie-break of its tier for ever.
        let year_201609 = 6_300_000_000_000 * 1_000_000;
        for event_micros in [
            year_201609,
            RECEIVED_MICROS + DAY_MICROS + 1_000_000,
            RECEIVED_MICROS + 365 * DAY_MICROS,
        ] {
            for source in [Source::Mailgun, Source::MailgunEventsApi] {
                let Verdict::Dead(reason) = at(source, event_micros, RECEIVED_MS) else {
                    panic!("{event_micros} from {source} was not refused");
                };
                assert!(reason.contains("after it was received"), "{reason}");
                assert!(reason.len() < 300, "{reason}");
            }
        }
    }

    #[test]
    fn an_event_time_before_2000_is_a_dead_letter_with_the_reason() {
        for event_micros in [0, 1_000_000, 946_684_799 * 1_000_000] {
            let Verdict::Dead(reason) = at(Source::Mailgun, event_micros, RECEIVED_MS) else {
                panic!("{event_micros} was not refused");
            };
            assert!(reason.contains("before 2000"), "{reason}");
        }
    }

    #[test]
    fn clock_skew_late_deliveries_and_a_month_old_backfill_are_stored() {
        for (source, event_micros) in [
            // Mailgun's clock a little ahead of ours, up to a day.
            (Source::Mailgun, RECEIVED_MICROS + 5 * 60 * 1_000_000),
            (Source::Mailgun, RECEIVED_MICROS + DAY_MICROS),
            // A retry after Mailgun's eight hours; the Events API keeps 30 days.
            (Source::Mailgun, RECEIVED_MICROS - 9 * 3600 * 1_000_000),
            (Source::MailgunEventsApi, RECEIVED_MICROS - 30 * DAY_MICROS),
            // A corpus sample from 2009, and the first instant that passes.
            (Source::Mailgun, 1_234_567_890 * 1_000_000),
            (Source::Mailgun, 946_684_800 * 1_000_000),
        ] {
            assert!(
                matches!(at(source, event_micros, RECEIVED_MS), Verdict::Store(_)),
                "{event_micros} from {source}"
            );
        }
    }
}
