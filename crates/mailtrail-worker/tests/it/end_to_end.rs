//! End to end: signed webhooks posted to the real receiver become rows in Postgres through the
//! real worker, and the statistics answer.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::SigningKey;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json};
use mailtrail_store::schema::sent_emails;
use mailtrail_store::{Source, StatsQuery, StatsScope, status_counts};
use mailtrail_testing::{QueueLayout, TestApp, fresh_token, metric, now_seconds, scrape};
use serde_json::json;

fn sample<'a>(kind: SampleKind, message_id: &'a str, at: f64) -> SampleEvent<'a> {
    SampleEvent {
        kind,
        message_id,
        recipient: "backer@example.com",
        timestamp: at,
        backer_id: Some(42),
        project_id: Some(7),
        subject: "Your pledge",
    }
}

type Row = (String, i64, i64, Option<String>, i64, i64, i64);

async fn row(app: &TestApp, message_id: &str) -> Option<Row> {
    use sent_emails::dsl as s;
    let mut connection = app.database().connect().await;
    s::sent_emails
        .filter(s::message_id.eq(message_id))
        .select((
            s::status,
            s::backer_id,
            s::project_id,
            s::subject,
            s::opened_count,
            s::clicked_count,
            s::event_count,
        ))
        .first(&mut connection)
        .await
        .optional()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_become_rows_and_the_stats_answer() {
    webhooks_become_rows_and_stats(QueueLayout::Single).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_with_one_and_three_shards_webhooks_become_rows_once() {
    for layout in QueueLayout::ON_CLUSTER {
        webhooks_become_rows_and_stats(layout).await;
        a_duplicate_delivery_changes_nothing(layout).await;
    }
}

async fn webhooks_become_rows_and_stats(layout: QueueLayout) {
    let mut app = TestApp::builder().layout(layout).build().await;
    let t = 1_764_000_000.0;
    for event in [
        sample(SampleKind::Accepted, "e2e-1@mg.example.com", t),
        sample(SampleKind::Delivered, "e2e-1@mg.example.com", t + 5.0),
        sample(SampleKind::Opened, "e2e-1@mg.example.com", t + 60.0),
        sample(SampleKind::Clicked, "e2e-1@mg.example.com", t + 61.0),
        sample(SampleKind::Accepted, "e2e-2@mg.example.com", t),
        sample(SampleKind::Bounced, "e2e-2@mg.example.com", t + 3.0),
    ] {
        assert_eq!(app.post_sample(&event).await, 200);
    }
    app.drain().await;

    assert_eq!(
        row(&app, "e2e-1@mg.example.com").await,
        Some((
            "delivered".into(),
            42,
            7,
            Some("Your pledge".into()),
            1,
            1,
            4
        ))
    );
    assert_eq!(
        row(&app, "e2e-2@mg.example.com").await.unwrap().0,
        "bounced"
    );

    let mut connection = app.database().connect().await;
    let stats = status_counts(
        &mut connection,
        &StatsQuery::new(StatsScope::Project(7)),
        Source::Counters,
    )
    .await
    .unwrap();
    let counts: Vec<(String, i64)> = stats.into_iter().map(|r| (r.status, r.messages)).collect();
    assert_eq!(counts, [("delivered".into(), 1), ("bounced".into(), 1)]);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_delivery_with_a_new_token_changes_nothing() {
    a_duplicate_delivery_changes_nothing(QueueLayout::Single).await;
}

async fn a_duplicate_delivery_changes_nothing(layout: QueueLayout) {
    let mut app = TestApp::builder().layout(layout).build().await;
    let delivered = sample(SampleKind::Delivered, "dup@mg.example.com", 1_764_000_000.5);
    let opened = sample(SampleKind::Opened, "dup@mg.example.com", 1_764_000_100.5);
    for event in [&delivered, &opened, &delivered, &opened] {
        assert_eq!(app.post_sample(event).await, 200);
    }
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 2);
    let (status, .., opened_count, _, events) = row(&app, "dup@mg.example.com").await.unwrap();
    assert_eq!((status.as_str(), opened_count, events), ("delivered", 1, 2));
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_token_is_accepted_once_and_answered_200() {
    let app = TestApp::builder().worker(false).build().await;
    let token = fresh_token();
    let first = app.signed_sample(
        &sample(SampleKind::Delivered, "tok@x", 1_764_000_000.0),
        &token,
    );
    let replay = app.signed_sample(
        &sample(SampleKind::Bounced, "tok@x", 1_764_000_001.0),
        &token,
    );
    assert_eq!(app.post("application/json", first).await, 200);
    assert_eq!(app.post("application/json", replay).await, 200);
    let queued = app.redis().list("events");
    assert_eq!(
        queued.len(),
        1,
        "a reused token must not queue a second envelope"
    );
    assert!(queued[0].contains("delivered"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_signature_is_refused_and_nothing_is_queued() {
    let app = TestApp::builder().worker(false).build().await;
    let event = sample(SampleKind::Delivered, "forged@x", 1_764_000_000.0);
    let forged = signed_json(
        &SigningKey::new("not-the-configured-key"),
        now_seconds(),
        &fresh_token(),
        event.event_data(),
    );
    assert_eq!(app.post("application/json", forged).await, 401);
    let stale = signed_json(
        app.signing_key(),
        now_seconds() - 10 * 3600,
        &fresh_token(),
        event.event_data(),
    );
    assert_eq!(app.post("application/json", stale).await, 406);
    assert!(app.redis().list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn events_posted_in_reverse_order_end_in_the_same_state() {
    let mut app = TestApp::builder().build().await;
    let t = 1_764_000_000.0;
    let story = |message_id| {
        vec![
            sample(SampleKind::Accepted, message_id, t),
            sample(SampleKind::Deferred, message_id, t + 1.0),
            sample(SampleKind::Opened, message_id, t + 90.0),
            sample(SampleKind::Delivered, message_id, t + 30.0),
            sample(SampleKind::Clicked, message_id, t + 95.0),
            sample(SampleKind::Complained, message_id, t + 200.0),
        ]
    };
    for event in story("forward@x") {
        assert_eq!(app.post_sample(&event).await, 200);
    }
    app.drain().await;
    for event in story("reverse@x").into_iter().rev() {
        assert_eq!(app.post_sample(&event).await, 200);
    }
    app.drain().await;
    let forward = row(&app, "forward@x").await.unwrap();
    assert_eq!(forward.0, "complained");
    assert_eq!(row(&app, "reverse@x").await.unwrap(), forward);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_missing_backer_id_is_skipped_and_counted() {
    let mut app = TestApp::builder().build().await;
    let mut event = sample(SampleKind::Delivered, "anon@x", 1_764_000_000.0);
    event.backer_id = None;
    assert_eq!(app.post_sample(&event).await, 200);
    app.drain().await;
    assert_eq!(row(&app, "anon@x").await, None);
    let skipped = app.redis().counters("skipped")["missing_backer_id"];
    assert_eq!(skipped, 1);
    assert!(app.redis().list("dead").is_empty());
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbage_body_after_a_valid_signature_is_dead_lettered_with_a_reason() {
    let mut app = TestApp::builder().build().await;
    // Signed, but no event: the receiver cannot tell, the worker can.
    let json_body = app.signed_json(json!({"nothing": "here"}));
    assert_eq!(app.post("application/json", json_body).await, 200);
    let form_body = app.signed_form(&[("garbage", "yes")]);
    assert_eq!(
        app.post("application/x-www-form-urlencoded", form_body)
            .await,
        200
    );
    app.drain().await;

    let dead = app.redis().list("dead");
    assert_eq!(dead.len(), 2);
    for entry in dead {
        let letter: mailtrail_queue::DeadLetter = serde_json::from_str(&entry).unwrap();
        assert!(
            letter.reason.contains("names no event"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.worker, "worker-1");
        assert!(letter.envelope.contains("content_type"));
    }
    assert_eq!(app.database().stored_events().await, 0);
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_queued_while_the_worker_is_down_are_written_when_it_starts() {
    let mut app = TestApp::builder().worker(false).build().await;
    for i in 0..50 {
        let message_id = format!("later-{i}@x");
        let event = sample(SampleKind::Delivered, &message_id, 1_764_000_000.0);
        assert_eq!(app.post_sample(&event).await, 200);
    }
    assert_eq!(app.redis().list("events").len(), 50);
    app.start_worker();
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 50);
    app.stop_worker().await;
    // A clean stop leaves no lease and no registration behind.
    assert!(app.redis().list("processing:worker-1").is_empty());
    let workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(app.redis().key("workers"))
        .query(&mut app.redis().connection())
        .unwrap();
    assert!(workers.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_with_one_row_postgres_refuses_is_split_and_only_that_row_is_dead_lettered() {
    let mut app = TestApp::builder().worker(false).build().await;
    // Make Postgres refuse one recipient, as it would refuse data it cannot store.
    let mut connection = app.database().connect().await;
    diesel::sql_query(
        "ALTER TABLE email_events ADD CONSTRAINT refuse_one CHECK (recipient <> 'refused@example.com')",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    for i in 0..20 {
        let message_id = format!("split-{i}@x");
        let mut event = sample(SampleKind::Delivered, &message_id, 1_764_000_000.0);
        if i == 7 {
            event.recipient = "refused@example.com";
        }
        assert_eq!(app.post_sample(&event).await, 200);
    }
    // All 20 are queued before the worker starts, so they arrive as one batch.
    app.start_worker();
    app.drain().await;
    assert_eq!(app.database().stored_events().await, 19);
    let dead = app.redis().list("dead");
    assert_eq!(dead.len(), 1);
    let letter: mailtrail_queue::DeadLetter = serde_json::from_str(&dead[0]).unwrap();
    assert!(letter.reason.contains("refuse_one"), "{}", letter.reason);
    assert!(letter.envelope.contains("split-7@x"));
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_metrics_count_stored_skipped_and_dead_events() {
    let port = mailtrail_testing::free_port();
    let mut app = TestApp::builder()
        .worker_env("MAILTRAIL_METRICS_BIND", &format!("127.0.0.1:{port}"))
        .build()
        .await;

    for i in 0..3 {
        let message_id = format!("metrics-{i}@x");
        let event = sample(SampleKind::Delivered, &message_id, 1_764_000_000.0);
        assert_eq!(app.post_sample(&event).await, 200);
    }
    let mut anonymous = sample(SampleKind::Delivered, "metrics-anon@x", 1_764_000_000.0);
    anonymous.project_id = None;
    assert_eq!(app.post_sample(&anonymous).await, 200);
    let garbage = app.signed_json(json!({}));
    assert_eq!(app.post("application/json", garbage).await, 200);
    app.drain().await;

    let text = scrape(&format!("http://127.0.0.1:{port}/metrics")).await;
    let value = |sample: &str| metric(&text, sample);
    assert_eq!(
        value("mailtrail_worker_events_total{outcome=\"stored\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        value("mailtrail_worker_events_total{outcome=\"skipped\"}"),
        1.0
    );
    assert_eq!(
        value("mailtrail_worker_events_total{outcome=\"dead\"}"),
        1.0
    );
    assert_eq!(
        value("mailtrail_worker_skipped_total{reason=\"missing_project_id\"}"),
        1.0
    );
    assert_eq!(value("mailtrail_worker_events_inserted_total"), 3.0);
    assert_eq!(value("mailtrail_worker_rows_upserted_total"), 3.0);
    assert_eq!(value("mailtrail_worker_backlog"), 0.0);
    assert!(value("mailtrail_worker_last_batch_timestamp_seconds") > 1.7e9);
    app.stop_worker().await;
}

/// Envelopes written by version 1 of the envelope format (captured from the receiver of that
/// version, in `fixtures/v1-envelopes.jsonl`) may still wait in a backlog after an upgrade: the
/// worker reads them as Mailgun webhooks.
#[tokio::test(flavor = "multi_thread")]
async fn envelopes_written_by_version_1_are_still_processed() {
    let mut app = TestApp::builder().worker(false).build().await;
    let queue = app.redis().queue();
    let fixture = include_str!("../fixtures/v1-envelopes.jsonl");
    for line in fixture.lines() {
        assert!(line.starts_with(r#"{"v":1,"#), "not a version 1 envelope");
        queue.push_envelope(line).await.unwrap();
    }

    let mut worker = app.driven_worker().await;
    let outcome = worker.process_next_batch().await.unwrap().unwrap();
    assert_eq!(
        (outcome.envelopes, outcome.done, outcome.dead),
        (2, 2, 0),
        "{outcome:?}"
    );
    assert_eq!(outcome.events_inserted, 2);
    assert_eq!(worker.process_next_batch().await.unwrap(), None);
    worker.release().await.unwrap();

    let (status, backer, project, subject, opened, ..) =
        row(&app, "v1-fixture@mg.example.com").await.unwrap();
    assert_eq!(status, "delivered");
    assert_eq!((backer, project, opened), (4242, 77, 1));
    assert_eq!(subject.as_deref(), Some("Written by envelope version 1"));
}
