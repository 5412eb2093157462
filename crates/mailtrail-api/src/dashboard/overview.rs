//! The system overview, for staff: totals, the status mix and rates of every message in the
//! range, and the projects with the worst bounce and complaint rates.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use mailtrail_store::standings::{ProjectStanding, RankedRate, worst};
use mailtrail_store::{StatsQuery, StatsScope, StorePool, stats_report};

use super::error::PageError;
use super::pages::{Nav, RangeQuery, query};
use super::rankings::{FRESH_FOR, KEEP_FOR, Rankings};
use super::render;
use super::session::Viewer;
use super::svg;
use super::view::{DayRange, RateCard, StatusShare, funnel_steps, percent, rate_cards, status_mix};

/// Projects listed in each ranking.
const RANKED_PROJECTS: usize = 10;
/// A project needs this many messages in the range to be ranked (a handful of messages make
/// rates that say little).
pub const MIN_MESSAGES_TO_RANK: u64 = 20;

/// One line of a ranking.
pub struct RankedProject {
    /// The project.
    pub project_id: i64,
    /// Its messages in the range.
    pub total: u64,
    /// The rate it is ranked by.
    pub rate: String,
    /// What that rate is made of.
    pub detail: String,
}

/// The overview page.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    nav: Option<Nav>,
    range: DayRange,
    total: u64,
    has_messages: bool,
    cards: Vec<RateCard>,
    mix: Vec<StatusShare>,
    funnel_svg: String,
    worst_bounce: Vec<RankedProject>,
    worst_complaint: Vec<RankedProject>,
    min_messages: u64,
    /// How often a ranking is read again while the page is viewed, in seconds.
    rankings_fresh_secs: u64,
    /// How old a ranking shown may be at most, in minutes.
    rankings_keep_mins: u64,
}

fn ranked(standings: &[ProjectStanding], rate: RankedRate) -> Vec<RankedProject> {
    worst(standings, rate, RANKED_PROJECTS)
        .iter()
        .map(|standing| {
            let group = &standing.group;
            let (rate, detail) = match rate {
                RankedRate::Bounce => (
                    percent(group.bounce_rate_percent),
                    format!("{} bounced, {} dropped", group.bounced, group.dropped),
                ),
                RankedRate::Complaint => (
                    percent(group.complaint_rate_percent),
                    format!(
                        "{} of {} delivered",
                        group.complained,
                        group.delivered + group.complained
                    ),
                ),
            };
            RankedProject {
                project_id: standing.project_id,
                total: group.total,
                rate,
                detail,
            }
        })
        .collect()
}

/// `GET /overview`.
pub async fn overview(
    request: HttpRequest,
    viewer: Viewer,
    pool: web::Data<StorePool>,
    rankings: web::Data<Rankings>,
) -> Result<HttpResponse, PageError> {
    viewer.caller().require_all()?;
    let params: RangeQuery = query(&request)?;
    let range = DayRange::chosen(params.since.as_deref(), params.until.as_deref())?;
    let (since, until) = (Some(range.since), Some(range.until));

    // First, before this request holds a connection: a ranking read now takes one of its own.
    let standings = rankings
        .into_inner()
        .standings(&pool, range.since, range.until, MIN_MESSAGES_TO_RANK)
        .await?;
    let mut connection = crate::routes::connection(&pool).await?;
    let report = stats_report(
        &mut connection,
        &StatsQuery::new(StatsScope::All).between(since, until),
    )
    .await?;
    let group = report.groups.into_iter().next().unwrap_or_default();
    let has_messages = group.total > 0 || {
        let ever = StatsQuery::new(StatsScope::All);
        stats_report(&mut connection, &ever)
            .await?
            .groups
            .iter()
            .any(|group| group.total > 0)
    };
    drop(connection);

    render::page(
        StatusCode::OK,
        &OverviewPage {
            nav: Some(Nav::from(&viewer)),
            range,
            total: group.total,
            has_messages,
            cards: rate_cards(&group),
            mix: status_mix(&group),
            funnel_svg: svg::funnel(&funnel_steps(&group)),
            worst_bounce: ranked(&standings, RankedRate::Bounce),
            worst_complaint: ranked(&standings, RankedRate::Complaint),
            min_messages: MIN_MESSAGES_TO_RANK,
            rankings_fresh_secs: FRESH_FOR.as_secs(),
            rankings_keep_mins: KEEP_FOR.as_secs() / 60,
        },
    )
}
