//! Reading what `/metrics` answers (the Prometheus text format) in an assertion.

/// The text a `/metrics` URL answers.
pub async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|error| panic!("cannot scrape {url}: {error}"))
        .text()
        .await
        .unwrap_or_else(|error| panic!("cannot read what {url} answered: {error}"))
}

/// The value of the sample line that starts with `sample` (name and labels, e.g.
/// `mailtrail_worker_events_total{outcome="stored"}`) in a `/metrics` text; 0 when there is none,
/// as Prometheus treats a counter that was never incremented.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}
