//! `mailtrail stats`: delivery status counts and rates for a backer, a project (optionally by
//! subject), or the whole system, over a range of days or per day, as a table or as JSON.
//!
//! The figures come whole from [`mailtrail_store::report`], the implementation the read API
//! serves too; this module only parses the arguments and lays the report out as a table, or
//! prints its JSON document.

use std::io::Write;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{ArgGroup, Args};
use mailtrail_store::report::{Percent, StatsReport};
use mailtrail_store::{StatsQuery, StatsScope};

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
    /// Only messages whose first event fell on or after this day (UTC, YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Only messages whose first event fell on or before this day (UTC, YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,
    /// One row per day (and subject, with --by-subject).
    #[arg(long)]
    pub daily: bool,
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

    /// The question the arguments ask; a range that ends before it starts is refused.
    pub fn query(&self) -> anyhow::Result<StatsQuery> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            anyhow::ensure!(
                since <= until,
                "--since {since} is after --until {until}: the range holds no day"
            );
        }
        let query = StatsQuery::new(self.scope()).between(self.since, self.until);
        Ok(if self.daily { query.per_day() } else { query })
    }
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
pub fn render_table(report: &StatsReport) -> String {
    let scope = report.query.scope;
    let daily = report.query.daily;
    let groups = &report.groups;
    let by_subject = matches!(scope, StatsScope::ProjectBySubject(_));
    let first = if by_subject { "subject" } else { "scope" };
    let mut columns = vec![(first, Align::Left)];
    if daily {
        columns.push(("day", Align::Left));
    }
    columns.extend([
        ("total", Align::Right),
        ("accepted", Align::Right),
        ("deferred", Align::Right),
        ("delivered", Align::Right),
        ("bounced", Align::Right),
        ("dropped", Align::Right),
        ("complained", Align::Right),
        ("opened", Align::Right),
        ("clicked", Align::Right),
        ("bot opens", Align::Right),
        ("bot clicks", Align::Right),
        ("delivery rate", Align::Right),
        ("bounce rate", Align::Right),
        ("complaint rate", Align::Right),
        ("open rate", Align::Right),
        ("click rate", Align::Right),
        ("converted", Align::Right),
        ("unattributed", Align::Right),
        ("conversion rate", Align::Right),
    ]);
    let mut table = Table::new(&columns);
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
        let mut cells = vec![label];
        if daily {
            cells.push(group.day.map_or_else(String::new, |day| day.to_string()));
        }
        cells.extend([
            group.total.to_string(),
            group.accepted.to_string(),
            group.deferred.to_string(),
            group.delivered.to_string(),
            group.bounced.to_string(),
            group.dropped.to_string(),
            group.complained.to_string(),
            group.opened.to_string(),
            group.clicked.to_string(),
            group.bot_opens.to_string(),
            group.bot_clicks.to_string(),
            rate(group.delivery_rate_percent),
            rate(group.bounce_rate_percent),
            rate(group.complaint_rate_percent),
            rate(group.open_rate_percent),
            rate(group.click_rate_percent),
            group.conversions.attributed().to_string(),
            group.conversions.conversions_unattributed.to_string(),
            rate(group.conversions.conversion_rate_percent),
        ]);
        table.row(cells);
    }
    let mut out = table.render();
    if groups.is_empty() {
        out.push_str(&format!("(no messages for {})\n", scope_label(scope)));
    }
    out
}

/// The JSON rendering of the report's document, pretty-printed.
pub fn render_json(report: &StatsReport) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// Runs `mailtrail stats`.
pub async fn run(config: &CliConfig, args: &StatsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let query = args.query()?;
    let mut connection = crate::connect_store(config, "stats").await?;
    let report = mailtrail_store::stats_report(&mut connection, &query)
        .await
        .context("cannot read the status counts")?;
    let text = if args.json {
        render_json(&report)?
    } else {
        render_table(&report)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_scope_still_shows_one_row_of_zeros_and_an_empty_subject_list_says_so() {
        let report = StatsReport::from_rows(StatsQuery::new(StatsScope::Backer(1)), &[]);
        let table = render_table(&report);
        assert!(table.contains("backer 1"), "{table}");
        assert!(!table.contains("no messages"), "{table}");
        let by_subject = render_table(&StatsReport::from_rows(
            StatsQuery::new(StatsScope::ProjectBySubject(3)),
            &[],
        ));
        assert!(
            by_subject.contains("(no messages for project 3)"),
            "{by_subject}"
        );
    }
}
