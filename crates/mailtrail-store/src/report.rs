//! The statistics report: the store's (subject, status) rows folded into groups, with their
//! rates. This is the one implementation of every figure `mailtrail stats` prints and the read
//! API serves, so the two can never disagree on a number; callers only present it.
//!
//! [`status_counts`] answers one row per (subject, status); [`summarize`] folds them into one
//! group per subject (or one for the whole scope) with a column per status. Rates are computed
//! once, in tenths of a percent with integer arithmetic, so a table, a JSON document and a chart
//! all show the same number.
//!
//! The JSON form of [`StatsReport`] is a contract (scripts read `mailtrail stats --json`):
//!
//! ```json
//! {"scope": "backer" | "project" | "all", "id": 42 | null, "by_subject": false,
//!  "groups": [{"subject": null, "total": 3, "accepted": 0, ..., "clicked": 1,
//!              "delivery_rate_percent": 66.7, "bounce_rate_percent": 33.3}]}
//! ```

use mailtrail_core::DeliveryStatus;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::stats::{StatsRow, StatsScope, status_counts};
use crate::{StoreConnection, StoreError};

/// A share of the messages, in tenths of a percent (rounded half up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percent {
    tenths: u64,
}

impl Percent {
    /// `part` of `total`; `None` when there is nothing to divide.
    pub fn of(part: u64, total: u64) -> Option<Self> {
        if total == 0 {
            return None;
        }
        let scaled = u128::from(part) * 1000 + u128::from(total) / 2;
        let tenths = u64::try_from(scaled / u128::from(total)).unwrap_or(u64::MAX);
        Some(Self { tenths })
    }

    /// The value as a number of percent with one decimal.
    pub fn as_f64(self) -> f64 {
        self.tenths as f64 / 10.0
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}%", self.tenths / 10, self.tenths % 10)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

/// The counts of one group: the whole scope, or one subject.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsGroup {
    /// The subject (by-subject only; `null` for messages without one).
    pub subject: Option<String>,
    /// Messages in the group.
    pub total: u64,
    /// Messages whose status is `accepted`.
    pub accepted: u64,
    /// Messages whose status is `deferred`.
    pub deferred: u64,
    /// Messages whose status is `delivered`.
    pub delivered: u64,
    /// Messages whose status is `bounced`.
    pub bounced: u64,
    /// Messages whose status is `dropped`.
    pub dropped: u64,
    /// Messages whose status is `complained`.
    pub complained: u64,
    /// Messages opened by a person at least once.
    pub opened: u64,
    /// Messages clicked at least once.
    pub clicked: u64,
    /// (delivered + complained) / total: a complaint implies the message arrived.
    pub delivery_rate_percent: Option<Percent>,
    /// (bounced + dropped) / total.
    pub bounce_rate_percent: Option<Percent>,
}

impl StatsGroup {
    fn add(&mut self, row: &StatsRow) {
        let messages = count(row.messages);
        self.total += messages;
        self.opened += count(row.opened);
        self.clicked += count(row.clicked);
        // A status this build does not know still counts in the total.
        if let Ok(status) = row.status.parse::<DeliveryStatus>() {
            *match status {
                DeliveryStatus::Accepted => &mut self.accepted,
                DeliveryStatus::Deferred => &mut self.deferred,
                DeliveryStatus::Delivered => &mut self.delivered,
                DeliveryStatus::Bounced => &mut self.bounced,
                DeliveryStatus::Dropped => &mut self.dropped,
                DeliveryStatus::Complained => &mut self.complained,
            } += messages;
        }
    }

    fn finish(mut self) -> Self {
        self.delivery_rate_percent = Percent::of(self.delivered + self.complained, self.total);
        self.bounce_rate_percent = Percent::of(self.bounced + self.dropped, self.total);
        self
    }
}

/// A count from Postgres' `bigint`, which is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Folds the store's (subject, status) rows into groups, keeping the store's subject order.
/// A whole-scope query always yields one group, zeros included.
pub fn summarize(scope: StatsScope, rows: &[StatsRow]) -> Vec<StatsGroup> {
    let mut groups: Vec<StatsGroup> = Vec::new();
    for row in rows {
        let position = groups.iter().position(|group| group.subject == row.subject);
        let group = match position {
            Some(position) => &mut groups[position],
            None => {
                groups.push(StatsGroup {
                    subject: row.subject.clone(),
                    ..StatsGroup::default()
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        group.add(row);
    }
    if groups.is_empty() && !matches!(scope, StatsScope::ProjectBySubject(_)) {
        groups.push(StatsGroup::default());
    }
    groups.into_iter().map(StatsGroup::finish).collect()
}

/// The statistics of one scope: what `mailtrail stats` shows and the API's stats endpoints
/// answer. Serializes to the documented JSON (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsReport {
    /// Which messages were counted.
    pub scope: StatsScope,
    /// One group for the whole scope, or one per subject in the store's order (none for a
    /// by-subject report of a project without messages).
    pub groups: Vec<StatsGroup>,
}

impl StatsReport {
    /// The report of `scope` from the store's rows for it.
    pub fn from_rows(scope: StatsScope, rows: &[StatsRow]) -> Self {
        Self {
            scope,
            groups: summarize(scope, rows),
        }
    }
}

impl Serialize for StatsReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, id, by_subject) = match self.scope {
            StatsScope::Backer(id) => ("backer", Some(id), false),
            StatsScope::Project(id) => ("project", Some(id), false),
            StatsScope::ProjectBySubject(id) => ("project", Some(id), true),
            StatsScope::All => ("all", None, false),
        };
        let mut document = serializer.serialize_struct("StatsReport", 4)?;
        document.serialize_field("scope", name)?;
        document.serialize_field("id", &id)?;
        document.serialize_field("by_subject", &by_subject)?;
        document.serialize_field("groups", &self.groups)?;
        document.end()
    }
}

