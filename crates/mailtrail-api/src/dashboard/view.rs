//! What the pages show, shaped from the store's report: the range, rate cards, the status mix,
//! the funnel, the daily series and the sortable by-subject table. No figure is computed here
//! that the report does not already hold; this module only chooses and orders.

use chrono::{Duration, NaiveDate, Utc};
use mailtrail_store::report::{Percent, StatsGroup};

use super::error::PageError;
use super::svg::{DayPoint, FunnelStep};
use crate::params;

/// Days shown when the viewer does not choose: the last 30, today included.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest range a page draws (one point per day).
pub const MAX_DAYS: i64 = 366;

/// The days a page covers (inclusive, UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRange {
    /// First day.
    pub since: NaiveDate,
    /// Last day.
    pub until: NaiveDate,
}

impl DayRange {
    /// The range asked for: `until` defaults to today (UTC), `since` to [`DEFAULT_DAYS`] before.
    pub fn chosen(since: Option<&str>, until: Option<&str>) -> Result<Self, PageError> {
        Self::chosen_on(since, until, Utc::now().date_naive())
    }

    fn chosen_on(
        since: Option<&str>,
        until: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, PageError> {
        let (since, until) = params::range(chosen(since), chosen(until))?;
        let until = until.unwrap_or(today);
        let since = since.unwrap_or(until - Duration::days(DEFAULT_DAYS - 1));
        if since > until {
            return Err(PageError::BadParameter(format!(
                "since: {since} is after until ({until})"
            )));
        }
        if (until - since).num_days() >= MAX_DAYS {
            return Err(PageError::BadParameter(format!(
                "since: a page shows at most {MAX_DAYS} days, one point each; choose a shorter range"
            )));
        }
        Ok(Self { since, until })
    }

    /// Every day of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let since = self.since;
        let count = (self.until - self.since).num_days() + 1;
        (0..count).map(move |offset| since + Duration::days(offset))
    }

    /// The range as query parameters, for links that keep it.
    pub fn query(&self) -> String {
        format!("since={}&until={}", self.since, self.until)
    }
}

/// A form field left empty means "not chosen".
fn chosen(value: Option<&str>) -> Option<&str> {
    value.filter(|text| !text.trim().is_empty())
}

/// A rate as people read it: "12.5%", or "–" when there is nothing to divide.
pub fn percent(rate: Option<Percent>) -> String {
    rate.map_or_else(|| "–".to_owned(), |rate| rate.to_string())
}

/// One rate card.
#[derive(Clone, Debug)]
pub struct RateCard {
    /// Stable name (a CSS hook and a test handle).
    pub key: &'static str,
    /// The rate's name.
    pub label: &'static str,
    /// The rate.
    pub value: String,
    /// What it is made of.
    pub detail: String,
}

/// The rate cards of a group, with the raw figures (machines' included) under each.
pub fn rate_cards(group: &StatsGroup) -> Vec<RateCard> {
    let arrived = group.delivered + group.complained;
    vec![
        RateCard {
            key: "delivery",
            label: "Delivery rate",
            value: percent(group.delivery_rate_percent),
            detail: format!("{arrived} of {} messages", group.total),
        },
        RateCard {
            key: "bounce",
            label: "Bounce rate",
            value: percent(group.bounce_rate_percent),
            detail: format!("{} bounced, {} dropped", group.bounced, group.dropped),
        },
        RateCard {
            key: "complaint",
            label: "Complaint rate",
            value: percent(group.complaint_rate_percent),
            detail: format!("{} of {arrived} delivered", group.complained),
        },
        RateCard {
            key: "open",
            label: "Open rate (people)",
            value: percent(group.open_rate_percent),
            detail: format!(
                "{} opens by people, {} by machines",
                group.human_opens, group.bot_opens
            ),
        },
        RateCard {
            key: "click",
            label: "Click rate (people)",
            value: percent(group.click_rate_percent),
            detail: format!(
                "{} clicks by people, {} by machines",
                group.human_clicks, group.bot_clicks
            ),
        },
    ]
}

/// One status of the mix.
#[derive(Clone, Debug)]
pub struct StatusShare {
    /// The status.
    pub status: &'static str,
    /// Messages in it.
    pub count: u64,
    /// Its share of the total.
    pub share: String,
}

/// Every status with its count and share, in precedence order.
pub fn status_mix(group: &StatsGroup) -> Vec<StatusShare> {
    [
        ("accepted", group.accepted),
        ("deferred", group.deferred),
        ("delivered", group.delivered),
        ("bounced", group.bounced),
        ("dropped", group.dropped),
        ("complained", group.complained),
    ]
    .into_iter()
    .map(|(status, count)| StatusShare {
        status,
        count,
        share: percent(Percent::of(count, group.total)),
    })
    .collect()
}

