//! The `mailtrail` binary against real Postgres and Redis, in one test binary: the Postgres
//! commands (statistics over ranges of days too), the conversions import, the queue commands and a purge nobody
//! confirms, `send-sample` against the real receiver, and the README's configuration table held
//! to the code.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod conversions_import;
mod mailgun_webhooks;
mod migrate_keys;
mod postgres_commands;
mod privacy_and_retention;
mod purge_confirmation;
mod queue_commands;
mod readme_config;
mod reconcile;
mod reconcile_corpus;
mod send_sample;
mod stats_ranges;
mod support;
