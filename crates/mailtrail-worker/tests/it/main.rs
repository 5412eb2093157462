//! mailtrail-worker's integration tests, in one test binary: end to end through the real
//! receiver, the Mailgun corpus, unknown events, event identity and time, and the fault and
//! bookkeeping tests with the real binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod bookkeeping;
mod corpus;
mod end_to_end;
mod event_identity_and_time;
mod faults;
mod partition_upkeep;
mod unknown_events;
mod worker_process;
