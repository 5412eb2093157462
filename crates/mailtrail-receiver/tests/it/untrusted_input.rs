//! The receiver against hostile or odd requests: the real app on port 0 and a real Redis, posted
//! to by an HTTP client or by hand over TCP when the fault lives below HTTP.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_testing::{TestApp, fresh_token, now_seconds};
use serde_json::json;

const KEY: &str = "untrusted-input-test-key";

/// A receiver on port 0 with its own Redis prefix, and its metrics on another port 0; `extra`
/// replaces a default of the same name.
async fn start_receiver(extra: &[(&str, &str)]) -> TestApp {
    let mut receiver = TestApp::builder().receiver_only().signing_keys(KEY);
    for (name, value) in extra {
        receiver = receiver.receiver_env(name, value);
    }
    receiver.build().await
}

/// `GET url` with the receiver's client: the status and the text.
async fn get(receiver: &TestApp, url: &str) -> (u16, String) {
    let response = receiver.client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn delivered() -> serde_json::Value {
    json!({"event": "delivered", "timestamp": 1_764_000_000.0, "recipient": "a@example.com",
           "message": {"headers": {"message-id": "r@x"}},
           "user-variables": {"backer_id": "1", "project_id": "2"}})
}

/// A JSON webhook correctly signed over `timestamp`, whatever text it is.
fn signed_at(timestamp: &str, token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": SigningKey::new(KEY).sign(timestamp, token),
        },
        "event-data": delivered(),
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_timestamps_at_the_ends_of_i64_are_refused_and_never_queued() {
    let receiver = start_receiver(&[]).await;
    let now = i128::from(now_seconds());
    let far = 1_i128 << 63;
    for timestamp in [
        // now - 2^63 used to wrap the age to a tiny number and pass the window.
        (now - far).to_string(),
        (now - far + 1).to_string(),
        (now + far).to_string(),
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        "-1".to_owned(),
        "0".to_owned(),
        "99999999999999999999999999".to_owned(),
        "-99999999999999999999999999".to_owned(),
    ] {
        let response = receiver
            .send("application/json", signed_at(&timestamp, &fresh_token()))
            .await;
        assert_eq!(response.status(), 406, "timestamp {timestamp}");
    }
    assert!(receiver.redis().list("events").is_empty());
    // The same request signed now is queued: only the timestamp was at fault.
    let fresh = signed_at(&now.to_string(), &fresh_token());
    assert_eq!(receiver.send("application/json", fresh).await.status(), 200);
    assert_eq!(receiver.redis().list("events").len(), 1);
}

/// Every log line any test of this binary wrote since [`captured_logs`] was first called: the
/// receiver runs on actix worker threads, so only a global subscriber sees its lines.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_kb_malformed_body_or_content_type_gives_a_short_log_line() {
    let logs = captured_logs();
    let receiver = start_receiver(&[]).await;
    // serde_json quotes a string of the wrong type whole in its error.
    let huge = "A".repeat(200_000);
    let body = serde_json::to_vec(&json!({"signature": huge, "event-data": {}})).unwrap();
    assert_eq!(receiver.send("application/json", body).await.status(), 406);
    let content_type = format!("text/{}", "B".repeat(6_000));
    assert_eq!(
        receiver.send(&content_type, b"{}".to_vec()).await.status(),
        406
    );
    assert!(receiver.redis().list("events").is_empty());

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let refusals: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("webhook refused"))
        .collect();
    assert!(
        refusals
            .iter()
            .any(|line| line.contains("invalid type: string \"AAAA")),
        "the JSON refusal was not logged: {refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|line| line.contains("unsupported content type `text/BBBB")),
        "the content type refusal was not logged: {refusals:?}"
    );
    for line in logs.lines() {
        assert!(
            line.len() < 1_000,
            "a {} byte log line: {}…",
            line.len(),
            &line[..200]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_on_their_own_port_and_the_webhook_port_answers_404() {
    let receiver = start_receiver(&[]).await;
    let queued = signed_at(&now_seconds().to_string(), &fresh_token());
    assert_eq!(
        receiver.send("application/json", queued).await.status(),
        200
    );

    let (status, _) = get(&receiver, &format!("{}/metrics", receiver.receiver_url())).await;
    assert_eq!(status, 404, "the webhook port answers /metrics");

    let (status, text) = get(&receiver, receiver.receiver_metrics_url().unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("mailtrail_receiver_requests_total{outcome=\"queued\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("mailtrail_receiver_backlog 1"), "{text}");
    // The metrics port serves nothing else.
    let webhook_on_metrics_port = receiver
        .client()
        .post(
            receiver
                .receiver_metrics_url()
                .unwrap()
                .replace("/metrics", "/webhooks/mailgun"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook_on_metrics_port.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_metrics_bind_serves_no_metrics_and_a_taken_port_does_not_stop_webhooks() {
    let disabled = start_receiver(&[("MAILTRAIL_METRICS_BIND", "")]).await;
    assert_eq!(disabled.receiver_metrics_url(), None);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let receiver = start_receiver(&[("MAILTRAIL_METRICS_BIND", &bind)]).await;
    assert_eq!(receiver.receiver_metrics_url(), None);
    let queued = signed_at(&now_seconds().to_string(), &fresh_token());
    assert_eq!(
        receiver.send("application/json", queued).await.status(),
        200
    );
}

/// What the server did to a trickled body.
struct Trickled {
    /// Its answer, possibly nothing.
    answer: String,
    /// When the first byte of it came.
    answered_after: Option<Duration>,
    /// When the connection ended.
    closed_after: Duration,
}

/// Sends a webhook's headers, then its body one byte every 100 ms, until the server ends it.
async fn trickle_a_body(port: u16) -> Trickled {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let headers = "POST /webhooks/mailgun HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n";
    writer.write_all(headers.as_bytes()).await.unwrap();
    // 10,000 bytes at this pace would take 1,000 s.
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut answered_after = None;
    // The server may close with bytes of ours unread, which resets the connection: what it
    // answered before is kept, and an error ends the read like an end of stream.
    let read = tokio::time::timeout(Duration::from_secs(8), async {
        let mut buffer = [0_u8; 1024];
        while let Ok(read @ 1..) = reader.read(&mut buffer).await {
            answered_after.get_or_insert_with(|| started.elapsed());
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    let closed_after = started.elapsed();
    trickle.abort();
    assert!(
        read.is_ok(),
        "the connection was still open after {closed_after:?}"
    );
    Trickled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        answered_after,
        closed_after,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_slower_than_the_body_timeout_is_answered_408_and_closed() {
    let receiver = start_receiver(&[("MAILTRAIL_BODY_TIMEOUT_MS", "1000")]).await;
    let port: u16 = receiver
        .receiver_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Many at once, as an attacker would: each is cut at the bound, none waits for another.
    let connections: Vec<_> = (0..50)
        .map(|_| tokio::spawn(trickle_a_body(port)))
        .collect();
    for connection in connections {
        let trickled = connection.await.unwrap();
        // Answered at the bound; closed at most actix's disconnect timeout (1 s) later, while
        // the sender still trickles.
        if let Some(answered_after) = trickled.answered_after {
            assert!(
                answered_after >= Duration::from_millis(900)
                    && answered_after < Duration::from_millis(2_500),
                "answered after {answered_after:?}"
            );
            assert!(
                trickled.answer.starts_with("HTTP/1.1 408"),
                "answered {:?}",
                trickled.answer
            );
        }
        assert!(
            trickled.closed_after < Duration::from_millis(3_500),
            "closed after {:?}",
            trickled.closed_after
        );
    }
    assert!(receiver.redis().list("events").is_empty());
    // A body that arrives in time is still received.
    let fresh = signed_at(&now_seconds().to_string(), &fresh_token());
    assert_eq!(receiver.send("application/json", fresh).await.status(), 200);
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn deflate(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// Posts a JSON webhook compressed with `encoding`.
async fn post_encoded(receiver: &TestApp, encoding: &str, body: Vec<u8>) -> reqwest::Response {
    receiver
        .client()
        .post(format!("{}/webhooks/mailgun", receiver.receiver_url()))
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzipped_or_deflated_webhook_is_decoded_and_queued_as_plain_json() {
    let receiver = start_receiver(&[]).await;
    let plain = signed_at(&now_seconds().to_string(), &fresh_token());
    let response = post_encoded(&receiver, "gzip", gzip(&plain)).await;
    assert_eq!(response.status(), 200);
    let plain_too = signed_at(&now_seconds().to_string(), &fresh_token());
    let response = post_encoded(&receiver, "Deflate", deflate(&plain_too)).await;
    assert_eq!(response.status(), 200);

    let queued = receiver.redis().list("events");
    assert_eq!(queued.len(), 2);
    for (envelope, plain) in queued.iter().rev().zip([&plain, &plain_too]) {
        let envelope = mailtrail_core::Envelope::from_json(envelope).unwrap();
        assert_eq!(&*envelope.body_bytes().unwrap(), plain.as_slice());
        assert_eq!(envelope.content_type, "application/json");
        // What the worker will read: the event, as if it had never been compressed.
        let format = mailtrail_core::mailgun::WebhookFormat::Json;
        let event =
            mailtrail_core::mailgun::parse_event(&format, &envelope.body_bytes().unwrap(), 0)
                .unwrap();
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(1)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_encodings_get_a_retryable_415_and_bombs_and_corrupt_streams_are_refused() {
    let receiver = start_receiver(&[("MAILTRAIL_BODY_LIMIT_BYTES", "65536")]).await;
    let plain = signed_at(&now_seconds().to_string(), &fresh_token());
    for encoding in ["br", "zstd", "compress", "x-gzip, br", "gzip, gzip"] {
        let response = post_encoded(&receiver, encoding, plain.clone()).await;
        assert_eq!(response.status(), 415, "{encoding}");
    }
    // The limit holds for the decoded body: 10 MB of zeros compress to about 10 KB.
    let bomb = gzip(&vec![0_u8; 10_000_000]);
    assert!(bomb.len() < 65_536);
    assert_eq!(post_encoded(&receiver, "gzip", bomb).await.status(), 413);
    let mut corrupt = gzip(&plain);
    corrupt.truncate(corrupt.len() / 2);
    corrupt.extend_from_slice(b"not deflate at all");
    assert_eq!(post_encoded(&receiver, "gzip", corrupt).await.status(), 400);
    // identity is no encoding at all.
    assert_eq!(
        post_encoded(&receiver, "identity", plain).await.status(),
        200
    );
    assert_eq!(receiver.redis().list("events").len(), 1);
}
