//! One row per message and recipient means one normalised recipient: a provider spelling the
//! address differently in two events of one message (`carol@example.com` delivered,
//! `Carol@Example.COM` bounced) must not count the message twice.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::event_key::event_key;
use mailtrail_core::{EventKind, Severity};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_store::{TimelineFilter, timeline, upsert_events};
use mailtrail_testing::{TestDatabase, event_at, worker_row};

#[tokio::test(flavor = "multi_thread")]
async fn two_spellings_of_one_address_are_one_row_that_shows_the_same_spelling_in_any_order() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    for (message, bounced_first) in [("case@x", true), ("case-reversed@x", false)] {
        let delivered = event_at(EventKind::Delivered, message, "carol@example.com", 10);
        let mut bounced = event_at(EventKind::Failed, message, "Carol@Example.COM", 20);
        bounced.severity = Some(Severity::Permanent);
        // The keys hash the address as sent: a redelivery of either is still recognised.
        assert_ne!(event_key(&delivered), event_key(&bounced));
        let mut batches = [
            worker_row(&bounced, 1, 2, None),
            worker_row(&delivered, 1, 2, None),
        ];
        if !bounced_first {
            batches.reverse();
        }
        for batch in batches {
            upsert_events(&mut connection, &[batch]).await.unwrap();
        }

        use sent_emails::dsl as s;
        let rows: Vec<(String, Option<String>, String, i64)> = s::sent_emails
            .filter(s::message_id.eq(message))
            .select((
                s::recipient,
                s::recipient_as_sent,
                s::status,
                s::event_count,
            ))
            .load(&mut connection)
            .await
            .unwrap();
        assert_eq!(
            rows,
            [(
                "carol@example.com".to_owned(),
                // The spelling that sorts first in bytes, whichever event arrived first.
                Some("Carol@Example.COM".to_owned()),
                "bounced".to_owned(),
                2
            )],
            "{message}"
        );
    }
    let spellings: Vec<(String, Option<String>)> = email_events::table
        .filter(email_events::message_id.eq("case@x"))
        .order(email_events::occurred_at)
        .select((email_events::recipient, email_events::recipient_as_sent))
        .load(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        spellings,
        [
            (
                "carol@example.com".to_owned(),
                Some("carol@example.com".to_owned())
            ),
            (
                "carol@example.com".to_owned(),
                Some("Carol@Example.COM".to_owned())
            ),
        ]
    );
    let history = timeline(
        &mut connection,
        &TimelineFilter::Recipient("CAROL@example.com".to_owned()),
        10,
    )
    .await
    .unwrap();
    // Both messages' events to carol, whatever spelling the search uses.
    assert_eq!(history.len(), 4);
}
