//! The dashboard over plain HTTP: the sign-in cookie's flags, CSRF and origin checks, revoked
//! tokens, scope, empty states, bad ranges and escaping. What a person sees in a real browser is
//! in `browser`.

use mailtrail_core::sample::{SampleEvent, SampleKind};
use mailtrail_store::tokens::TokenScope;

use crate::support::{DAY, NOV20, TestApi};

/// A subject a hostile sender might choose.
pub const HOSTILE_SUBJECT: &str = "<script>alert(1)</script>";

/// The stories, and a message of project 7 with a hostile subject on 2025-11-26 (outside the
/// week the figures are checked over).
pub async fn start_with_hostile_subject() -> TestApi {
    let mut api = TestApi::start().await;
    let hostile = SampleEvent {
        kind: SampleKind::Delivered,
        message_id: "h1@mg.example.com",
        recipient: "backer@example.com",
        timestamp: NOV20 + 6.0 * DAY + 60.0,
        backer_id: Some(44),
        project_id: Some(7),
        subject: HOSTILE_SUBJECT,
    };
    api.put_in(vec![hostile.event_data()]).await;
    api
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

async fn read(response: reqwest::Response) -> Page {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    Page {
        status: response.status().as_u16(),
        location,
        set_cookie,
        body: response.text().await.unwrap(),
    }
}

async fn get(api: &TestApi, path: &str, session: Option<&str>) -> Page {
    let mut request = client().get(format!("{}{path}", api.base_url));
    if let Some(token) = session {
        request = request.header("cookie", format!("mailtrail_session={token}"));
    }
    read(request.send().await.unwrap()).await
}

async fn post(api: &TestApi, path: &str, form: &str, headers: &[(&str, &str)]) -> Page {
    let mut request = client()
        .post(format!("{}{path}", api.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await
}

fn csrf_of(body: &str) -> String {
    let start = body.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
    body[start..start + 32].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_keeps_the_token_in_a_strict_http_only_cookie_and_signing_out_needs_the_form_token()
 {
    let api = TestApi::start().await;
    let creator = api.token("creator-7", TokenScope::Project(7)).await;

    let home = get(&api, "/", None).await;
    assert_eq!(
        (home.status, home.location.as_deref()),
        (303, Some("/sign-in"))
    );
    let refused = post(&api, "/sign-in", "token=mt_nonsense", &[]).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("unknown or revoked"),
        "{}",
        refused.body
    );

    let signed_in = post(&api, "/sign-in", &format!("token={creator}"), &[]).await;
    assert_eq!(
        (signed_in.status, signed_in.location.as_deref()),
        (303, Some("/projects/7"))
    );
    let cookie = signed_in.set_cookie.unwrap();
    for flag in [
        "mailtrail_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let over_tls = post(
        &api,
        "/sign-in",
        &format!("token={creator}"),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(over_tls.set_cookie.unwrap().contains("Secure"));
    let forged = post(
        &api,
        "/sign-in",
        &format!("token={creator}"),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(forged.status, 403);

    let page = get(&api, "/projects/7", Some(&creator)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<h1>Project 7</h1>"));
    let other = get(&api, "/projects/8", Some(&creator)).await;
    assert_eq!(other.status, 403);
    assert!(other.body.contains("No access") && other.body.contains("project 7"));
    assert_eq!(get(&api, "/overview", Some(&creator)).await.status, 403);
    assert_eq!(
        get(&api, "/messages/b1@mg.example.com", Some(&creator))
            .await
            .status,
        404
    );

    let session = format!("mailtrail_session={creator}");
    let no_csrf = post(&api, "/sign-out", "csrf=0", &[("cookie", &session)]).await;
    assert_eq!(no_csrf.status, 403);
    let csrf = csrf_of(&page.body);
    let signed_out = post(
        &api,
        "/sign-out",
        &format!("csrf={csrf}"),
        &[("cookie", &session)],
    )
    .await;
    assert_eq!(
        (signed_out.status, signed_out.location.as_deref()),
        (303, Some("/sign-in?problem=signed-out"))
    );
    assert!(signed_out.set_cookie.unwrap().contains("Max-Age=0"));

    api.revoke("creator-7").await;
    let expired = get(&api, "/projects/7", Some(&creator)).await;
    assert_eq!(
        (expired.status, expired.location.as_deref()),
        (303, Some("/sign-in?problem=expired"))
    );
    let explained = get(&api, "/sign-in?problem=expired", None).await;
    assert!(explained.body.contains("no longer valid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_pages_say_what_to_do_and_email_text_is_escaped() {
    let api = start_with_hostile_subject().await;
    let staff = api.token("staff", TokenScope::All).await;

    let empty = get(&api, "/projects/99", Some(&staff)).await;
    assert_eq!(empty.status, 200);
    for hint in [
        "No email recorded yet",
        "/webhooks/mailgun",
        "MAILTRAIL_SIGNING_KEYS",
    ] {
        assert!(empty.body.contains(hint), "{hint} missing");
    }
    let quiet = get(
        &api,
        "/projects/7?since=2020-01-01&until=2020-01-05",
        Some(&staff),
    )
    .await;
    assert!(
        quiet
            .body
            .contains("No message of this project was sent in this range")
    );
    let bad = get(&api, "/projects/7?since=yesterday", Some(&staff)).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("since: expected a date"), "{}", bad.body);

    let range = "since=2025-11-18&until=2025-11-30";
    let project = get(&api, &format!("/projects/7?{range}"), Some(&staff)).await;
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
    assert!(project.body.contains(escaped));
    assert!(!project.body.contains(HOSTILE_SUBJECT));
    let backer = get(&api, "/backers/44", Some(&staff)).await;
    assert!(backer.body.contains(escaped));
    assert!(!backer.body.contains(HOSTILE_SUBJECT));

    let overview = get(&api, &format!("/overview?{range}"), Some(&staff)).await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("<strong>6</strong> messages"));
    // The rankings' figures come from the counters, as each project's own report.
    let mut connection = api.database().connect().await;
    let standings = mailtrail_store::standings::project_standings(&mut connection, None, None, 2)
        .await
        .unwrap();
    let figures: Vec<(i64, u64, String)> = standings
        .iter()
        .map(|standing| {
            let rate = standing.group.bounce_rate_percent.unwrap().to_string();
            (standing.project_id, standing.group.total, rate)
        })
        .collect();
    assert_eq!(
        figures,
        [(7, 5, "20.0%".to_owned())],
        "project 8 has 1 message"
    );
    let jump = get(&api, "/projects?project_id=7", Some(&staff)).await;
    assert_eq!(jump.location.as_deref(), Some("/projects/7"));
    let stylesheet = get(&api, "/static/dashboard.css", None).await;
    assert!(stylesheet.body.contains("@media"));
}
