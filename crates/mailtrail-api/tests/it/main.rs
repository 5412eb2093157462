//! mailtrail-api on port 0 against real Postgres and Redis, with data put in through the real
//! receiver and worker: every endpoint's answer for known stories, ranges, pagination, every
//! scope rule, every bad parameter, revoked tokens, health and metrics; conversions reported
//! through the API, queued, written by the worker and credited; and the dashboard, over HTTP and
//! in headless Chromium.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod browser;
mod conversions;
mod dashboard;
mod endpoints;
mod scope;
mod support;
