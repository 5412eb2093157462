//! A backer's messages (within the token's scope) and one message's timeline, through the same
//! scoped store calls as `GET /v1/messages` and `GET /v1/messages/{message_id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use mailtrail_core::MessageId;
use mailtrail_store::StorePool;
use mailtrail_store::messages::{MessageEvent, MessageFilter, MessageRow};

use super::error::PageError;
use super::pages::{Nav, query};
use super::render;
use super::session::Viewer;
use crate::error::parse_id;
use crate::params;
use crate::routes::{visible_message, visible_messages};

/// Messages in one page of a backer's list.
const PAGE_SIZE: i64 = 50;

/// A time as the pages show it (UTC, to the second).
pub fn when(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The backer page's parameters.
#[derive(Debug, Default, serde::Deserialize)]
struct BackerQuery {
    cursor: Option<String>,
}

/// A backer's messages.
#[derive(Template)]
#[template(path = "backer.html")]
pub struct BackerPage {
    nav: Option<Nav>,
    backer_id: i64,
    /// The project a project token narrows the list to.
    project: Option<i64>,
    messages: Vec<MessageRow>,
    /// The next page's cursor.
    next_cursor: Option<String>,
}

/// `GET /backers/{backer_id}`.
pub async fn backer(
    request: HttpRequest,
    viewer: Viewer,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let backer_id = parse_id("backer_id", &path)?;
    let params: BackerQuery = query(&request)?;
    let after = params
        .cursor
        .as_deref()
        .map(params::decode_cursor)
        .transpose()?;
    let filter = MessageFilter {
        backer_id: Some(backer_id),
        ..MessageFilter::default()
    };
    let page = visible_messages(viewer.caller(), &pool, filter, after, PAGE_SIZE).await?;
    render::page(
        StatusCode::OK,
        &BackerPage {
            nav: Some(Nav::from(&viewer)),
            backer_id,
            project: viewer.project(),
            messages: page.messages,
            next_cursor: page.next_after.map(params::encode_cursor),
        },
    )
}

/// One line of a timeline.
pub struct TimelineLine {
    /// The stored event.
    pub event: MessageEvent,
    /// When, as shown.
    pub at: String,
    /// What it did to the message, in words.
    pub what: String,
}

/// A message's page.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    nav: Option<Nav>,
    message_id: String,
    recipients: Vec<MessageRow>,
    lines: Vec<TimelineLine>,
}

fn describe(event: &MessageEvent) -> String {
    let mut parts = vec![event.kind.clone()];
    if let Some(status) = &event.status {
        parts.push(format!("status {status}"));
    }
    for detail in [&event.severity, &event.reason, &event.delivery_code]
        .into_iter()
        .flatten()
    {
        parts.push(detail.clone());
    }
    parts.join(" · ")
}

/// `GET /messages/{message_id}`.
pub async fn message(
    viewer: Viewer,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let message_id =
        MessageId::parse(&path).ok_or(PageError::BadParameter("message_id: empty".to_owned()))?;
    let detail = visible_message(viewer.caller(), &pool, &message_id).await?;
    let lines = detail
        .events
        .into_iter()
        .map(|event| TimelineLine {
            at: when(&event.occurred_at),
            what: describe(&event),
            event,
        })
        .collect();
    render::page(
        StatusCode::OK,
        &MessagePage {
            nav: Some(Nav::from(&viewer)),
            message_id: message_id.as_str().to_owned(),
            recipients: detail.recipients,
            lines,
        },
    )
}
