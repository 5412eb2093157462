//! The deliverability questions: status counts for a backer, a project, a project by subject,
//! and the whole system, over a range of days, in one total or one per day.
//!
//! Project and system questions sum the rollup counters (`project_rollups`, `system_rollups`),
//! which triggers keep exact in the same transaction as `sent_emails`: their cost follows the
//! number of (day, subject, status) buckets, not of messages. A backer's question reads its own
//! few messages through `sent_emails (backer_id, first_event_at)`. [`Source::Messages`] answers
//! every question the slow way, by grouping `sent_emails`: the reference the counters are
//! checked against (`mailtrail rollups verify`, the property tests, the benchmarks).
//!
//! A message belongs to the day (UTC) of its first event; `since` and `until` are inclusive.

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Date, Nullable, Text};
use diesel_async::RunQueryDsl;
use mailtrail_core::DeliveryStatus;
use serde::Serialize;

use crate::{StoreConnection, StoreError};

/// Which messages to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsScope {
    /// Messages with this `backer_id`.
    Backer(i64),
    /// Messages with this `project_id`.
    Project(i64),
    /// Messages with this `project_id`, one group per subject.
    ProjectBySubject(i64),
    /// Every message.
    All,
}

impl StatsScope {
    /// The backer or project the scope names: `$1` of the statistics statements (0 for the
    /// whole system, whose statements do not read it).
    pub(crate) fn bound_id(self) -> i64 {
        match self {
            Self::Backer(id) | Self::Project(id) | Self::ProjectBySubject(id) => id,
            Self::All => 0,
        }
    }
}

/// A question: a scope, an optional range of days, and whether to answer per day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    /// Which messages.
    pub scope: StatsScope,
    /// First day counted (inclusive, UTC), if any.
    pub since: Option<NaiveDate>,
    /// Last day counted (inclusive, UTC), if any.
    pub until: Option<NaiveDate>,
    /// One group per day (and subject, by subject) instead of one for the whole range.
    pub daily: bool,
}

impl StatsQuery {
    /// All time, one total.
    pub fn new(scope: StatsScope) -> Self {
        Self {
            scope,
            since: None,
            until: None,
            daily: false,
        }
    }

    /// Only messages whose first event fell between `since` and `until` (inclusive).
    pub fn between(mut self, since: Option<NaiveDate>, until: Option<NaiveDate>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// One group per day.
    pub fn per_day(mut self) -> Self {
        self.daily = true;
        self
    }
}

/// Where the counts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The rollup counters (project and system questions); backers read their messages.
    Counters,
    /// A `GROUP BY` over `sent_emails`, for every question: the reference.
    Messages,
}

/// The counts of one (day, subject, status) group.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName, Serialize)]
pub struct StatsRow {
    /// The day, when answered per day.
    #[diesel(sql_type = Nullable<Date>)]
    pub day: Option<NaiveDate>,
    /// The subject, when grouped by subject.
    #[diesel(sql_type = Nullable<Text>)]
    pub subject: Option<String>,
    /// The delivery status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Messages in that status.
    #[diesel(sql_type = BigInt)]
    pub messages: i64,
    /// Of those, messages opened by a person at least once.
    #[diesel(sql_type = BigInt)]
    pub opened: i64,
    /// Of those, messages clicked by a person at least once.
    #[diesel(sql_type = BigInt)]
    pub clicked: i64,
    /// Opens by people.
    #[diesel(sql_type = BigInt)]
    pub human_opens: i64,
    /// Opens Mailgun attributed to machines.
    #[diesel(sql_type = BigInt)]
    pub bot_opens: i64,
    /// Clicks by people.
    #[diesel(sql_type = BigInt)]
    pub human_clicks: i64,
    /// Clicks Mailgun attributed to machines.
    #[diesel(sql_type = BigInt)]
    pub bot_clicks: i64,
}

/// The figures a group sums, as columns of the rollup tables.
const ROLLUP_SUMS: &str = "sum(messages)::int8 AS messages, sum(opened_messages)::int8 AS opened,
    sum(clicked_messages)::int8 AS clicked, sum(human_opens)::int8 AS human_opens,
    sum(bot_opens)::int8 AS bot_opens, sum(human_clicks)::int8 AS human_clicks,
    sum(bot_clicks)::int8 AS bot_clicks";

