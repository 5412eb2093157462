//! The dashboard: server-rendered HTML pages over the same store calls and scope rules as the
//! JSON API, for project creators (a project token) and staff (an unscoped token).
//!
//! | page | shows | who |
//! |---|---|---|
//! | `GET /` | a redirect to the viewer's home page, or to sign in | anyone |
//! | `GET /sign-in`, `POST /sign-in`, `POST /sign-out` | the token form; the session cookie ([`session`]) | anyone |
//! | `GET /overview?since=&until=` | the whole system: totals, status mix, rates, the worst projects | staff |
//! | `GET /projects/{id}?since=&until=&sort=&dir=` | status mix, rates, funnel, daily chart, by subject | that project |
//! | `GET /backers/{id}?cursor=` | a backer's messages, newest first | their messages in the token's project |
//! | `GET /messages/{message_id}` | a message's recipients and its every event | that project |
//! | `GET /projects?project_id=`, `GET /backers?backer_id=` | redirects for the "open" forms | anyone |
//! | `GET /static/dashboard.css` | the one stylesheet | anyone |
//!
//! Templates (`templates/`, askama) escape every value; only the SVG drawn by [`svg`] is inserted
//! as markup, and it escapes its own text. Pages run no script. The figures come from the
//! statistics counters, so every page costs a few small queries at any size (`BENCHMARKS.md`).

pub mod error;
mod messages;
mod overview;
pub mod pages;
mod project;
pub mod rankings;
pub mod render;
pub mod session;
pub mod subject_table;
pub mod svg;
pub mod view;

use actix_web::web;

pub use error::PageError;

/// Registers the dashboard's routes on the API's app.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(pages::home))
        .route("/sign-in", web::get().to(session::sign_in_page))
        .route("/sign-in", web::post().to(session::sign_in))
        .route("/sign-out", web::post().to(session::sign_out))
        .route("/overview", web::get().to(overview::overview))
        .route("/projects", web::get().to(pages::jump))
        .route("/projects/{project_id}", web::get().to(project::project))
        .route("/backers", web::get().to(pages::jump))
        .route("/backers/{backer_id}", web::get().to(messages::backer))
        .route("/messages/{message_id}", web::get().to(messages::message))
        .route("/static/dashboard.css", web::get().to(render::stylesheet));
}
