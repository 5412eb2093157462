//! Reading what `/metrics` answers (the Prometheus text format) in an assertion.

/// The value of the sample line that starts with `sample` (name and labels, e.g.
/// `mailtrail_worker_events_total{outcome="stored"}`) in a `/metrics` text; 0 when there is none,
/// as Prometheus treats a counter that was never incremented.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}
