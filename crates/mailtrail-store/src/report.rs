//! The statistics report: the store's (subject, status) rows folded into groups, with their
//! rates. This is the one implementation of every figure `mailtrail stats` prints and the read
//! API serves, so the two can never disagree on a number; callers only present it.
//!
//! [`status_counts`] answers one row per (day, subject, status); [`summarize`] folds them into
//! one group per subject (or one for the whole scope), per day when asked, with a column per
//! status. Rates are computed once, in tenths of a percent with integer arithmetic, so a table, a
//! JSON document and a chart all show the same number. Their definitions (`docs/stats.md`):
//!
//! | rate | numerator | denominator |
//! |---|---|---|
//! | delivery | delivered + complained (a complaint implies arrival) | all messages |
//! | bounce | bounced + dropped (a suppressed address is undeliverable too) | all messages |
//! | complaint | complained | delivered + complained |
//! | human open | delivered or complained messages opened by a person | delivered + complained |
//! | human click | delivered or complained messages clicked by a person | delivered + complained |
//! | conversion | conversions credited to an email (by click or open) | delivered + complained |
//!
//! Machine opens and clicks (Mailgun's `client-info.bot`) never count in a rate; their raw
//! figures are shown beside the people's.
//!
//! The JSON form of [`StatsReport`] is a contract (scripts read `mailtrail stats --json`):
//!
//! ```json
//! {"scope": "backer" | "project" | "all", "id": 42 | null, "by_subject": false,
//!  "since": "2026-11-01" | null, "until": "2026-11-30" | null, "daily": false,
//!  "groups": [{"day": "2026-11-01" (daily only), "subject": null, "total": 3, "accepted": 0,
//!              ..., "opened": 1, "clicked": 1, "human_opens": 2, "bot_opens": 1,
//!              "human_clicks": 1, "bot_clicks": 0, "delivery_rate_percent": 66.7,
//!              "bounce_rate_percent": 33.3, "complaint_rate_percent": 0.0,
//!              "open_rate_percent": 50.0, "click_rate_percent": 50.0,
//!              "conversions_by_click": 1, "conversions_by_open": 0,
//!              "conversions_unattributed": 0, "conversion_value_cents": 2500,
//!              "conversion_rate_percent": 50.0}]}
//! ```

use chrono::NaiveDate;
use mailtrail_core::DeliveryStatus;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::conversion_figures::{self, ConversionFigures};
use crate::conversion_stats::{ConversionRow, conversion_counts};
use crate::stats::{Source, StatsQuery, StatsRow, StatsScope, status_counts};
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

/// The counts of one group: the whole scope, or one subject, over the range or one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsGroup {
    /// The day (per-day reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
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
    /// Messages clicked by a person at least once.
    pub clicked: u64,
    /// Opens by people.
    pub human_opens: u64,
    /// Opens Mailgun attributed to machines (privacy proxies, scanners).
    pub bot_opens: u64,
    /// Clicks by people.
    pub human_clicks: u64,
    /// Clicks Mailgun attributed to machines (link scanners).
    pub bot_clicks: u64,
    /// (delivered + complained) / total: a complaint implies the message arrived.
    pub delivery_rate_percent: Option<Percent>,
    /// (bounced + dropped) / total.
    pub bounce_rate_percent: Option<Percent>,
    /// complained / (delivered + complained).
    pub complaint_rate_percent: Option<Percent>,
    /// Delivered messages opened by a person / (delivered + complained).
    pub open_rate_percent: Option<Percent>,
    /// Delivered messages clicked by a person / (delivered + complained).
    pub click_rate_percent: Option<Percent>,
    /// Opened messages among the delivered (the open rate's numerator).
    #[serde(skip)]
    opened_delivered: u64,
    /// Clicked messages among the delivered (the click rate's numerator).
    #[serde(skip)]
    clicked_delivered: u64,
    /// Conversions and their rate (`crate::conversion_figures`).
    #[serde(flatten)]
    pub conversions: ConversionFigures,
}

