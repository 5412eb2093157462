//! The monthly partitions of `email_events`: creating them ahead, listing them, and retention.
//!
//! `email_events` is partitioned by month of `occurred_at` (UTC), one table per month named
//! `email_events_YYYY_MM`, plus `email_events_default` for rows whose month has no partition yet
//! (see the migration `partition_email_events` for why, and `docs/scaling.md`).
//!
//! - [`ensure_partitions`] creates this month's partition and the next ones, and one for every
//!   month that has rows in the default partition, moving those rows in: Postgres refuses a new
//!   partition whose range has rows in the default partition, so a row that landed there (an event
//!   from a month nobody created) would otherwise block its month for ever. `mailtrail partitions
//!   ensure` calls it. The worker calls [`ensure_partitions_ahead`] at start and hourly: months
//!   ahead only, never moving rows (see [`ensure_partitions`] for why).
//! - [`retention_plan`] says which partitions lie wholly before a cutoff, and how many rows of the
//!   default partition do; [`apply_retention`] detaches and drops those partitions and deletes
//!   those rows.
//!
//! Every change runs in a transaction of its own under one advisory lock (so two workers, or a
//! worker and an operator, take turns) and a lock timeout (so a long query on `email_events` makes
//! the change fail and be retried, instead of queueing every worker's insert behind it).

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Date, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::{StoreConnection, StoreError};

/// Months created ahead of the current one, by the worker and by default by the command.
pub const DEFAULT_MONTHS_AHEAD: u32 = 3;

/// An arbitrary constant naming the partition maintenance lock ("mtparts" in ASCII).
const PARTITION_LOCK_ID: i64 = 0x006d_7470_6172_7473;

/// How long a partition change waits for a lock on `email_events` before giving up. Attaching a
/// partition waits for queries reading the default partition; detaching one for every query on
/// the table. Workers' inserts queue behind a waiting change, so it must not wait long.
const LOCK_TIMEOUT: &str = "5s";

/// The default partition's name.
pub const DEFAULT_PARTITION: &str = "email_events_default";

/// The name of the partition of the month holding `day`.
pub fn partition_name(day: NaiveDate) -> String {
    format!("email_events_{:04}_{:02}", day.year(), day.month())
}

/// The first day of the month named by a partition name, for mailtrail's monthly partitions.
pub fn partition_month(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("email_events_")?;
    let (year, month) = rest.split_once('_')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// The first day of the month of `time` (UTC).
fn month_of(time: DateTime<Utc>) -> NaiveDate {
    let day = time.date_naive();
    day.with_day(1).unwrap_or(day)
}

/// What ensuring one month did.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct EnsuredPartition {
    /// The partition's name.
    #[diesel(sql_type = Text)]
    pub partition_name: String,
    /// True when it was created now, false when it existed.
    #[diesel(sql_type = Bool)]
    pub created: bool,
    /// Rows moved into it from the default partition.
    #[diesel(sql_type = BigInt)]
    pub moved_from_default: i64,
}

#[derive(QueryableByName)]
struct MonthRow {
    #[diesel(sql_type = Date)]
    month: NaiveDate,
}

/// Ensures a partition exists for the month of `now` and the `months_ahead` after it, and for
/// every month that has rows in the default partition (moving them in). Returns what it did
/// per month, in month order. What `mailtrail partitions ensure` runs.
///
/// Moving rows out of the default partition is for an operator's command, not for the worker:
/// a query planned just before the move's commit and run just after it can miss that month's
/// rows (it scans the default partition, which no longer holds them, but not the partition
/// attached meanwhile). Readers see every row again once the move has committed.
pub async fn ensure_partitions(
    connection: &mut StoreConnection,
    now: DateTime<Utc>,
    months_ahead: u32,
) -> Result<Vec<EnsuredPartition>, StoreError> {
    let mut months = months_from(now, months_ahead);
    let stranded: Vec<MonthRow> = diesel::sql_query(
        "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month
         FROM email_events_default",
    )
    .load(connection)
    .await?;
    months.extend(stranded.into_iter().map(|row| row.month));
    ensure_months(connection, months).await
}