/// The funnel of a group: sent -> delivered -> opened -> clicked, people only. A later step
/// (converted) is one more item here.
pub fn funnel_steps(group: &StatsGroup) -> Vec<FunnelStep> {
    vec![
        FunnelStep {
            label: "sent",
            count: group.total,
        },
        FunnelStep {
            label: "delivered",
            count: group.delivered + group.complained,
        },
        FunnelStep {
            label: "opened",
            count: group.opened,
        },
        FunnelStep {
            label: "clicked",
            count: group.clicked,
        },
    ]
}

/// One point per day of `range` from a per-day report's groups (days without messages are 0).
pub fn daily_points(range: &DayRange, groups: &[StatsGroup]) -> Vec<DayPoint> {
    let by_day: std::collections::HashMap<NaiveDate, &StatsGroup> = groups
        .iter()
        .filter_map(|group| group.day.map(|day| (day, group)))
        .collect();
    range
        .days()
        .map(|day| match by_day.get(&day) {
            Some(group) => DayPoint {
                day,
                sent: group.total,
                delivered: group.delivered + group.complained,
                bounced: group.bounced + group.dropped,
                human_opens: group.human_opens,
            },
            None => DayPoint {
                day,
                ..DayPoint::default()
            },
        })
        .collect()
}

/// A column the by-subject table sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectColumn {
    /// The subject, alphabetically.
    Subject,
    /// Messages.
    Total,
    /// Delivery rate.
    Delivery,
    /// Bounce rate.
    Bounce,
    /// Complaint rate.
    Complaint,
    /// Human open rate.
    Open,
    /// Human click rate.
    Click,
}

impl SubjectColumn {
    /// Every column, in table order.
    pub const ALL: [Self; 7] = [
        Self::Subject,
        Self::Total,
        Self::Delivery,
        Self::Bounce,
        Self::Complaint,
        Self::Open,
        Self::Click,
    ];

    /// The column's name in links.
    pub fn key(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Total => "total",
            Self::Delivery => "delivery",
            Self::Bounce => "bounce",
            Self::Complaint => "complaint",
            Self::Open => "open",
            Self::Click => "click",
        }
    }

    /// The column's heading.
    pub fn heading(self) -> &'static str {
        match self {
            Self::Subject => "Subject",
            Self::Total => "Messages",
            Self::Delivery => "Delivery rate",
            Self::Bounce => "Bounce rate",
            Self::Complaint => "Complaint rate",
            Self::Open => "Open rate",
            Self::Click => "Click rate",
        }
    }

    /// The column named `key`; messages when unknown.
    pub fn parse(key: Option<&str>) -> Self {
        Self::ALL
            .into_iter()
            .find(|column| Some(column.key()) == key)
            .unwrap_or(Self::Total)
    }

    fn rate(self, group: &StatsGroup) -> Option<Percent> {
        match self {
            Self::Delivery => group.delivery_rate_percent,
            Self::Bounce => group.bounce_rate_percent,
            Self::Complaint => group.complaint_rate_percent,
            Self::Open => group.open_rate_percent,
            Self::Click => group.click_rate_percent,
            Self::Subject | Self::Total => None,
        }
    }
}

/// How the by-subject table is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubjectSort {
    /// The column.
    pub column: SubjectColumn,
    /// Largest (or last, for subjects) first.
    pub descending: bool,
}

impl SubjectSort {
    /// From the `sort` and `dir` parameters; by messages, largest first, by default.
    pub fn parse(sort: Option<&str>, dir: Option<&str>) -> Self {
        let column = SubjectColumn::parse(sort);
        let descending = match dir {
            Some("asc") => false,
            Some("desc") => true,
            _ => column != SubjectColumn::Subject,
        };
        Self { column, descending }
    }

