//! The templates every page shares: the navigation, sign-in, errors; and the home redirect.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use mailtrail_store::tokens::TokenScope;

use super::error::PageError;
use super::session::Viewer;

/// The navigation bar of a signed-in page.
#[derive(Clone, Debug)]
pub struct Nav {
    /// An unscoped token: the overview is theirs.
    pub staff: bool,
    /// The project a project token is limited to.
    pub project: Option<i64>,
    /// The sign-out form's CSRF token.
    pub csrf: String,
}

impl From<&Viewer> for Nav {
    fn from(viewer: &Viewer) -> Self {
        Self {
            staff: viewer.is_staff(),
            project: viewer.project(),
            csrf: viewer.csrf.clone(),
        }
    }
}

/// The sign-in form.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    /// None: sign-in has no navigation.
    pub nav: Option<Nav>,
    /// Why the person is here, when there is something to say.
    pub problem: Option<String>,
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// None: the viewer of an error may be nobody.
    pub nav: Option<Nav>,
    /// The heading.
    pub title: String,
    /// What happened and what to do.
    pub detail: String,
}

/// `GET /`: staff to the overview, a project token to its project, anyone else to sign in.
pub async fn home(viewer: Result<Viewer, PageError>) -> Result<HttpResponse, PageError> {
    let location = match viewer?.scope {
        TokenScope::All => "/overview".to_owned(),
        TokenScope::Project(project) => format!("/projects/{project}"),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

/// The `since` / `until` of a page's range form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD`.
    pub since: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    pub until: Option<String>,
}

/// Reads a query string leniently: a malformed one is a 400 page, never a JSON error.
pub fn query<T: serde::de::DeserializeOwned>(
    request: &actix_web::HttpRequest,
) -> Result<T, PageError> {
    web::Query::<T>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| PageError::BadParameter(error.to_string()))
}

/// The fields of the "open a project / a backer" forms.
#[derive(Debug, Default, serde::Deserialize)]
pub struct JumpQuery {
    /// A project to open.
    pub project_id: Option<String>,
    /// A backer whose messages to list.
    pub backer_id: Option<String>,
}

/// `GET /projects?project_id=` and `GET /backers?backer_id=`: a plain form (no script) cannot
/// put a number into a path, so these redirect to the page the form names.
pub async fn jump(request: actix_web::HttpRequest) -> Result<HttpResponse, PageError> {
    let fields: JumpQuery = query(&request)?;
    let location = match (fields.project_id.as_deref(), fields.backer_id.as_deref()) {
        (Some(project), _) => format!(
            "/projects/{}",
            crate::error::parse_id("project_id", project.trim())?
        ),
        (None, Some(backer)) => format!(
            "/backers/{}",
            crate::error::parse_id("backer_id", backer.trim())?
        ),
        (None, None) => "/".to_owned(),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}
