//! mailtrail-core's integration tests, in one test binary: the status mapping doc held to the
//! parsers and the precedence rule.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod status_mapping;