/// Reads the status counts of `scope` and folds them into its report.
pub async fn stats_report(
    connection: &mut StoreConnection,
    scope: StatsScope,
) -> Result<StatsReport, StoreError> {
    let rows = status_counts(connection, scope).await?;
    Ok(StatsReport::from_rows(scope, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: Option<&str>, status: &str, messages: i64) -> StatsRow {
        StatsRow {
            subject: subject.map(str::to_owned),
            status: status.to_owned(),
            messages,
            opened: messages / 2,
            clicked: messages / 4,
        }
    }

    #[test]
    fn rates_round_half_up_to_one_decimal_and_are_absent_without_messages() {
        assert_eq!(Percent::of(1, 3).unwrap().to_string(), "33.3%");
        assert_eq!(Percent::of(2, 3).unwrap().to_string(), "66.7%");
        assert_eq!(Percent::of(1, 8).unwrap().to_string(), "12.5%");
        assert_eq!(Percent::of(1, 16).unwrap().to_string(), "6.3%");
        assert_eq!(Percent::of(5, 5).unwrap().to_string(), "100.0%");
        assert_eq!(Percent::of(0, 5).unwrap().as_f64(), 0.0);
        assert_eq!(Percent::of(1, 0), None);
    }

    #[test]
    fn rows_fold_into_one_group_per_subject_in_store_order() {
        let rows = [
            row(None, "delivered", 2),
            row(Some("B"), "delivered", 3),
            row(Some("B"), "bounced", 1),
            row(Some("A"), "complained", 1),
        ];
        let groups = summarize(StatsScope::ProjectBySubject(7), &rows);
        let subjects: Vec<_> = groups.iter().map(|g| g.subject.as_deref()).collect();
        assert_eq!(subjects, [None, Some("B"), Some("A")]);
        assert_eq!(groups[1].total, 4);
        assert_eq!(
            groups[1].delivery_rate_percent.unwrap().to_string(),
            "75.0%"
        );
        assert_eq!(groups[1].bounce_rate_percent.unwrap().to_string(), "25.0%");
        assert_eq!(
            groups[2].delivery_rate_percent.unwrap().to_string(),
            "100.0%"
        );
    }

    #[test]
    fn an_empty_scope_still_shows_one_row_of_zeros() {
        let groups = summarize(StatsScope::Backer(1), &[]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].total, 0);
        assert_eq!(groups[0].delivery_rate_percent, None);
        assert!(summarize(StatsScope::ProjectBySubject(1), &[]).is_empty());
    }

    #[test]
    fn a_status_this_build_does_not_know_counts_only_in_the_total() {
        let groups = summarize(
            StatsScope::All,
            &[row(None, "delivered", 3), row(None, "teleported", 1)],
        );
        assert_eq!((groups[0].total, groups[0].delivered), (4, 3));
        assert_eq!(
            groups[0].delivery_rate_percent.unwrap().to_string(),
            "75.0%"
        );
    }

    #[test]
    fn the_json_document_names_the_scope_then_lists_the_groups_with_rates_as_numbers() {
        let report = StatsReport::from_rows(
            StatsScope::ProjectBySubject(7),
            &[
                row(Some("Hello"), "delivered", 2),
                row(Some("Hello"), "dropped", 1),
            ],
        );
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"scope":"project","id":7,"by_subject":true,"groups":[{"subject":"Hello","#,
                r#""total":3,"accepted":0,"deferred":0,"delivered":2,"bounced":0,"dropped":1,"#,
                r#""complained":0,"opened":1,"clicked":0,"delivery_rate_percent":66.7,"#,
                r#""bounce_rate_percent":33.3}]}"#
            )
        );
        let all = serde_json::to_value(StatsReport::from_rows(StatsScope::All, &[])).unwrap();
        assert_eq!(all["scope"], "all");
        assert_eq!(all["id"], serde_json::Value::Null);
        assert_eq!(
            all["groups"][0]["delivery_rate_percent"],
            serde_json::Value::Null
        );
        let backer =
            serde_json::to_value(StatsReport::from_rows(StatsScope::Backer(4), &[])).unwrap();
        assert_eq!(
            (&backer["scope"], &backer["id"]),
            (&"backer".into(), &4.into())
        );
    }
}
