//! What a run did, and the one line it prints about it.

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The range read, in microseconds since the epoch.
    pub since_micros: i64,
    /// Its end.
    pub until_micros: i64,
    /// Trusted pages queued (the empty last page is not counted).
    pub pages: u64,
    /// Events queued.
    pub events_queued: u64,
    /// Pages discarded because they were too young to trust, and asked again.
    pub untrusted_pages: u64,
    /// Requests asked again after a 429 or a transient failure.
    pub retried_requests: u64,
    /// The checkpoint after the run, if the domain has one.
    pub checkpoint_micros: Option<i64>,
    /// Of the events queued, how many were in Postgres already when they were queued (came by
    /// webhook), or why that was not measured.
    pub already_stored: Result<u64, &'static str>,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            since_micros: 0,
            until_micros: 0,
            pages: 0,
            events_queued: 0,
            untrusted_pages: 0,
            retried_requests: 0,
            checkpoint_micros: None,
            already_stored: Ok(0),
        }
    }
}

/// A UTC time to the second, from microseconds.
fn format_micros(micros: i64) -> String {
    crate::clock::format_ms(micros.div_euclid(1000))
}

/// The line a run prints: what was read, what was queued, where the checkpoint is.
pub fn summary_line(domain: &str, summary: &Summary) -> String {
    let range = format!(
        "{} to {}",
        format_micros(summary.since_micros),
        format_micros(summary.until_micros)
    );
    let checkpoint = summary
        .checkpoint_micros
        .map_or_else(|| "none".to_owned(), format_micros);
    if summary.since_micros >= summary.until_micros {
        return format!(
            "reconcile {domain}: nothing to read from {range}; checkpoint {checkpoint}"
        );
    }
    let stored = match summary.already_stored {
        Ok(count) => format!("{count} of them stored already"),
        Err(why) => format!("stored already: not counted ({why})"),
    };
    format!(
        "reconcile {domain}: {range}: {} pages, {} events queued ({stored}), {} untrusted pages \
         asked again, {} requests retried; checkpoint {checkpoint}",
        summary.pages, summary.events_queued, summary.untrusted_pages, summary.retried_requests
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_was_read_and_queued() {
        let summary = Summary {
            since_micros: 1_700_000_000_000_000,
            until_micros: 1_700_003_600_000_000,
            pages: 3,
            events_queued: 700,
            untrusted_pages: 1,
            retried_requests: 2,
            checkpoint_micros: Some(1_700_003_600_000_000),
            already_stored: Ok(650),
        };
        assert_eq!(
            summary_line("mg.example.com", &summary),
            "reconcile mg.example.com: 2023-11-14 22:13:20Z to 2023-11-14 23:13:20Z: 3 pages, \
             700 events queued (650 of them stored already), 1 untrusted pages asked again, 2 \
             requests retried; checkpoint 2023-11-14 23:13:20Z"
        );
        let unmeasured = Summary {
            already_stored: Err("no DATABASE_URL"),
            ..summary
        };
        assert!(
            summary_line("d", &unmeasured)
                .contains("700 events queued (stored already: not counted (no DATABASE_URL))")
        );
    }
}
