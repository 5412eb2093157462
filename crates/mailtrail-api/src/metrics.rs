//! The API's Prometheus metrics: requests by route and status, and latency by route, served on
//! a bind of their own (`MAILTRAIL_API_METRICS_BIND`, loopback by default), never on the API port.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{App, HttpResponse, HttpServer, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Request counts and latencies.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RouteLabels, Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Empty metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mailtrail_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.1 ms to ~3 s.
            Histogram::new(exponential_buckets(0.0001, 2.5, 12))
        });
        registry.register(
            "requests",
            "Requests by route pattern and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer, by route pattern",
            seconds.clone(),
        );
        Self {
            registry,
            requests,
            seconds,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        mailtrail_telemetry::encode_metrics(&self.registry)
    }
}

/// Middleware: counts every request under its route *pattern* (`/v1/projects/{project_id}/stats`),
/// so ids and tokens never become label values.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let metrics = request.app_data::<web::Data<ApiMetrics>>().cloned();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let status = response.status().as_u16();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        metrics
            .seconds
            .get_or_create(&RouteLabels { route })
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// Serves `/metrics` on `bind` in the background (one thread).
pub fn spawn_listener(bind: &str, metrics: web::Data<ApiMetrics>) -> std::io::Result<u16> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(serve))
    })
    .workers(1)
    .disable_signals()
    .bind(bind)?;
    let port = server.addrs().first().map_or(0, |address| address.port());
    tokio::spawn(server.run());
    Ok(port)
}

async fn serve(metrics: web::Data<ApiMetrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
