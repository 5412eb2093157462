//! `mailtrail-receiver`: reads the environment, sets up logging, serves.

use anyhow::Context;
use mailtrail_receiver::{Application, ReceiverConfig};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = ReceiverConfig::from_env().context("invalid configuration")?;
    let application = Application::build(config.clone())
        .await
        .context("cannot start the receiver")?;
    tracing::info!(
        bind = %config.bind,
        port = application.port(),
        signing_keys = config.signing_keys.len(),
        "mailtrail-receiver listening"
    );
    application
        .run_until_stopped()
        .await
        .context("the receiver stopped with an error")
}
