//! The receiver as Mailgun meets it: the real app on port 0 against a real Redis.

use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_core::sample::{signed_form, signed_json, token_from_seed};
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_testing::TestRedis;
use serde_json::json;

const KEY: &str = "receiver-test-key";

struct Receiver {
    base_url: String,
    metrics_url: String,
    client: reqwest::Client,
}

impl Receiver {
    async fn start(redis_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Self {
        let mut vars = vec![
            ("REDIS_URL".to_owned(), redis_url.to_owned()),
            (
                "MAILTRAIL_SIGNING_KEYS".to_owned(),
                format!("old-key,{KEY}"),
            ),
            ("MAILTRAIL_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("MAILTRAIL_REDIS_PREFIX".to_owned(), prefix.to_owned()),
            ("MAILTRAIL_HTTP_WORKERS".to_owned(), "1".to_owned()),
            ("MAILTRAIL_REDIS_TIMEOUT_MS".to_owned(), "500".to_owned()),
            (
                "MAILTRAIL_METRICS_BIND".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = ReceiverConfig::from_vars(envy::from_iter(vars).unwrap()).unwrap();
        let application = Application::build(config).await.unwrap();
        let base_url = format!("http://127.0.0.1:{}", application.port());
        let metrics_url = format!(
            "http://127.0.0.1:{}/metrics",
            application.metrics_port().unwrap()
        );
        tokio::spawn(application.run_until_stopped());
        Self {
            base_url,
            metrics_url,
            client: reqwest::Client::new(),
        }
    }

    async fn post(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/webhooks/mailgun", self.base_url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(seed: &str) -> String {
    token_from_seed(&format!("{seed}-{:?}", Instant::now()))
}

fn delivered() -> serde_json::Value {
    json!({"event": "delivered", "timestamp": 1_764_000_000.0, "recipient": "a@example.com",
           "message": {"headers": {"message-id": "r@x"}},
           "user-variables": {"backer_id": "1", "project_id": "2"}})
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness_answer_when_redis_is_up() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    assert_eq!(receiver.get("/healthz").await, 200);
    assert_eq!(receiver.get("/readyz").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_a_rotation_list_and_a_parent_signature_are_both_accepted() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    // Signed with the second configured key.
    let body = signed_json(&SigningKey::new(KEY), now(), &token("second"), delivered());
    assert_eq!(receiver.post("application/json", body).await.status(), 200);

    // A subaccount event: the account signature is from a key we do not have, the parent
    // signature from one we do.
    let timestamp = now().to_string();
    let token = token("parent");
    let body = serde_json::to_vec(&json!({
        "signature": {
            "timestamp": timestamp, "token": token,
            "signature": SigningKey::new("subaccount-key").sign(&timestamp, &token),
            "parent-signature": SigningKey::new(KEY).sign(&timestamp, &token),
        },
        "event-data": delivered(),
    }))
    .unwrap();
    assert_eq!(receiver.post("application/json", body).await.status(), 200);
    assert_eq!(redis.list("events").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_form_webhook_is_verified_and_queued_as_received() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    let body = signed_form(
        &SigningKey::new(KEY),
        now(),
        &token("form"),
        &[
            ("event", "delivered"),
            ("recipient", "a@example.com"),
            ("backer_id", "1"),
        ],
    );
    let response = receiver
        .post("application/x-www-form-urlencoded", body.clone())
        .await;
    assert_eq!(response.status(), 200);
    let queued = redis.list("events");
    assert_eq!(queued.len(), 1);
    let envelope = mailtrail_core::Envelope::from_json(&queued[0]).unwrap();
    assert_eq!(envelope.content_type, "application/x-www-form-urlencoded");
    assert_eq!(&*envelope.body_bytes().unwrap(), body.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_can_never_be_processed_get_406_and_are_not_queued() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", b"hello".to_vec()),
        ("application/json", b"{not json".to_vec()),
        ("application/json", br#"{"event-data": {"event": "delivered"}}"#.to_vec()),
        (
            "application/json",
            br#"{"signature": {"timestamp": "1", "token": "t", "signature": "dummy-signature"}, "event-data": {}}"#
                .to_vec(),
        ),
        ("multipart/form-data", b"--x--".to_vec()),
    ];
    for (content_type, body) in cases {
        let response = receiver.post(content_type, body).await;
        assert_eq!(response.status(), 406, "{content_type}");
    }
    assert!(redis.list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_gets_413() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(
        redis.url(),
        redis.prefix(),
        &[("MAILTRAIL_BODY_LIMIT_BYTES", "1024")],
    )
    .await;
    let mut event = delivered();
    event["padding"] = json!("x".repeat(4096));
    let body = signed_json(&SigningKey::new(KEY), now(), &token("big"), event);
    assert_eq!(receiver.post("application/json", body).await.status(), 413);
    assert!(redis.list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backlog_answers_503_with_retry_after() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(
        redis.url(),
        redis.prefix(),
        &[("MAILTRAIL_BACKLOG_CAP", "2")],
    )
    .await;
    let key = SigningKey::new(KEY);
    for i in 0..2 {
        let body = signed_json(&key, now(), &token(&format!("cap{i}")), delivered());
        assert_eq!(receiver.post("application/json", body).await.status(), 200);
    }
    let refused_token = token("cap-over");
    let body = signed_json(&key, now(), &refused_token, delivered());
    let response = receiver.post("application/json", body.clone()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(redis.list("events").len(), 2);

    // The refused token was not burned: Mailgun's retry is queued once there is room.
    redis::cmd("RPOP")
        .arg(format!("{}events", redis.prefix()))
        .query::<String>(&mut redis.connection())
        .unwrap();
    assert_eq!(receiver.post("application/json", body).await.status(), 200);
    assert_eq!(redis.list("events").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_means_503_within_a_bounded_time_and_not_ready() {
    let unreachable = format!("redis://127.0.0.1:{}/", closed_port());
    let receiver = Receiver::start(&unreachable, "unreachable:", &[]).await;
    let started = Instant::now();
    let body = signed_json(&SigningKey::new(KEY), now(), &token("down"), delivered());
    let response = receiver.post("application/json", body).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(receiver.get("/healthz").await, 200);
    assert_eq!(receiver.get("/readyz").await, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_redis_restart_the_receiver_recovers_by_itself() {
    let mut redis = mailtrail_testing::PrivateRedis::start();
    let receiver = Receiver::start(&redis.url(), "mailtrail:", &[]).await;
    let key = SigningKey::new(KEY);
    let post = |seed: &str| signed_json(&key, now(), &token(seed), delivered());
    assert_eq!(
        receiver
            .post("application/json", post("before"))
            .await
            .status(),
        200
    );

    redis.stop();
    let started = Instant::now();
    assert_eq!(
        receiver
            .post("application/json", post("during"))
            .await
            .status(),
        503
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = receiver
            .post("application/json", post("after"))
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the receiver did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The event accepted before the restart survived it (AOF), and the one after is there too.
    let queued: Vec<String> = redis::cmd("LRANGE")
        .arg("mailtrail:events")
        .arg(0)
        .arg(-1)
        .query(
            &mut redis::Client::open(redis.url())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(queued.len(), 2);
}

/// The value of one sample line of the metrics text, e.g. `name{labels} 3`.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_each_outcome_and_every_webhook_gets_a_request_id() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    let key = SigningKey::new(KEY);
    let reused = token("reused");
    for i in 0..3 {
        let body = signed_json(&key, now(), &token(&format!("m{i}")), delivered());
        let response = receiver.post("application/json", body).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
    }
    for _ in 0..2 {
        let body = signed_json(&key, now(), &reused, delivered());
        assert_eq!(receiver.post("application/json", body).await.status(), 200);
    }
    let forged = signed_json(&SigningKey::new("wrong"), now(), &token("f"), delivered());
    assert_eq!(
        receiver.post("application/json", forged).await.status(),
        401
    );
    assert_eq!(
        receiver.post("text/plain", b"x".to_vec()).await.status(),
        406
    );

    let text = receiver
        .client
        .get(&receiver.metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = "mailtrail_receiver_requests_total";
    assert_eq!(
        metric(
            &text,
            &format!("{requests}{{outcome=\"queued\",status=\"200\"}}")
        ),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{requests}{{outcome=\"duplicate\",status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{requests}{{outcome=\"bad_signature\",status=\"401\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{requests}{{outcome=\"unprocessable\",status=\"406\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "mailtrail_receiver_request_duration_seconds_count"),
        7.0
    );
    assert_eq!(
        metric(&text, "mailtrail_receiver_push_duration_seconds_count"),
        5.0
    );
    assert_eq!(metric(&text, "mailtrail_receiver_backlog"), 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evicting_redis_is_refused_at_start_when_noeviction_is_required() {
    let redis = mailtrail_testing::PrivateRedis::start();
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query::<()>(&mut connection)
        .unwrap();
    let config = |require: &str| {
        let vars = [
            ("REDIS_URL", redis.url()),
            ("MAILTRAIL_SIGNING_KEYS", KEY.to_owned()),
            ("MAILTRAIL_BIND", "127.0.0.1:0".to_owned()),
            ("MAILTRAIL_REQUIRE_NOEVICTION", require.to_owned()),
        ];
        ReceiverConfig::from_vars(envy::from_iter(vars.map(|(k, v)| (k.to_owned(), v))).unwrap())
            .unwrap()
    };
    let refused = Application::build(config("true")).await.err().unwrap();
    assert!(refused.to_string().contains("allkeys-lru"), "{refused}");
    // Without the switch it only warns and starts.
    assert!(Application::build(config("false")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_bounce_is_queued_without_its_attachment() {
    let redis = TestRedis::new();
    let receiver = Receiver::start(redis.url(), redis.prefix(), &[]).await;
    let timestamp = now().to_string();
    let token = token("multipart");
    let signature = SigningKey::new(KEY).sign(&timestamp, &token);
    let boundary = "mailtrail-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [
        ("event", "dropped"),
        ("recipient", "alice@example.com"),
        ("Message-Id", "<m@x>"),
        ("reason", "hardfail"),
        ("code", "605"),
        ("backer_id", "42"),
        ("project_id", "7"),
        ("timestamp", timestamp.as_str()),
        ("token", token.as_str()),
        ("signature", signature.as_str()),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    // A 2 MB attachment of binary bytes, as a returned message can be.
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"message.mime\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend((0..2_000_000u32).map(|i| (i % 251) as u8));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let response = receiver
        .post(&format!("multipart/form-data; boundary={boundary}"), body)
        .await;
    assert_eq!(response.status(), 200);
    let queued = redis.list("events");
    assert_eq!(queued.len(), 1);
    assert!(
        queued[0].len() < 4_000,
        "the attachment was queued: {} bytes",
        queued[0].len()
    );
    let envelope = mailtrail_core::Envelope::from_json(&queued[0]).unwrap();
    let format =
        mailtrail_core::mailgun::WebhookFormat::from_content_type(&envelope.content_type).unwrap();
    let event =
        mailtrail_core::mailgun::parse_event(&format, &envelope.body_bytes().unwrap(), 0).unwrap();
    assert_eq!(event.delivery_code.as_deref(), Some("605"));
    assert_eq!(event.variables.integer("backer_id"), Ok(Some(42)));
}
