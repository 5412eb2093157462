//! [`TestApp`]: the real receiver on port 0 and the real worker, both in the test's process,
//! against a fresh database and a unique Redis prefix, the way zero-to-production's tests spawn
//! their app.
//!
//! ```no_run
//! # async fn story(sample: mailtrail_core::sample::SampleEvent<'_>) {
//! use mailtrail_testing::TestApp;
//!
//! let mut app = TestApp::builder().build().await;
//! assert_eq!(app.post_sample(&sample).await, 200);
//! app.drain().await;
//! let mut connection = app.database().connect().await;
//! # }
//! ```
//!
//! Both configurations are read from variables, as the binaries read theirs, so a test sets the
//! variable an operator would set ([`TestAppBuilder::receiver_env`],
//! [`TestAppBuilder::worker_env`]) over defaults made for tests: one HTTP worker, the receiver's
//! `/metrics` on a free port and none for the worker, a 100 ms claim wait, a 3 s lease, no
//! migrations (the [`TestDatabase`] is migrated already).
//!
//! The worker runs its real loop ([`mailtrail_worker::run`]), and [`TestApp::drain`] waits for it
//! to empty the queue. A test that wants each step instead builds the app with `.worker(false)`
//! and calls `process_next_batch` on a [`TestApp::driven_worker`].

use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_core::sample::{SampleEvent, signed_form, signed_json};
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_worker::{StopHandle, Worker, WorkerConfig, WorkerError};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::webhooks::{TEST_SIGNING_KEY, fresh_token, now_seconds};
use crate::{QueueLayout, TestDatabase, TestRedis};

/// The id of a test app's worker, which names its processing list and its lease.
pub const TEST_WORKER_ID: &str = "worker-1";

/// How long [`TestApp::drain`] waits for the worker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`TestApp`] starts; from [`TestApp::builder`].
#[must_use]
pub struct TestAppBuilder {
    signing_keys: String,
    database: bool,
    start_worker: bool,
    redis_server: Option<String>,
    layout: QueueLayout,
    receiver_env: Vec<(String, String)>,
    worker_env: Vec<(String, String)>,
}

impl TestAppBuilder {
    /// The receiver's `MAILTRAIL_SIGNING_KEYS`, comma-separated; the app signs with the first.
    /// Default: [`TEST_SIGNING_KEY`].
    pub fn signing_keys(mut self, keys: &str) -> Self {
        self.signing_keys = keys.to_owned();
        self
    }

    /// Whether the worker runs from the start (the default) or only once the test calls
    /// [`TestApp::start_worker`] (or drives a [`TestApp::driven_worker`]).
    pub fn worker(mut self, start: bool) -> Self {
        self.start_worker = start;
        self
    }

    /// The receiver alone, without a database or a worker: for tests of the receiver and of
    /// what posts to it.
    pub fn receiver_only(mut self) -> Self {
        self.database = false;
        self.start_worker = false;
        self
    }

    /// Another Redis server than the shared one: a [`crate::PrivateRedis`] the test restarts, or
    /// an address nothing listens on. The key prefix stays the test's own.
    pub fn redis_server(mut self, url: &str) -> Self {
        self.redis_server = Some(url.to_owned());
        self
    }

