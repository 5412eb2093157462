//! Erasing a recipient removes their rows and events, whatever spelling they are given in, and
//! the counters stay exact: a subject's totals drop by exactly what was erased.

use std::collections::BTreeMap;

use mailtrail_core::EventKind;
use mailtrail_store::erase::{ErasedRecipient, erase_recipient};
use mailtrail_store::{
    Source, StatsQuery, StatsScope, StoreConnection, TimelineFilter, rollups, status_counts,
    timeline, upsert_events,
};
use mailtrail_testing::{TestDatabase, event_at, worker_row};

/// Midnight UTC, 2026-11-10.
const DAY0: i64 = 1_762_732_800;

/// Messages per (subject, status) of project 7, from the counters.
async fn subject_totals(connection: &mut StoreConnection) -> BTreeMap<(String, String), i64> {
    status_counts(
        connection,
        &StatsQuery::new(StatsScope::ProjectBySubject(7)),
        Source::Counters,
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|row| row.messages != 0)
    .map(|row| ((row.subject.unwrap_or_default(), row.status), row.messages))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn erasing_a_recipient_removes_their_rows_and_events_and_keeps_the_counters_exact() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let mut rows = Vec::new();
    // Dana (in two spellings) got three messages in two projects; Eve got two.
    for (message, recipient, project, subject, opened) in [
        ("n1@x", "Dana@Example.com", 7, "Update", true),
        ("n2@x", "dana@example.com", 7, "Reminder", false),
        ("n3@x", "dana@example.com", 8, "Update", false),
        ("n1@x", "eve@example.com", 7, "Update", true),
        ("n2@x", "eve@example.com", 7, "Reminder", false),
    ] {
        let at = DAY0 + rows.len() as i64 * 60;
        rows.push(worker_row(
            &event_at(EventKind::Delivered, message, recipient, at),
            1,
            project,
            Some(subject),
        ));
        if opened {
            rows.push(worker_row(
                &event_at(EventKind::Opened, message, recipient, at + 30),
                1,
                project,
                None,
            ));
        }
    }
    upsert_events(&mut connection, &rows).await.unwrap();
    let before = subject_totals(&mut connection).await;

    let erased = erase_recipient(&mut connection, "  DANA@example.COM ")
        .await
        .unwrap();
    assert_eq!(
        erased,
        ErasedRecipient {
            rows: 3,
            events: 4,
            messages: 3,
            projects: 2
        }
    );

    // Project 7's subjects each lost Dana's one message, and nothing else changed.
    let after = subject_totals(&mut connection).await;
    let key = |subject: &str| (subject.to_owned(), "delivered".to_owned());
    assert_eq!(before[&key("Update")] - after[&key("Update")], 1);
    assert_eq!(before[&key("Reminder")] - after[&key("Reminder")], 1);
    assert_eq!(after[&key("Update")], 1);
    assert!(
        rollups::verify(&mut connection).await.unwrap().is_empty(),
        "the counters disagree with sent_emails after the erasure"
    );

    // Dana is gone; Eve is untouched.
    let dana = TimelineFilter::Recipient("dana@example.com".to_owned());
    assert!(
        timeline(&mut connection, &dana, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let eve = TimelineFilter::Recipient("eve@example.com".to_owned());
    assert_eq!(timeline(&mut connection, &eve, 100).await.unwrap().len(), 3);
    assert_eq!(database.stored_rows().await, 2);

    // Erasing again finds nothing.
    let again = erase_recipient(&mut connection, "dana@example.com")
        .await
        .unwrap();
    assert_eq!(again, ErasedRecipient::default());
}
