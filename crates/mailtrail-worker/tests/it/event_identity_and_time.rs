//! Which events are one event, and which event times are believable, through the real receiver
//! and the real worker against a fresh database and a unique Redis prefix.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::sample::{signed_form, signed_json};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_testing::{TestApp, fresh_token, now_seconds};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn two_legacy_clicks_in_the_same_second_on_the_same_link_are_two_clicks() {
    let mut app = TestApp::builder().build().await;
    let key = app.signing_key();
    let signed_at = now_seconds();
    let click = |token: &str| {
        signed_form(
            key,
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
    assert_eq!(app.post(form, click(&first)).await, 200);
    assert_eq!(app.post(form, click(&second)).await, 200);
    // The first click delivered again with its own token is a duplicate, not a third click.
    assert_eq!(app.post(form, click(&first)).await, 200);
    app.drain().await;

    let mut connection = app.database().connect().await;
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
    assert!(app.redis().list("dead").is_empty());
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_dated_in_the_year_201609_is_dead_lettered_with_the_reason_not_stored() {
    let mut app = TestApp::builder().build().await;
    let key = app.signing_key();
    let delivered = |message_id: &str, at: f64| {
        signed_json(
            key,
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
    assert_eq!(app.post("application/json", far).await, 200);
    let now = delivered("on-time@mg.example.com", now_seconds() as f64);
    assert_eq!(app.post("application/json", now).await, 200);
    app.drain().await;

    let dead = app.redis().list("dead");
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

    let mut connection = app.database().connect().await;
    let stored: Vec<String> = email_events::table
        .select(email_events::message_id)
        .load(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, ["on-time@mg.example.com"]);
    app.stop_worker().await;
}
