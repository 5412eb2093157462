//! `mailtrail-receiver`: reads the environment, sets up logging, serves.

use anyhow::Context;
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_telemetry::LogEnv;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let logging: LogEnv = envy::from_env().context("invalid MAILTRAIL_LOG_FORMAT")?;
    mailtrail_telemetry::init_logging(logging.mailtrail_log_format);
    let config = ReceiverConfig::from_env().context("invalid configuration")?;
    let application = Application::build(config.clone())
        .await
        .context("cannot start the receiver")?;
    tracing::info!(
        bind = %config.bind,
        port = application.port(),
        metrics_port = ?application.metrics_port(),
        signing_keys = config.signing_keys.len(),
        "mailtrail-receiver listening"
    );
    application
        .run_until_stopped()
        .await
        .context("the receiver stopped with an error")
}