    /// Where the queue lives: the shared Redis (the default) or a cluster of the test's own
    /// with so many shards.
    pub fn layout(mut self, layout: QueueLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets one of the receiver's variables (`MAILTRAIL_BACKLOG_CAP`, ...) over the defaults.
    pub fn receiver_env(mut self, name: &str, value: &str) -> Self {
        self.receiver_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets one of the worker's variables (`MAILTRAIL_METRICS_BIND`, ...) over the defaults.
    pub fn worker_env(mut self, name: &str, value: &str) -> Self {
        self.worker_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Creates the database and the prefix, starts the receiver and, unless told otherwise, the
    /// worker.
    pub async fn build(self) -> TestApp {
        let database = if self.database {
            Some(TestDatabase::create().await)
        } else {
            None
        };
        let redis = match &self.redis_server {
            Some(url) => TestRedis::on(url),
            None => TestRedis::with_layout(self.layout),
        };
        let receiver = Application::build(self.receiver_config(&redis))
            .await
            .expect("start the receiver");
        let receiver_url = format!("http://127.0.0.1:{}", receiver.port());
        let receiver_metrics_url = receiver
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}/metrics"));
        tokio::spawn(receiver.run_until_stopped());
        let first_key = self.signing_keys.split(',').next().unwrap_or_default();
        let mut app = TestApp {
            worker: None,
            driven: Vec::new(),
            database,
            redis,
            receiver_url,
            receiver_metrics_url,
            client: reqwest::Client::new(),
            signing_key: SigningKey::new(first_key.trim()),
            worker_env: self.worker_env,
        };
        if self.start_worker {
            app.start_worker();
        }
        app
    }

    fn receiver_config(&self, redis: &TestRedis) -> ReceiverConfig {
        let redis_env = redis.env();
        let defaults: Vec<(&str, &str)> = redis_env
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain([
                ("MAILTRAIL_SIGNING_KEYS", self.signing_keys.as_str()),
                ("MAILTRAIL_BIND", "127.0.0.1:0"),
                ("MAILTRAIL_HTTP_WORKERS", "1"),
                ("MAILTRAIL_METRICS_BIND", "127.0.0.1:0"),
            ])
            .collect();
        let vars = envy::from_iter(variables(&defaults, &self.receiver_env))
            .expect("the receiver's test variables");
        ReceiverConfig::from_vars(vars).expect("a valid receiver configuration")
    }
}

/// A running receiver and, when asked for, a worker, with the database and Redis prefix they
/// share. Everything is removed when it is dropped.
pub struct TestApp {
    // Declared first, so dropped first: the worker is told to stop before its database goes.
    worker: Option<RunningWorker>,
    driven: Vec<StopHandle>,
    database: Option<TestDatabase>,
    redis: TestRedis,
    receiver_url: String,
    receiver_metrics_url: Option<String>,
    client: reqwest::Client,
    signing_key: SigningKey,
    worker_env: Vec<(String, String)>,
}

/// The worker's loop on a task of its own, and the handle that stops it.
struct RunningWorker {
    stop: StopHandle,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl TestApp {
    /// A receiver and a running worker on a fresh database, unless the builder says otherwise.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            signing_keys: TEST_SIGNING_KEY.to_owned(),
            database: true,
            start_worker: true,
            redis_server: None,
            layout: QueueLayout::Single,
            receiver_env: Vec::new(),
            worker_env: Vec::new(),
        }
    }

    /// The app's database.
    ///
    /// # Panics
    /// When the app was built with [`TestAppBuilder::receiver_only`].
    pub fn database(&self) -> &TestDatabase {
        self.database
            .as_ref()
            .expect("the app was built receiver_only(): it has no database")
    }

    /// The app's Redis prefix.
    pub fn redis(&self) -> &TestRedis {
        &self.redis
    }

    /// `http://127.0.0.1:port` of the receiver.
    pub fn receiver_url(&self) -> &str {
        &self.receiver_url
    }

    /// The URL of the receiver's `/metrics`, on a port of its own; `None` when the test turned
    /// the listener off (`MAILTRAIL_METRICS_BIND` empty) or it could not bind.
    pub fn receiver_metrics_url(&self) -> Option<&str> {
        self.receiver_metrics_url.as_deref()
    }

    /// The HTTP client the app posts with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The key the app signs with: the first of the receiver's.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// Posts `body` to the webhook endpoint as `content_type`; the whole answer.
    pub async fn send(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/webhooks/mailgun", self.receiver_url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("post to the receiver")
    }

    /// Posts `body` to the webhook endpoint as `content_type`; the status code.
    pub async fn post(&self, content_type: &str, body: Vec<u8>) -> u16 {
        self.send(content_type, body).await.status().as_u16()
    }

    /// Signs `sample` now with a fresh token and posts it as JSON; the status code.
    pub async fn post_sample(&self, sample: &SampleEvent<'_>) -> u16 {
        self.post(
            "application/json",
            self.signed_sample(sample, &fresh_token()),
        )
        .await
    }

    /// `GET path` on the receiver; the status code.
    pub async fn get(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.receiver_url))
            .send()
            .await
            .expect("get from the receiver")
            .status()
            .as_u16()
    }

    /// `sample` as a JSON webhook signed now with `token` and the app's key.
    pub fn signed_sample(&self, sample: &SampleEvent<'_>, token: &str) -> Vec<u8> {
        signed_json(&self.signing_key, now_seconds(), token, sample.event_data())
    }

    /// A JSON webhook carrying `event_data`, signed now with a fresh token and the app's key.
    pub fn signed_json(&self, event_data: Value) -> Vec<u8> {
        signed_json(&self.signing_key, now_seconds(), &fresh_token(), event_data)
    }

    /// A legacy form webhook of `fields`, signed now with a fresh token and the app's key.
    pub fn signed_form(&self, fields: &[(&str, &str)]) -> Vec<u8> {
        signed_form(&self.signing_key, now_seconds(), &fresh_token(), fields)
    }

    /// Starts the worker's loop as [`TEST_WORKER_ID`].
    ///
    /// # Panics
    /// When the app has no database, or its worker runs already.
    pub fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "the worker runs already");
        let (stop, shutdown) = mailtrail_worker::shutdown::channel();
        let task = tokio::spawn(mailtrail_worker::run(self.worker_config(), shutdown));
        self.worker = Some(RunningWorker { stop, task });
    }

    /// Stops the worker gracefully and waits for it; its run must have ended without error.
    pub async fn stop_worker(&mut self) {
        if let Some(RunningWorker { stop, task }) = self.worker.take() {
            stop.stop();
            task.await
                .expect("the worker task panicked")
                .expect("the worker stopped with an error");
        }
    }

    /// Waits until the backlog and every processing list are empty, which with a running worker
    /// means every queued envelope is written and settled. Panics after 30 s, or at once if the
    /// worker stopped, with its outcome.
    pub async fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            // A worker that stopped will never drain: say why instead of timing out.
            if let Some(worker) = self.worker.take_if(|worker| worker.task.is_finished()) {
                let outcome = worker.task.await;
                panic!("the worker stopped while events were waiting: {outcome:?}");
            }
            if self.redis.queued().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not drain the backlog in {} s",
                DRAIN_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A worker started as [`TEST_WORKER_ID`] but not running its loop: the test calls
    /// `process_next_batch` for each step and `release` at the end. Build the app with
    /// `.worker(false)`, as one worker id belongs to one worker at a time.
    pub async fn driven_worker(&mut self) -> Worker {
        assert!(self.worker.is_none(), "the app's worker runs already");
        let (stop, shutdown) = mailtrail_worker::shutdown::channel();
        let worker = Worker::start(self.worker_config(), shutdown)
            .await
            .expect("start the worker");
        // Dropping the handle would ask the worker to stop; keep it as long as the app.
        self.driven.push(stop);
        worker
    }

    fn worker_config(&self) -> WorkerConfig {
        let redis_env = self.redis.env();
        let defaults: Vec<(&str, &str)> = redis_env
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain([
                ("DATABASE_URL", self.database().url()),
                ("MAILTRAIL_WORKER_ID", TEST_WORKER_ID),
                ("MAILTRAIL_CLAIM_BLOCK_MS", "100"),
                ("MAILTRAIL_LEASE_TTL_SECS", "3"),
                ("MAILTRAIL_MIGRATE", "false"),
                ("MAILTRAIL_METRICS_BIND", ""),
            ])
            .collect();
        let vars = envy::from_iter(variables(&defaults, &self.worker_env))
            .expect("the worker's test variables");
        WorkerConfig::from_vars(vars).expect("a valid worker configuration")
    }
}

/// `defaults` with every variable the test set replacing the default of the same name.
fn variables(defaults: &[(&str, &str)], set: &[(String, String)]) -> Vec<(String, String)> {
    defaults
        .iter()
        .filter(|(name, _)| !set.iter().any(|(set, _)| set == name))
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .chain(set.iter().cloned())
        .collect()
}
