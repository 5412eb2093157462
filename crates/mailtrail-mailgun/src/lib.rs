//! mailtrail-mailgun: Mailgun's HTTP API, as far as mailtrail calls it.
//!
//! | module | what |
//! |---|---|
//! | `client` | [`MailgunClient`]: Basic auth `api:KEY`, the region's base URL, statuses mapped to [`MailgunError`], 429 and transient failures retried |
//! | `retry` | [`RetryPolicy`]: `Retry-After` / `X-RateLimit-Reset`, exponential backoff with jitter |
//! | `events` | the Events API, one page at a time, items kept as raw JSON |
//! | `webhooks` | a domain's webhooks: list, create, replace, and [`plan_install`] |
//!
//! The client is blocking and built on `ureq` with rustls: the operator CLI, its only user,
//! links neither hyper nor actix. Facts about the API (paging, the polling rule, regions, keys)
//! and their sources are in `docs/reconcile.md`.

mod client;
mod error;
mod events;
mod retry;
mod webhooks;

pub use client::{DEFAULT_API_BASE, MailgunClient};
pub use error::MailgunError;
pub use events::{EventsPage, EventsQuery, PAGE_LIMIT, WEBHOOK_EVENT_FILTER, item_micros};
pub use retry::RetryPolicy;
pub use webhooks::{RegisteredWebhooks, WEBHOOK_NAMES, WebhookAction, plan_install};
