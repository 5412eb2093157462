//! Sent messages for the read API: a filtered list, newest first, in keyset pages, and one
//! message's rows with its event timeline.
//!
//! Pages are cut on `sent_emails.id` (assigned when a message's first event is stored): a page
//! continues strictly below the last id of the previous one, so rows arriving while a client
//! pages through (they get higher ids) neither repeat nor shift a row into or out of a later page.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::{email_events, sent_emails};
use crate::{StoreConnection, StoreError};

/// Which messages to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this backer's.
    pub backer_id: Option<i64>,
    /// Only this project's.
    pub project_id: Option<i64>,
    /// Only in this status.
    pub status: Option<String>,
    /// Only messages whose first event fell on or after this day (UTC).
    pub since: Option<NaiveDate>,
    /// Only messages whose first event fell on or before this day (UTC).
    pub until: Option<NaiveDate>,
}

/// One message to one recipient, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = sent_emails)]
pub struct MessageRow {
    /// The keyset position (opaque to clients, who page with cursors).
    #[serde(skip)]
    pub id: i64,
    /// Normalised Message-Id.
    pub message_id: String,
    /// Recipient.
    pub recipient: String,
    /// Custom variable `backer_id`.
    pub backer_id: i64,
    /// Custom variable `project_id`.
    pub project_id: i64,
    /// Subject.
    pub subject: Option<String>,
    /// Delivery status.
    pub status: String,
    /// Time of the event that decided the status.
    pub status_at: DateTime<Utc>,
    /// Failure reason of that event.
    pub status_reason: Option<String>,
    /// Delivery code of that event.
    pub status_code: Option<String>,
    /// Opens by people.
    pub opened_count: i64,
    /// Opens by machines.
    pub bot_open_count: i64,
    /// Clicks by people.
    pub clicked_count: i64,
    /// Clicks by machines.
    pub bot_click_count: i64,
    /// First event (the message's day in the statistics).
    pub first_event_at: DateTime<Utc>,
    /// Last event.
    pub last_event_at: DateTime<Utc>,
}

/// One page of messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePage {
    /// The messages, newest first.
    pub messages: Vec<MessageRow>,
    /// Where the next page starts, when there is one.
    pub next_after: Option<i64>,
}

/// Up to `limit` messages matching `filter`, newest first, strictly after the keyset position
/// `after` (from a previous page's `next_after`).
pub async fn list_messages(
    connection: &mut StoreConnection,
    filter: &MessageFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<MessagePage, StoreError> {
    use sent_emails::dsl as s;
    let mut query = s::sent_emails
        .select(MessageRow::as_select())
        .order(s::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(s::id.lt(after));
    }
    if let Some(backer) = filter.backer_id {
        query = query.filter(s::backer_id.eq(backer));
    }
    if let Some(project) = filter.project_id {
        query = query.filter(s::project_id.eq(project));
    }
    if let Some(status) = &filter.status {
        query = query.filter(s::status.eq(status.clone()));
    }
    if let Some(since) = filter.since.and_then(|day| day.and_hms_opt(0, 0, 0)) {
        query = query.filter(s::first_event_at.ge(since.and_utc()));
    }
    if let Some(until) = filter
        .until
        .and_then(|day| day.succ_opt())
        .and_then(|day| day.and_hms_opt(0, 0, 0))
    {
        query = query.filter(s::first_event_at.lt(until.and_utc()));
    }
    let mut messages: Vec<MessageRow> = query.load(connection).await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let next_after = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|row| row.id)
    } else {
        None
    };
    Ok(MessagePage {
        messages,
        next_after,
    })
}

/// One stored event of a message, for its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = email_events)]
pub struct MessageEvent {
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The recipient.
    pub recipient: String,
    /// The provider's event name.
    pub kind: String,
    /// The provider's event id.
    pub event_id: Option<String>,
    /// The status it claimed.
    pub status: Option<String>,
    /// Failure severity.
    pub severity: Option<String>,
    /// Failure reason.
    pub reason: Option<String>,
    /// Delivery code.
    pub delivery_code: Option<String>,
    /// `opened`, `clicked`, `unsubscribed`.
    pub engagement: Option<String>,
    /// Made by a machine.
    pub bot: bool,
    /// Which machine, when named.
    pub bot_kind: Option<String>,
    /// Clicked URL.
    pub url: Option<String>,
}

/// A message's rows (one per recipient) and its events in time order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageDetail {
    /// One row per recipient.
    pub recipients: Vec<MessageRow>,
    /// Every stored event, oldest first.
    pub events: Vec<MessageEvent>,
}

/// Most events returned for one message (a message has a handful; a forwarded newsletter opened
/// thousands of times is capped).
const MAX_EVENTS: i64 = 1000;

/// The message `message_id` (normalised), or `None` when no row has it.
pub async fn message_detail(
    connection: &mut StoreConnection,
    message_id: &str,
) -> Result<Option<MessageDetail>, StoreError> {
    let recipients: Vec<MessageRow> = sent_emails::table
        .select(MessageRow::as_select())
        .filter(sent_emails::message_id.eq(message_id))
        .order(sent_emails::recipient)
        .load(connection)
        .await?;
    if recipients.is_empty() {
        return Ok(None);
    }
    // The rows' span bounds the events' time, so only the months the message lived in are read
    // (partition pruning; see `timeline`).
    let first = recipients.iter().map(|row| row.first_event_at).min();
    let last = recipients.iter().map(|row| row.last_event_at).max();
    let mut events = email_events::table
        .select(MessageEvent::as_select())
        .filter(email_events::message_id.eq(message_id))
        .into_boxed();
    if let (Some(first), Some(last)) = (first, last) {
        events = events.filter(email_events::occurred_at.between(first, last));
    }
    let events = events
        .order((email_events::occurred_at, email_events::event_key))
        .limit(MAX_EVENTS)
        .load(connection)
        .await?;
    Ok(Some(MessageDetail { recipients, events }))
}
