//! `POST /v1/conversions` through the real API, queue and worker: reports are queued and stored
//! once, a project token reports for its project alone, bad input is a 400 naming the field and
//! queues nothing, Redis down is a 503 that queues nothing, and every conversion is credited to
//! the right email (click over open over none, window edges, machines ignored, late clicks and
//! late conversions) with the statistics counting it.

use mailtrail_api::{ApiConfig, Application};
use mailtrail_core::sample::{SampleEvent, SampleKind};
use mailtrail_store::conversions::{StoredConversion, all_conversions};
use mailtrail_store::tokens::{TokenScope, create_token};
use mailtrail_testing::{PrivateRedis, TestApp};
use serde_json::{Value, json};

/// 2025-11-20 00:00 UTC.
const NOV20: i64 = 1_763_596_800;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// The receiver and worker on a fresh database and Redis prefix, and the API on both.
struct Conversions {
    app: TestApp,
    api_url: String,
    token: String,
}

impl Conversions {
    async fn start() -> Self {
        let app = TestApp::builder().build().await;
        let redis_url = app.redis().url().to_owned();
        let api_url = start_api(&app, &redis_url).await;
        let mut connection = app.database().connect().await;
        let token = create_token(&mut connection, "platform", TokenScope::All)
            .await
            .unwrap();
        Self {
            app,
            api_url,
            token,
        }
    }

    /// `POST /v1/conversions` with `body` and `token`: the status and the JSON answer.
    async fn post(&self, body: &Value, token: &str) -> (u16, Value) {
        post(&self.app, &self.api_url, body, token).await
    }

    /// Reports `body` with the unscoped token, which must be queued, and waits for the worker.
    async fn report(&mut self, body: Value) {
        let (status, answer) = self.post(&body, &self.token.clone()).await;
        assert_eq!(status, 202, "{answer}");
        self.app.drain().await;
    }

    /// An email event, through the signed webhook, written by the worker.
    async fn email(&mut self, kind: SampleKind, message: &str, at: i64, bot: bool) {
        self.email_of(kind, message, at, bot, (42, 7), "Reminder")
            .await;
    }

    async fn email_of(
        &mut self,
        kind: SampleKind,
        message: &str,
        at: i64,
        bot: bool,
        (backer, project): (i64, i64),
        subject: &str,
    ) {
        let mut data = SampleEvent {
            kind,
            message_id: message,
            recipient: "backer@example.com",
            timestamp: at as f64,
            backer_id: Some(backer),
            project_id: Some(project),
            subject,
        }
        .event_data();
        if bot {
            data["client-info"]["bot"] = "generic".into();
        }
        let status = self
            .app
            .post("application/json", self.app.signed_json(data))
            .await;
        assert_eq!(status, 200);
        self.app.drain().await;
    }

    async fn stored(&self) -> Vec<StoredConversion> {
        let mut connection = self.app.database().connect().await;
        all_conversions(&mut connection).await.unwrap()
    }

    /// `(id, attributed_by, credited message)` of every stored conversion.
    async fn credits(&self) -> Vec<(String, String, Option<String>)> {
        self.stored()
            .await
            .into_iter()
            .map(|c| (c.conversion_id, c.attributed_by, c.credited_message_id))
            .collect()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .app
            .client()
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }
}

