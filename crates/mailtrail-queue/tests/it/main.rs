//! mailtrail-queue against a real Redis, one unique key prefix per test, in one test binary: the
//! scripts (push, claim, settle, requeue, leases), their bookkeeping under retries and lapsed
//! leases, and the operator's inspection.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod bookkeeping;
mod checkpoint;
mod cluster;
mod dead_erasure;
mod inspect;
mod queue;
