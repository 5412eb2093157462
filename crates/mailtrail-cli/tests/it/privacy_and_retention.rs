//! `partitions`, `retention` and `erase` through the real binary: months are created ahead and
//! listed, retention says what it would drop and drops it only with `--yes`, and an erasure
//! removes a person's rows, events and dead letters and leaves the counters exact.

use mailtrail_core::EventKind;
use mailtrail_store::upsert_events;
use mailtrail_testing::{TestDatabase, TestRedis, event_at, worker_row};

use crate::support::{DAY, Mailtrail, Seed, old_dead_letter};

#[tokio::test(flavor = "multi_thread")]
async fn retention_says_what_it_would_drop_and_drops_whole_months_only_with_yes() {
    let database = TestDatabase::create().await;
    // Events of March 2019 (long past any retention) and of now.
    let old = worker_row(
        &event_at(
            EventKind::Delivered,
            "old@x",
            "ann@example.com",
            1_552_219_200,
        ),
        1,
        7,
        None,
    );
    let now = chrono::Utc::now().timestamp();
    let recent = worker_row(
        &event_at(EventKind::Delivered, "new@x", "ann@example.com", now),
        1,
        7,
        None,
    );
    upsert_events(&mut database.connect().await, &[old, recent])
        .await
        .unwrap();

    let ensured = Mailtrail::new(&["partitions", "ensure"])
        .database(&database)
        .run()
        .await
        .success();
    assert!(
        ensured
            .stdout
            .contains("created email_events_2019_03 (1 rows moved in from email_events_default)"),
        "{}",
        ensured.stdout
    );
    let listed = Mailtrail::new(&["partitions", "list"])
        .database(&database)
        .run()
        .await
        .success();
    assert!(
        listed.stdout.contains("email_events_2019_03"),
        "{}",
        listed.stdout
    );

    let planned = Mailtrail::new(&["retention", "--events-older-than", "13mo"])
        .database(&database)
        .run()
        .await
        .success();
    assert!(
        planned
            .stdout
            .contains("would drop:\n  partition email_events_2019_03 ("),
        "{}",
        planned.stdout
    );
    assert!(
        planned.stdout.contains("run again with --yes"),
        "{}",
        planned.stdout
    );
    assert_eq!(database.stored_events().await, 2);

    let applied = Mailtrail::new(&["retention", "--events-older-than", "13mo", "--yes"])
        .database(&database)
        .run()
        .await
        .success();
    assert!(
        applied.stdout.contains("dropped email_events_2019_03"),
        "{}",
        applied.stdout
    );
    assert_eq!(database.stored_events().await, 1);
    // sent_emails keeps the summary of the dropped month.
    assert_eq!(database.stored_rows().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn erase_removes_a_person_from_rows_events_and_dead_letters_and_keeps_counters_exact() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let rows: Vec<_> = [
        Seed::new(EventKind::Delivered, "e1@x", "Fay@Example.com", 0, (1, 7)).subject("News"),
        Seed::new(EventKind::Opened, "e1@x", "fay@example.com", 60, (1, 7)),
        Seed::new(EventKind::Delivered, "e1@x", "gus@example.com", 0, (2, 7)).subject("News"),
    ]
    .iter()
    .map(Seed::row)
    .collect();
    upsert_events(&mut database.connect().await, &rows)
        .await
        .unwrap();
    let fays_letter = old_dead_letter(
        DAY,
        r#"{"v":1,"body":"event=bounced&recipient=fay%40example.com"}"#,
    );
    let guss_letter = old_dead_letter(DAY, r#"{"v":1,"body":"recipient=gus%40example.com"}"#);
    redis.lpush("dead", vec![&fays_letter, &guss_letter]);

    let before = Mailtrail::new(&["stats", "--project", "7", "--json"])
        .database(&database)
        .run()
        .await
        .success();
    assert_eq!(project_total(&before.stdout), 2);

    let erased = Mailtrail::new(&["erase", "--recipient", "FAY@example.com"])
        .database(&database)
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        erased.stdout.contains(
            "erased from Postgres: 1 sent_emails rows and 2 events, of 1 messages in 1 projects"
        ),
        "{}",
        erased.stdout
    );
    assert!(
        erased.stdout.contains("erased from Redis: 1 dead letters"),
        "{}",
        erased.stdout
    );
    assert_eq!(redis.list("dead"), [guss_letter]);
    assert_eq!(database.stored_rows().await, 1);
    assert_eq!(database.stored_events().await, 1);

    let after = Mailtrail::new(&["stats", "--project", "7", "--json"])
        .database(&database)
        .run()
        .await
        .success();
    assert_eq!(project_total(&after.stdout), 1);
    Mailtrail::new(&["rollups", "verify"])
        .database(&database)
        .run()
        .await
        .success();
}

/// The message total of `stats --project N --json`'s only group.
fn project_total(json: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    json["groups"][0]["total"].as_u64().unwrap()
}
