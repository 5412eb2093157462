//! What the pages show, shaped from the store's report: the range, rate cards (conversions'
//! included), the status mix, the funnel and the daily series (the by-subject table is `subject_table`). No figure is
//! computed here that the report does not already hold; this module only chooses and orders.

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
        conversion_card(group),
    ]
}

/// Attributed conversions over delivered messages, with what credited them and their value.
fn conversion_card(group: &StatsGroup) -> RateCard {
    let figures = &group.conversions;
    RateCard {
        key: "conversion",
        label: "Conversion rate",
        value: percent(figures.conversion_rate_percent),
        detail: format!(
            "{} by click, {} by open, {} unattributed; value {}",
            figures.conversions_by_click,
            figures.conversions_by_open,
            figures.conversions_unattributed,
            amount(figures.conversion_value_cents)
        ),
    }
}

/// An amount in cents as "1234.50": the application reports cents of one currency, which
/// mailtrail does not know, so no symbol.
fn amount(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
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

/// The funnel of a group: sent -> delivered -> opened -> clicked, people only, -> converted.
/// The first four count messages; converted counts the conversions credited to an email of the
/// group (by a person's click or open), so one clicked message may lead to several, and
/// unattributed conversions, which no email led to, are not a step of it.
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
        FunnelStep {
            label: "converted",
            count: group.conversions.attributed(),
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
    fn the_funnel_counts_people_and_arrivals_then_attributed_conversions() {
        let mut group = StatsGroup::default();
        (group.total, group.delivered, group.complained) = (4, 2, 1);
        (group.bounced, group.opened, group.clicked) = (1, 1, 1);
        // Two conversions after the click, one after an open alone, one credited to no email.
        let conversions = &mut group.conversions;
        (
            conversions.conversions_by_click,
            conversions.conversions_by_open,
        ) = (2, 1);
        conversions.conversions_unattributed = 1;
        let counts: Vec<(&str, u64)> = funnel_steps(&group)
            .iter()
            .map(|step| (step.label, step.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("sent", 4),
                ("delivered", 3),
                ("opened", 1),
                ("clicked", 1),
                ("converted", 3)
            ]
        );
        let mix = status_mix(&group);
        assert_eq!(mix[2].status, "delivered");
        assert_eq!(mix[2].share, "50.0%");
        assert_eq!(rate_cards(&StatsGroup::default())[0].value, "–");
    }

    #[test]
    fn the_conversion_card_shows_the_rate_what_credited_them_and_their_value() {
        let mut group = StatsGroup::default();
        let conversions = &mut group.conversions;
        (
            conversions.conversions_by_click,
            conversions.conversions_by_open,
        ) = (2, 0);
        (
            conversions.conversions_unattributed,
            conversions.conversion_value_cents,
        ) = (1, 7_505);
        conversions.conversion_rate_percent = Percent::of(2, 3);
        let card = rate_cards(&group).pop().unwrap();
        assert_eq!((card.key, card.value.as_str()), ("conversion", "66.7%"));
        assert_eq!(
            card.detail,
            "2 by click, 0 by open, 1 unattributed; value 75.05"
        );
        assert_eq!(rate_cards(&StatsGroup::default()).pop().unwrap().value, "–");
    }
}
