//! mailtrail-store against a real Postgres, one fresh database per test.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod upsert;