/// Ensures a partition exists for the current month and the [`DEFAULT_MONTHS_AHEAD`] after it,
/// and nothing else: what the worker runs at start and hourly. Months ahead have no rows in the
/// default partition (the worker dead-letters events more than a day in the future), so this
/// never moves rows while the workers' batches and the API read.
pub async fn ensure_partitions_ahead(
    connection: &mut StoreConnection,
) -> Result<Vec<EnsuredPartition>, StoreError> {
    let months = months_from(Utc::now(), DEFAULT_MONTHS_AHEAD);
    ensure_months(connection, months).await
}

/// The month of `now` and the `months_ahead` after it.
fn months_from(now: DateTime<Utc>, months_ahead: u32) -> Vec<NaiveDate> {
    let current = month_of(now);
    (0..=months_ahead)
        .filter_map(|ahead| current.checked_add_months(Months::new(ahead)))
        .collect()
}

/// Creates each month's partition unless it exists, each in a transaction of its own.
async fn ensure_months(
    connection: &mut StoreConnection,
    mut months: Vec<NaiveDate>,
) -> Result<Vec<EnsuredPartition>, StoreError> {
    months.sort();
    months.dedup();
    let mut ensured = Vec::with_capacity(months.len());
    for month in months {
        let outcome = connection
            .transaction::<_, StoreError, _>(async move |connection| {
                lock_for_maintenance(connection).await?;
                Ok(
                    diesel::sql_query("SELECT * FROM mailtrail_create_event_partition($1)")
                        .bind::<Date, _>(month)
                        .get_result::<EnsuredPartition>(connection)
                        .await?,
                )
            })
            .await?;
        if outcome.created {
            tracing::info!(
                partition = outcome.partition_name,
                moved_from_default = outcome.moved_from_default,
                "created an email_events partition"
            );
        }
        ensured.push(outcome);
    }
    Ok(ensured)
}

/// Takes the maintenance lock and sets the lock timeout, for the current transaction.
async fn lock_for_maintenance(connection: &mut StoreConnection) -> Result<(), StoreError> {
    diesel::sql_query(format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .execute(connection)
        .await?;
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({PARTITION_LOCK_ID})"))
        .execute(connection)
        .await?;
    Ok(())
}

/// One partition of `email_events`.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct EventPartition {
    /// Its table name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Its rows: the planner's estimate once the table was analysed, else counted.
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
    /// True when `rows` is the planner's estimate rather than a count.
    #[diesel(sql_type = Bool)]
    pub rows_estimated: bool,
    /// Its size on disk with its indexes, in bytes.
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
}

impl EventPartition {
    /// The first day of its month; `None` for the default partition and any other table
    /// attached by hand.
    pub fn month(&self) -> Option<NaiveDate> {
        partition_month(&self.name)
    }
}

/// Every partition of `email_events`, by name (so months in order, the default one last).
pub async fn list_partitions(
    connection: &mut StoreConnection,
) -> Result<Vec<EventPartition>, StoreError> {
    let mut partitions: Vec<EventPartition> = diesel::sql_query(
        "SELECT c.relname::text AS name, greatest(c.reltuples, 0)::int8 AS rows,
                c.reltuples >= 0 AS rows_estimated, pg_total_relation_size(c.oid) AS bytes
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'email_events'::regclass
         ORDER BY c.relname COLLATE \"C\"",
    )
    .load(connection)
    .await?;
    for partition in partitions.iter_mut().filter(|p| !p.rows_estimated) {
        // Never analysed yet (new, or small): a count is cheap then.
        partition.rows = count_rows(connection, &partition.name).await?;
    }
    Ok(partitions)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn count_rows(connection: &mut StoreConnection, table: &str) -> Result<i64, StoreError> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    Ok(
        diesel::sql_query(format!("SELECT count(*) AS count FROM {quoted}"))
            .get_result::<Count>(connection)
            .await?
            .count,
    )
}

