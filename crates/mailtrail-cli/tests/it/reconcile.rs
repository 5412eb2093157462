//! `mailtrail reconcile` against the fake Mailgun of the testing crate (real HTTP on port 0) and
//! the real receiver and worker: pages followed across hosts, the trust threshold catching late
//! events, rate limits waited out, failures reported in one line with nothing queued, the
//! checkpoint, and every event counted once whether it came by webhook, by reconciliation or both.

use std::time::Duration;

use mailtrail_testing::{FAKE_API_KEY, FAKE_SENDING_KEY, FakeMailgun, Fault, TestApp, TestRedis};
use serde_json::{Value, json};

use crate::support::{Mailtrail, Run};

const DOMAIN: &str = "mg.example.com";

/// Seconds since the epoch, as a float.
fn now_seconds_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An Events API item (the same object a webhook carries as `event-data`).
fn item(kind: &str, message: &str, at: f64, backer: i64) -> Value {
    json!({
        "event": kind,
        "id": format!("{kind}-{message}"),
        "timestamp": at,
        "log-level": "info",
        "recipient": format!("backer{backer}@example.com"),
        "message": {"headers": {"message-id": message}},
        "user-variables": {"backer_id": backer.to_string(), "project_id": "7"},
    })
}

/// `mailtrail ARGS` pointed at `fake` and `redis`, with quick waits.
fn mailtrail(fake: &FakeMailgun, redis: &TestRedis, args: &[&str]) -> Mailtrail {
    Mailtrail::new(args)
        .redis(redis)
        .env("MAILGUN_API_BASE", &fake.base_url())
        .env("MAILGUN_API_KEY", FAKE_API_KEY)
        .env("MAILGUN_DOMAIN", DOMAIN)
}

/// An RFC 3339 time `seconds` from now.
fn rfc3339_in(seconds: f64) -> String {
    let at = now_seconds_f64() + seconds;
    chrono::DateTime::from_timestamp_micros((at * 1e6) as i64)
        .unwrap()
        .to_rfc3339()
}

/// The items waiting in the backlog, each from an envelope of source `mailgun-events-api`.
fn queued_items(redis: &TestRedis) -> Vec<Value> {
    redis
        .list("events")
        .iter()
        .map(|line| {
            let envelope = mailtrail_core::Envelope::from_json(line).unwrap();
            assert_eq!(envelope.source, mailtrail_core::Source::MailgunEventsApi);
            serde_json::from_slice(&envelope.body_bytes().unwrap()).unwrap()
        })
        .collect()
}

/// The domain's checkpoint, read through the queue (which names its key).
async fn checkpoint(redis: &TestRedis) -> Option<i64> {
    redis.queue().reconcile_checkpoint(DOMAIN).await.unwrap()
}

