//! `mailtrail-worker`: reads the environment, sets up logging, runs until SIGTERM or SIGINT.

use anyhow::Context;
use mailtrail_telemetry::LogEnv;
use mailtrail_worker::WorkerConfig;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let logging: LogEnv = envy::from_env().context("invalid MAILTRAIL_LOG_FORMAT")?;
    mailtrail_telemetry::init_logging(logging.mailtrail_log_format);
    let config = WorkerConfig::from_env().context("invalid configuration")?;
    let (stop, shutdown) = mailtrail_worker::shutdown::channel();
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop requested; finishing the batch in hand");
        stop.stop();
    });
    mailtrail_worker::run(config, shutdown)
        .await
        .context("the worker stopped with an error")
}
