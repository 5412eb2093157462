//! Every project's figures over a range of days, to rank them: the system overview lists the
//! projects with the worst bounce and complaint rates.
//!
//! One statement sums `project_rollups` by (project, status); each project's rows are then folded
//! by [`summarize`], so a project's rates here are the very numbers its own report shows. Its
//! cost follows the number of counter rows in the range (projects x days x subjects x statuses),
//! never the number of messages. A project with fewer than `min_messages` messages in the range
//! is left out of a ranking: one bounce out of two messages is a 50% bounce rate that says little.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Nullable};
use diesel_async::RunQueryDsl;

use crate::report::{Percent, StatsGroup, summarize};
use crate::stats::{StatsQuery, StatsRow, StatsScope};
use crate::{StoreConnection, StoreError};

/// One project's figures over the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectStanding {
    /// The project.
    pub project_id: i64,
    /// Its figures and rates, as its own report computes them.
    pub group: StatsGroup,
}

/// The rate a ranking orders by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankedRate {
    /// (bounced + dropped) / total.
    Bounce,
    /// complained / (delivered + complained).
    Complaint,
}

#[derive(QueryableByName)]
struct ProjectStatsRow {
    #[diesel(sql_type = BigInt)]
    project_id: i64,
    #[diesel(embed)]
    row: StatsRow,
}

/// Every project with at least `min_messages` messages whose first event fell between `since`
/// and `until` (inclusive), in project order.
pub async fn project_standings(
    connection: &mut StoreConnection,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
    min_messages: u64,
) -> Result<Vec<ProjectStanding>, StoreError> {
    let rows: Vec<ProjectStatsRow> = diesel::sql_query(
        "SELECT project_id, NULL::date AS day, NULL::text AS subject, status::text AS status,
                sum(messages)::int8 AS messages, sum(opened_messages)::int8 AS opened,
                sum(clicked_messages)::int8 AS clicked, sum(human_opens)::int8 AS human_opens,
                sum(bot_opens)::int8 AS bot_opens, sum(human_clicks)::int8 AS human_clicks,
                sum(bot_clicks)::int8 AS bot_clicks
         FROM project_rollups
         WHERE ($1::date IS NULL OR day >= $1::date) AND ($2::date IS NULL OR day <= $2::date)
         GROUP BY project_id, status
         HAVING sum(messages) <> 0
         ORDER BY project_id, status",
    )
    .bind::<Nullable<Date>, _>(since)
    .bind::<Nullable<Date>, _>(until)
    .load(connection)
    .await?;
    Ok(fold(&rows, since, until)
        .into_iter()
        .filter(|standing| standing.group.total >= min_messages)
        .collect())
}

fn fold(
    rows: &[ProjectStatsRow],
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Vec<ProjectStanding> {
    let mut standings = Vec::new();
    for project in rows.chunk_by(|a, b| a.project_id == b.project_id) {
        let project_id = project[0].project_id;
        let query = StatsQuery::new(StatsScope::Project(project_id)).between(since, until);
        let project_rows: Vec<StatsRow> = project.iter().map(|row| row.row.clone()).collect();
        if let Some(group) = summarize(&query, &project_rows).into_iter().next() {
            standings.push(ProjectStanding { project_id, group });
        }
    }
    standings
}

/// The `limit` projects with the highest `rate`, worst first; ties go to the larger project
/// (more people affected), then to the lower id so the order is stable.
pub fn worst(
    standings: &[ProjectStanding],
    rate: RankedRate,
    limit: usize,
) -> Vec<ProjectStanding> {
    let value = |standing: &ProjectStanding| -> Option<Percent> {
        match rate {
            RankedRate::Bounce => standing.group.bounce_rate_percent,
            RankedRate::Complaint => standing.group.complaint_rate_percent,
        }
    };
    let mut ranked: Vec<&ProjectStanding> = standings
        .iter()
        .filter(|standing| value(standing).is_some_and(|percent| percent.as_f64() > 0.0))
        .collect();
    ranked.sort_by(|a, b| {
        let (rate_a, rate_b) = (value(a).map(Percent::as_f64), value(b).map(Percent::as_f64));
        rate_b
            .partial_cmp(&rate_a)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.group.total.cmp(&a.group.total))
            .then(a.project_id.cmp(&b.project_id))
    });
    ranked.into_iter().take(limit).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(project_id: i64, status: &str, messages: i64) -> ProjectStatsRow {
        ProjectStatsRow {
            project_id,
            row: StatsRow {
                day: None,
                subject: None,
                status: status.to_owned(),
                messages,
                opened: 0,
                clicked: 0,
                human_opens: 0,
                bot_opens: 0,
                human_clicks: 0,
                bot_clicks: 0,
            },
        }
    }

    #[test]
    fn projects_rank_by_rate_then_size_and_clean_projects_are_not_listed() {
        let rows = [
            row(1, "delivered", 9),
            row(1, "bounced", 1),
            row(2, "delivered", 1),
            row(2, "bounced", 1),
            row(3, "delivered", 5),
            row(4, "delivered", 18),
            row(4, "dropped", 2),
            row(4, "complained", 1),
        ];
        let standings = fold(&rows, None, None);
        assert_eq!(standings.len(), 4);
        assert_eq!(standings[3].group.total, 21);
        let bounce: Vec<i64> = worst(&standings, RankedRate::Bounce, 10)
            .iter()
            .map(|standing| standing.project_id)
            .collect();
        // 50%, then 10% of 10 and 9.5% of 21; project 3 never bounced.
        assert_eq!(bounce, [2, 1, 4]);
        let complaint: Vec<i64> = worst(&standings, RankedRate::Complaint, 10)
            .iter()
            .map(|standing| standing.project_id)
            .collect();
        assert_eq!(complaint, [4]);
        assert_eq!(worst(&standings, RankedRate::Bounce, 1).len(), 1);
    }
}
