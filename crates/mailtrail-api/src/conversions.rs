//! `POST /v1/conversions`: the application reports conversions; they are queued, not written.
//!
//! The worker stays the only writer: the API checks the report (the same checks the worker
//! applies again, `mailtrail_core::conversion`), checks that a project token reports for its
//! own project only, and pushes the whole report as one envelope of source `app` onto the same
//! backlog as the webhooks. 202 means it is on the backlog, which survives a crash of any
//! process; 503 means Redis did not take it and nothing was queued, so the application retries
//! (a retry of a report that was queued after all is harmless: a conversion is stored once per
//! project and id).

use actix_web::{HttpResponse, web};
use mailtrail_core::conversion::{parse_report, report_body};
use mailtrail_core::{Envelope, Source};
use mailtrail_queue::Queue;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;

/// The largest report accepted: 1,000 conversions of a few hundred bytes each, with room.
pub const MAX_REPORT_BYTES: usize = 1 << 20;

/// The answer to a queued report.
#[derive(Debug, Serialize)]
struct Queued {
    /// How many conversions the report carried.
    queued: usize,
}

/// `POST /v1/conversions`: one conversion or an array of up to 1,000.
#[utoipa::path(post, path = "/v1/conversions", tag = "conversions",
    request_body(content = Object, content_type = "application/json",
        description = "`{\"id\", \"backer_id\", \"project_id\", \"kind\", \"occurred_at\", \"value_cents\"?}`, \
                       or an array of 1 to 1,000 of them; `occurred_at` is RFC 3339"),
    responses(
        (status = 202, description = "Queued: `{\"queued\": n}`; the worker stores and credits them", body = Object),
        (status = 400, description = "A bad field, named in `error` (with the conversion's position)", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "A project token reporting for another project", body = Object),
        (status = 503, description = "The queue is unavailable; nothing was queued, retry", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn report_conversions(
    caller: Caller,
    queue: web::Data<Queue>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let now_ms = mailtrail_queue::now_ms();
    let conversions = parse_report(&body, now_ms).map_err(|error| ApiError::BadParameter {
        name: error.field(),
        problem: error.to_string(),
    })?;
    for conversion in &conversions {
        caller.require_project(conversion.project_id)?;
    }
    // Queued re-serialised from the checked conversions, so the worker reads exactly what was
    // checked, in one form.
    let envelope = Envelope::encode(
        Source::App,
        now_ms,
        "application/json",
        report_body(&conversions).as_bytes(),
    );
    queue
        .push_envelope(&envelope)
        .await
        .map_err(ApiError::QueueUnavailable)?;
    tracing::debug!(
        conversions = conversions.len(),
        "queued a conversion report"
    );
    Ok(HttpResponse::Accepted().json(Queued {
        queued: conversions.len(),
    }))
}
