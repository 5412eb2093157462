//! Erasing a person: every `sent_emails` row and every event addressed to one recipient (the
//! Postgres half of `mailtrail erase`, the GDPR erasure path; dead letters are the queue's).
//!
//! Both deletes are one statement, so one transaction. The statistics stay exact without any code here: the
//! statement-level DELETE trigger on `sent_emails` subtracts each erased row from its bucket in
//! the same transaction (migration `stats_rollups`), so a subject's totals drop by exactly what
//! was erased and `mailtrail rollups verify` still agrees.
//!
//! Addresses are stored lower-cased (`recipient_as_sent` keeps the spelling), so the address is
//! trimmed and lower-cased first; rows are found through `lower(recipient)` so that the few rows
//! an old version kept in two spellings (migration `recipient_case`) are erased too.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use crate::{StoreConnection, StoreError};

/// What erasing one recipient removed from Postgres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct ErasedRecipient {
    /// `sent_emails` rows (one per message to the person).
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
    /// `email_events` rows.
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    /// Distinct messages those rows and events belonged to.
    #[diesel(sql_type = BigInt)]
    pub messages: i64,
    /// Distinct projects those rows belonged to (whose statistics dropped).
    #[diesel(sql_type = BigInt)]
    pub projects: i64,
}

/// The form addresses are stored in: trimmed, lower-cased.
pub fn normalised_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Deletes every row and event of `address` (any spelling), in one statement.
pub async fn erase_recipient(
    connection: &mut StoreConnection,
    address: &str,
) -> Result<ErasedRecipient, StoreError> {
    Ok(diesel::sql_query(
                    "WITH events AS (
                       DELETE FROM email_events WHERE recipient = $1 RETURNING message_id
                     ),
                     rows AS (
                       DELETE FROM sent_emails WHERE lower(recipient) = $1
                       RETURNING message_id, project_id
                     )
                     SELECT (SELECT count(*) FROM rows) AS rows,
                            (SELECT count(*) FROM events) AS events,
                            (SELECT count(*) FROM (SELECT message_id FROM rows
                                                   UNION SELECT message_id FROM events) m) AS messages,
                            (SELECT count(DISTINCT project_id) FROM rows) AS projects",
                )
    .bind::<Text, _>(normalised_address(address))
    .get_result::<ErasedRecipient>(connection)
    .await?)
}