/// What retention at a cutoff would remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Events that happened before this instant are past retention.
    pub cutoff: DateTime<Utc>,
    /// Partitions whose whole month lies before the cutoff: detached and dropped.
    pub drop: Vec<EventPartition>,
    /// Partitions that straddle the cutoff: kept until their month is wholly past it.
    pub straddling: Vec<EventPartition>,
    /// Rows of the default partition older than the cutoff: deleted (they have no partition of
    /// their own to drop; `ensure_partitions` normally leaves none).
    pub default_rows: i64,
}

impl RetentionPlan {
    /// True when there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.default_rows == 0
    }
}

/// What retention past `cutoff` would remove; nothing is changed.
pub async fn retention_plan(
    connection: &mut StoreConnection,
    cutoff: DateTime<Utc>,
) -> Result<RetentionPlan, StoreError> {
    let mut plan = RetentionPlan {
        cutoff,
        drop: Vec::new(),
        straddling: Vec::new(),
        default_rows: 0,
    };
    let cutoff_day = cutoff.date_naive();
    for partition in list_partitions(connection).await? {
        let Some(month) = partition.month() else {
            continue;
        };
        let Some(next_month) = month.checked_add_months(Months::new(1)) else {
            continue;
        };
        let next_month_start = next_month.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        if next_month_start.is_some_and(|end| end <= cutoff) {
            plan.drop.push(partition);
        } else if month <= cutoff_day {
            plan.straddling.push(partition);
        }
    }
    plan.default_rows = diesel::sql_query(format!(
        "SELECT count(*) AS count FROM {DEFAULT_PARTITION} WHERE occurred_at < $1"
    ))
    .bind::<Timestamptz, _>(cutoff)
    .get_result::<Count>(connection)
    .await?
    .count;
    Ok(plan)
}

/// What retention removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Partitions detached and dropped.
    pub dropped: Vec<String>,
    /// Rows deleted from the default partition.
    pub default_rows_deleted: i64,
}

/// Detaches and drops the plan's partitions (each in its own transaction), then deletes the
/// default partition's rows older than the plan's cutoff.
pub async fn apply_retention(
    connection: &mut StoreConnection,
    plan: &RetentionPlan,
) -> Result<RetentionOutcome, StoreError> {
    let mut outcome = RetentionOutcome::default();
    for partition in &plan.drop {
        // Only mailtrail's own monthly partitions are ever named in a plan.
        if partition.month().is_none() {
            continue;
        }
        let name = partition.name.clone();
        connection
            .transaction::<_, StoreError, _>(async move |connection| {
                lock_for_maintenance(connection).await?;
                diesel::sql_query(format!("ALTER TABLE email_events DETACH PARTITION {name}"))
                    .execute(connection)
                    .await?;
                diesel::sql_query(format!("DROP TABLE {name}"))
                    .execute(connection)
                    .await?;
                Ok(())
            })
            .await?;
        tracing::info!(
            partition = partition.name,
            "dropped an email_events partition past retention"
        );
        outcome.dropped.push(partition.name.clone());
    }
    outcome.default_rows_deleted = diesel::sql_query(format!(
        "DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at < $1"
    ))
    .bind::<Timestamptz, _>(plan.cutoff)
    .execute(connection)
    .await? as i64;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_to_their_month() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 17).unwrap_or_default();
        assert_eq!(partition_name(day), "email_events_2026_03");
        assert_eq!(
            partition_month("email_events_2026_03"),
            NaiveDate::from_ymd_opt(2026, 3, 1)
        );
        assert_eq!(partition_month(DEFAULT_PARTITION), None);
        assert_eq!(partition_month("email_events_2026_13"), None);
        assert_eq!(partition_month("email_events_26_03"), None);
    }
}
