//! A message's history from the append-only events table.
//!
//! `email_events` is partitioned by month of `occurred_at`, so a query that names no time reads
//! every month's index. A message's tracked events all lie between its rows' `first_event_at`
//! and `last_event_at` (the upsert takes both from the very events it stores), so the message
//! timeline first reads that span from `sent_emails` (its unique index) and bounds `occurred_at`
//! by it: Postgres then reads only the months the message lived in (partition pruning; the test
//! `the_message_timeline_reads_only_its_months` shows the plan). Events of kinds mailtrail does
//! not track never touch a row: one outside its message's span is left out, and a message with
//! no row at all is looked up in every month. A recipient's timeline spans all their messages
//! and reads every month.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::{email_events, sent_emails};
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
        TimelineFilter::MessageId(id) => {
            let query = query.filter(email_events::message_id.eq(id.clone()));
            match message_span(connection, id).await? {
                Some((first, last)) => query.filter(email_events::occurred_at.between(first, last)),
                None => query,
            }
        }
        // Rows keep the address lower-cased, whatever spelling the provider sent.
        TimelineFilter::Recipient(address) => {
            query.filter(email_events::recipient.eq(address.trim().to_lowercase()))
        }
    };
    Ok(query.load(connection).await?)
}

/// The first and last event time of a message's rows, if it has any.
async fn message_span(
    connection: &mut StoreConnection,
    message_id: &str,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
    use diesel::dsl::{max, min};
    let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sent_emails::table
        .filter(sent_emails::message_id.eq(message_id))
        .select((
            min(sent_emails::first_event_at),
            max(sent_emails::last_event_at),
        ))
        .get_result(connection)
        .await?;
    Ok(first.zip(last))
}
