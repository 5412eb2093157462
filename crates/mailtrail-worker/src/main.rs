//! `mailtrail-worker`: reads the environment, sets up logging, runs until SIGTERM or SIGINT.

use anyhow::Context;
use mailtrail_worker::WorkerConfig;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = WorkerConfig::from_env().context("invalid configuration")?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop requested; finishing the batch in hand");
        let _ = stop.send(true);
    });
    mailtrail_worker::run(config, shutdown)
        .await
        .context("the worker stopped with an error")
}
