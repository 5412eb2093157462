//! The by-subject table of a project page: which column it is sorted by, in which direction,
//! and the links of its headings (plain links, no script: each heading asks the server for the
//! page sorted by its column).

use mailtrail_store::report::{Percent, StatsGroup};

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
}
