//! mailtrail-store against a real Postgres, one fresh database per test: the batched upsert, the
//! statistics report, and the connection pool.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod conversions;
mod erase;
mod partitions;
mod pool;
mod recipients;
mod report;
mod rollups;
mod upsert;
