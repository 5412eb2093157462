//! The row one stored event becomes: what the worker writes and the store binds, column for
//! column, into its batched upsert.
//!
//! Built by [`crate::triage`] once an event has passed validation, so everything here is already
//! decided: the status claim it makes, its engagement, and text made safe for Postgres.

use chrono::{DateTime, Utc};

use crate::event::{Event, MessageId};
use crate::status::{Effect, StatusClaim};

/// One validated event, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    /// Stable deduplication key (`mailtrail_core::event_key`).
    pub event_key: String,
    /// Normalised message id.
    pub message_id: String,
    /// The recipient, normalised: the whole address lower-cased (see `docs/decisions.md`), so
    /// `Carol@Example.COM` and `carol@example.com` are one row.
    pub recipient: String,
    /// The recipient as the provider sent it, for display.
    pub recipient_as_sent: String,
    /// Mailgun's event name.
    pub kind: String,
    /// Event time.
    pub occurred_at: DateTime<Utc>,
    /// Mailgun's event id.
    pub event_id: Option<String>,
    /// Custom variable `backer_id`.
    pub backer_id: i64,
    /// Custom variable `project_id`.
    pub project_id: i64,
    /// Subject (custom variable, else header).
    pub subject: Option<String>,
    /// Claimed status, `None` for kinds that do not touch the row.
    pub status: Option<String>,
    /// Claimed status tier.
    pub status_tier: Option<i16>,
    /// False for the `delivered` implied by an engagement.
    pub status_explicit: Option<bool>,
    /// `failed` severity.
    pub severity: Option<String>,
    /// Mailgun reason.
    pub reason: Option<String>,
    /// Delivery code.
    pub delivery_code: Option<String>,
    /// `opened`, `clicked`, `unsubscribed`.
    pub engagement: Option<String>,
    /// A machine open or click.
    pub bot: bool,
    /// Which machine, when Mailgun names it (`apple`, `gmail`, `generic`, ...).
    pub bot_kind: Option<String>,
    /// Clicked URL.
    pub url: Option<String>,
}

impl EventRow {
    /// Builds the row for `event` once the worker has validated its identity and variables.
    pub fn new(
        event_key: String,
        event: &Event,
        message_id: &MessageId,
        recipient: &str,
        backer_id: i64,
        project_id: i64,
        subject: Option<String>,
    ) -> Self {
        let claim = StatusClaim::of(event);
        let engagement = match event.effect {
            Effect::Engagement(engagement) => Some(engagement.as_str().to_owned()),
            Effect::Status(_) | Effect::None => None,
        };
        let text = |value: &str| text_for_postgres(value);
        let optional = |value: &Option<String>| value.as_deref().map(text_for_postgres);
        let occurred_at = DateTime::from_timestamp_micros(event.occurred_at_micros)
            .unwrap_or(DateTime::UNIX_EPOCH);
        Self {
            event_key,
            message_id: text(message_id.as_str()),
            recipient: text(&recipient.to_lowercase()),
            recipient_as_sent: text(recipient),
            kind: text(event.kind.as_str()),
            occurred_at,
            event_id: optional(&event.event_id),
            backer_id,
            project_id,
            subject: subject
                .as_deref()
                .map(|subject| text_for_postgres(truncate(subject, MAX_SUBJECT_BYTES))),
            status: claim.as_ref().map(|claim| claim.status.as_str().to_owned()),
            status_tier: claim.as_ref().map(|claim| claim.status.tier()),
            status_explicit: claim.as_ref().map(|claim| claim.explicit),
            severity: event.severity.map(|severity| severity.as_str().to_owned()),
            reason: optional(&event.reason),
            delivery_code: optional(&event.delivery_code),
            engagement,
            bot: event.bot,
            bot_kind: optional(&event.bot_kind),
            url: optional(&event.url),
        }
    }
}

/// Subjects are indexed (`project_id, subject`), and a btree entry must stay under ~2.7 kB; RFC
/// 5322 limits a header line to 998 bytes anyway.
const MAX_SUBJECT_BYTES: usize = 998;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Postgres text cannot hold NUL; Mailgun JSON can (`\u0000`). Replacing it keeps the event
/// instead of having Postgres refuse the whole batch.
fn text_for_postgres(value: &str) -> String {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}")
    } else {
        value.to_owned()
    }
}
