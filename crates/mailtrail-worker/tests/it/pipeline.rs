//! The real pipeline for end-to-end tests: the receiver app on port 0 and the worker, both in
//! this process, against a fresh Postgres database and a unique Redis prefix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_core::sample::{SampleEvent, signed_json, token_from_seed};
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_testing::{TestDatabase, TestRedis};
use mailtrail_worker::WorkerConfig;
use tokio::task::JoinHandle;

/// The signing key every pipeline is configured with.
pub const SIGNING_KEY: &str = "pipeline-test-signing-key";

/// A running receiver and worker.
pub struct Pipeline {
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub base_url: String,
    pub client: reqwest::Client,
    stop: Option<mailtrail_worker::StopHandle>,
    worker: Option<JoinHandle<Result<(), mailtrail_worker::WorkerError>>>,
}

impl Pipeline {
    /// Starts the receiver and one worker.
    pub async fn start() -> Self {
        let mut pipeline = Self::start_receiver_only().await;
        pipeline.start_worker();
        pipeline
    }

    /// Starts only the receiver (the worker can be started later).
    pub async fn start_receiver_only() -> Self {
        let database = TestDatabase::create().await;
        let redis = TestRedis::new();
        let receiver = Application::build(receiver_config(&redis)).await.unwrap();
        let base_url = format!("http://127.0.0.1:{}", receiver.port());
        tokio::spawn(receiver.run_until_stopped());
        Self {
            database,
            redis,
            base_url,
            client: reqwest::Client::new(),
            stop: None,
            worker: None,
        }
    }

    /// Starts the worker.
    pub fn start_worker(&mut self) {
        let (stop, shutdown) = mailtrail_worker::shutdown::channel();
        let config = worker_config(&self.database, &self.redis, "worker-1");
        self.worker = Some(tokio::spawn(mailtrail_worker::run(config, shutdown)));
        self.stop = Some(stop);
    }

    /// Posts a body with a content type; returns the status code.
    pub async fn post(&self, content_type: &str, body: Vec<u8>) -> u16 {
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

    /// Signs and posts a sample event with a fresh token.
    pub async fn post_sample(&self, sample: &SampleEvent<'_>) -> u16 {
        self.post("application/json", signed_sample(sample, &fresh_token()))
            .await
    }

    /// Waits until the backlog and every processing list are empty.
    pub async fn wait_drained(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A worker that stopped will never drain: say why instead of timing out.
            if self
                .worker
                .as_ref()
                .is_some_and(|worker| worker.is_finished())
            {
                let outcome = self.worker.take().unwrap().await;
                panic!("the worker stopped while events were waiting: {outcome:?}");
            }
            let backlog = self.redis.list("events").len();
            let in_flight = self.redis.list("processing:worker-1").len();
            if backlog == 0 && in_flight == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not drain the backlog in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the worker gracefully and waits for it.
    pub async fn stop_worker(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.stop();
        }
        if let Some(worker) = self.worker.take() {
            worker.await.unwrap().unwrap();
        }
    }
}

/// The receiver's configuration for a test.
pub fn receiver_config(redis: &TestRedis) -> ReceiverConfig {
    let vars = [
        ("REDIS_URL", redis.url()),
        ("MAILTRAIL_SIGNING_KEYS", SIGNING_KEY),
        ("MAILTRAIL_BIND", "127.0.0.1:0"),
        ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
        ("MAILTRAIL_HTTP_WORKERS", "1"),
    ];
    let env = envy::from_iter(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    ReceiverConfig::from_vars(env).unwrap()
}

/// A worker's configuration for a test, with short timings.
pub fn worker_config(database: &TestDatabase, redis: &TestRedis, worker_id: &str) -> WorkerConfig {
    let vars = [
        ("DATABASE_URL", database.url()),
        ("REDIS_URL", redis.url()),
        ("MAILTRAIL_REDIS_PREFIX", redis.prefix()),
        ("MAILTRAIL_WORKER_ID", worker_id),
        ("MAILTRAIL_CLAIM_BLOCK_MS", "100"),
        ("MAILTRAIL_LEASE_TTL_SECS", "3"),
        ("MAILTRAIL_MIGRATE", "false"),
        ("MAILTRAIL_METRICS_BIND", ""),
    ];
    let env = envy::from_iter(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    WorkerConfig::from_vars(env).unwrap()
}

/// A token no other post in this process has used.
pub fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    token_from_seed(&format!(
        "{}-{:?}-{}",
        std::process::id(),
        Instant::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Now, in whole seconds.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A sample event signed now with `token`.
pub fn signed_sample(sample: &SampleEvent<'_>, token: &str) -> Vec<u8> {
    signed_json(
        &SigningKey::new(SIGNING_KEY),
        now_seconds(),
        token,
        sample.event_data(),
    )
}
