//! mailtrail-telemetry: what every mailtrail binary needs to be observed.
//!
//! - [`init_logging`] sets up `tracing` once: a compact human format by default, one JSON object
//!   per line with `MAILTRAIL_LOG_FORMAT=json`, filtered by `RUST_LOG` (default `info`).
//! - [`encode_metrics`] renders a Prometheus registry in the text exposition format served at
//!   `/metrics`.
//!
//! Logging rules kept across the codebase: readable messages, dotted fields with units in their
//! names (`batch.size`, `duration_ms`), and never a payload, token, key or email address above
//! debug level.

use prometheus_client::registry::Registry;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One compact line per event, for people.
    #[default]
    Compact,
    /// One JSON object per line, for machines.
    Json,
}

/// The logging variables every binary reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogEnv {
    /// `MAILTRAIL_LOG_FORMAT`: `compact` (default) or `json`.
    #[serde(default)]
    pub mailtrail_log_format: LogFormat,
}

/// Installs the global `tracing` subscriber. Call once, first thing in `main`.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Compact => builder.compact().init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The content type of [`encode_metrics`]' output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `registry` in the OpenMetrics text format (which Prometheus scrapes).
pub fn encode_metrics(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn the_log_format_is_read_from_the_environment() {
        let json: LogEnv =
            envy::from_iter([("MAILTRAIL_LOG_FORMAT".to_owned(), "json".to_owned())]).unwrap();
        assert_eq!(json.mailtrail_log_format, LogFormat::Json);
        let default: LogEnv = envy::from_iter(Vec::<(String, String)>::new()).unwrap();
        assert_eq!(default.mailtrail_log_format, LogFormat::Compact);
        assert!(
            envy::from_iter::<_, LogEnv>([("MAILTRAIL_LOG_FORMAT".to_owned(), "xml".to_owned())])
                .is_err()
        );
    }

    #[test]
    fn metrics_render_as_openmetrics_text() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("mailtrail_example", "An example", counter.clone());
        counter.inc_by(3);
        let text = encode_metrics(&registry);
        assert!(text.contains("mailtrail_example_total 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
