//! mailtrail-core's integration tests, in one test binary: the status mapping doc held to the
//! parsers and the precedence rule, and parsing in time linear in the body.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod linear_parsing;
mod status_mapping;
