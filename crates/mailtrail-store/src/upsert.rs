//! The batched, idempotent, order-independent write of events.
//!
//! One statement per batch, whatever its size: the batch travels as one array per column
//! (`unnest`), so it needs 20 bind parameters instead of 20 per row and never meets Postgres'
//! 65,535-parameter limit. The statement
//!
//! 1. inserts the events into `email_events`, skipping keys already there (retries, duplicates,
//!    a batch replayed after a crash); the table is partitioned by month, so its unique key is
//!    `(event_key, occurred_at)`, as strict as the key alone because the key hashes the time;
//! 2. folds only the *newly inserted* events per (message, recipient): the best status claim by
//!    `(tier, explicit, time, status, reason, code)` and the engagement counts;
//! 3. upserts `sent_emails`, keeping the higher-ranked claim and adding the counts.
//!
//! Because step 2 only sees new events, counts are exact under redelivery, and because every
//! merge is a max, min, sum or first-non-null, the result does not depend on event order. Rows
//! are written in key order so two workers never lock the same rows in opposite orders.

use std::sync::LazyLock;

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use mailtrail_core::EventRow;

use crate::{StoreConnection, StoreError};

/// What one batch write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct UpsertCounts {
    /// Events that were new (not seen before).
    #[diesel(sql_type = BigInt)]
    pub events_inserted: i64,
    /// `sent_emails` rows inserted or updated.
    #[diesel(sql_type = BigInt)]
    pub rows_upserted: i64,
}

/// The columns the status claim is ranked by, highest first; shared by the fold and the merge.
const CLAIM_RANK: [&str; 6] = [
    "status_tier",
    "status_explicit",
    "status_at",
    "status",
    "coalesce(status_reason, '')",
    "coalesce(status_code, '')",
];

