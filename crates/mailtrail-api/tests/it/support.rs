//! The stories, put in through the real receiver and worker, and the API on port 0.
//!
//! | message | backer | project | subject | events (day, UTC) | status |
//! |---|---|---|---|---|---|
//! | a1 | 42 | 7 | Your pledge | accepted, delivered (11-20), opened, clicked | delivered |
//! | a2 | 42 | 7 | Your pledge | accepted, failed permanent (11-20) | bounced |
//! | a3 | 43 | 7 | Update | delivered (11-21), machine open | delivered |
//! | a4 | 43 | 7 | Update | accepted, complained (11-22) | complained |
//! | b1 | 42 | 8 | Other | delivered (11-21) | delivered |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mailtrail_api::{ApiConfig, Application};
use mailtrail_core::SigningKey;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_store::tokens::{TokenScope, create_token, revoke_token};
use mailtrail_testing::{TestDatabase, TestRedis};
use serde_json::Value;

const SIGNING_KEY: &str = "api-test-signing-key";
/// 2025-11-20 00:00 UTC.
const NOV20: f64 = 1_763_596_800.0;
const DAY: f64 = 86_400.0;

/// The API with its data and a client.
pub struct TestApi {
    pub database: TestDatabase,
    _redis: TestRedis,
    pub base_url: String,
    pub metrics_url: String,
    client: reqwest::Client,
}

/// An answer: status, headers of interest, and the JSON body.
pub struct Answer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: Value,
}

fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    token_from_seed(&format!(
        "api-{}-{:?}-{}",
        std::process::id(),
        Instant::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn vars<const N: usize>(pairs: [(&str, &str); N]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

impl TestApi {
    /// Puts the stories in through the receiver and the worker, then starts the API.
    pub async fn start() -> Self {
        let database = TestDatabase::create().await;
        let redis = TestRedis::new();
        let receiver_env = envy::from_iter(vars([
            ("REDIS_URL", redis.url()),
            ("MAILTRAIL_SIGNING_KEYS", SIGNING_KEY),
            ("MAILTRAIL_BIND", "127.0.0.1:0"),
            ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
            ("MAILTRAIL_HTTP_WORKERS", "1"),
            ("MAILTRAIL_METRICS_BIND", ""),
        ]))
        .unwrap();
        let receiver = mailtrail_receiver::Application::build(
            mailtrail_receiver::ReceiverConfig::from_vars(receiver_env).unwrap(),
        )
        .await
        .unwrap();
        let receiver_url = format!("http://127.0.0.1:{}/webhooks/mailgun", receiver.port());
        tokio::spawn(receiver.run_until_stopped());
        let client = reqwest::Client::new();
        for event_data in stories() {
            let body = signed_json(
                &SigningKey::new(SIGNING_KEY),
                chrono::Utc::now().timestamp(),
                &fresh_token(),
                event_data,
            );
            let status = client
                .post(&receiver_url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "the receiver refused a story's event");
        }

        let worker_env = envy::from_iter(vars([
            ("DATABASE_URL", database.url()),
            ("REDIS_URL", redis.url()),
            ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
            ("MAILTRAIL_WORKER_ID", "api-test-worker"),
            ("MAILTRAIL_CLAIM_BLOCK_MS", "100"),
            ("MAILTRAIL_MIGRATE", "false"),
            ("MAILTRAIL_METRICS_BIND", ""),
        ]))
        .unwrap();
        let (_stop, shutdown) = mailtrail_worker::shutdown::channel();
        let mut worker = mailtrail_worker::Worker::start(
            mailtrail_worker::WorkerConfig::from_vars(worker_env).unwrap(),
            shutdown,
        )
        .await
        .unwrap();
        while let Some(outcome) = worker.process_next_batch().await.unwrap() {
            assert_eq!(outcome.dead, 0, "{outcome:?}");
        }
        worker.release().await.unwrap();

        let metrics_port = mailtrail_testing::free_port();
        let metrics_bind = format!("127.0.0.1:{metrics_port}");
        let api_env = envy::from_iter(vars([
            ("DATABASE_URL", database.url()),
            ("MAILTRAIL_API_BIND", "127.0.0.1:0"),
            ("MAILTRAIL_API_METRICS_BIND", &metrics_bind),
            ("MAILTRAIL_API_POOL_SIZE", "4"),
            ("MAILTRAIL_HTTP_WORKERS", "2"),
        ]))
        .unwrap();
        let api = Application::build(ApiConfig::from_vars(api_env).unwrap())
            .await
            .unwrap();
        let base_url = format!("http://127.0.0.1:{}", api.port());
        tokio::spawn(api.run_until_stopped());
        Self {
            database,
            _redis: redis,
            base_url,
            metrics_url: format!("http://{metrics_bind}/metrics"),
            client,
        }
    }

    /// A new token with `scope`.
    pub async fn token(&self, name: &str, scope: TokenScope) -> String {
        let mut connection = self.database.connect().await;
        create_token(&mut connection, name, scope).await.unwrap()
    }

    /// Revokes the token named `name`.
    pub async fn revoke(&self, name: &str) {
        let mut connection = self.database.connect().await;
        assert!(revoke_token(&mut connection, name).await.unwrap());
    }

    /// `GET path` with `token` (none when `None`).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
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
        self.client
            .get(&self.metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
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
