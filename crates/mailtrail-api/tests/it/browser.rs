//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver,
//! started here on a free port), against the API on port 0 with the stories put in through the
//! real receiver and worker, and pledges reported through `POST /v1/conversions`. It signs in as a
//! person would, checks the figures they see (the funnel down to conversions) against the
//! stories, follows links to a timeline, is refused another project, sees a hostile subject
//! as text, finds one chart point per day, and saves screenshots of the main pages under
//! `target/screenshots/`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the test says what to install and
//! passes, except on CI (`CI` set), where a missing browser fails the run.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mailtrail_store::tokens::TokenScope;
use serde_json::json;

use crate::dashboard::{HOSTILE_SUBJECT, start_with_hostile_subject};
use crate::support::{DAY, NOV20};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The week of the stories (2025-11-20 to 22), with quiet days either side.
const WEEK: &str = "since=2025-11-18&until=2025-11-24";

/// chromedriver, and the browser profile it used, removed when the test ends.
struct Driver {
    process: Child,
    profile: PathBuf,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = mailtrail_testing::free_port();
        // A process group of its own, which the browsers it starts join: a failing test, which
        // never closes its session, still ends them all on drop.
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(mailtrail_testing::unique_name("chromium"));
        Self {
            process,
            profile,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,2200",
                    format!("--user-data-dir={}", self.profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("open a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Whether the browser is here; on CI its absence fails the run.
fn browser_installed() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
    );
    eprintln!(
        "note: the dashboard's browser test did not run: install the browser with \
         `apt-get install chromium chromium-driver` (or run `just test` as root, which does)"
    );
    false
}

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"))
        .text()
        .await
        .unwrap()
}

async fn count(browser: &Client, css: &str) -> usize {
    browser.find_all(Locator::Css(css)).await.unwrap().len()
}

/// The funnel's steps as "label count".
async fn funnel(browser: &Client) -> Vec<String> {
    let mut steps = Vec::new();
    for step in browser
        .find_all(Locator::Css("#funnel g.step"))
        .await
        .unwrap()
    {
        let label = step.attr("data-step").await.unwrap().unwrap();
        let count = step.attr("data-count").await.unwrap().unwrap();
        steps.push(format!("{label} {count}"));
    }
    steps
}

/// A pledge of 25.00 to project 7 as the application reports it, `at` seconds since the epoch.
fn pledge(id: &str, backer: i64, at: f64) -> serde_json::Value {
    let occurred_at = chrono::DateTime::from_timestamp(at as i64, 0)
        .unwrap()
        .to_rfc3339();
    json!({"id": id, "backer_id": backer, "project_id": 7, "kind": "pledge",
           "occurred_at": occurred_at, "value_cents": 2500})
}

/// When backer 42 clicked a1 (project 7), as the stories say: the one click by a person.
const A1_CLICKED: f64 = NOV20 + 3_700.0;

/// The path and query the browser is at, once it got there after a click.
async fn arrived_at(browser: &Client, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return url.query().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "at {url}, expected {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    arrived_at(browser, "/sign-in").await;
    let field = browser.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    browser
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_creator_sees_the_stories_in_a_real_browser() {
    if !browser_installed() {
        return;
    }
    let mut api = start_with_hostile_subject().await;
    let creator = api.token("creator-7", TokenScope::Project(7)).await;
    let staff = api.token("staff", TokenScope::All).await;
    // The application reports four pledges to project 7; the worker credits them (window: the
    // default 7 days before a pledge).
    api.report_conversions(
        json!([
            // Backer 42, a day and two days after clicking a1: both credited to a1 by click.
            pledge("p-42-a", 42, A1_CLICKED + DAY),
            pledge("p-42-b", 42, A1_CLICKED + 2.0 * DAY),
            // Backer 43 (11-22): its only open, of a3, was a machine's; a4 was never opened by
            // a person. Credited to no email.
            pledge("p-43", 43, NOV20 + 2.0 * DAY + 3_600.0),
            // Backer 42 again, a second past the window after the click (11-27, after the week
            // below): credited to no email.
            pledge("p-42-late", 42, A1_CLICKED + 7.0 * DAY + 1.0),
        ]),
        &staff,
    )
    .await;
    let base = api.base_url.clone();
    let driver = Driver::start();
    let browser = driver.browser().await;

    // Signing in lands on the project's page, with a cookie scripts cannot read.
    sign_in(&browser, &base, &creator).await;
    arrived_at(&browser, "/projects/7").await;
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == "mailtrail_session")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|same_site| same_site.to_string()),
        Some("Strict".to_owned())
    );

    // The week of the stories: 4 messages of project 7 (a1 delivered, opened and clicked; a2
    // bounced; a3 delivered and opened by a machine; a4 complained), and the pledges p-42-a,
    // p-42-b and p-43 (p-42-late falls after the week).
    browser
        .goto(&format!("{base}/projects/7?{WEEK}"))
        .await
        .unwrap();
    assert!(text(&browser, "#total").await.starts_with("4 messages"));
    for (rate, shown) in [
        ("delivery", "75.0%"),
        ("bounce", "25.0%"),
        ("complaint", "33.3%"),
        ("open", "33.3%"),
        ("click", "33.3%"),
        // p-42-a and p-42-b, credited, of the 3 delivered messages.
        ("conversion", "66.7%"),
    ] {
        assert_eq!(
            text(&browser, &format!("#rate-{rate} .value")).await,
            shown,
            "{rate}"
        );
    }
    assert!(
        text(&browser, "#rate-open .detail")
            .await
            .contains("1 by machines")
    );
    assert_eq!(
        text(&browser, "#status-mix tr[data-status=delivered]").await,
        "delivered 2 50.0%"
    );
    assert_eq!(
        text(&browser, "#rate-conversion .detail").await,
        "2 by click, 0 by open, 1 unattributed; value 75.00"
    );
    // Converted counts the week's credited pledges: p-42-a and p-42-b (after backer 42's click
    // on a1); p-43 is credited to no email, so it is no step of the funnel.
    assert_eq!(
        funnel(&browser).await,
        [
            "sent 4",
            "delivered 3",
            "opened 1",
            "clicked 1",
            "converted 2"
        ]
    );

    // The chart: one point per day of the range on each of its four lines.
    let chart = browser
        .find(Locator::Css("#daily-chart svg"))
        .await
        .unwrap();
    assert_eq!(chart.attr("data-days").await.unwrap().as_deref(), Some("7"));
    assert_eq!(count(&browser, "#daily-chart .series.sent circle").await, 7);
    assert_eq!(count(&browser, "#daily-chart circle").await, 28);
    assert_eq!(
        count(&browser, "#daily-chart circle[data-day='2025-11-20']").await,
        4
    );

    // By subject, then sorted by subject with a click on its heading.
    let subjects = || async {
        let mut rows = Vec::new();
        for cell in browser
            .find_all(Locator::Css("#subjects tbody td.subject"))
            .await
            .unwrap()
        {
            rows.push(cell.text().await.unwrap());
        }
        rows
    };
    assert_eq!(subjects().await, ["Update", "Your pledge"]);
    browser
        .find(Locator::Css("#subjects a[data-sort=subject]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let query = arrived_at(&browser, "/projects/7").await;
    assert!(query.contains("sort=subject&dir=asc"), "{query}");
    assert_eq!(subjects().await, ["Update", "Your pledge"]);
    browser
        .find(Locator::Css("#subjects a[data-sort=subject]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while subjects().await != ["Your pledge", "Update"] {
        assert!(Instant::now() < deadline, "not sorted descending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .goto(&format!("{base}/projects/7?{WEEK}"))
        .await
        .unwrap();
    screenshot(&browser, "project").await;
    // On a phone: nothing wider than the screen but the tables, which scroll in their own box.
    browser.set_window_size(390, 1400).await.unwrap();
    browser.refresh().await.unwrap();
    let widths = browser
        .execute(
            "return [document.body.scrollWidth, document.documentElement.clientWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (page, screen) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        page <= screen,
        "the page is {page} px wide on a {screen} px screen"
    );
    screenshot(&browser, "project-phone").await;
    browser.set_window_size(1280, 2200).await.unwrap();

    // A backer's messages (project 7's only), then a message's timeline.
    let field = browser
        .find(Locator::Css("#open-backer input"))
        .await
        .unwrap();
    field.send_keys("42").await.unwrap();
    browser
        .find(Locator::Id("open-backer-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrived_at(&browser, "/backers/42").await;
    assert_eq!(count(&browser, "#messages tbody tr").await, 2);
    screenshot(&browser, "backer").await;
    let delivered_row = browser
        .find(Locator::XPath(
            "//table[@id='messages']//tr[td[contains(., 'delivered')]]//a[@class='message-link']",
        ))
        .await
        .unwrap();
    delivered_row.click().await.unwrap();
    // The link encodes the id as a path segment (`@` and all).
    arrived_at(&browser, "/messages/a1%40mg.example.com").await;
    assert_eq!(text(&browser, "#message-id").await, "a1@mg.example.com");
    let kinds: Vec<String> = {
        let mut kinds = Vec::new();
        for line in browser
            .find_all(Locator::Css("#timeline li"))
            .await
            .unwrap()
        {
            kinds.push(line.attr("data-kind").await.unwrap().unwrap_or_default());
        }
        kinds
    };
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    screenshot(&browser, "message").await;
    // A machine's open is marked as such.
    browser
        .goto(&format!("{base}/messages/a3@mg.example.com"))
        .await
        .unwrap();
    assert_eq!(count(&browser, "#timeline li.bot-event").await, 1);
    assert!(
        text(&browser, "#timeline li.bot-event .bot")
            .await
            .contains("machine: apple")
    );

    // Another project is refused; its message does not exist for this token.
    browser.goto(&format!("{base}/projects/8")).await.unwrap();
    assert_eq!(text(&browser, "#error-title").await, "No access");
    browser
        .goto(&format!("{base}/messages/b1@mg.example.com"))
        .await
        .unwrap();
    assert_eq!(text(&browser, "#error-title").await, "Not found");

    // A hostile subject is shown as text, and no script ran.
    browser
        .goto(&format!(
            "{base}/projects/7?since=2025-11-18&until=2025-11-30"
        ))
        .await
        .unwrap();
    let shown = subjects().await;
    assert!(
        shown.iter().any(|subject| subject == HOSTILE_SUBJECT),
        "{shown:?}"
    );
    assert!(browser.get_alert_text().await.is_err(), "an alert opened");
    assert_eq!(count(&browser, "script").await, 0);

    // Signing out ends the session; the pages send the browser back to sign in.
    browser
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrived_at(&browser, "/sign-in").await;
    assert_eq!(text(&browser, "#problem").await, "You are signed out.");
    browser.goto(&format!("{base}/projects/7")).await.unwrap();
    arrived_at(&browser, "/sign-in").await;

    // A revoked token: signed out at the next page, with a clear reason.
    sign_in(&browser, &base, &creator).await;
    arrived_at(&browser, "/projects/7").await;
    api.revoke("creator-7").await;
    browser.refresh().await.unwrap();
    arrived_at(&browser, "/sign-in").await;
    assert!(text(&browser, "#problem").await.contains("no longer valid"));

    // Staff land on the overview of every project.
    sign_in(&browser, &base, &staff).await;
    arrived_at(&browser, "/overview").await;
    browser
        .goto(&format!(
            "{base}/overview?since=2025-11-18&until=2025-11-30"
        ))
        .await
        .unwrap();
    assert!(text(&browser, "#total").await.starts_with("6 messages"));
    // Every pledge is in this range: still the two credited ones converted; p-43 and
    // p-42-late are credited to no email.
    assert_eq!(funnel(&browser).await.last().unwrap(), "converted 2");
    assert_eq!(
        text(&browser, "#rate-conversion .detail").await,
        "2 by click, 0 by open, 2 unattributed; value 100.00"
    );
    screenshot(&browser, "overview").await;
    browser.goto(&format!("{base}/projects/99")).await.unwrap();
    assert!(
        text(&browser, "#empty-state")
            .await
            .contains("/webhooks/mailgun")
    );

    browser.close().await.unwrap();
    drop(driver);
}
