//! mailtrail-store: everything mailtrail keeps in Postgres, through diesel-async (no libpq).
//!
//! - [`connect`] opens a connection with a statement timeout; [`connect_pool`] opens a pool of
//!   such connections, for the read API.
//! - [`migrate`] runs the embedded migrations under a Postgres advisory lock, so several workers
//!   starting at once do not race.
//! - [`upsert_events`] writes a whole batch in one statement: new events go into the append-only
//!   `email_events` table (deduplicated on their key) and only those update `sent_emails`, with
//!   the precedence rule of `mailtrail_core::status` expressed in SQL.
//! - [`count_stored_events`] says how many of some events are stored already (reconciliation).
//! - [`tokens`] keeps the read API's tokens (hashed, scoped); [`messages`] lists sent messages in
//!   keyset pages and shows one with its timeline.
//! - [`partitions`] keeps the monthly partitions of `email_events` (created ahead, dropped past
//!   retention); [`erase`] removes a person's rows and events.
//! - [`stats`] answers the deliverability questions, one row per (day, subject, status), from
//!   counters kept in the same transaction as the rows ([`rollups`] rebuilds and verifies them),
//!   and [`report`] folds them into the groups and rates that the CLI and the read API present.
//! - [`conversions`] stores the application's conversions and credits each to an email in the
//!   batch's transaction ([`write_batch`]); [`conversion_stats`] counts them beside the
//!   deliverability figures.

mod connection;
pub mod conversion_figures;
pub mod conversion_stats;
pub mod conversions;
pub mod erase;
mod error;
mod known;
pub mod messages;
mod migrate;
pub mod partitions;
pub mod pool;
pub mod report;
pub mod rollups;
pub mod schema;
pub mod standings;
pub mod stats;
mod timeline;
pub mod tokens;
mod upsert;

pub use connection::{StoreConnection, connect};
pub use conversion_stats::{ConversionRow, conversion_counts};
pub use conversions::{BatchCounts, reattribute_all, write_batch};
pub use error::StoreError;
pub use known::count_stored_events;
pub use migrate::{MIGRATIONS, migrate};
pub use pool::{PooledConnection, StorePool, connect_pool};
pub use report::{StatsReport, stats_report};
pub use stats::{Source, StatsQuery, StatsRow, StatsScope, status_counts};
pub use timeline::{TimelineEvent, TimelineFilter, timeline};
pub use upsert::{UpsertCounts, upsert_events};
