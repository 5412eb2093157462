//! mailtrail-api: the read API. The application and its project creators read deliverability
//! figures, messages and timelines over HTTP, as JSON.
//!
//! [`Application::build`] binds the listener (port 0 in tests) with a Postgres pool of its own,
//! and [`Application::run_until_stopped`] serves until SIGINT/SIGTERM. The API only reads
//! deliverability data (the worker is the only writer; reported conversions are queued for it
//! through Redis, [`conversions`]); the statistics come from the counters
//! (`mailtrail_store::stats`), so no project or system question scans `sent_emails`.
//!
//! | endpoint | answers | scope |
//! |---|---|---|
//! | `GET /v1/stats` | the whole system | unscoped tokens |
//! | `GET /v1/projects/{project_id}/stats?by=subject` | one project, optionally by subject | that project |
//! | `GET /v1/projects/{project_id}/daily` | one project, one group per day | that project |
//! | `GET /v1/backers/{backer_id}/stats` | one backer | unscoped tokens |
//! | `GET /v1/messages?backer_id=&project_id=&status=&since=&until=&limit=&cursor=` | messages, newest first | a project token: its project's |
//! | `GET /v1/messages/{message_id}` | a message's rows and events | a project token: its project's (else 404) |
//! | `POST /v1/conversions` | the application reports conversions (queued; 202) | a project token: its project's |
//! | `GET /healthz`, `GET /readyz` | the process; Postgres | none |
//! | `GET /v1/openapi.json` | the OpenAPI document, generated from the handlers | none |
//!
//! The dashboard, HTML pages for people over the same calls, is served under `/` ([`dashboard`]).
//!
//! Every statistics endpoint takes `since` and `until` (inclusive days, UTC). Errors are
//! `{"error": "..."}` ([`error`]); `/metrics` is served on a bind of its own ([`metrics`]).

pub mod auth;
pub mod config;
pub mod conversions;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;

pub use config::{ApiConfig, ConfigError};
pub use error::ApiError;

/// A bound, ready-to-run API.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
}

/// Why the API could not start.
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
    /// The pool could not be set up (a wrong DATABASE_URL, Postgres unreachable).
    #[error("cannot set up the Postgres pool: {0}")]
    Store(#[from] mailtrail_store::StoreError),
    /// `REDIS_URL` is unusable.
    #[error("cannot set up the Redis queue: {0}")]
    Queue(#[from] mailtrail_queue::QueueError),
}

impl Application {
    /// Opens the pool, binds the listener (and the metrics listener) and prepares the server.
    pub async fn build(config: ApiConfig) -> Result<Self, StartError> {
        let pool = mailtrail_store::connect_pool(
            config.database_url.expose_secret(),
            config.pool_size,
            config.statement_timeout,
        )
        .await?;
        let bind_error = |source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.bind).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let metrics = web::Data::new(metrics::ApiMetrics::new());
        let metrics_port = match &config.metrics_bind {
            Some(bind) => Some(metrics::spawn_listener(bind, metrics.clone()).map_err(
                |source| StartError::Bind {
                    bind: bind.clone(),
                    source,
                },
            )?),
            None => None,
        };
        let pool = web::Data::new(pool);
        let rankings = web::Data::new(dashboard::rankings::Rankings::new());
        // Connected on first use: the API starts, and reports get 503, while Redis is down.
        let settings = config.queue_settings();
        let queue = mailtrail_queue::Queue::connect(&settings)?;
        let mut server =
            HttpServer::new(move || {
                // One Redis connection per HTTP worker thread, driven by it (as in the receiver);
                // the URL was checked above, so the fallback to the shared one is a formality.
                let queue =
                    mailtrail_queue::Queue::connect(&settings).unwrap_or_else(|_| queue.clone());
                App::new()
                    .app_data(pool.clone())
                    .app_data(web::Data::new(queue))
                    .app_data(metrics.clone())
                    .app_data(rankings.clone())
                    .app_data(web::QueryConfig::default().error_handler(|error, _| {
                        error::ApiError::BadQuery(error.to_string()).into()
                    }))
                    .app_data(web::PathConfig::default().error_handler(|error, _| {
                        error::ApiError::BadQuery(error.to_string()).into()
                    }))
                    .wrap(actix_web::middleware::from_fn(metrics::observe))
                    .service(
                        web::scope("/v1")
                            .route("/stats", web::get().to(routes::system_stats))
                            .route(
                                "/projects/{project_id}/stats",
                                web::get().to(routes::project_stats),
                            )
                            .route(
                                "/projects/{project_id}/daily",
                                web::get().to(routes::project_daily),
                            )
                            .route(
                                "/backers/{backer_id}/stats",
                                web::get().to(routes::backer_stats),
                            )
                            .route("/messages", web::get().to(routes::messages))
                            .service(
                                web::resource("/conversions")
                                    .app_data(web::PayloadConfig::new(
                                        conversions::MAX_REPORT_BYTES,
                                    ))
                                    .route(web::post().to(conversions::report_conversions))
                                    .default_service(web::to(|| async {
                                        Err::<actix_web::HttpResponse, _>(
                                            error::ApiError::MethodNotAllowed("POST"),
                                        )
                                    })),
                            )
                            .route("/messages/{message_id}", web::get().to(routes::message))
                            .route("/openapi.json", web::get().to(openapi::openapi_json)),
                    )
                    .configure(dashboard::configure)
                    .route("/healthz", web::get().to(routes::healthz))
                    .route("/readyz", web::get().to(routes::readyz))
                    .default_service(web::to(|| async {
                        Err::<actix_web::HttpResponse, _>(error::ApiError::NotFound("route"))
                    }))
            })
            .listen(listener)
            .map_err(bind_error)?;
        if config.http_workers > 0 {
            server = server.workers(config.http_workers);
        }
        Ok(Self {
            port,
            metrics_port,
            server: server.run(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when it runs.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until stopped by a signal.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