impl StatsGroup {
    fn add(&mut self, row: &StatsRow) {
        let messages = count(row.messages);
        self.total += messages;
        self.opened += count(row.opened);
        self.clicked += count(row.clicked);
        self.human_opens += count(row.human_opens);
        self.bot_opens += count(row.bot_opens);
        self.human_clicks += count(row.human_clicks);
        self.bot_clicks += count(row.bot_clicks);
        // A status this build does not know still counts in the total.
        if let Ok(status) = row.status.parse::<DeliveryStatus>() {
            if matches!(
                status,
                DeliveryStatus::Delivered | DeliveryStatus::Complained
            ) {
                self.opened_delivered += count(row.opened);
                self.clicked_delivered += count(row.clicked);
            }
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
        let arrived = self.delivered + self.complained;
        self.complaint_rate_percent = Percent::of(self.complained, arrived);
        self.open_rate_percent = Percent::of(self.opened_delivered, arrived);
        self.click_rate_percent = Percent::of(self.clicked_delivered, arrived);
        self.conversions.finish(arrived);
        self
    }
}

/// A count from Postgres' `bigint`, which is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Folds the store's (day, subject, status) rows into groups, keeping the store's order (rows
/// arrive sorted by day, then subject). A whole-scope total always yields one group, zeros
/// included; a per-day series has a group only for days with messages.
pub fn summarize(query: &StatsQuery, rows: &[StatsRow]) -> Vec<StatsGroup> {
    summarize_with_conversions(query, rows, &[])
}

/// [`summarize`], with the conversions of the same scope joined to their (day, subject) groups.
pub fn summarize_with_conversions(
    query: &StatsQuery,
    rows: &[StatsRow],
    conversions: &[ConversionRow],
) -> Vec<StatsGroup> {
    let mut groups: Vec<StatsGroup> = Vec::new();
    let mut index: std::collections::HashMap<(Option<NaiveDate>, Option<&str>), usize> =
        std::collections::HashMap::new();
    for row in rows {
        let key = (row.day, row.subject.as_deref());
        let position = *index.entry(key).or_insert_with(|| {
            groups.push(StatsGroup {
                day: row.day,
                subject: row.subject.clone(),
                ..StatsGroup::default()
            });
            groups.len() - 1
        });
        groups[position].add(row);
    }
    conversion_figures::merge(&mut groups, conversions);
    let by_subject = matches!(query.scope, StatsScope::ProjectBySubject(_));
    if groups.is_empty() && !by_subject && !query.daily {
        groups.push(StatsGroup::default());
    }
    groups.into_iter().map(StatsGroup::finish).collect()
}

/// The statistics of one scope: what `mailtrail stats` shows and the API's stats endpoints
/// answer. Serializes to the documented JSON (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsReport {
    /// The question answered.
    pub query: StatsQuery,
    /// One group for the whole scope, or one per subject in the store's order (none for a
    /// by-subject report of a project without messages).
    pub groups: Vec<StatsGroup>,
}

impl StatsReport {
    /// The report answering `query` from the store's rows for it.
    pub fn from_rows(query: StatsQuery, rows: &[StatsRow]) -> Self {
        Self {
            query,
            groups: summarize(&query, rows),
        }
    }

    /// The report answering `query` from the store's rows and conversion rows for it.
    pub fn from_rows_and_conversions(
        query: StatsQuery,
        rows: &[StatsRow],
        conversions: &[ConversionRow],
    ) -> Self {
        Self {
            query,
            groups: summarize_with_conversions(&query, rows, conversions),
        }
    }
}

impl Serialize for StatsReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, id, by_subject) = match self.query.scope {
            StatsScope::Backer(id) => ("backer", Some(id), false),
            StatsScope::Project(id) => ("project", Some(id), false),
            StatsScope::ProjectBySubject(id) => ("project", Some(id), true),
            StatsScope::All => ("all", None, false),
        };
        let mut document = serializer.serialize_struct("StatsReport", 7)?;
        document.serialize_field("scope", name)?;
        document.serialize_field("id", &id)?;
        document.serialize_field("by_subject", &by_subject)?;
        document.serialize_field("since", &self.query.since)?;
        document.serialize_field("until", &self.query.until)?;
        document.serialize_field("daily", &self.query.daily)?;
        document.serialize_field("groups", &self.groups)?;
        document.end()
    }
}

