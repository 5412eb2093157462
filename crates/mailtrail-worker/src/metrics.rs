//! The worker's Prometheus metrics, served by a small HTTP listener (`MAILTRAIL_METRICS_BIND`).
//!
//! Counters move once per settled batch, so they count what was acknowledged: a batch written
//! and then lost to a crash is counted when it is written again and settled.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use mailtrail_queue::{Queue, SkippedCount};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels for events by outcome (`stored`, `skipped`, `dead`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels for skipped events by reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The worker's metrics.
#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    events: Family<OutcomeLabels, Counter>,
    skipped: Family<ReasonLabels, Counter>,
    events_inserted: Counter,
    rows_upserted: Counter,
    batch_size: Histogram,
    batch_seconds: Histogram,
    backlog: Gauge,
    in_flight: Gauge,
    last_batch: Gauge,
}

/// What one settled batch did, for the metrics.
#[derive(Debug, Default)]
pub struct BatchReport<'a> {
    /// Envelopes written to Postgres.
    pub stored: u64,
    /// Skipped, by reason.
    pub skipped: &'a [SkippedCount],
    /// Dead-lettered.
    pub dead: u64,
    /// Events new to `email_events`.
    pub events_inserted: u64,
    /// `sent_emails` rows inserted or updated.
    pub rows_upserted: u64,
    /// From claim to settle.
    pub duration: Duration,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let events = Family::<OutcomeLabels, Counter>::default();
        let skipped = Family::<ReasonLabels, Counter>::default();
        let events_inserted = Counter::default();
        let rows_upserted = Counter::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        let batch_seconds = Histogram::new(exponential_buckets(0.000_5, 2.0, 16));
        let backlog = Gauge::default();
        let in_flight = Gauge::default();
        let last_batch = Gauge::default();
        registry.register(
            "mailtrail_worker_events",
            "Envelopes settled, by outcome (stored, skipped, dead)",
            events.clone(),
        );
        registry.register(
            "mailtrail_worker_skipped",
            "Events skipped for lack of custom variables, by reason",
            skipped.clone(),
        );
        registry.register(
            "mailtrail_worker_events_inserted",
            "Events new to email_events",
            events_inserted.clone(),
        );
        registry.register(
            "mailtrail_worker_rows_upserted",
            "sent_emails rows inserted or updated",
            rows_upserted.clone(),
        );
        registry.register(
            "mailtrail_worker_batch_size",
            "Envelopes per settled batch",
            batch_size.clone(),
        );
        registry.register(
            "mailtrail_worker_batch_duration_seconds",
            "Time from claim to settle per batch",
            batch_seconds.clone(),
        );
        registry.register(
            "mailtrail_worker_backlog",
            "Envelopes waiting in the Redis backlog, read at scrape time",
            backlog.clone(),
        );
        registry.register(
            "mailtrail_worker_in_flight",
            "Envelopes in this worker's hands",
            in_flight.clone(),
        );
        registry.register(
            "mailtrail_worker_last_batch_timestamp_seconds",
            "Unix time of the last settled batch (alert when it stops moving)",
            last_batch.clone(),
        );
        Self {
            registry,
            events,
            skipped,
            events_inserted,
            rows_upserted,
            batch_size,
            batch_seconds,
            backlog,
            in_flight,
            last_batch,
        }
    }

    /// Records a settled batch.
    pub fn batch_settled(&self, report: &BatchReport<'_>) {
        let skipped: u64 = report.skipped.iter().map(|skipped| skipped.count).sum();
        for (outcome, count) in [
            ("stored", report.stored),
            ("skipped", skipped),
            ("dead", report.dead),
        ] {
            if count > 0 {
                self.events
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(count);
            }
        }
        for skipped in report.skipped {
            self.skipped
                .get_or_create(&ReasonLabels {
                    reason: skipped.reason.clone(),
                })
                .inc_by(skipped.count);
        }
        self.events_inserted.inc_by(report.events_inserted);
        self.rows_upserted.inc_by(report.rows_upserted);
        self.batch_size
            .observe((report.stored + skipped + report.dead) as f64);
        self.batch_seconds.observe(report.duration.as_secs_f64());
        self.in_flight.set(0);
        self.last_batch.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs() as i64)
                .unwrap_or(0),
        );
    }

    /// Records a claimed batch.
    pub fn batch_claimed(&self, size: usize) {
        self.in_flight.set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// The text served at `/metrics`.
    pub fn render(&self) -> String {
        mailtrail_telemetry::encode_metrics(&self.registry)
    }
}

struct MetricsState {
    metrics: Arc<WorkerMetrics>,
    queue: Queue,
}

async fn serve_metrics(state: web::Data<MetricsState>) -> HttpResponse {
    if let Ok(backlog) = state.queue.backlog_len().await {
        state
            .metrics
            .backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }
    HttpResponse::Ok()
        .content_type(mailtrail_telemetry::METRICS_CONTENT_TYPE)
        .body(state.metrics.render())
}

/// Starts the `/metrics` listener on `bind` in the background.
pub fn spawn_listener(
    bind: &str,
    metrics: Arc<WorkerMetrics>,
    queue: Queue,
) -> std::io::Result<()> {
    let state = web::Data::new(MetricsState { metrics, queue });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(serve_metrics))
    })
    .workers(1)
    // The worker handles SIGTERM itself; the listener simply ends with the process.
    .disable_signals()
    .bind(bind)?
    .run();
    tokio::spawn(server);
    Ok(())
}
