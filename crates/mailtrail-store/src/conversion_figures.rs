//! The conversion figures of a report group, and how conversion rows join the groups of
//! [`crate::report`]: one implementation for the CLI, the API and the dashboard.
//!
//! | figure | meaning |
//! |---|---|
//! | `conversions_by_click` | conversions credited to a person's click of an email of the group |
//! | `conversions_by_open` | credited to a person's open (no click in the window) |
//! | `conversions_unattributed` | credited to no email (only in groups without a subject) |
//! | `conversion_value_cents` | the value of all the group's conversions |
//! | `conversion_rate_percent` | (by click + by open) / (delivered + complained) |

use chrono::NaiveDate;
use serde::Serialize;

use crate::conversion_stats::ConversionRow;
use crate::report::{Percent, StatsGroup};

/// What a group's conversions come to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConversionFigures {
    /// Conversions credited to a person's click.
    pub conversions_by_click: u64,
    /// Conversions credited to a person's open.
    pub conversions_by_open: u64,
    /// Conversions credited to no email.
    pub conversions_unattributed: u64,
    /// The value of all of them, in cents.
    pub conversion_value_cents: u64,
    /// Attributed conversions per delivered (or complained) message.
    pub conversion_rate_percent: Option<Percent>,
}

impl ConversionFigures {
    fn add(&mut self, row: &ConversionRow) {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        self.conversions_by_click += count(row.by_click);
        self.conversions_by_open += count(row.by_open);
        self.conversions_unattributed += count(row.unattributed);
        self.conversion_value_cents += count(row.value_cents);
    }

    /// Attributed conversions, whatever credited them.
    pub fn attributed(&self) -> u64 {
        self.conversions_by_click + self.conversions_by_open
    }

    /// Sets the rate once the group's delivered messages are known.
    pub(crate) fn finish(&mut self, arrived: u64) {
        self.conversion_rate_percent = Percent::of(self.attributed(), arrived);
    }
}

/// Adds conversion rows to the groups of the same (day, subject), making a group for one that
/// has conversions but no messages, and keeps the groups in (day, subject) order.
pub(crate) fn merge(groups: &mut Vec<StatsGroup>, rows: &[ConversionRow]) {
    if rows.is_empty() {
        return;
    }
    let mut added = false;
    for row in rows {
        let key = (row.day, row.subject.as_deref());
        let position = groups
            .iter()
            .position(|group| (group.day, group.subject.as_deref()) == key);
        match position {
            Some(position) => groups[position].conversions.add(row),
            None => {
                let mut group = StatsGroup::default();
                group.day = row.day;
                group.subject = row.subject.clone();
                group.conversions.add(row);
                groups.push(group);
                added = true;
            }
        }
    }
    if added {
        // A whole-scope group made of zeros is one group with its new conversions.
        groups.sort_by(|a, b| order(a).cmp(&order(b)));
    }
}

fn order(group: &StatsGroup) -> (Option<NaiveDate>, Option<&str>) {
    (group.day, group.subject.as_deref())
}