/// Answers `query` from the counters (a backer from its messages) and folds it into its report.
pub async fn stats_report(
    connection: &mut StoreConnection,
    query: &StatsQuery,
) -> Result<StatsReport, StoreError> {
    let rows = status_counts(connection, query, Source::Counters).await?;
    let conversions = conversion_counts(connection, query, Source::Counters).await?;
    Ok(StatsReport::from_rows_and_conversions(
        *query,
        &rows,
        &conversions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: Option<&str>, status: &str, messages: i64) -> StatsRow {
        StatsRow {
            day: None,
            subject: subject.map(str::to_owned),
            status: status.to_owned(),
            messages,
            opened: messages / 2,
            clicked: messages / 4,
            human_opens: messages,
            bot_opens: 1,
            human_clicks: messages / 4,
            bot_clicks: 0,
        }
    }

    fn query(scope: StatsScope) -> StatsQuery {
        StatsQuery::new(scope)
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
        let groups = summarize(&query(StatsScope::ProjectBySubject(7)), &rows);
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
        let groups = summarize(&query(StatsScope::Backer(1)), &[]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].total, 0);
        assert_eq!(groups[0].delivery_rate_percent, None);
        assert!(summarize(&query(StatsScope::ProjectBySubject(1)), &[]).is_empty());
    }

    #[test]
    fn a_status_this_build_does_not_know_counts_only_in_the_total() {
        let groups = summarize(
            &query(StatsScope::All),
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
            StatsQuery::new(StatsScope::ProjectBySubject(7)),
            &[
                row(Some("Hello"), "delivered", 2),
                row(Some("Hello"), "dropped", 1),
            ],
        );
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"scope":"project","id":7,"by_subject":true,"since":null,"until":null,"#,
                r#""daily":false,"groups":[{"subject":"Hello","#,
                r#""total":3,"accepted":0,"deferred":0,"delivered":2,"bounced":0,"dropped":1,"#,
                r#""complained":0,"opened":1,"clicked":0,"human_opens":3,"bot_opens":2,"#,
                r#""human_clicks":0,"bot_clicks":0,"delivery_rate_percent":66.7,"#,
                r#""bounce_rate_percent":33.3,"complaint_rate_percent":0.0,"#,
                r#""open_rate_percent":50.0,"click_rate_percent":0.0,"#,
                r#""conversions_by_click":0,"conversions_by_open":0,"#,
                r#""conversions_unattributed":0,"conversion_value_cents":0,"#,
                r#""conversion_rate_percent":0.0}]}"#
            )
        );
        let all =
            serde_json::to_value(StatsReport::from_rows(query(StatsScope::All), &[])).unwrap();
        assert_eq!(all["scope"], "all");
        assert_eq!(all["id"], serde_json::Value::Null);
        assert_eq!(
            all["groups"][0]["delivery_rate_percent"],
            serde_json::Value::Null
        );
        let backer =
            serde_json::to_value(StatsReport::from_rows(query(StatsScope::Backer(4)), &[]))
                .unwrap();
        assert_eq!(
            (&backer["scope"], &backer["id"]),
            (&"backer".into(), &4.into())
        );
    }

    #[test]
    fn a_daily_series_has_one_group_per_day_and_names_its_range() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d);
        let on = |d: u32, status: &str, messages: i64| StatsRow {
            day: day(d),
            ..row(None, status, messages)
        };
        let query = StatsQuery::new(StatsScope::Project(7))
            .between(day(1), day(30))
            .per_day();
        let report = StatsReport::from_rows(
            query,
            &[
                on(1, "delivered", 3),
                on(1, "bounced", 1),
                on(2, "delivered", 2),
            ],
        );
        let days: Vec<_> = report.groups.iter().map(|group| group.day).collect();
        assert_eq!(days, [day(1), day(2)]);
        assert_eq!(report.groups[0].total, 4);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["since"], "2026-11-01");
        assert_eq!(json["until"], "2026-11-30");
        assert_eq!(json["daily"], true);
        assert_eq!(json["groups"][1]["day"], "2026-11-02");
        assert!(summarize(&query, &[]).is_empty());
    }

    #[test]
    fn rates_use_people_and_the_delivered_messages() {
        let mut delivered = row(None, "delivered", 8);
        delivered.opened = 4;
        delivered.clicked = 2;
        let mut bounced = row(None, "bounced", 2);
        // Engagement on a bounced message is shown but is no part of the open rate.
        bounced.opened = 2;
        let groups = summarize(
            &query(StatsScope::All),
            &[delivered, bounced, row(None, "complained", 2)],
        );
        let group = &groups[0];
        assert_eq!(group.opened, 7);
        assert_eq!(group.open_rate_percent.unwrap().to_string(), "50.0%");
        assert_eq!(group.click_rate_percent.unwrap().to_string(), "20.0%");
        assert_eq!(group.complaint_rate_percent.unwrap().to_string(), "20.0%");
        assert_eq!(group.bounce_rate_percent.unwrap().to_string(), "16.7%");
    }
}
