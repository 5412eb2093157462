//! Events of a kind mailtrail does not know (`stored` from the Events API, `list_member_uploaded`,
//! whatever Mailgun adds next) go through the real receiver and worker like any other: kept in
//! `email_events` for history, never creating or changing a `sent_emails` row (row J21/L12 of
//! `docs/status-mapping.md`), never a panic, never lost.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::sample::{SampleEvent, SampleKind};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_testing::TestApp;
use serde_json::json;

/// A signed JSON `stored` event for `message_id`, instrumented with backer and project.
fn stored_event(app: &TestApp, message_id: &str, at: f64) -> Vec<u8> {
    app.signed_json(json!({
            "event": "stored",
            "id": "czsjqFATSlC3QtAK-C80nw",
            "timestamp": at,
            "log-level": "info",
            "recipient": "backer@example.com",
            "message": {"headers": {"message-id": message_id, "subject": "Your pledge"}},
            "storage": {"key": "eyJwIjpmYWxzZX0=", "url": "https://storage.example.com/k"},
            "user-variables": {"backer_id": "42", "project_id": "7"},
    }))
}

/// The kinds and statuses kept in `email_events` for `message_id`, oldest first.
async fn kept_events(app: &TestApp, message_id: &str) -> Vec<(String, Option<String>, i64)> {
    use email_events::dsl as e;
    let mut connection = app.database().connect().await;
    e::email_events
        .filter(e::message_id.eq(message_id))
        .order(e::occurred_at)
        .select((e::kind, e::status, e::backer_id))
        .load(&mut connection)
        .await
        .unwrap()
}

/// The row's status and event count, if there is a row.
async fn row(app: &TestApp, message_id: &str) -> Option<(String, i64)> {
    use sent_emails::dsl as s;
    let mut connection = app.database().connect().await;
    s::sent_emails
        .filter(s::message_id.eq(message_id))
        .select((s::status, s::event_count))
        .first(&mut connection)
        .await
        .optional()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_event_is_kept_in_the_events_table_and_creates_no_row() {
    let mut app = TestApp::builder().build().await;
    let message_id = "stored-only@mg.example.com";
    // Twice, as a Mailgun retry would: kept once.
    for _ in 0..2 {
        let body = stored_event(&app, message_id, 1_764_000_000.25);
        assert_eq!(app.post("application/json", body).await, 200);
    }
    app.drain().await;

    assert_eq!(
        kept_events(&app, message_id).await,
        [("stored".to_owned(), None, 42)]
    );
    assert_eq!(row(&app, message_id).await, None);
    assert!(app.redis().list("dead").is_empty());
    let skipped = app.redis().counters("skipped");
    assert!(skipped.is_empty(), "{skipped:?}");
    // The worker stops cleanly: it did not panic on the way.
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_events_after_a_delivery_leave_its_row_as_it_was() {
    let mut app = TestApp::builder().build().await;
    let message_id = "delivered-then-stored@mg.example.com";
    let delivered = SampleEvent {
        kind: SampleKind::Delivered,
        message_id,
        recipient: "backer@example.com",
        timestamp: 1_764_000_000.5,
        backer_id: Some(42),
        project_id: Some(7),
        subject: "Your pledge",
    };
    assert_eq!(app.post_sample(&delivered).await, 200);
    // A later unknown JSON event and a later unknown legacy form event for the same message.
    let json_body = stored_event(&app, message_id, 1_764_000_900.0);
    assert_eq!(app.post("application/json", json_body).await, 200);
    let form_body = app.signed_form(&[
        ("event", "list_member_uploaded"),
        ("Message-Id", &format!("<{message_id}>")),
        ("recipient", "backer@example.com"),
        ("backer_id", "42"),
        ("project_id", "7"),
    ]);
    assert_eq!(
        app.post("application/x-www-form-urlencoded", form_body)
            .await,
        200
    );
    app.drain().await;

    let mut kinds: Vec<String> = kept_events(&app, message_id)
        .await
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["delivered", "list_member_uploaded", "stored"]);
    assert_eq!(
        row(&app, message_id).await,
        Some(("delivered".to_owned(), 1))
    );
    assert!(app.redis().list("dead").is_empty());
    app.stop_worker().await;
}
