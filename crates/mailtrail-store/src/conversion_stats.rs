//! The conversion questions, beside the delivery ones of [`crate::stats`]: for the same scope
//! and range, conversions by click, by open and unattributed, and their value.
//!
//! Project and system questions sum `conversion_rollups`, kept by triggers on `conversions` in
//! the same transaction; a backer's question reads its own conversions. A conversion belongs to
//! the day (UTC) it happened and to the subject of the message it is credited to (none when
//! unattributed). [`Source::Messages`] groups the `conversions` table itself: the reference the
//! counters are checked against.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Nullable, Text};
use diesel_async::RunQueryDsl;

use crate::stats::{Source, StatsQuery, StatsScope};
use crate::{StoreConnection, StoreError};

/// The conversions of one (day, subject) group.
#[derive(Clone, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct ConversionRow {
    /// The day, when answered per day.
    #[diesel(sql_type = Nullable<Date>)]
    pub day: Option<NaiveDate>,
    /// The credited subject, when grouped by subject.
    #[diesel(sql_type = Nullable<Text>)]
    pub subject: Option<String>,
    /// Conversions credited to a person's click.
    #[diesel(sql_type = BigInt)]
    pub by_click: i64,
    /// Conversions credited to a person's open (no click in the window).
    #[diesel(sql_type = BigInt)]
    pub by_open: i64,
    /// Conversions credited to no email.
    #[diesel(sql_type = BigInt)]
    pub unattributed: i64,
    /// The value of all of them, in cents.
    #[diesel(sql_type = BigInt)]
    pub value_cents: i64,
}

/// The statement answering `query` from `source`; `$1` is the scope's id, `$2`, `$3` the range.
fn statement(query: &StatsQuery, source: Source) -> String {
    let counters = source == Source::Counters && !matches!(query.scope, StatsScope::Backer(_));
    let (table, day, subject, count, value) = if counters {
        (
            "conversion_rollups",
            "day",
            "subject",
            "conversions",
            "value_cents",
        )
    } else {
        (
            "conversions",
            "(occurred_at AT TIME ZONE 'UTC')::date",
            "credited_subject",
            "1",
            "coalesce(value_cents, 0)",
        )
    };
    let scope_filter = match query.scope {
        StatsScope::Backer(_) => "backer_id = $1",
        StatsScope::Project(_) | StatsScope::ProjectBySubject(_) => "project_id = $1",
        StatsScope::All => "TRUE",
    };
    let day_column = if query.daily { day } else { "NULL::date" };
    let subject_column = if matches!(query.scope, StatsScope::ProjectBySubject(_)) {
        subject
    } else {
        "NULL::text"
    };
    format!(
        "SELECT {day_column} AS day, {subject_column} AS subject,
           coalesce(sum({count}) FILTER (WHERE attributed_by = 'click'), 0)::int8 AS by_click,
           coalesce(sum({count}) FILTER (WHERE attributed_by = 'open'), 0)::int8 AS by_open,
           coalesce(sum({count}) FILTER (WHERE attributed_by = 'none'), 0)::int8 AS unattributed,
           coalesce(sum({value}), 0)::int8 AS value_cents
         FROM {table}
         WHERE {scope_filter}
           AND ($2::date IS NULL OR {day} >= $2::date) AND ($3::date IS NULL OR {day} <= $3::date)
         GROUP BY 1, 2
         -- Buckets counted down to zero stay behind; they are no group.
         HAVING sum({count}) <> 0
         ORDER BY 1 NULLS FIRST, 2 NULLS FIRST"
    )
}

/// Counts conversions by (day, subject) for `query`, ordered by day, then subject.
pub async fn conversion_counts(
    connection: &mut StoreConnection,
    query: &StatsQuery,
    source: Source,
) -> Result<Vec<ConversionRow>, StoreError> {
    Ok(diesel::sql_query(statement(query, source))
        .bind::<BigInt, _>(query.scope.bound_id())
        .bind::<Nullable<Date>, _>(query.since)
        .bind::<Nullable<Date>, _>(query.until)
        .load(connection)
        .await?)
}

/// A counter bucket of `conversion_rollups` that differs from a `GROUP BY` over `conversions`,
/// as `project/day/subject/attributed_by: expected != actual` (conversions/value).
pub async fn verify_conversion_rollups(
    connection: &mut StoreConnection,
) -> Result<Vec<String>, StoreError> {
    #[derive(QueryableByName)]
    struct Difference {
        #[diesel(sql_type = Text)]
        difference: String,
    }
    let differences: Vec<Difference> = diesel::sql_query(
        "WITH expected AS (
           SELECT project_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
                  credited_subject AS subject, attributed_by,
                  count(*) || '/' || coalesce(sum(value_cents), 0) AS figures
           FROM conversions GROUP BY 1, 2, 3, 4
         ),
         actual AS (
           SELECT project_id, day, subject, attributed_by, conversions || '/' || value_cents AS figures
           FROM conversion_rollups WHERE (conversions, value_cents) <> (0, 0)
         )
         SELECT concat_ws('/', coalesce(e.project_id, a.project_id), coalesce(e.day, a.day),
                          coalesce(e.subject, a.subject), coalesce(e.attributed_by, a.attributed_by))
                || ': ' || coalesce(e.figures, 'none') || ' != ' || coalesce(a.figures, 'none')
                AS difference
         FROM expected e FULL JOIN actual a
           ON e.project_id = a.project_id AND e.day = a.day
              AND e.subject IS NOT DISTINCT FROM a.subject AND e.attributed_by = a.attributed_by
         WHERE e.figures IS DISTINCT FROM a.figures
         ORDER BY 1",
    )
    .load(connection)
    .await?;
    Ok(differences.into_iter().map(|d| d.difference).collect())
}
