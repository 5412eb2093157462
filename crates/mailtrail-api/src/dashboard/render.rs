//! Turning a template into a response, and the stylesheet.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType};
use actix_web::{HttpResponse, Responder};
use askama::Template;

use super::error::PageError;

/// The dashboard's one stylesheet, compiled into the binary.
const STYLESHEET: &str = include_str!("../../static/dashboard.css");

/// Renders `template` as an HTML page with `status`. Pages are never cached (they hold one
/// person's figures) and may not be framed by another site.
pub fn page(status: StatusCode, template: &impl Template) -> Result<HttpResponse, PageError> {
    let body = template.render()?;
    Ok(HttpResponse::build(status)
        .insert_header(ContentType::html())
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // No script runs on these pages; an injected one would not either.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(body))
}

/// `GET /static/dashboard.css`.
pub async fn stylesheet() -> impl Responder {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header(CacheControl(vec![CacheDirective::MaxAge(300)]))
        .body(STYLESHEET)
}
