//! The deliverability questions: status counts for a backer, a project, a project by subject,
//! and the whole system.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;
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

/// Count of messages in one status (and, by subject, one subject).
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName, Serialize)]
pub struct StatsRow {
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
    /// Of those, messages clicked at least once.
    #[diesel(sql_type = BigInt)]
    pub clicked: i64,
}

/// Counts messages by status within `scope`, ordered by subject then status.
pub async fn status_counts(
    connection: &mut StoreConnection,
    scope: StatsScope,
) -> Result<Vec<StatsRow>, StoreError> {
    let (subject, filter) = match scope {
        StatsScope::Backer(_) => ("NULL::text", "WHERE backer_id = $1"),
        StatsScope::Project(_) => ("NULL::text", "WHERE project_id = $1"),
        StatsScope::ProjectBySubject(_) => ("subject", "WHERE project_id = $1"),
        StatsScope::All => ("NULL::text", ""),
    };
    let sql = format!(
        "SELECT {subject} AS subject, status, count(*) AS messages,
                count(*) FILTER (WHERE opened_count > 0) AS opened,
                count(*) FILTER (WHERE clicked_count > 0) AS clicked
         FROM sent_emails {filter}
         GROUP BY 1, status
         ORDER BY 1 NULLS FIRST, min(status_tier), status"
    );
    let query = diesel::sql_query(sql);
    let rows = match scope {
        StatsScope::Backer(id) | StatsScope::Project(id) | StatsScope::ProjectBySubject(id) => {
            query.bind::<BigInt, _>(id).load(connection).await?
        }
        StatsScope::All => query.load(connection).await?,
    };
    Ok(rows)
}
