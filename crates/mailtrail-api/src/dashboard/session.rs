//! Signing in to the dashboard: the API token, kept in a cookie, and the forms that change it.
//!
//! - The cookie `mailtrail_session` holds the API token itself, so there is no session table to
//!   keep or expire: revoking the token (`mailtrail api-token revoke`) signs its pages out at the
//!   next request. It is `HttpOnly` (scripts never see it), `SameSite=Strict` (no other site's
//!   page or link sends it), `Path=/`, and `Secure` when the request came over TLS (directly or
//!   through a proxy that says so in `Forwarded` / `X-Forwarded-Proto`).
//! - Forms that change something are POSTs. Sign-out carries a CSRF token derived from the
//!   session's token (a SHA-256 another site cannot compute without it); every POST must also come
//!   from this origin when the browser names one (`Origin`), which covers sign-in, where there is
//!   no session yet (a forged sign-in would put a victim in an attacker's account).
//! - Every page authenticates through [`authenticate`](mailtrail_store::tokens::authenticate), as
//!   the JSON API does, and checks scope with the same [`Caller`] rules.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use mailtrail_store::StorePool;
use mailtrail_store::tokens::{TokenScope, authenticate};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::PageError;
use super::pages::SignInPage;
use super::render;
use crate::auth::Caller;

/// The cookie that holds the signed-in token.
pub const SESSION_COOKIE: &str = "mailtrail_session";

/// Who is looking at a page: a signed-in token and its scope.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// What the token may read.
    pub scope: TokenScope,
    /// The CSRF token of this session, for POST forms.
    pub csrf: String,
}

impl Viewer {
    /// The scope rules of the JSON API.
    pub fn caller(&self) -> Caller {
        Caller(self.scope)
    }

    /// The project a token is limited to, if any.
    pub fn project(&self) -> Option<i64> {
        self.caller().project()
    }

    /// Whether this is a staff (unscoped) token.
    pub fn is_staff(&self) -> bool {
        self.scope == TokenScope::All
    }
}

/// The CSRF token of the session holding `token`: a digest of it, so nothing is stored and
/// another site, which never sees the cookie, cannot compute it.
pub fn csrf_token(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"mailtrail dashboard csrf\0")
        .chain_update(token.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Compares two strings in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn scope_of(pool: &StorePool, token: &str) -> Result<Option<TokenScope>, PageError> {
    let mut connection = crate::routes::connection(pool).await?;
    Ok(authenticate(&mut connection, token).await?)
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = request
            .cookie(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned());
        let pool = request.app_data::<web::Data<StorePool>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(pool)) = (token, pool) else {
                return Err(PageError::SignedOut);
            };
            match scope_of(&pool, &token).await? {
                Some(scope) => Ok(Viewer {
                    scope,
                    csrf: csrf_token(&token),
                }),
                None => Err(PageError::TokenRejected),
            }
        })
    }
}

/// Refuses a POST that a browser says came from another origin.
fn require_same_origin(request: &HttpRequest) -> Result<(), PageError> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        // Browsers send Origin on every POST; a client that does not is no browser to forge with.
        return Ok(());
    };
    let info = request.connection_info();
    let expected = format!("{}://{}", info.scheme(), info.host());
    match origin.to_str() {
        Ok(origin) if origin == expected => Ok(()),
        _ => Err(PageError::Forgery),
    }
}

fn session_cookie(request: &HttpRequest, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    if request.connection_info().scheme() == "https" {
        cookie.set_secure(true);
    }
    cookie
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

/// Why the sign-in page is shown.
#[derive(Deserialize)]
pub struct SignInQuery {
    problem: Option<String>,
}

/// `GET /sign-in`: the form, with the reason a previous session ended, if any.
pub async fn sign_in_page(query: web::Query<SignInQuery>) -> Result<HttpResponse, PageError> {
    let problem = match query.problem.as_deref() {
        Some("expired") => Some(
            "Your token is no longer valid: it was revoked or never existed. \
             Ask your mailtrail operator for a new one.",
        ),
        Some("signed-out") => Some("You are signed out."),
        _ => None,
    };
    render::page(
        actix_web::http::StatusCode::OK,
        &SignInPage {
            nav: None,
            problem: problem.map(str::to_owned),
        },
    )
}

/// `POST /sign-in`: checks the token; a good one goes into the cookie and on to its home page.
pub async fn sign_in(
    request: HttpRequest,
    pool: web::Data<StorePool>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, PageError> {
    require_same_origin(&request)?;
    let token = form.token.trim();
    let Some(scope) = scope_of(&pool, token).await? else {
        tracing::info!("dashboard sign-in refused: unknown or revoked token");
        return render::page(
            actix_web::http::StatusCode::UNAUTHORIZED,
            &SignInPage {
                nav: None,
                problem: Some(
                    "That token is unknown or revoked. Check it, or ask for a new one.".to_owned(),
                ),
            },
        );
    };
    let home = match scope {
        TokenScope::All => "/overview".to_owned(),
        TokenScope::Project(project) => format!("/projects/{project}"),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, home))
        .cookie(session_cookie(&request, token.to_owned()))
        .finish())
}

/// `POST /sign-out`: forgets the cookie (the token itself stays valid until revoked).
pub async fn sign_out(
    request: HttpRequest,
    viewer: Result<Viewer, PageError>,
    form: web::Form<SignOutForm>,
) -> Result<HttpResponse, PageError> {
    require_same_origin(&request)?;
    // A session that is already gone has nothing to protect: just clear the cookie.
    if let Ok(viewer) = viewer
        && !same(&viewer.csrf, &form.csrf)
    {
        return Err(PageError::Forgery);
    }
    Ok(signed_out_redirect(&request, "/sign-in?problem=signed-out"))
}

/// A redirect to `location` that also removes the session cookie.
pub fn signed_out_redirect(request: &HttpRequest, location: &str) -> HttpResponse {
    let mut cookie = session_cookie(request, String::new());
    cookie.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header(ContentType::plaintext())
        .cookie(cookie)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_depends_on_the_session_and_never_shows_it() {
        let first = csrf_token("mt_first");
        assert_eq!(first, csrf_token("mt_first"));
        assert_ne!(first, csrf_token("mt_second"));
        assert_eq!(first.len(), 32);
        assert!(!first.contains("first"));
        assert!(same(&first, &csrf_token("mt_first")));
        assert!(!same(&first, &csrf_token("mt_second")));
        assert!(!same(&first, "short"));
    }
}
