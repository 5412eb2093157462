//! mailtrail-receiver as Mailgun meets it, and as hostile or odd requests do, in one test binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod receiver;
mod untrusted_input;
