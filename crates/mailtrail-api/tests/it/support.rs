//! The stories, put in through the real receiver and worker, and the API on port 0.
//!
//! | message | backer | project | subject | events (day, UTC) | status |
//! |---|---|---|---|---|---|
//! | a1 | 42 | 7 | Your pledge | accepted, delivered (11-20), opened, clicked | delivered |
//! | a2 | 42 | 7 | Your pledge | accepted, failed permanent (11-20) | bounced |
//! | a3 | 43 | 7 | Update | delivered (11-21), machine open | delivered |
//! | a4 | 43 | 7 | Update | accepted, complained (11-22) | complained |
//! | b1 | 42 | 8 | Other | delivered (11-21) | delivered |

use mailtrail_api::{ApiConfig, Application};
use mailtrail_core::sample::{SampleEvent, SampleKind};
use mailtrail_store::tokens::{TokenScope, create_token, revoke_token};
use mailtrail_testing::{TestApp, TestDatabase, scrape};
use serde_json::Value;

/// 2025-11-20 00:00 UTC.
pub const NOV20: f64 = 1_763_596_800.0;
pub const DAY: f64 = 86_400.0;

/// The API with its data, and the receiver and worker that put it in.
pub struct TestApi {
    app: TestApp,
    pub base_url: String,
    pub metrics_url: String,
}

/// An answer: status, headers of interest, and the JSON body.
pub struct Answer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: Value,
}

impl TestApi {
    /// Puts the stories in through the receiver and the worker, then starts the API.
    pub async fn start() -> Self {
        let mut app = TestApp::builder().worker(false).build().await;
        put_in(&mut app, stories()).await;

        let metrics_port = mailtrail_testing::free_port();
        let metrics_bind = format!("127.0.0.1:{metrics_port}");
        // The API queues reported conversions on the test's own Redis prefix.
        let redis_env = app.redis().env();
        let api_env = envy::from_iter(
            [
                ("DATABASE_URL", app.database().url()),
                ("MAILTRAIL_API_BIND", "127.0.0.1:0"),
                ("MAILTRAIL_API_METRICS_BIND", &metrics_bind),
                ("MAILTRAIL_API_POOL_SIZE", "4"),
                ("MAILTRAIL_HTTP_WORKERS", "2"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .into_iter()
            .chain(
                redis_env
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value)),
            ),
        )
        .unwrap();
        let api = Application::build(ApiConfig::from_vars(api_env).unwrap())
            .await
            .unwrap();
        let base_url = format!("http://127.0.0.1:{}", api.port());
        tokio::spawn(api.run_until_stopped());
        Self {
            app,
            base_url,
            metrics_url: format!("http://{metrics_bind}/metrics"),
        }
    }

    /// Puts more events (Mailgun `event-data`) in through the receiver and the worker.
    pub async fn put_in(&mut self, events: Vec<Value>) {
        put_in(&mut self.app, events).await;
    }

    /// Reports conversions (one or an array) through `POST /v1/conversions` with `token`, which
    /// must queue them, and lets the worker store and credit them.
    pub async fn report_conversions(&mut self, body: Value, token: &str) {
        let response = self
            .app
            .client()
            .post(format!("{}/v1/conversions", self.base_url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 202, "{}", response.text().await.unwrap());
        work_off(&mut self.app).await;
    }

    /// The database the API reads.
    pub fn database(&self) -> &TestDatabase {
        self.app.database()
    }

    /// A new token with `scope`.
    pub async fn token(&self, name: &str, scope: TokenScope) -> String {
        let mut connection = self.database().connect().await;
        create_token(&mut connection, name, scope).await.unwrap()
    }

    /// Revokes the token named `name`.
    pub async fn revoke(&self, name: &str) {
        let mut connection = self.database().connect().await;
        assert!(revoke_token(&mut connection, name).await.unwrap());
    }

    /// `GET path` with `token` (none when `None`).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.app.client().get(format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("GET {path}: not JSON ({status}): {text}"));
        Answer {
            status,
            www_authenticate,
            body,
        }
    }

    /// `GET path` with `token`, which must answer 200; the body.
    pub async fn ok(&self, path: &str, token: &str) -> Value {
        let answer = self.get(path, Some(token)).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        answer.body
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        scrape(&self.metrics_url).await
    }
}

async fn put_in(app: &mut TestApp, events: Vec<Value>) {
    for event_data in events {
        let status = app
            .post("application/json", app.signed_json(event_data))
            .await;
        assert_eq!(status, 200, "the receiver refused a story's event");
    }
    work_off(app).await;
}

/// Lets a worker write everything queued, none of it a dead letter.
async fn work_off(app: &mut TestApp) {
    let mut worker = app.driven_worker().await;
    while let Some(outcome) = worker.process_next_batch().await.unwrap() {
        assert_eq!(outcome.dead, 0, "{outcome:?}");
    }
    worker.release().await.unwrap();
}

fn event<'a>(
    kind: SampleKind,
    message_id: &'a str,
    at: f64,
    (backer, project): (i64, i64),
    subject: &'a str,
) -> SampleEvent<'a> {
    SampleEvent {
        kind,
        message_id,
        recipient: "backer@example.com",
        timestamp: at,
        backer_id: Some(backer),
        project_id: Some(project),
        subject,
    }
}

fn stories() -> Vec<Value> {
    use SampleKind::*;
    let (pledge, update, other) = ("Your pledge", "Update", "Other");
    // Apple's Mail Privacy Protection fetches the pixel: a machine open.
    let mut machine_open = event(
        Opened,
        "a3@mg.example.com",
        NOV20 + DAY + 600.0,
        (43, 7),
        update,
    )
    .event_data();
    machine_open["client-info"]["bot"] = "apple".into();
    let events = [
        event(
            Accepted,
            "a1@mg.example.com",
            NOV20 + 100.0,
            (42, 7),
            pledge,
        ),
        event(
            Delivered,
            "a1@mg.example.com",
            NOV20 + 105.0,
            (42, 7),
            pledge,
        ),
        event(
            Opened,
            "a1@mg.example.com",
            NOV20 + 3_600.0,
            (42, 7),
            pledge,
        ),
        event(
            Clicked,
            "a1@mg.example.com",
            NOV20 + 3_700.0,
            (42, 7),
            pledge,
        ),
        event(
            Accepted,
            "a2@mg.example.com",
            NOV20 + 200.0,
            (42, 7),
            pledge,
        ),
        event(Bounced, "a2@mg.example.com", NOV20 + 210.0, (42, 7), pledge),
        event(
            Delivered,
            "a3@mg.example.com",
            NOV20 + DAY + 100.0,
            (43, 7),
            update,
        ),
        event(
            Accepted,
            "a4@mg.example.com",
            NOV20 + 2.0 * DAY + 10.0,
            (43, 7),
            update,
        ),
        event(
            Complained,
            "a4@mg.example.com",
            NOV20 + 2.0 * DAY + 900.0,
            (43, 7),
            update,
        ),
        event(
            Delivered,
            "b1@mg.example.com",
            NOV20 + DAY + 50.0,
            (42, 8),
            other,
        ),
    ];
    let mut data: Vec<Value> = events.iter().map(SampleEvent::event_data).collect();
    data.push(machine_open);
    data
}
