//! mailtrail-bench against the real receiver, Redis and Postgres, in one test binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod load;
