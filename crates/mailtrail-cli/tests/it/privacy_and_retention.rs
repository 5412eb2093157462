//! `partitions`, `retention` and `erase` through the real binary: months are created ahead and
//! listed, retention says what it would drop and drops it only with `--yes`, and an erasure
//! removes a person's rows, events and dead letters (on every shard of a clustered queue) and
//! leaves the counters exact.

use std::time::Duration;

use mailtrail_core::{Envelope, EventKind, Source};
use mailtrail_queue::{ClaimedBatch, DeadEnvelope, Settlement, now_ms};
use mailtrail_store::upsert_events;
use mailtrail_testing::{QueueLayout, TestDatabase, TestRedis, event_at, worker_row};

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

/// Dead-letters `envelope` on shard `shard` the way a worker does: push, claim, settle as dead.
async fn dead_letter_on_shard(redis: &TestRedis, shard: usize, envelope: &str) {
    let worker = redis.worker_queue("eraser-test-worker");
    let queue = worker.queue().shard(shard).unwrap();
    queue.push_envelope(envelope).await.unwrap();
    let claimed = worker
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(claimed, [envelope]);
    worker
        .settle(&Settlement {
            claimed: ClaimedBatch::of(&claimed),
            dead: vec![DeadEnvelope {
                envelope: envelope.to_owned(),
                reason: "body is not JSON".to_owned(),
            }],
            ..Settlement::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_with_one_and_three_shards_erase_finds_dead_letters_on_every_shard() {
    for layout in QueueLayout::ON_CLUSTER {
        let database = TestDatabase::create().await;
        let redis = TestRedis::with_layout(layout);
        let shards = redis
            .worker_queue("eraser-test-worker")
            .queue()
            .shard_count();
        let body = |recipient: &str| {
            Envelope::new(
                Source::Mailgun,
                now_ms(),
                "application/x-www-form-urlencoded",
                format!("event=bounced&recipient={recipient}").as_bytes(),
            )
            .to_json()
        };
        // Two of Hal's dead letters on the last and the first shard, and one of someone else.
        dead_letter_on_shard(&redis, shards - 1, &body("hal%40example.com")).await;
        dead_letter_on_shard(&redis, 0, &body("Hal%40Example.com&code=550")).await;
        dead_letter_on_shard(&redis, shards / 2, &body("ida%40example.com")).await;

        let erased = Mailtrail::new(&["erase", "--recipient", "hal@example.com"])
            .database(&database)
            .redis(&redis)
            .run()
            .await
            .success();
        assert!(
            erased.stdout.contains("erased from Redis: 2 dead letters"),
            "{layout:?}: {}",
            erased.stdout
        );
        let left = redis.queue().dead_letters(0, 10).await.unwrap();
        assert_eq!(left.len(), 1, "{layout:?}");
        assert!(left[0].raw.contains("ida%40example.com"), "{layout:?}");
    }
}
