//! The statistics counters (`project_rollups`, `system_rollups`): recomputing and checking them.
//!
//! Triggers on `sent_emails` keep the counters in the same transaction as the rows (see the
//! migration `stats_rollups` and `docs/stats.md`), so they are exact by construction; these
//! functions are the repair and the proof: [`rebuild`] recomputes them from `sent_emails` (the
//! migration that introduced them ran it), [`verify`] compares every bucket with a `GROUP BY`.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Nullable, Text};
use diesel_async::RunQueryDsl;

use crate::{StoreConnection, StoreError};

/// Recomputes both counter tables from `sent_emails`, in one transaction, then the conversion
/// counters from `conversions`, in another; writers wait for each.
pub async fn rebuild(connection: &mut StoreConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT mailtrail_rebuild_rollups()")
        .execute(connection)
        .await?;
    diesel::sql_query("SELECT mailtrail_rebuild_conversion_rollups()")
        .execute(connection)
        .await?;
    Ok(())
}

/// A bucket whose counter differs from what `sent_emails` says.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct RollupDifference {
    /// `project` or `system`.
    #[diesel(sql_type = Text)]
    pub table: String,
    /// The project (project counters only).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub project_id: Option<i64>,
    /// The day of the messages' first event.
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    /// The subject (project counters only).
    #[diesel(sql_type = Nullable<Text>)]
    pub subject: Option<String>,
    /// The status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// What `sent_emails` says, as `messages/opened/clicked/human_opens/bot_opens/human_clicks/bot_clicks`.
    #[diesel(sql_type = Text)]
    pub expected: String,
    /// What the counter holds, in the same form.
    #[diesel(sql_type = Text)]
    pub actual: String,
}

/// Every bucket of both tables whose counters differ from a `GROUP BY` over `sent_emails`
/// (buckets counted down to zero are the same as absent ones). Empty when they agree.
pub async fn verify(connection: &mut StoreConnection) -> Result<Vec<RollupDifference>, StoreError> {
    const FIGURES: &str = "concat_ws('/', messages, opened_messages, clicked_messages, \
                           human_opens, bot_opens, human_clicks, bot_clicks)";
    let sql = format!(
        "WITH deltas AS (
           SELECT d.* FROM sent_emails s, LATERAL mailtrail_rollup_delta_of(s, 1) d
         ),
         expected_project AS (
           SELECT project_id, day, subject, status::text AS status, {sums}
           FROM deltas GROUP BY project_id, day, subject, status
         ),
         expected_system AS (
           SELECT day, status::text AS status, {sums} FROM deltas GROUP BY day, status
         ),
         actual_project AS (
           SELECT project_id, day, subject, status::text AS status, {figures} AS figures
           FROM project_rollups WHERE {nonzero}
         ),
         actual_system AS (
           SELECT day, status::text AS status, {figures} AS figures
           FROM system_rollups WHERE {nonzero}
         )
         SELECT 'project' AS table, coalesce(e.project_id, a.project_id) AS project_id,
                coalesce(e.day, a.day) AS day, coalesce(e.subject, a.subject) AS subject,
                coalesce(e.status, a.status) AS status,
                coalesce(e.figures, 'none') AS expected, coalesce(a.figures, 'none') AS actual
         FROM expected_project e FULL JOIN actual_project a
           ON e.project_id = a.project_id AND e.day = a.day
              AND e.subject IS NOT DISTINCT FROM a.subject AND e.status = a.status
         WHERE e.figures IS DISTINCT FROM a.figures
         UNION ALL
         SELECT 'system', NULL, coalesce(e.day, a.day), NULL, coalesce(e.status, a.status),
                coalesce(e.figures, 'none'), coalesce(a.figures, 'none')
         FROM expected_system e FULL JOIN actual_system a ON e.day = a.day AND e.status = a.status
         WHERE e.figures IS DISTINCT FROM a.figures
         ORDER BY 1, 2, 3, 4, 5",
        sums = format!(
            "concat_ws('/', sum(messages), sum(opened_messages), sum(clicked_messages), \
             sum(human_opens), sum(bot_opens), sum(human_clicks), sum(bot_clicks)) AS figures"
        ),
        figures = FIGURES,
        nonzero = "(messages, opened_messages, clicked_messages, human_opens, bot_opens, \
                   human_clicks, bot_clicks) <> (0, 0, 0, 0, 0, 0, 0)",
    );
    Ok(diesel::sql_query(sql).load(connection).await?)
}
