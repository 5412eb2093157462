//! `mailtrail stats`: delivery status counts and rates for a backer, a project (optionally by
//! subject), or the whole system, as a table or as JSON.
//!
//! The store answers one row per (subject, status); this module folds them into one group per
//! subject (or one for the whole scope) with a column per status. Rates are computed once, in
//! tenths of a percent with integer arithmetic, so the table and the JSON show the same number.

use std::io::Write;

use anyhow::Context;
use clap::{ArgGroup, Args};
use mailtrail_core::DeliveryStatus;
use mailtrail_store::{StatsRow, StatsScope};
use serde::{Serialize, Serializer};

use crate::CliConfig;
use crate::table::{Align, Table, truncate};

/// Longest subject shown in the table (the JSON carries it whole).
const SUBJECT_WIDTH: usize = 48;

/// Arguments of `mailtrail stats`.
#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("scope").required(true).args(["backer", "project", "all"])))]
pub struct StatsArgs {
    /// Messages sent to this backer.
    #[arg(long, value_name = "ID")]
    pub backer: Option<i64>,
    /// Messages of this project.
    #[arg(long, value_name = "ID")]
    pub project: Option<i64>,
    /// With --project: one row per subject.
    // `requires` alone is not enforced while the `scope` group is satisfied by another member,
    // so the other scopes are named as conflicts too.
    #[arg(long, requires = "project", conflicts_with_all = ["backer", "all"])]
    pub by_subject: bool,
    /// Every message.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl StatsArgs {
    /// The scope the arguments name (clap guarantees exactly one).
    pub fn scope(&self) -> StatsScope {
        match (self.backer, self.project) {
            (Some(backer), _) => StatsScope::Backer(backer),
            (None, Some(project)) if self.by_subject => StatsScope::ProjectBySubject(project),
            (None, Some(project)) => StatsScope::Project(project),
            (None, None) => StatsScope::All,
        }
    }
}

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

/// How the scope is named in the table's first column.
fn scope_label(scope: StatsScope) -> String {
    match scope {
        StatsScope::Backer(id) => format!("backer {id}"),
        StatsScope::Project(id) | StatsScope::ProjectBySubject(id) => format!("project {id}"),
        StatsScope::All => "all".to_owned(),
    }
}

/// The readable table.
pub fn render_table(scope: StatsScope, groups: &[StatsGroup]) -> String {
    let by_subject = matches!(scope, StatsScope::ProjectBySubject(_));
    let first = if by_subject { "subject" } else { "scope" };
    let mut table = Table::new(&[
        (first, Align::Left),
        ("total", Align::Right),
        ("accepted", Align::Right),
        ("deferred", Align::Right),
        ("delivered", Align::Right),
        ("bounced", Align::Right),
        ("dropped", Align::Right),
        ("complained", Align::Right),
        ("opened", Align::Right),
        ("clicked", Align::Right),
        ("delivery rate", Align::Right),
        ("bounce rate", Align::Right),
    ]);
    let rate = |percent: Option<Percent>| percent.map_or_else(|| "-".to_owned(), |p| p.to_string());
    for group in groups {
        let label = if by_subject {
            group
                .subject
                .as_deref()
                .map_or_else(|| "(no subject)".to_owned(), |s| truncate(s, SUBJECT_WIDTH))
        } else {
            scope_label(scope)
        };
        table.row([
            label,
            group.total.to_string(),
            group.accepted.to_string(),
            group.deferred.to_string(),
            group.delivered.to_string(),
            group.bounced.to_string(),
            group.dropped.to_string(),
            group.complained.to_string(),
            group.opened.to_string(),
            group.clicked.to_string(),
            rate(group.delivery_rate_percent),
            rate(group.bounce_rate_percent),
        ]);
    }
    let mut out = table.render();
    if groups.is_empty() {
        out.push_str(&format!("(no messages for {})\n", scope_label(scope)));
    }
    out
}

/// The JSON document: the scope and the same groups as the table.
#[derive(Serialize)]
struct StatsDocument<'a> {
    scope: &'static str,
    id: Option<i64>,
    by_subject: bool,
    groups: &'a [StatsGroup],
}

/// The JSON rendering, pretty-printed.
pub fn render_json(scope: StatsScope, groups: &[StatsGroup]) -> serde_json::Result<String> {
    let (name, id, by_subject) = match scope {
        StatsScope::Backer(id) => ("backer", Some(id), false),
        StatsScope::Project(id) => ("project", Some(id), false),
        StatsScope::ProjectBySubject(id) => ("project", Some(id), true),
        StatsScope::All => ("all", None, false),
    };
    let mut text = serde_json::to_string_pretty(&StatsDocument {
        scope: name,
        id,
        by_subject,
        groups,
    })?;
    text.push('\n');
    Ok(text)
}

/// Runs `mailtrail stats`.
pub async fn run(config: &CliConfig, args: &StatsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let scope = args.scope();
    let mut connection = crate::connect_store(config, "stats").await?;
    let rows = mailtrail_store::status_counts(&mut connection, scope)
        .await
        .context("cannot read the status counts")?;
    let groups = summarize(scope, &rows);
    let text = if args.json {
        render_json(scope, &groups)?
    } else {
        render_table(scope, &groups)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
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
        let table = render_table(StatsScope::Backer(1), &groups);
        assert!(table.contains("backer 1"), "{table}");
        assert!(summarize(StatsScope::ProjectBySubject(1), &[]).is_empty());
    }
}