/// The same figures computed from `sent_emails`.
const MESSAGE_SUMS: &str = "count(*) AS messages,
    count(*) FILTER (WHERE opened_count > 0) AS opened,
    count(*) FILTER (WHERE clicked_count > 0) AS clicked,
    coalesce(sum(opened_count), 0)::int8 AS human_opens,
    coalesce(sum(bot_open_count), 0)::int8 AS bot_opens,
    coalesce(sum(clicked_count), 0)::int8 AS human_clicks,
    coalesce(sum(bot_click_count), 0)::int8 AS bot_clicks";

/// A message's day in `sent_emails`.
const MESSAGE_DAY: &str = "(first_event_at AT TIME ZONE 'UTC')::date";

/// The statement answering `query` from `source`. `$1` is the scope's id (unused for the whole
/// system), `$2` and `$3` the range's ends (null when open).
fn statement(query: &StatsQuery, source: Source) -> String {
    let by_subject = matches!(query.scope, StatsScope::ProjectBySubject(_));
    let (table, day, sums, scope_filter) = match (query.scope, source) {
        (StatsScope::All, Source::Counters) => ("system_rollups", "day", ROLLUP_SUMS, "TRUE"),
        (StatsScope::Project(_) | StatsScope::ProjectBySubject(_), Source::Counters) => {
            ("project_rollups", "day", ROLLUP_SUMS, "project_id = $1")
        }
        (StatsScope::Backer(_), _) => ("sent_emails", MESSAGE_DAY, MESSAGE_SUMS, "backer_id = $1"),
        (StatsScope::Project(_) | StatsScope::ProjectBySubject(_), Source::Messages) => {
            ("sent_emails", MESSAGE_DAY, MESSAGE_SUMS, "project_id = $1")
        }
        (StatsScope::All, Source::Messages) => ("sent_emails", MESSAGE_DAY, MESSAGE_SUMS, "TRUE"),
    };
    // A backer's range is on the indexed timestamp itself, so the index bounds the scan.
    let range = if table == "sent_emails" {
        "($2::date IS NULL OR first_event_at >= ($2::date)::timestamp AT TIME ZONE 'UTC')
         AND ($3::date IS NULL OR first_event_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC')"
            .to_owned()
    } else {
        "($2::date IS NULL OR day >= $2::date) AND ($3::date IS NULL OR day <= $3::date)".to_owned()
    };
    let day_column = if query.daily { day } else { "NULL::date" };
    let subject_column = if by_subject { "subject" } else { "NULL::text" };
    format!(
        "SELECT {day_column} AS day, {subject_column} AS subject, status::text AS status, {sums}
         FROM {table}
         WHERE {scope_filter} AND {range}
         GROUP BY 1, 2, 3
         HAVING {having}
         ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, array_position({precedence}, status::text), 3",
        precedence = precedence_array(),
        // Buckets whose messages all moved elsewhere stay behind with zeros; they are no group.
        having = if table == "sent_emails" {
            "TRUE"
        } else {
            "sum(messages) <> 0"
        }
    )
}

/// The statuses in precedence order, as a SQL array, so groups list them the way people read
/// them (accepted first, complained last).
fn precedence_array() -> String {
    let names: Vec<String> = DeliveryStatus::ALL
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!("ARRAY[{}]::text[]", names.join(", "))
}

/// Counts messages by (day, subject, status) for `query`, ordered by day, subject and status
/// precedence.
pub async fn status_counts(
    connection: &mut StoreConnection,
    query: &StatsQuery,
    source: Source,
) -> Result<Vec<StatsRow>, StoreError> {
    Ok(diesel::sql_query(statement(query, source))
        .bind::<BigInt, _>(query.scope.bound_id())
        .bind::<Nullable<Date>, _>(query.since)
        .bind::<Nullable<Date>, _>(query.until)
        .load(connection)
        .await?)
}
