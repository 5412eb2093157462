//! Which events are one event, and which event times are believable, through the real receiver
//! and the real worker against a fresh database and a unique Redis prefix.
//!
//! The pipeline is built here rather than shared with the other end-to-end tests, so this file
//! stands on its own while those move.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::SigningKey;
use mailtrail_core::sample::{signed_form, signed_json, token_from_seed};
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_testing::{TestDatabase, TestRedis};
use mailtrail_worker::WorkerConfig;
use serde_json::json;

const SIGNING_KEY: &str = "identity-and-time-signing-key";
const WORKER_ID: &str = "identity-worker";

/// The receiver on port 0 and one worker, both in this process.
struct Pipeline {
    database: TestDatabase,
    redis: TestRedis,
    base_url: String,
    client: reqwest::Client,
    stop: Option<mailtrail_worker::StopHandle>,
    worker: Option<tokio::task::JoinHandle<Result<(), mailtrail_worker::WorkerError>>>,
}

impl Pipeline {
    async fn start() -> Self {
        let database = TestDatabase::create().await;
        let redis = TestRedis::new();
        let receiver_env = [
            ("REDIS_URL", redis.url()),
            ("MAILTRAIL_SIGNING_KEYS", SIGNING_KEY),
            ("MAILTRAIL_BIND", "127.0.0.1:0"),
            ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
            ("MAILTRAIL_HTTP_WORKERS", "1"),
        ];
        let receiver = Application::build(ReceiverConfig::from_vars(env(&receiver_env)).unwrap())
            .await
            .unwrap();
        let base_url = format!("http://127.0.0.1:{}", receiver.port());
        tokio::spawn(receiver.run_until_stopped());
        let worker_env = [
            ("DATABASE_URL", database.url()),
            ("REDIS_URL", redis.url()),
            ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
            ("MAILTRAIL_WORKER_ID", WORKER_ID),
            ("MAILTRAIL_CLAIM_BLOCK_MS", "100"),
            ("MAILTRAIL_LEASE_TTL_SECS", "3"),
            ("MAILTRAIL_MIGRATE", "false"),
            ("MAILTRAIL_METRICS_BIND", ""),
        ];
        let config = WorkerConfig::from_vars(env(&worker_env)).unwrap();
        let (stop, shutdown) = mailtrail_worker::shutdown::channel();
        let worker = tokio::spawn(mailtrail_worker::run(config, shutdown));
        Self {
            database,
            redis,
            base_url,
            client: reqwest::Client::new(),
            stop: Some(stop),
            worker: Some(worker),
        }
    }

    async fn post(&self, content_type: &str, body: Vec<u8>) -> u16 {
        self.client
            .post(format!("{}/webhooks/mailgun", self.base_url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until the backlog and the worker's processing list are empty.
    async fn wait_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self.redis.list("events").is_empty()
            && self
                .redis
                .list(&format!("processing:{WORKER_ID}"))
                .is_empty())
        {
            assert!(
                !self.worker.as_ref().unwrap().is_finished(),
                "the worker stopped"
            );
            assert!(Instant::now() < deadline, "the backlog did not drain");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().stop();
        self.worker.take().unwrap().await.unwrap().unwrap();
    }
}

fn env<T: serde::de::DeserializeOwned>(vars: &[(&str, &str)]) -> T {
    envy::from_iter(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    token_from_seed(&format!(
        "{}-{:?}-{}",
        std::process::id(),
        Instant::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn two_legacy_clicks_in_the_same_second_on_the_same_link_are_two_clicks() {
    let pipeline = Pipeline::start().await;
    let key = SigningKey::new(SIGNING_KEY);
    let signed_at = now_seconds();
    let click = |token: &str| {
        signed_form(
            &key,
            signed_at,
            token,
            &[
                ("event", "clicked"),
                ("recipient", "alice@example.com"),
                ("message-id", "legacy-clicks@mg.example.com"),
                ("url", "https://example.com/pledge"),
                ("backer_id", "42"),
                ("project_id", "7"),
            ],
        )
    };
    let form = "application/x-www-form-urlencoded";
    let (first, second) = (fresh_token(), fresh_token());
    assert_eq!(pipeline.post(form, click(&first)).await, 200);
    assert_eq!(pipeline.post(form, click(&second)).await, 200);
    // The first click delivered again with its own token is a duplicate, not a third click.
    assert_eq!(pipeline.post(form, click(&first)).await, 200);
    pipeline.wait_drained().await;

    let mut connection = pipeline.database.connect().await;
    let clicks: i64 = sent_emails::table
        .filter(sent_emails::message_id.eq("legacy-clicks@mg.example.com"))
        .select(sent_emails::clicked_count)
        .first(&mut connection)
        .await
        .unwrap();
    assert_eq!(clicks, 2);
    let stored: i64 = email_events::table
        .filter(email_events::kind.eq("clicked"))
        .count()
        .get_result(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert!(pipeline.redis.list("dead").is_empty());
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_dated_in_the_year_201609_is_dead_lettered_with_the_reason_not_stored() {
    let pipeline = Pipeline::start().await;
    let key = SigningKey::new(SIGNING_KEY);
    let delivered = |message_id: &str, at: f64| {
        signed_json(
            &key,
            now_seconds(),
            &fresh_token(),
            json!({"event": "delivered", "timestamp": at, "recipient": "alice@example.com",
                   "message": {"headers": {"message-id": message_id}},
                   "user-variables": {"backer_id": "42", "project_id": "7"}}),
        )
    };
    // Correctly signed now: only the event's own time is wrong, which the receiver never reads.
    let year_201609 = 6_300_000_000_000.0;
    let far = delivered("far-future@mg.example.com", year_201609);
    assert_eq!(pipeline.post("application/json", far).await, 200);
    let now = delivered("on-time@mg.example.com", now_seconds() as f64);
    assert_eq!(pipeline.post("application/json", now).await, 200);
    pipeline.wait_drained().await;

    let dead = pipeline.redis.list("dead");
    assert_eq!(dead.len(), 1);
    let letter: mailtrail_queue::DeadLetter = serde_json::from_str(&dead[0]).unwrap();
    assert!(
        letter
            .reason
            .contains("more than a day after it was received"),
        "{}",
        letter.reason
    );
    assert!(letter.envelope.contains("far-future@mg.example.com"));

    let mut connection = pipeline.database.connect().await;
    let stored: Vec<String> = email_events::table
        .select(email_events::message_id)
        .load(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, ["on-time@mg.example.com"]);
    pipeline.stop().await;
}
