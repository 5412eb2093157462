//! `GET /v1/openapi.json`: the OpenAPI document, generated from the handlers' annotations, so it
//! lists exactly the routes that exist (a test checks every route is in it).

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "mailtrail read API", description = "Deliverability statistics, messages and timelines."),
    paths(
        routes::system_stats,
        routes::project_stats,
        routes::project_daily,
        routes::backer_stats,
        routes::messages,
        routes::message,
        crate::conversions::report_conversions,
        routes::healthz,
        routes::readyz,
    ),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the paths name: `Authorization: Bearer mt_...`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Serves the document (no token needed: it describes, it reveals no data).
pub async fn openapi_json() -> HttpResponse {
    match ApiDoc::openapi().to_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(error) => {
            tracing::warn!(%error, "cannot render the OpenAPI document");
            HttpResponse::InternalServerError().finish()
        }
    }
}
