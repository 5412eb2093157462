//! Which events are stored already: how `mailtrail reconcile` tells the events webhooks missed
//! from those they delivered.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::email_events;
use crate::{StoreConnection, StoreError};

/// How many of `event_keys` are in `email_events` (one indexed lookup per key; pass a page's
/// worth, a few hundred, at a time).
pub async fn count_stored_events(
    connection: &mut StoreConnection,
    event_keys: &[String],
) -> Result<u64, StoreError> {
    if event_keys.is_empty() {
        return Ok(0);
    }
    let count: i64 = email_events::table
        .filter(email_events::event_key.eq_any(event_keys))
        .count()
        .get_result(connection)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
