//! mailtrail-receiver as Mailgun meets it, in one test binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod receiver;
