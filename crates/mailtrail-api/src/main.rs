//! `mailtrail-api`: reads the environment, sets up logging, serves until SIGTERM or SIGINT.

use anyhow::Context;
use mailtrail_api::{ApiConfig, Application};
use mailtrail_telemetry::LogEnv;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let logging: LogEnv = envy::from_env().context("invalid MAILTRAIL_LOG_FORMAT")?;
    mailtrail_telemetry::init_logging(logging.mailtrail_log_format);
    let config = ApiConfig::from_env().context("invalid configuration")?;
    let bind = config.bind.clone();
    let application = Application::build(config)
        .await
        .context("cannot start the API")?;
    tracing::info!(bind, port = application.port(), "mailtrail-api serving");
    application
        .run_until_stopped()
        .await
        .context("the API stopped with an error")
}