    /// Sorts the groups; ties keep the store's order (by subject).
    pub fn apply(&self, groups: &mut [StatsGroup]) {
        let column = self.column;
        groups.sort_by(|a, b| {
            let order = match column {
                SubjectColumn::Subject => a.subject.cmp(&b.subject),
                SubjectColumn::Total => a.total.cmp(&b.total),
                _ => {
                    let value = |group: &StatsGroup| column.rate(group).map(Percent::as_f64);
                    value(a)
                        .partial_cmp(&value(b))
                        .unwrap_or(std::cmp::Ordering::Equal)
                }
            };
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
    }

    /// The link's direction for `column`'s heading: flips the current column, else its default.
    pub fn next_dir(&self, column: SubjectColumn) -> &'static str {
        let descending = if column == self.column {
            !self.descending
        } else {
            column != SubjectColumn::Subject
        };
        if descending { "desc" } else { "asc" }
    }

    /// The marker shown beside the sorted column's heading.
    pub fn marker(&self, column: SubjectColumn) -> &'static str {
        match (column == self.column, self.descending) {
            (false, _) => "",
            (true, true) => " ▼",
            (true, false) => " ▲",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_range_defaults_to_the_last_thirty_days_and_is_bounded() {
        let today = day("2026-12-05");
        let range = DayRange::chosen_on(None, None, today).unwrap();
        assert_eq!((range.since, range.until), (day("2026-11-06"), today));
        assert_eq!(range.days().count(), 30);
        let chosen = DayRange::chosen_on(Some("2025-11-18"), Some("2025-11-24"), today).unwrap();
        assert_eq!(chosen.days().count(), 7);
        assert_eq!(chosen.query(), "since=2025-11-18&until=2025-11-24");
        // Empty form fields mean "not chosen".
        assert_eq!(
            DayRange::chosen_on(Some(""), Some(""), today).unwrap(),
            range
        );
        assert!(DayRange::chosen_on(Some("2026-12-06"), None, today).is_err());
        assert!(DayRange::chosen_on(Some("2024-01-01"), Some("2026-01-01"), today).is_err());
        assert!(DayRange::chosen_on(Some("yesterday"), None, today).is_err());
    }

    #[test]
    fn every_day_of_the_range_gets_a_point_and_missing_days_are_zero() {
        let range =
            DayRange::chosen_on(Some("2025-11-19"), Some("2025-11-21"), day("2026-01-01")).unwrap();
        let mut group = StatsGroup::default();
        (group.day, group.total, group.delivered) = (Some(day("2025-11-20")), 2, 1);
        (group.bounced, group.human_opens) = (1, 3);
        let groups = [group];
        let points = daily_points(&range, &groups);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].sent, 0);
        assert_eq!(
            (
                points[1].sent,
                points[1].delivered,
                points[1].bounced,
                points[1].human_opens
            ),
            (2, 1, 1, 3)
        );
    }

    #[test]
    fn the_subject_table_sorts_by_any_column_both_ways() {
        let group = |subject: &str, total: u64, bounced: u64| {
            let mut group = StatsGroup::default();
            (group.subject, group.total) = (Some(subject.to_owned()), total);
            (group.bounced, group.delivered) = (bounced, total - bounced);
            group.bounce_rate_percent = Percent::of(bounced, total);
            group
        };
        let mut groups = vec![group("B", 10, 1), group("A", 4, 2), group("C", 20, 0)];
        let subjects = |groups: &[StatsGroup]| -> Vec<String> {
            groups.iter().filter_map(|g| g.subject.clone()).collect()
        };
        SubjectSort::parse(None, None).apply(&mut groups);
        assert_eq!(subjects(&groups), ["C", "B", "A"]);
        SubjectSort::parse(Some("bounce"), None).apply(&mut groups);
        assert_eq!(subjects(&groups), ["A", "B", "C"]);
        SubjectSort::parse(Some("subject"), None).apply(&mut groups);
        assert_eq!(subjects(&groups), ["A", "B", "C"]);
        let sort = SubjectSort::parse(Some("subject"), Some("desc"));
        sort.apply(&mut groups);
        assert_eq!(subjects(&groups), ["C", "B", "A"]);
        assert_eq!(sort.next_dir(SubjectColumn::Subject), "asc");
        assert_eq!(sort.next_dir(SubjectColumn::Bounce), "desc");
        assert_eq!(sort.marker(SubjectColumn::Subject), " ▼");
        assert_eq!(SubjectColumn::parse(Some("nonsense")), SubjectColumn::Total);
    }

    #[test]
    fn the_funnel_counts_people_and_arrivals() {
        let mut group = StatsGroup::default();
        (group.total, group.delivered, group.complained) = (4, 2, 1);
        (group.bounced, group.opened, group.clicked) = (1, 1, 1);
        let counts: Vec<(&str, u64)> = funnel_steps(&group)
            .iter()
            .map(|step| (step.label, step.count))
            .collect();
        assert_eq!(
            counts,
            [("sent", 4), ("delivered", 3), ("opened", 1), ("clicked", 1)]
        );
        let mix = status_mix(&group);
        assert_eq!(mix[2].status, "delivered");
        assert_eq!(mix[2].share, "50.0%");
        assert_eq!(rate_cards(&StatsGroup::default())[0].value, "–");
    }
}
