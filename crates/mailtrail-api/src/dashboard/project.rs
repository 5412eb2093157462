//! A project's page: status mix, rates, the funnel, the daily chart and the by-subject table over
//! a chosen range, from three counter questions (the same reports the JSON API serves).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use mailtrail_store::report::StatsGroup;
use mailtrail_store::{StatsQuery, StatsScope, StorePool, stats_report};

use super::error::PageError;
use super::pages::{Nav, query};
use super::render;
use super::session::Viewer;
use super::subject_table::{SubjectColumn, SubjectSort};
use super::svg;
use super::view::{
    DayRange, RateCard, StatusShare, daily_points, funnel_steps, percent, rate_cards, status_mix,
};
use crate::error::parse_id;

/// The project page's parameters.
#[derive(Debug, Default, serde::Deserialize)]
struct ProjectQuery {
    since: Option<String>,
    until: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
}

/// A heading of the by-subject table: a link that sorts by its column.
pub struct Heading {
    /// The column's name in links.
    pub key: &'static str,
    /// The heading's text.
    pub label: &'static str,
    /// The link's query string.
    pub href: String,
    /// ▲ / ▼ beside the sorted column.
    pub marker: &'static str,
}

/// One row of the by-subject table.
pub struct SubjectRow {
    /// The subject as sent (escaped by the template), or a note when there was none.
    pub subject: String,
    /// Whether the messages had no subject.
    pub no_subject: bool,
    /// Messages.
    pub total: u64,
    /// The rates, as shown.
    pub rates: [String; 5],
}

impl From<&StatsGroup> for SubjectRow {
    fn from(group: &StatsGroup) -> Self {
        Self {
            subject: group
                .subject
                .clone()
                .unwrap_or_else(|| "(no subject)".to_owned()),
            no_subject: group.subject.is_none(),
            total: group.total,
            rates: [
                percent(group.delivery_rate_percent),
                percent(group.bounce_rate_percent),
                percent(group.complaint_rate_percent),
                percent(group.open_rate_percent),
                percent(group.click_rate_percent),
            ],
        }
    }
}

/// The project page.
#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    nav: Option<Nav>,
    project_id: i64,
    range: DayRange,
    /// Messages in the range.
    total: u64,
    /// Whether the project has any message at all (else the page explains how to start).
    has_messages: bool,
    cards: Vec<RateCard>,
    mix: Vec<StatusShare>,
    funnel_svg: String,
    chart_svg: String,
    headings: Vec<Heading>,
    subjects: Vec<SubjectRow>,
}

/// `GET /projects/{project_id}`.
pub async fn project(
    request: HttpRequest,
    viewer: Viewer,
    pool: web::Data<StorePool>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let project_id = parse_id("project_id", &path)?;
    viewer.caller().require_project(project_id)?;
    let params: ProjectQuery = query(&request)?;
    let range = DayRange::chosen(params.since.as_deref(), params.until.as_deref())?;
    let sort = SubjectSort::parse(params.sort.as_deref(), params.dir.as_deref());
    let (since, until) = (Some(range.since), Some(range.until));

    let mut connection = crate::routes::connection(&pool).await?;
    let whole = StatsQuery::new(StatsScope::Project(project_id)).between(since, until);
    let total = stats_report(&mut connection, &whole).await?;
    let daily = stats_report(&mut connection, &whole.per_day()).await?;
    let by_subject =
        StatsQuery::new(StatsScope::ProjectBySubject(project_id)).between(since, until);
    let mut subjects = stats_report(&mut connection, &by_subject).await?.groups;
    // Unattributed conversions make a "no subject" group without messages; the table shows
    // only message figures, so such a row would be dashes alone (they count in the rate cards).
    subjects.retain(|group| group.total > 0);
    let group = total.groups.into_iter().next().unwrap_or_default();
    let has_messages = group.total > 0 || {
        // Only an empty range costs this: is the project empty, or only the range?
        let ever = StatsQuery::new(StatsScope::Project(project_id));
        stats_report(&mut connection, &ever)
            .await?
            .groups
            .iter()
            .any(|group| group.total > 0)
    };
    drop(connection);

    sort.apply(&mut subjects);
    let headings = SubjectColumn::ALL
        .into_iter()
        .map(|column| Heading {
            key: column.key(),
            label: column.heading(),
            href: format!(
                "{}&sort={}&dir={}",
                range.query(),
                column.key(),
                sort.next_dir(column)
            ),
            marker: sort.marker(column),
        })
        .collect();
    render::page(
        StatusCode::OK,
        &ProjectPage {
            nav: Some(Nav::from(&viewer)),
            project_id,
            range,
            total: group.total,
            has_messages,
            cards: rate_cards(&group),
            mix: status_mix(&group),
            funnel_svg: svg::funnel(&funnel_steps(&group)),
            chart_svg: svg::daily_chart(&daily_points(&range, &daily.groups)),
            headings,
            subjects: subjects.iter().map(SubjectRow::from).collect(),
        },
    )
}
