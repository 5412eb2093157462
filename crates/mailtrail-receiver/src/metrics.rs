//! The receiver's Prometheus metrics and the middleware that records them.
//!
//! Every webhook response is counted by outcome and status, and its time in the receiver
//! (verification plus the Redis push) goes into a histogram; the Redis push alone has its own.
//! The backlog gauge is read from Redis when `/metrics` is scraped, so it costs nothing per
//! request. Each webhook gets a request id, returned as `X-Request-Id` and attached to its logs.
//!
//! The metrics are app data of their own (`web::Data<ReceiverMetrics>`), so the middleware needs
//! nothing from the routes; the outcome a response carries is set by the route or by the
//! error's table in [`crate::error`].
//!
//! `/metrics` is served by a listener of its own ([`MetricsListener`], `MAILTRAIL_METRICS_BIND`,
//! loopback by default), never on the webhook port: that port faces the internet so Mailgun can
//! reach it, and the metrics (outcome counts, latencies, the backlog) are nobody's business there.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{App, Error, HttpResponse, HttpServer, web};
use mailtrail_queue::{Queue, QueueSettings};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::error::Outcome;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
}

/// The receiver's metrics.
#[derive(Debug)]
pub struct ReceiverMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histogram,
    push_seconds: Histogram,
    backlog: Gauge,
}

impl Default for ReceiverMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiverMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 25 µs to ~0.8 s: the interesting part is well under a millisecond.
        let request_seconds = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        let push_seconds = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        let backlog = Gauge::default();
        registry.register(
            "mailtrail_receiver_requests",
            "Webhook requests by outcome and HTTP status",
            requests.clone(),
        );
        registry.register(
            "mailtrail_receiver_request_duration_seconds",
            "Time from request start to response (verification and Redis push)",
            request_seconds.clone(),
        );
        registry.register(
            "mailtrail_receiver_push_duration_seconds",
            "Time of the Redis push (token marker and LPUSH in one script)",
            push_seconds.clone(),
        );
        registry.register(
            "mailtrail_receiver_backlog",
            "Envelopes waiting in the Redis backlog, read at scrape time",
            backlog.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            push_seconds,
            backlog,
        }
    }

    /// Records the time of one Redis push.
    pub fn observe_push(&self, elapsed: Duration) {
        self.push_seconds.observe(elapsed.as_secs_f64());
    }

    /// Sets the backlog gauge.
    pub fn set_backlog(&self, backlog: u64) {
        self.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }

    /// The text served at `/metrics`.
    pub fn render(&self) -> String {
        mailtrail_telemetry::encode_metrics(&self.registry)
    }

    fn observe_request(&self, outcome: Outcome, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { outcome, status })
            .inc();
        self.request_seconds.observe(elapsed.as_secs_f64());
    }
}

/// A process-unique request id: start time and a counter, in hex.
fn next_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STARTED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0)
    });
    format!(
        "{:x}-{:x}",
        *STARTED,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Middleware for the webhook route: request id, span, counters, latency.
pub async fn observe_webhook(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = next_request_id();
    let metrics = request.app_data::<web::Data<ReceiverMetrics>>().cloned();
    let span = tracing::info_span!("webhook", request_id = %request_id);
    let mut response = next.call(request).instrument(span).await?;
    let status = response.status().as_u16();
    let outcome = response
        .response()
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(if status == 413 {
            Outcome::too_large
        } else {
            Outcome::other
        });
    if let Some(metrics) = metrics {
        metrics.observe_request(outcome, status, started.elapsed());
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// `GET /metrics` on the metrics listener: Prometheus metrics, with the backlog read now.
async fn serve_metrics(
    queue: web::Data<Queue>,
    metrics: web::Data<ReceiverMetrics>,
) -> HttpResponse {
    match queue.backlog_len().await {
        Ok(backlog) => metrics.set_backlog(backlog),
        Err(error) => tracing::debug!(%error, "backlog not read for /metrics"),
    }
    HttpResponse::Ok()
        .content_type(mailtrail_telemetry::METRICS_CONTENT_TYPE)
        .body(metrics.render())
}

/// The `/metrics` listener, bound and ready to run beside the webhook server.
pub struct MetricsListener {
    port: u16,
    server: Server,
}

impl MetricsListener {
    /// Binds `bind` and prepares a one-thread server for `/metrics` alone. It handles no signals:
    /// the application stops it once the webhook server has stopped.
    pub fn bind(
        bind: &str,
        metrics: web::Data<ReceiverMetrics>,
        settings: &QueueSettings,
    ) -> Result<Self, MetricsBindError> {
        let listener = TcpListener::bind(bind)?;
        let port = listener.local_addr()?.port();
        let queue = web::Data::new(Queue::connect(settings)?);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(queue.clone())
                .app_data(metrics.clone())
                .route("/metrics", web::get().to(serve_metrics))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server, to be run.
    pub(crate) fn into_server(self) -> Server {
        self.server
    }
}

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsBindError {
    /// The address could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The Redis URL is unusable.
    #[error("{0}")]
    Queue(#[from] mailtrail_queue::QueueError),
}
