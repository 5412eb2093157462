//! Conversions: storing what the application reports, and crediting each to an email.
//!
//! The credit is a function of stored facts only: for a conversion of backer B to project P at
//! time T, the human click of P's email by B latest at or before T and no more than the window
//! before it; else the latest such open; else none (`mailtrail_attribute_conversions` in the
//! migration `conversions`). It is recomputed for every (backer, project) a batch touches, in the
//! batch's own transaction, whether the batch brings conversions or events: so a click that
//! arrives after its conversion still takes the credit, and a late conversion finds its click.
//!
//! Two workers could still miss each other: one commits a click while the other commits a
//! conversion of the same backer, neither seeing the other's uncommitted row. So every batch
//! takes one transaction-level advisory lock before it writes: shared for a batch of events
//! (they do not exclude each other, and ingest stays parallel), exclusive for a batch with
//! conversions. A batch's attribution statement runs after it holds the lock, so its snapshot
//! includes whatever the batch it waited for committed. The lock is taken first, before any row
//! or counter lock, so it adds no deadlock. `docs/conversions.md` has the whole argument.

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, RunQueryDsl};
use mailtrail_core::{Conversion, EventRow};

use crate::{StoreConnection, StoreError, UpsertCounts, upsert_events};

/// The advisory lock key of attribution ("mailattr" as ASCII).
const ATTRIBUTION_LOCK: i64 = 0x6d61_696c_6174_7472;

/// What one batch write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Events and `sent_emails` rows written.
    pub events: UpsertCounts,
    /// Conversions new to the table (a conversion reported again is not).
    pub conversions_inserted: i64,
    /// Conversions whose credit changed.
    pub conversions_reattributed: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Writes a batch's events and conversions in one transaction and recomputes the credit of the
/// conversions of every (backer, project) they touch, with a window of `window_days`.
pub async fn write_batch(
    connection: &mut StoreConnection,
    rows: &[EventRow],
    conversions: &[Conversion],
    window_days: i32,
) -> Result<BatchCounts, StoreError> {
    if rows.is_empty() && conversions.is_empty() {
        return Ok(BatchCounts::default());
    }
    let mut pairs: Vec<(i64, i64)> = rows
        .iter()
        .map(|row| (row.backer_id, row.project_id))
        .chain(conversions.iter().map(|c| (c.backer_id, c.project_id)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let lock = if conversions.is_empty() {
        "SELECT pg_advisory_xact_lock_shared($1)"
    } else {
        "SELECT pg_advisory_xact_lock($1)"
    };
    connection
        .transaction(async |connection| -> Result<BatchCounts, StoreError> {
            sql_query(lock)
                .bind::<BigInt, _>(ATTRIBUTION_LOCK)
                .execute(connection)
                .await?;
            let events = upsert_events(connection, rows).await?;
            let conversions_inserted = insert_conversions(connection, conversions).await?;
            let conversions_reattributed = attribute(connection, &pairs, window_days).await?;
            Ok(BatchCounts {
                events,
                conversions_inserted,
                conversions_reattributed,
            })
        })
        .await
}

/// Inserts conversions not stored yet (by project and id), uncredited: the attribution that
/// follows in the same transaction credits them.
async fn insert_conversions(
    connection: &mut StoreConnection,
    conversions: &[Conversion],
) -> Result<i64, StoreError> {
    if conversions.is_empty() {
        return Ok(0);
    }
    fn column<T>(conversions: &[Conversion], field: impl Fn(&Conversion) -> T) -> Vec<T> {
        conversions.iter().map(field).collect()
    }
    let inserted = sql_query(
        "WITH inserted AS (
           INSERT INTO conversions (project_id, conversion_id, backer_id, kind, occurred_at, value_cents)
           SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::timestamptz[], $6::int8[])
           ORDER BY 1, 2
           ON CONFLICT (project_id, conversion_id) DO NOTHING
           RETURNING 1
         )
         SELECT count(*) AS count FROM inserted",
    )
    .bind::<Array<BigInt>, _>(column(conversions, |c| c.project_id))
    .bind::<Array<Text>, _>(column(conversions, |c| c.id.clone()))
    .bind::<Array<BigInt>, _>(column(conversions, |c| c.backer_id))
    .bind::<Array<Text>, _>(column(conversions, |c| c.kind.clone()))
    .bind::<Array<Timestamptz>, _>(column(conversions, |c| c.occurred_at))
    .bind::<Array<Nullable<BigInt>>, _>(column(conversions, |c| c.value_cents))
    .get_result::<Count>(connection)
    .await?;
    Ok(inserted.count)
}

/// Recomputes the credit of every conversion of the given (backer, project) pairs.
async fn attribute(
    connection: &mut StoreConnection,
    pairs: &[(i64, i64)],
    window_days: i32,
) -> Result<i64, StoreError> {
    let changed = sql_query("SELECT mailtrail_attribute_conversions($1, $2, $3) AS count")
        .bind::<Array<BigInt>, _>(pairs.iter().map(|pair| pair.0).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(pairs.iter().map(|pair| pair.1).collect::<Vec<_>>())
        .bind::<Integer, _>(window_days)
        .get_result::<Count>(connection)
        .await?;
    Ok(changed.count)
}

/// Recomputes the credit of every stored conversion with a window of `window_days` (after the
/// window was changed); returns how many changed. Writers wait for it.
pub async fn reattribute_all(
    connection: &mut StoreConnection,
    window_days: i32,
) -> Result<i64, StoreError> {
    connection
        .transaction(async |connection| -> Result<i64, StoreError> {
            sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(ATTRIBUTION_LOCK)
                .execute(connection)
                .await?;
            let changed = sql_query("SELECT mailtrail_reattribute_all_conversions($1) AS count")
                .bind::<Integer, _>(window_days)
                .get_result::<Count>(connection)
                .await?;
            Ok(changed.count)
        })
        .await
}

/// One stored conversion and its credit.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct StoredConversion {
    /// The project.
    #[diesel(sql_type = BigInt)]
    pub project_id: i64,
    /// The application's id.
    #[diesel(sql_type = Text)]
    pub conversion_id: String,
    /// The backer.
    #[diesel(sql_type = BigInt)]
    pub backer_id: i64,
    /// Its value in cents, if any.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub value_cents: Option<i64>,
    /// `click`, `open` or `none`.
    #[diesel(sql_type = Text)]
    pub attributed_by: String,
    /// The credited message, if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub credited_message_id: Option<String>,
    /// Its subject, if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub credited_subject: Option<String>,
}

/// Every stored conversion, by project and id (tests and the verification compare them).
pub async fn all_conversions(
    connection: &mut StoreConnection,
) -> Result<Vec<StoredConversion>, StoreError> {
    Ok(sql_query(
        "SELECT project_id, conversion_id, backer_id, value_cents, attributed_by,
                credited_message_id, credited_subject
         FROM conversions ORDER BY project_id, conversion_id",
    )
    .load(connection)
    .await?)
}
