//! mailtrail-worker's integration tests, in one test binary: end to end through the real
//! receiver, the Mailgun corpus, unknown events, and the fault tests with the real binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod corpus;
mod end_to_end;
mod faults;
mod unknown_events;
