//! A message's history from the append-only events table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::email_events;
use crate::{StoreConnection, StoreError};

/// Whose events to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineFilter {
    /// Every recipient of one message.
    MessageId(String),
    /// Every message to one recipient.
    Recipient(String),
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = email_events)]
pub struct TimelineEvent {
    /// Event time.
    pub occurred_at: DateTime<Utc>,
    /// Message id.
    pub message_id: String,
    /// Recipient.
    pub recipient: String,
    /// Mailgun event name.
    pub kind: String,
    /// Status it claimed.
    pub status: Option<String>,
    /// Failure severity.
    pub severity: Option<String>,
    /// Mailgun reason.
    pub reason: Option<String>,
    /// Delivery code.
    pub delivery_code: Option<String>,
    /// Machine open or click.
    pub bot: bool,
    /// Clicked URL.
    pub url: Option<String>,
}

/// Events matching `filter` in event-time order, at most `limit`.
pub async fn timeline(
    connection: &mut StoreConnection,
    filter: &TimelineFilter,
    limit: i64,
) -> Result<Vec<TimelineEvent>, StoreError> {
    let mut query = email_events::table
        .select(TimelineEvent::as_select())
        .order((email_events::occurred_at, email_events::event_key))
        .limit(limit)
        .into_boxed();
    query = match filter {
        TimelineFilter::MessageId(id) => query.filter(email_events::message_id.eq(id.clone())),
        // Rows keep the address lower-cased, whatever spelling the provider sent.
        TimelineFilter::Recipient(address) => {
            query.filter(email_events::recipient.eq(address.trim().to_lowercase()))
        }
    };
    Ok(query.load(connection).await?)
}