/// The count of the summary line's "N events queued".
fn events_queued(run: &Run) -> u64 {
    let line = run.stdout.trim();
    let before = line
        .split(" events queued")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    before.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_follows_next_pages_across_hosts_and_every_event_is_stored_once_whatever_came_by_webhook()
 {
    let mut app = TestApp::builder().build().await;
    let fake = FakeMailgun::start(DOMAIN);
    fake.page_size(3);
    let start = now_seconds_f64() - 7200.0;
    let items: Vec<Value> = (0..10)
        .map(|n| {
            let kind = if n % 2 == 0 { "accepted" } else { "delivered" };
            item(
                kind,
                &format!("m{}@x", n / 2),
                start + n as f64 * 1.234567,
                n / 2,
            )
        })
        .collect();
    for item in &items {
        fake.add_event(&item.to_string());
    }
    // Four of them also came by webhook, before the reconciliation.
    for item in items.iter().step_by(3) {
        assert_eq!(
            app.post("application/json", app.signed_json(item.clone()))
                .await,
            200
        );
    }
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 4);

    let run = mailtrail(&fake, app.redis(), &["reconcile", "--since", "3h"])
        .database(app.database())
        .run()
        .await
        .success();
    assert_eq!(events_queued(&run), 10, "{}", run.stdout);
    assert!(
        run.stdout.contains("(4 of them stored already)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(" 4 pages,"), "{}", run.stdout);
    let requests = fake.requests();
    assert!(requests[0].host.starts_with("127.0.0.1:"), "{requests:?}");
    assert!(requests[0].uri.contains("ascending=yes"), "{requests:?}");
    assert!(requests[0].uri.contains("limit=300"), "{requests:?}");
    // Every later page was asked where Mailgun's `next` said, another host name.
    assert_eq!(
        requests.len(),
        5,
        "4 pages and the empty one after: {requests:?}"
    );
    assert!(
        requests[1..]
            .iter()
            .all(|request| request.host.starts_with("localhost:")),
        "{requests:?}"
    );
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 10);
    assert_eq!(app.database().stored_rows().await, 5);
    let status = statuses(&app).await;

    // Read again (the same range, overlapping the checkpoint): nothing changes.
    let again = mailtrail(&fake, app.redis(), &["reconcile", "--since", "3h"])
        .database(app.database())
        .run()
        .await
        .success();
    assert_eq!(events_queued(&again), 10, "{}", again.stdout);
    assert!(
        again.stdout.contains("(10 of them stored already)"),
        "{}",
        again.stdout
    );
    // And the webhooks of the rest arrive late: nothing changes either.
    for item in items.iter().skip(1).step_by(3) {
        assert_eq!(
            app.post("application/json", app.signed_json(item.clone()))
                .await,
            200
        );
    }
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 10);
    assert_eq!(app.database().stored_rows().await, 5);
    assert_eq!(statuses(&app).await, status);
    assert!(app.redis().list("dead").is_empty());
    app.stop_worker().await;
}

