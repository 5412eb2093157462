//! The receiver as Mailgun meets it: the real app on port 0 against a real Redis.

use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_core::sample::{signed_form, signed_json};
use mailtrail_receiver::{Application, ReceiverConfig};
use mailtrail_testing::{TestApp, TestAppBuilder, fresh_token, metric, now_seconds, scrape};
use serde_json::json;

const KEY: &str = "receiver-test-key";

/// The receiver as these tests run it: both keys of a rotation, and a short Redis timeout so a
/// Redis that is down is answered quickly.
fn test_receiver() -> TestAppBuilder {
    TestApp::builder()
        .receiver_only()
        .signing_keys(&format!("old-key,{KEY}"))
        .receiver_env("MAILTRAIL_REDIS_TIMEOUT_MS", "500")
}

/// `event_data` signed now, with a fresh token, by the receiver's second key.
fn signed(event_data: serde_json::Value) -> Vec<u8> {
    signed_json(
        &SigningKey::new(KEY),
        now_seconds(),
        &fresh_token(),
        event_data,
    )
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
    let receiver = test_receiver().build().await;
    assert_eq!(receiver.get("/healthz").await, 200);
    assert_eq!(receiver.get("/readyz").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_a_rotation_list_and_a_parent_signature_are_both_accepted() {
    let receiver = test_receiver().build().await;
    // Signed with the second configured key.
    let body = signed(delivered());
    assert_eq!(receiver.send("application/json", body).await.status(), 200);

    // A subaccount event: the account signature is from a key we do not have, the parent
    // signature from one we do.
    let timestamp = now_seconds().to_string();
    let token = fresh_token();
    let body = serde_json::to_vec(&json!({
        "signature": {
            "timestamp": timestamp, "token": token,
            "signature": SigningKey::new("subaccount-key").sign(&timestamp, &token),
            "parent-signature": SigningKey::new(KEY).sign(&timestamp, &token),
        },
        "event-data": delivered(),
    }))
    .unwrap();
    assert_eq!(receiver.send("application/json", body).await.status(), 200);
    assert_eq!(receiver.redis().list("events").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_form_webhook_is_verified_and_queued_as_received() {
    let receiver = test_receiver().build().await;
    let body = signed_form(
        &SigningKey::new(KEY),
        now_seconds(),
        &fresh_token(),
        &[
            ("event", "delivered"),
            ("recipient", "a@example.com"),
            ("backer_id", "1"),
        ],
    );
    let response = receiver
        .send("application/x-www-form-urlencoded", body.clone())
        .await;
    assert_eq!(response.status(), 200);
    let queued = receiver.redis().list("events");
    assert_eq!(queued.len(), 1);
    let envelope = mailtrail_core::Envelope::from_json(&queued[0]).unwrap();
    assert_eq!(envelope.content_type, "application/x-www-form-urlencoded");
    assert_eq!(&*envelope.body_bytes().unwrap(), body.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_can_never_be_processed_get_406_and_are_not_queued() {
    let receiver = test_receiver().build().await;
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
        let response = receiver.send(content_type, body).await;
        assert_eq!(response.status(), 406, "{content_type}");
    }
    assert!(receiver.redis().list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_gets_413() {
    let receiver = test_receiver()
        .receiver_env("MAILTRAIL_BODY_LIMIT_BYTES", "1024")
        .build()
        .await;
    let mut event = delivered();
    event["padding"] = json!("x".repeat(4096));
    let body = signed(event);
    assert_eq!(receiver.send("application/json", body).await.status(), 413);
    assert!(receiver.redis().list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backlog_answers_503_with_retry_after() {
    let receiver = test_receiver()
        .receiver_env("MAILTRAIL_BACKLOG_CAP", "2")
        .build()
        .await;
    let key = SigningKey::new(KEY);
    for _ in 0..2 {
        let body = signed(delivered());
        assert_eq!(receiver.send("application/json", body).await.status(), 200);
    }
    let refused_token = fresh_token();
    let body = signed_json(&key, now_seconds(), &refused_token, delivered());
    let response = receiver.send("application/json", body.clone()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(receiver.redis().list("events").len(), 2);

    // The refused token was not burned: Mailgun's retry is queued once there is room.
    redis::cmd("RPOP")
        .arg(receiver.redis().key("events"))
        .query::<String>(&mut receiver.redis().connection())
        .unwrap();
    assert_eq!(receiver.send("application/json", body).await.status(), 200);
    assert_eq!(receiver.redis().list("events").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_means_503_within_a_bounded_time_and_not_ready() {
    let unreachable = format!("redis://127.0.0.1:{}/", closed_port());
    let receiver = test_receiver().redis_server(&unreachable).build().await;
    let started = Instant::now();
    let body = signed(delivered());
    let response = receiver.send("application/json", body).await;
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
    let mut server = mailtrail_testing::PrivateRedis::start();
    let receiver = test_receiver().redis_server(&server.url()).build().await;
    assert_eq!(
        receiver
            .send("application/json", signed(delivered()))
            .await
            .status(),
        200
    );

    server.stop();
    let started = Instant::now();
    assert_eq!(
        receiver
            .send("application/json", signed(delivered()))
            .await
            .status(),
        503
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = receiver
            .send("application/json", signed(delivered()))
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
    let queued = receiver.redis().list("events");
    assert_eq!(queued.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_each_outcome_and_every_webhook_gets_a_request_id() {
    let receiver = test_receiver().build().await;
    let key = SigningKey::new(KEY);
    let reused = fresh_token();
    for _ in 0..3 {
        let body = signed(delivered());
        let response = receiver.send("application/json", body).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
    }
    for _ in 0..2 {
        let body = signed_json(&key, now_seconds(), &reused, delivered());
        assert_eq!(receiver.send("application/json", body).await.status(), 200);
    }
    let forged = signed_json(
        &SigningKey::new("wrong"),
        now_seconds(),
        &fresh_token(),
        delivered(),
    );
    assert_eq!(
        receiver.send("application/json", forged).await.status(),
        401
    );
    assert_eq!(
        receiver.send("text/plain", b"x".to_vec()).await.status(),
        406
    );

    let text = scrape(receiver.receiver_metrics_url().unwrap()).await;
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
    let receiver = test_receiver().build().await;
    let timestamp = now_seconds().to_string();
    let token = fresh_token();
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
        .send(&format!("multipart/form-data; boundary={boundary}"), body)
        .await;
    assert_eq!(response.status(), 200);
    let queued = receiver.redis().list("events");
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
