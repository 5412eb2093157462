//! The handlers. Each authenticates its caller, checks the token's scope, parses its parameters
//! (a 400 names the bad one), asks the store, and answers JSON. The statistics are the store's
//! [`StatsReport`], the same document `mailtrail stats --json` prints.

use actix_web::{HttpResponse, web};
use mailtrail_core::MessageId;
use mailtrail_store::messages::{
    MessageDetail, MessageFilter, MessagePage, list_messages, message_detail,
};
use mailtrail_store::{PooledConnection, StatsQuery, StatsReport, StatsScope, StorePool};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, parse_id, quoted};
use crate::params::{self, MessageParams, ProjectStatsParams, RangeParams};

/// A connection from the API's pool.
pub(crate) async fn connection(pool: &StorePool) -> Result<PooledConnection, ApiError> {
    Ok(pool
        .get()
        .await
        .map_err(mailtrail_store::StoreError::from)?)
}

async fn report(pool: &StorePool, query: StatsQuery) -> Result<web::Json<StatsReport>, ApiError> {
    let mut connection = connection(pool).await?;
    Ok(web::Json(
        mailtrail_store::stats_report(&mut connection, &query).await?,
    ))
}

/// `GET /v1/stats`: the whole system (unscoped tokens only).
#[utoipa::path(get, path = "/v1/stats", tag = "statistics",
    params(RangeParams),
    responses(
        (status = 200, description = "The statistics report of the whole system", body = Object),
        (status = 400, description = "A bad parameter, named in `error`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "A project token", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn system_stats(
    caller: Caller,
    pool: web::Data<StorePool>,
    params: web::Query<RangeParams>,
) -> Result<web::Json<StatsReport>, ApiError> {
    caller.require_all()?;
    let (since, until) = params::range(params.since.as_deref(), params.until.as_deref())?;
    report(
        &pool,
        StatsQuery::new(StatsScope::All).between(since, until),
    )
    .await
}

/// `GET /v1/projects/{project_id}/stats?by=subject`: one project, optionally by subject.
#[utoipa::path(get, path = "/v1/projects/{project_id}/stats", tag = "statistics",
    params(
        ("project_id" = i64, Path, description = "The project"),
        ProjectStatsParams,
    ),
    responses(
        (status = 200, description = "The statistics report of the project", body = Object),
        (status = 400, description = "A bad parameter, named in `error`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "A token of another project", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn project_stats(
    caller: Caller,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
    params: web::Query<ProjectStatsParams>,
) -> Result<web::Json<StatsReport>, ApiError> {
    let project = parse_id("project_id", &path)?;
    caller.require_project(project)?;
    let scope = match params.by.as_deref() {
        None => StatsScope::Project(project),
        Some("subject") => StatsScope::ProjectBySubject(project),
        Some(other) => {
            return Err(ApiError::BadParameter {
                name: "by",
                problem: format!("only `subject` is supported, got `{}`", quoted(other)),
            });
        }
    };
    let (since, until) = params::range(params.since.as_deref(), params.until.as_deref())?;
    report(&pool, StatsQuery::new(scope).between(since, until)).await
}

/// `GET /v1/projects/{project_id}/daily`: one project, one group per day.
#[utoipa::path(get, path = "/v1/projects/{project_id}/daily", tag = "statistics",
    params(
        ("project_id" = i64, Path, description = "The project"),
        RangeParams,
    ),
    responses(
        (status = 200, description = "The project's statistics, one group per day", body = Object),
        (status = 400, description = "A bad parameter, named in `error`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "A token of another project", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn project_daily(
    caller: Caller,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
    params: web::Query<RangeParams>,
) -> Result<web::Json<StatsReport>, ApiError> {
    let project = parse_id("project_id", &path)?;
    caller.require_project(project)?;
    let (since, until) = params::range(params.since.as_deref(), params.until.as_deref())?;
    let query = StatsQuery::new(StatsScope::Project(project))
        .between(since, until)
        .per_day();
    report(&pool, query).await
}

/// `GET /v1/backers/{backer_id}/stats`: one backer across projects (unscoped tokens only; a
/// project token lists a backer's messages of its project with `/v1/messages?backer_id=`).
#[utoipa::path(get, path = "/v1/backers/{backer_id}/stats", tag = "statistics",
    params(
        ("backer_id" = i64, Path, description = "The backer"),
        RangeParams,
    ),
    responses(
        (status = 200, description = "The statistics report of the backer", body = Object),
        (status = 400, description = "A bad parameter, named in `error`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "A project token", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn backer_stats(
    caller: Caller,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
    params: web::Query<RangeParams>,
) -> Result<web::Json<StatsReport>, ApiError> {
    let backer = parse_id("backer_id", &path)?;
    caller.require_all()?;
    let (since, until) = params::range(params.since.as_deref(), params.until.as_deref())?;
    report(
        &pool,
        StatsQuery::new(StatsScope::Backer(backer)).between(since, until),
    )
    .await
}

/// One page of messages.
#[derive(Serialize)]
struct MessagesPage {
    messages: Vec<mailtrail_store::messages::MessageRow>,
    next_cursor: Option<String>,
}

/// `GET /v1/messages`: sent messages, newest first, in keyset pages; a project token sees its
/// project's only.
#[utoipa::path(get, path = "/v1/messages", tag = "messages",
    params(MessageParams),
    responses(
        (status = 200, description = "`{messages, next_cursor}`, newest first", body = Object),
        (status = 400, description = "A bad parameter, named in `error`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 403, description = "project_id of another project", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn messages(
    caller: Caller,
    pool: web::Data<StorePool>,
    params: web::Query<MessageParams>,
) -> Result<HttpResponse, ApiError> {
    let backer_id = params
        .backer_id
        .as_deref()
        .map(|id| parse_id("backer_id", id))
        .transpose()?;
    let project_id = params
        .project_id
        .as_deref()
        .map(|id| parse_id("project_id", id))
        .transpose()?;
    if let Some(project) = project_id {
        caller.require_project(project)?;
    }
    let status = match params.status.as_deref() {
        None => None,
        Some(name) => Some(
            name.parse::<mailtrail_core::DeliveryStatus>()
                .map_err(|_| ApiError::BadParameter {
                    name: "status",
                    problem: format!(
                        "expected accepted, deferred, delivered, bounced, dropped or complained, got `{}`",
                        quoted(name)
                    ),
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let (since, until) = params::range(params.since.as_deref(), params.until.as_deref())?;
    let limit = params::limit(params.limit.as_deref())?;
    let after = params
        .cursor
        .as_deref()
        .map(params::decode_cursor)
        .transpose()?;
    let filter = MessageFilter {
        backer_id,
        project_id,
        status,
        since,
        until,
    };
    let page = visible_messages(caller, &pool, filter, after, limit).await?;
    Ok(HttpResponse::Ok().json(MessagesPage {
        messages: page.messages,
        next_cursor: page.next_after.map(params::encode_cursor),
    }))
}

/// One page of the messages `filter` names that `caller` may see: a project token's list is
/// narrowed to its project (the JSON list and the dashboard both page through this).
pub(crate) async fn visible_messages(
    caller: Caller,
    pool: &StorePool,
    mut filter: MessageFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<MessagePage, ApiError> {
    if let Some(project) = filter.project_id {
        caller.require_project(project)?;
    }
    filter.project_id = filter.project_id.or(caller.project());
    let mut connection = connection(pool).await?;
    Ok(list_messages(&mut connection, &filter, after, limit).await?)
}

/// A message's rows and events, if `caller` may see it. Another project's message is "not
/// found" to a project token, so existence does not leak.
pub(crate) async fn visible_message(
    caller: Caller,
    pool: &StorePool,
    message_id: &MessageId,
) -> Result<MessageDetail, ApiError> {
    let mut connection = connection(pool).await?;
    let detail = message_detail(&mut connection, message_id.as_str())
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    if let Some(own) = caller.project()
        && detail.recipients.iter().any(|row| row.project_id != own)
    {
        return Err(ApiError::NotFound("message"));
    }
    Ok(detail)
}

/// A message with its recipients and events.
#[derive(Serialize)]
struct MessageDocument {
    message_id: String,
    #[serde(flatten)]
    detail: mailtrail_store::messages::MessageDetail,
}

/// `GET /v1/messages/{message_id}`: a message's rows and its event timeline. Another project's
/// message is "not found" to a project token, so existence does not leak.
#[utoipa::path(get, path = "/v1/messages/{message_id}", tag = "messages",
    params(("message_id" = String, Path, description = "The Message-Id, with or without <>")),
    responses(
        (status = 200, description = "`{message_id, recipients, events}`", body = Object),
        (status = 401, description = "No, unknown or revoked token", body = Object),
        (status = 404, description = "No such message (or another project's)", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn message(
    caller: Caller,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let message_id = MessageId::parse(&path).ok_or(ApiError::BadParameter {
        name: "message_id",
        problem: "empty".to_owned(),
    })?;
    let detail = visible_message(caller, &pool, &message_id).await?;
    Ok(HttpResponse::Ok().json(MessageDocument {
        message_id: message_id.as_str().to_owned(),
        detail,
    }))
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: Postgres answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Postgres answers", body = Object),
        (status = 503, description = "Postgres does not answer", body = Object),
    ))]
pub async fn readyz(pool: web::Data<StorePool>) -> Result<HttpResponse, ApiError> {
    use diesel_async::RunQueryDsl;
    let mut connection = connection(&pool).await?;
    diesel::sql_query("SELECT 1")
        .execute(&mut connection)
        .await
        .map_err(mailtrail_store::StoreError::from)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