/// The statement, built once: the merge condition is generated from [`CLAIM_RANK`] so the fold and
/// the merge cannot disagree.
static UPSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    let prefixed = |table: &str| {
        CLAIM_RANK
            .iter()
            .map(|column| match column.strip_prefix("coalesce(") {
                Some(rest) => format!("coalesce({table}.{rest}"),
                None => format!("{table}.{column}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let excluded_wins = format!("ROW({}) > ROW({})", prefixed("EXCLUDED"), prefixed("s"));
    let claim_columns = [
        "status",
        "status_tier",
        "status_explicit",
        "status_at",
        "status_reason",
        "status_code",
    ]
    .iter()
    .map(|column| {
        format!("{column} = CASE WHEN {excluded_wins} THEN EXCLUDED.{column} ELSE s.{column} END")
    })
    .collect::<Vec<_>>()
    .join(",\n    ");
    let fold_order = CLAIM_RANK
        .iter()
        .map(|column| format!("{column} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
WITH input AS (
  SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
    $7::int8[], $8::int8[], $9::text[], $10::text[], $11::int2[], $12::bool[],
    $13::text[], $14::text[], $15::text[], $16::text[], $17::bool[], $18::text[], $19::text[],
    $20::text[]
  ) AS t(event_key, message_id, recipient, kind, occurred_at, event_id,
         backer_id, project_id, subject, status, status_tier, status_explicit,
         severity, reason, delivery_code, engagement, bot, url, bot_kind, recipient_as_sent)
),
inserted AS (
  INSERT INTO email_events (event_key, message_id, recipient, kind, occurred_at, event_id,
         backer_id, project_id, subject, status, status_tier, status_explicit,
         severity, reason, delivery_code, engagement, bot, url, bot_kind, recipient_as_sent)
  SELECT * FROM input ORDER BY event_key
  ON CONFLICT (event_key, occurred_at) DO NOTHING
  RETURNING *
),
claims AS (
  SELECT message_id, recipient, status, status_tier, status_explicit,
         occurred_at AS status_at,
         CASE WHEN status_explicit THEN reason END AS status_reason,
         CASE WHEN status_explicit THEN delivery_code END AS status_code
  FROM inserted
  WHERE status IS NOT NULL
),
best AS (
  SELECT DISTINCT ON (message_id, recipient) *
  FROM claims
  ORDER BY message_id, recipient, {fold_order}
),
totals AS (
  SELECT message_id, recipient,
    (array_agg(backer_id ORDER BY occurred_at, event_key))[1] AS backer_id,
    (array_agg(project_id ORDER BY occurred_at, event_key))[1] AS project_id,
    (array_agg(subject ORDER BY occurred_at, event_key) FILTER (WHERE subject IS NOT NULL))[1] AS subject,
    min(recipient_as_sent COLLATE "C") AS recipient_as_sent,
    count(*) FILTER (WHERE engagement = 'opened' AND NOT bot) AS opened_count,
    count(*) FILTER (WHERE engagement = 'opened' AND bot) AS bot_open_count,
    min(occurred_at) FILTER (WHERE engagement = 'opened' AND NOT bot) AS first_opened_at,
    max(occurred_at) FILTER (WHERE engagement = 'opened' AND NOT bot) AS last_opened_at,
    count(*) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS clicked_count,
    count(*) FILTER (WHERE engagement = 'clicked' AND bot) AS bot_click_count,
    min(occurred_at) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS first_clicked_at,
    max(occurred_at) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS last_clicked_at,
    min(occurred_at) FILTER (WHERE engagement = 'unsubscribed') AS unsubscribed_at,
    count(*) AS event_count,
    min(occurred_at) AS first_event_at,
    max(occurred_at) AS last_event_at
  FROM inserted
  WHERE status IS NOT NULL
  GROUP BY message_id, recipient
),
upserted AS (
  INSERT INTO sent_emails AS s (
    message_id, recipient, recipient_as_sent, backer_id, project_id, subject,
    status, status_tier, status_explicit, status_at, status_reason, status_code,
    opened_count, bot_open_count, first_opened_at, last_opened_at,
    clicked_count, bot_click_count, first_clicked_at, last_clicked_at, unsubscribed_at,
    event_count, first_event_at, last_event_at)
  SELECT t.message_id, t.recipient, t.recipient_as_sent, t.backer_id, t.project_id, t.subject,
    b.status, b.status_tier, b.status_explicit, b.status_at, b.status_reason, b.status_code,
    t.opened_count, t.bot_open_count, t.first_opened_at, t.last_opened_at,
    t.clicked_count, t.bot_click_count, t.first_clicked_at, t.last_clicked_at, t.unsubscribed_at,
    t.event_count, t.first_event_at, t.last_event_at
  FROM totals t JOIN best b USING (message_id, recipient)
  ORDER BY t.message_id, t.recipient
  ON CONFLICT (message_id, recipient) DO UPDATE SET
    {claim_columns},
    subject = coalesce(s.subject, EXCLUDED.subject),
    -- Of several spellings, the one that sorts first in bytes: the same whatever the order.
    recipient_as_sent = least(s.recipient_as_sent COLLATE "C", EXCLUDED.recipient_as_sent COLLATE "C"),
    opened_count = s.opened_count + EXCLUDED.opened_count,
    bot_open_count = s.bot_open_count + EXCLUDED.bot_open_count,
    first_opened_at = least(s.first_opened_at, EXCLUDED.first_opened_at),
    last_opened_at = greatest(s.last_opened_at, EXCLUDED.last_opened_at),
    clicked_count = s.clicked_count + EXCLUDED.clicked_count,
    bot_click_count = s.bot_click_count + EXCLUDED.bot_click_count,
    first_clicked_at = least(s.first_clicked_at, EXCLUDED.first_clicked_at),
    last_clicked_at = greatest(s.last_clicked_at, EXCLUDED.last_clicked_at),
    unsubscribed_at = least(s.unsubscribed_at, EXCLUDED.unsubscribed_at),
    event_count = s.event_count + EXCLUDED.event_count,
    first_event_at = least(s.first_event_at, EXCLUDED.first_event_at),
    last_event_at = greatest(s.last_event_at, EXCLUDED.last_event_at),
    updated_at = now()
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS events_inserted,
       (SELECT count(*) FROM upserted) AS rows_upserted
"#
    )
});

/// Writes a batch of events in one statement (so in one implicit transaction). Duplicate keys
/// within the batch are dropped before sending.
pub async fn upsert_events(
    connection: &mut StoreConnection,
    rows: &[EventRow],
) -> Result<UpsertCounts, StoreError> {
    if rows.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let mut ordered: Vec<&EventRow> = rows.iter().collect();
    ordered.sort_by(|a, b| a.event_key.cmp(&b.event_key));
    ordered.dedup_by(|a, b| a.event_key == b.event_key);

    fn column<T>(rows: &[&EventRow], field: impl Fn(&EventRow) -> T) -> Vec<T> {
        rows.iter().map(|row| field(row)).collect()
    }
    let counts = diesel::sql_query(UPSERT_SQL.as_str())
        .bind::<Array<Text>, _>(column(&ordered, |r| r.event_key.clone()))
        .bind::<Array<Text>, _>(column(&ordered, |r| r.message_id.clone()))
        .bind::<Array<Text>, _>(column(&ordered, |r| r.recipient.clone()))
        .bind::<Array<Text>, _>(column(&ordered, |r| r.kind.clone()))
        .bind::<Array<Timestamptz>, _>(column(&ordered, |r| r.occurred_at))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.event_id.clone()))
        .bind::<Array<BigInt>, _>(column(&ordered, |r| r.backer_id))
        .bind::<Array<BigInt>, _>(column(&ordered, |r| r.project_id))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.subject.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.status.clone()))
        .bind::<Array<Nullable<SmallInt>>, _>(column(&ordered, |r| r.status_tier))
        .bind::<Array<Nullable<Bool>>, _>(column(&ordered, |r| r.status_explicit))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.severity.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.reason.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.delivery_code.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.engagement.clone()))
        .bind::<Array<Bool>, _>(column(&ordered, |r| r.bot))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.url.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(&ordered, |r| r.bot_kind.clone()))
        .bind::<Array<Text>, _>(column(&ordered, |r| r.recipient_as_sent.clone()))
        .get_result::<UpsertCounts>(connection)
        .await?;
    Ok(counts)
}