async fn start_api(app: &TestApp, redis_url: &str) -> String {
    let env = envy::from_iter(
        [
            ("DATABASE_URL", app.database().url()),
            ("REDIS_URL", redis_url),
            ("MAILTRAIL_REDIS_PREFIX", app.redis().prefix()),
            ("MAILTRAIL_API_BIND", "127.0.0.1:0"),
            ("MAILTRAIL_API_METRICS_BIND", ""),
            ("MAILTRAIL_API_POOL_SIZE", "2"),
            ("MAILTRAIL_HTTP_WORKERS", "1"),
            ("MAILTRAIL_REDIS_TIMEOUT_MS", "500"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    )
    .unwrap();
    let api = Application::build(ApiConfig::from_vars(env).unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", api.port());
    tokio::spawn(api.run_until_stopped());
    url
}

async fn post(app: &TestApp, api_url: &str, body: &Value, token: &str) -> (u16, Value) {
    let response = app
        .client()
        .post(format!("{api_url}/v1/conversions"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, answer)
}

/// A pledge of backer 42 to project 7 at `at`.
fn pledge(id: &str, at: i64) -> Value {
    conversion(id, 42, 7, at)
}

fn conversion(id: &str, backer: i64, project: i64, at: i64) -> Value {
    let occurred_at = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    json!({"id": id, "backer_id": backer, "project_id": project, "kind": "pledge",
           "occurred_at": occurred_at, "value_cents": 2500})
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_single_and_batched_are_stored_once_per_id() {
    let mut test = Conversions::start().await;
    test.report(pledge("p-1", NOV20)).await;
    test.report(json!([
        pledge("p-2", NOV20),
        pledge("p-1", NOV20),
        pledge("p-3", NOV20)
    ]))
    .await;
    // A retry of the whole report, long after.
    test.report(json!([pledge("p-2", NOV20), pledge("p-3", NOV20)]))
        .await;
    let ids: Vec<_> = test
        .stored()
        .await
        .into_iter()
        .map(|c| c.conversion_id)
        .collect();
    assert_eq!(ids, ["p-1", "p-2", "p-3"]);
    // The same id in another project is another conversion.
    test.report(conversion("p-1", 42, 8, NOV20)).await;
    assert_eq!(test.stored().await.len(), 4);

    let stats = test.get("/v1/projects/7/stats").await;
    let group = &stats["groups"][0];
    assert_eq!(group["conversions_unattributed"], 3);
    assert_eq!(group["conversions_by_click"], 0);
    assert_eq!(group["conversion_value_cents"], 7500);
    assert_eq!(
        test.get("/v1/stats").await["groups"][0]["conversions_unattributed"],
        4
    );
    assert_eq!(
        test.get("/v1/backers/42/stats").await["groups"][0]["conversion_value_cents"],
        10_000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_token_reports_for_its_project_alone_and_a_token_is_required() {
    let test = Conversions::start().await;
    let mut connection = test.app.database().connect().await;
    let creator = create_token(&mut connection, "creator-7", TokenScope::Project(7))
        .await
        .unwrap();
    let (status, answer) = test
        .post(
            &json!([pledge("a", NOV20), conversion("b", 42, 8, NOV20)]),
            &creator,
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("project 7"));
    let (status, _) = test.post(&pledge("a", NOV20), "mt_unknown").await;
    assert_eq!(status, 401);
    assert_eq!(test.app.redis().queued().backlog, 0, "nothing was queued");

    let (status, answer) = test.post(&pledge("a", NOV20), &creator).await;
    assert_eq!((status, answer["queued"].as_u64()), (202, Some(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_400_naming_the_field_and_queues_nothing() {
    let test = Conversions::start().await;
    let token = test.token.clone();
    let with = |field: &str, value: Value| {
        let mut body = pledge("x", NOV20);
        body[field] = value;
        body
    };
    let mut without_kind = pledge("x", NOV20);
    without_kind.as_object_mut().unwrap().remove("kind");
    let too_many: Vec<Value> = (0..1001).map(|i| pledge(&i.to_string(), NOV20)).collect();
    for (body, field) in [
        (with("backer_id", json!("forty-two")), "backer_id"),
        (with("project_id", json!(null)), "project_id"),
        (with("id", json!("")), "id"),
        (with("occurred_at", json!("last tuesday")), "occurred_at"),
        (
            with("occurred_at", json!("2099-01-01T00:00:00Z")),
            "occurred_at",
        ),
        (with("value_cents", json!(-5)), "value_cents"),
        (with("value_cents", json!("a lot")), "value_cents"),
        (without_kind, "kind"),
        (
            json!([pledge("ok", NOV20), with("backer_id", json!(1.5))]),
            "conversion 1",
        ),
        (json!([]), "1 to 1000"),
        (json!(too_many), "1 to 1000"),
        (json!("a pledge"), "body"),
    ] {
        let (status, answer) = test.post(&body, &token).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(field), "{field}: {error}");
    }
    assert_eq!(test.app.redis().queued().backlog, 0);
    assert!(test.stored().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_a_503_and_nothing_is_queued_or_written() {
    let app = TestApp::builder().worker(false).build().await;
    let mut redis = PrivateRedis::start();
    let api_url = start_api(&app, &redis.url()).await;
    let mut connection = app.database().connect().await;
    let token = create_token(&mut connection, "platform", TokenScope::All)
        .await
        .unwrap();
    redis.stop();
    let (status, answer) = post(&app, &api_url, &pledge("p", NOV20), &token).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("retry"));
    assert!(all_conversions(&mut connection).await.unwrap().is_empty());

    // Back up: the same report is taken, and the queue holds exactly it.
    redis.restart();
    let (status, _) = post(&app, &api_url, &pledge("p", NOV20), &token).await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversion_goes_to_the_latest_human_click_else_open_else_none() {
    use SampleKind::{Clicked, Delivered, Opened};
    let mut test = Conversions::start().await;
    for message in ["a@x", "b@x", "c@x"] {
        test.email(Delivered, message, NOV20, false).await;
    }
    // a: opened by a person on day 0; b: clicked by a machine on day 1 (ignored); c: clicked
    // by a person on day 2, then b opened by a person on day 3.
    test.email(Opened, "a@x", NOV20 + HOUR, false).await;
    test.email(Clicked, "b@x", NOV20 + DAY, true).await;
    test.email(Clicked, "c@x", NOV20 + 2 * DAY, false).await;
    test.email(Opened, "b@x", NOV20 + 3 * DAY, false).await;
    // Backer 43 only opened its email of another subject.
    test.email_of(Delivered, "d@x", NOV20, false, (43, 7), "Update")
        .await;
    test.email_of(Opened, "d@x", NOV20 + HOUR, false, (43, 7), "Update")
        .await;

    test.report(json!([
        // Before any engagement: none.
        pledge("before", NOV20 + 30 * 60),
        // Only an open in the window: the open.
        pledge("after-open", NOV20 + 2 * HOUR),
        // The bot click on b is no click; the open on a is the latest human engagement.
        pledge("after-bot-click", NOV20 + DAY + HOUR),
        // The click on c beats the later open on b.
        pledge("click-beats-open", NOV20 + 4 * DAY),
        // Exactly the window after c's click: still c's; a second later: b's open (day 3).
        pledge("window-edge", NOV20 + 9 * DAY),
        pledge("window-edge+1s", NOV20 + 9 * DAY + 1),
        // Past every window: none.
        pledge("long-after", NOV20 + 30 * DAY),
        conversion("other-backer", 43, 7, NOV20 + DAY),
    ]))
    .await;
    let credit = |by: &str, message: Option<&str>| (by.to_owned(), message.map(str::to_owned));
    let credits: std::collections::BTreeMap<_, _> = test
        .credits()
        .await
        .into_iter()
        .map(|(id, by, message)| (id, (by, message)))
        .collect();
    assert_eq!(credits["before"], credit("none", None));
    assert_eq!(credits["after-open"], credit("open", Some("a@x")));
    assert_eq!(credits["after-bot-click"], credit("open", Some("a@x")));
    assert_eq!(credits["click-beats-open"], credit("click", Some("c@x")));
    assert_eq!(credits["window-edge"], credit("click", Some("c@x")));
    assert_eq!(credits["window-edge+1s"], credit("open", Some("b@x")));
    assert_eq!(credits["long-after"], credit("none", None));
    assert_eq!(credits["other-backer"], credit("open", Some("d@x")));

    let by_subject = test.get("/v1/projects/7/stats?by=subject").await;
    let groups = by_subject["groups"].as_array().unwrap();
    let group = |subject: Value| {
        groups
            .iter()
            .find(|group| group["subject"] == subject)
            .unwrap_or_else(|| panic!("no group {subject}: {by_subject}"))
    };
    let reminder = group("Reminder".into());
    assert_eq!(reminder["conversions_by_click"], 2);
    assert_eq!(reminder["conversions_by_open"], 3);
    // 5 attributed conversions of 3 delivered messages.
    assert_eq!(reminder["conversion_rate_percent"], 166.7);
    assert_eq!(group("Update".into())["conversions_by_open"], 1);
    assert_eq!(group(Value::Null)["conversions_unattributed"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_click_takes_the_credit_and_a_late_conversion_finds_its_click() {
    use SampleKind::{Clicked, Delivered, Opened};
    let mut test = Conversions::start().await;
    test.email(Delivered, "a@x", NOV20, false).await;
    test.email(Opened, "a@x", NOV20 + HOUR, false).await;
    test.report(pledge("early-report", NOV20 + DAY)).await;
    assert_eq!(
        test.credits().await,
        [("early-report".into(), "open".into(), Some("a@x".into()))]
    );
    // The click happened before the pledge but arrives after it (a backfill, days later).
    test.email(Delivered, "b@x", NOV20, false).await;
    test.email(Clicked, "b@x", NOV20 + 2 * HOUR, false).await;
    assert_eq!(
        test.credits().await,
        [("early-report".into(), "click".into(), Some("b@x".into()))]
    );
    // A pledge reported late finds the click that came before it.
    test.report(pledge("late-report", NOV20 + 3 * DAY)).await;
    let stats = test.get("/v1/projects/7/stats").await;
    assert_eq!(stats["groups"][0]["conversions_by_click"], 2);
    assert_eq!(stats["groups"][0]["conversions_by_open"], 0);
}