/// `(message id, status)` of every row.
async fn statuses(app: &TestApp) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use mailtrail_store::schema::sent_emails;
    let mut connection = app.database().connect().await;
    sent_emails::table
        .select((sent_emails::message_id, sent_emails::status))
        .order(sent_emails::message_id)
        .load(&mut connection)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_that_appear_late_inside_a_read_range_are_caught_by_the_trust_threshold() {
    let fake = FakeMailgun::start(DOMAIN);
    let now = now_seconds_f64();
    for (n, ago) in [6.0, 5.0, 4.0, 1.5].into_iter().enumerate() {
        fake.add_event(&item("delivered", &format!("m{n}@x"), now - ago, 1).to_string());
    }
    // Happened 3 s ago, but reaches Mailgun's storage only 1.5 s from now: inside the range a
    // first read covers.
    fake.add_late_event(
        &item("delivered", "late@x", now - 3.0, 1).to_string(),
        Duration::from_millis(1500),
    );
    let until = rfc3339_in(0.0);

    // Without a threshold the page is used as first read, and the late event is lost.
    let hasty = TestRedis::new();
    let run = mailtrail(
        &fake,
        &hasty,
        &[
            "reconcile",
            "--since",
            "1m",
            "--until",
            &until,
            "--trust-after",
            "0s",
        ],
    )
    .run()
    .await
    .success();
    assert_eq!(events_queued(&run), 4, "{}", run.stdout);

    // With one (4 s here, 30 min by default) the young page is asked again until it is old
    // enough, by which time the late event is in it.
    let careful = TestRedis::new();
    let run = mailtrail(
        &fake,
        &careful,
        &[
            "reconcile",
            "--since",
            "1m",
            "--until",
            &until,
            "--trust-after",
            "4s",
            "--poll-wait-ms",
            "200",
        ],
    )
    .run()
    .await
    .success();
    assert_eq!(events_queued(&run), 5, "{}", run.stdout);
    assert!(!run.stdout.contains(" 0 untrusted"), "{}", run.stdout);
    let queued = queued_items(&careful);
    // The pages discarded as too young were not queued: each event is there once.
    assert_eq!(queued.len(), 5, "{queued:?}");
    assert!(
        queued.iter().any(|data| data["id"] == "delivered-late@x"),
        "{queued:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_waited_out_with_either_header_and_server_errors_are_retried() {
    let fake = FakeMailgun::start(DOMAIN);
    fake.add_event(&item("delivered", "m@x", now_seconds_f64() - 3600.0, 1).to_string());
    fake.fail_next(Fault::RetryAfter(1));
    fake.fail_next(Fault::RateLimitReset(Duration::from_millis(600)));
    fake.fail_next(Fault::ServerError);
    let redis = TestRedis::new();
    let started = std::time::Instant::now();
    let run = mailtrail(
        &fake,
        &redis,
        &["reconcile", "--since", "2h", "--retry-backoff-ms", "50"],
    )
    .run()
    .await
    .success();
    assert_eq!(events_queued(&run), 1, "{}", run.stdout);
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, [429, 429, 500, 200, 200]);
    assert!(
        run.stdout.contains(", 3 requests retried;"),
        "{}",
        run.stdout
    );
    // Retry-After said 1 s; the reset was 0.6 s after the second answer.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_an_unknown_domain_a_sending_key_or_no_mailgun_fail_in_one_line_with_nothing_queued()
 {
    let fake = FakeMailgun::start(DOMAIN);
    fake.add_event(&item("delivered", "m@x", now_seconds_f64() - 3600.0, 1).to_string());
    let unreachable = format!("http://127.0.0.1:{}", mailtrail_testing::free_port());
    let cases = [
        ("MAILGUN_API_KEY", "key-wrong", "401", "account API key"),
        (
            "MAILGUN_DOMAIN",
            "other.example.com",
            "404",
            "MAILGUN_DOMAIN",
        ),
        ("MAILGUN_API_KEY", FAKE_SENDING_KEY, "403", "sending key"),
        (
            "MAILGUN_API_BASE",
            unreachable.as_str(),
            "cannot reach Mailgun",
            "MAILGUN_API_BASE",
        ),
    ];
    for (variable, value, says, advice) in cases {
        let redis = TestRedis::new();
        let run = mailtrail(
            &fake,
            &redis,
            &["reconcile", "--since", "2h", "--retry-backoff-ms", "10"],
        )
        .env(variable, value)
        .run()
        .await;
        assert_eq!(run.code, Some(1), "{variable}={value}: {run:?}");
        let stderr = run.stderr.trim_end();
        assert_eq!(stderr.lines().count(), 1, "{variable}={value}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains(advice), "{stderr}");
        assert!(!stderr.contains(FAKE_API_KEY), "{stderr}");
        assert!(redis.list("events").is_empty(), "{variable}={value}");
        assert_eq!(checkpoint(&redis).await, None, "{variable}={value}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_a_range_continues_from_the_checkpoint() {
    let fake = FakeMailgun::start(DOMAIN);
    let now = now_seconds_f64();
    fake.add_event(&item("accepted", "a@x", now - 3.0 * 3600.0, 1).to_string());
    fake.add_event(&item("delivered", "a@x", now - 2.0 * 3600.0, 1).to_string());
    let redis = TestRedis::new();

    // The first run of a domain reaches back a day, up to the trust threshold.
    let first = mailtrail(&fake, &redis, &["reconcile", "--trust-after", "10m"])
        .run()
        .await
        .success();
    assert_eq!(events_queued(&first), 2, "{}", first.stdout);
    let saved = checkpoint(&redis).await.unwrap();
    let expected = ((now - 600.0) * 1e6) as i64;
    assert!(
        (saved - expected).abs() < 5_000_000,
        "{saved} vs {expected}"
    );

    // An event after the checkpoint: the next run reads only from there.
    fake.add_event(&item("opened", "a@x", now - 300.0, 1).to_string());
    let second = mailtrail(&fake, &redis, &["reconcile", "--trust-after", "1s"])
        .run()
        .await
        .success();
    assert_eq!(events_queued(&second), 1, "{}", second.stdout);
    assert_eq!(redis.list("events").len(), 3);

    // A backfill of an older range leaves the checkpoint where it is.
    let before = checkpoint(&redis).await;
    assert!(before.is_some());
    mailtrail(
        &fake,
        &redis,
        &["reconcile", "--since", "4h", "--until", "1h"],
    )
    .run()
    .await
    .success();
    assert_eq!(checkpoint(&redis).await, before);
}
