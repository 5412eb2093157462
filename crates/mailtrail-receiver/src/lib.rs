//! mailtrail-receiver: the thin webhook front door.
//!
//! It verifies Mailgun's signature, pushes the raw event onto the Redis backlog together with the
//! token's single-use marker, and answers. It never opens a database connection, so Postgres
//! being slow or down never slows Mailgun down. [`Application::build`] binds the listeners (port 0
//! in tests): the webhook port, and `/metrics` on a port of its own.
//! [`Application::run_until_stopped`] serves until SIGINT/SIGTERM, finishing the requests in hand.

pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use mailtrail_queue::{DurabilityError, Queue};

pub use config::{ConfigError, ReceiverConfig};
pub use error::WebhookError;
use metrics::{MetricsListener, ReceiverMetrics};
use routes::AppState;

/// How long the start-up durability check waits for Redis before starting without it.
const DURABILITY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound, ready-to-run receiver.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<MetricsListener>,
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        /// The configured address.
        bind: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The Redis URL is unusable.
    #[error("cannot set up Redis: {0}")]
    Queue(#[from] mailtrail_queue::QueueError),
    /// Redis may evict keys and MAILTRAIL_REQUIRE_NOEVICTION is set.
    #[error("{0}; set it to noeviction or unset MAILTRAIL_REQUIRE_NOEVICTION")]
    EvictingRedis(#[from] DurabilityError),
}

impl Application {
    /// Binds the listener and prepares the server (Redis is connected lazily, so the receiver
    /// starts, and answers 503, while Redis is down).
    pub async fn build(config: ReceiverConfig) -> Result<Self, StartError> {
        let listener = TcpListener::bind(&config.bind).map_err(|source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                bind: config.bind.clone(),
                source,
            })?
            .port();
        let settings = config.queue_settings();
        let queue = Queue::connect(&settings)?;
        // Redis being down at start is not fatal: the receiver answers 503 until it is back.
        queue
            .check_durability(config.require_noeviction, DURABILITY_CHECK_TIMEOUT)
            .await?;
        let metrics = web::Data::new(ReceiverMetrics::new());
        // Metrics are not worth refusing webhooks for: a taken port is a warning, as in the worker.
        let metrics_listener = config.metrics_bind.as_deref().and_then(|bind| {
            MetricsListener::bind(bind, metrics.clone(), &settings)
                .inspect_err(|error| {
                    tracing::warn!(bind, %error, "cannot serve /metrics; webhooks still served");
                })
                .ok()
        });
        let signing_keys = config.signing_keys.clone();
        let timestamp_window_secs =
            i64::try_from(config.timestamp_window.as_secs()).unwrap_or(i64::MAX);
        let (token_ttl, backlog_cap) = (config.token_ttl, config.backlog_cap);
        let (body_limit_bytes, body_timeout) = (config.body_limit_bytes, config.body_timeout);
        let mut server = HttpServer::new(move || {
            // One Redis connection per HTTP worker thread, made and driven on that thread: a
            // single connection shared by all workers is driven by a task on another thread, so
            // every push would cross threads twice. Each connection still multiplexes (and so
            // pipelines) all of its worker's requests, and reconnects by itself. The URL was
            // checked by `Queue::connect` above, so the fallback to the shared one is a formality.
            let queue = Queue::connect(&settings).unwrap_or_else(|_| queue.clone());
            let state = web::Data::new(AppState {
                queue,
                signing_keys: signing_keys.clone(),
                timestamp_window_secs,
                token_ttl,
                backlog_cap,
                body_limit_bytes,
                body_timeout,
            });
            App::new()
                .app_data(state)
                .app_data(metrics.clone())
                .service(
                    web::resource("/webhooks/mailgun")
                        .wrap(actix_web::middleware::from_fn(metrics::observe_webhook))
                        .route(web::post().to(routes::receive_webhook)),
                )
                .route("/healthz", web::get().to(routes::healthz))
                .route("/readyz", web::get().to(routes::readyz))
        })
        .listen(listener)
        .map_err(|source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        if config.http_workers > 0 {
            server = server.workers(config.http_workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            metrics: metrics_listener,
        })
    }

    /// The bound webhook port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound `/metrics` port, if the metrics listener runs.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(MetricsListener::port)
    }

    /// Serves until stopped by a signal; the metrics listener stops after the webhook server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|listener| {
            let server = listener.into_server();
            (server.handle(), tokio::spawn(server))
        });
        let served = self.server.await;
        if let Some((handle, running)) = metrics {
            handle.stop(true).await;
            // The listener's own outcome changes nothing about how the receiver stopped.
            let _ = running.await;
        }
        served
    }
}
