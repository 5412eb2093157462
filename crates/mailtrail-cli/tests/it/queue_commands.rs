//! The commands that read or change the Redis queue, run as the real binary against a unique
//! Redis prefix: `queue status`, and `dead list | show | replay | purge`. Queue state is made
//! with the queue's own operations (push, claim, settle), as the receiver and worker make it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{DAY, Mailtrail, old_dead_letter};
use mailtrail_core::{Envelope, Source};
use mailtrail_queue::{ClaimedBatch, DeadEnvelope, DeadLetter, Settlement, SkippedCount, now_ms};
use mailtrail_testing::{QueueLayout, TestRedis};
use serde_json::{Value, json};

/// An envelope the receiver would have queued `age_ms` ago.
fn envelope(age_ms: i64, body: &str) -> String {
    Envelope::new(
        Source::Mailgun,
        now_ms() - age_ms,
        "application/json",
        body.as_bytes(),
    )
    .to_json()
}

/// Dead-letters `envelope` the way a worker does: push, claim, settle as dead. On a sharded
/// queue, successive calls use the shards in turn, so the dead letters spread over them.
async fn dead_letter(redis: &TestRedis, worker_id: &str, envelope: &str, reason: &str) {
    static TURN: AtomicUsize = AtomicUsize::new(0);
    let worker = redis.worker_queue(worker_id);
    let shard = TURN.fetch_add(1, Ordering::Relaxed) % worker.queue().shard_count();
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
                reason: reason.to_owned(),
            }],
            ..Settlement::default()
        })
        .await
        .unwrap();
}

/// Writes a dead entry directly, for ages a test cannot wait for.
#[tokio::test(flavor = "multi_thread")]
async fn queue_status_reports_backlog_age_in_flight_dead_letters_and_skips() {
    queue_status_reports(QueueLayout::Single).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_with_one_and_three_shards_queue_and_dead_commands_see_every_shard() {
    for layout in QueueLayout::ON_CLUSTER {
        queue_status_reports(layout).await;
        dead_replay_all_twice(layout).await;
        dead_purge_with_yes(layout).await;
    }
}

async fn queue_status_reports(layout: QueueLayout) {
    let redis = TestRedis::with_layout(layout);
    // One dead letter and two skipped events, settled by worker-a.
    dead_letter(
        &redis,
        "worker-a",
        &envelope(0, "not json"),
        "body is not JSON",
    )
    .await;
    let worker_a = redis.worker_queue("worker-a");
    let queue = worker_a.queue().clone();
    // worker-a holds one envelope in flight under a live lease.
    assert!(
        queue
            .renew_lease("worker-a", "instance-1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    queue.push_envelope(&envelope(5_000, "{}")).await.unwrap();
    worker_a
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    worker_a
        .settle(&Settlement {
            skipped: vec![SkippedCount {
                reason: "missing_backer_id".to_owned(),
                count: 2,
            }],
            ..Settlement::default()
        })
        .await
        .unwrap();
    // Three waiting; the oldest (received 90 s ago) is the one workers take next.
    queue.push_envelope(&envelope(90_000, "{}")).await.unwrap();
    queue.push_envelope(&envelope(10_000, "{}")).await.unwrap();
    queue.push_envelope(&envelope(1_000, "{}")).await.unwrap();

    let run = Mailtrail::new(&["queue", "status", "--json"])
        .redis(&redis)
        .run()
        .await
        .success();
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["backlog"]["length"], 3);
    let age = status["backlog"]["oldest_age_ms"].as_i64().unwrap();
    assert!((90_000..120_000).contains(&age), "oldest age {age} ms");
    assert_eq!(status["in_flight"][0]["worker"], "worker-a");
    assert_eq!(status["in_flight"][0]["envelopes"], 1);
    let lease_age = status["in_flight"][0]["lease_age_ms"].as_i64().unwrap();
    assert!((0..30_000).contains(&lease_age), "lease age {lease_age} ms");
    assert_eq!(status["dead_letters"], 1);
    assert_eq!(
        status["skipped"],
        json!([{"reason": "missing_backer_id", "events": 2}])
    );

    let text = Mailtrail::new(&["queue", "status"])
        .redis(&redis)
        .run()
        .await
        .success()
        .stdout;
    assert!(
        text.contains("backlog:       3 envelopes, oldest received 1m 3"),
        "{text}"
    );
    assert!(text.contains("dead letters:  1"), "{text}");
    assert!(text.contains("worker-a          1  renewed"), "{text}");
    assert!(text.contains("missing_backer_id       2"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_status_fails_clearly_when_redis_is_unreachable() {
    let run = Mailtrail::new(&["queue", "status"])
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .run()
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cannot reach Redis at REDIS_URL"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_list_shows_the_newest_first_with_reason_worker_type_and_size() {
    let redis = TestRedis::new();
    dead_letter(
        &redis,
        "worker-a",
        &envelope(0, "{\"a\":1}"),
        "first reason",
    )
    .await;
    dead_letter(&redis, "worker-b", &envelope(0, "xyz"), "second reason").await;

    let run = Mailtrail::new(&["dead", "list"])
        .redis(&redis)
        .run()
        .await
        .success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "2 dead letters; showing 2 newest first");
    assert!(lines[1].starts_with("index  dead at"), "{}", run.stdout);
    assert!(lines[3].starts_with("    0  "), "{}", run.stdout);
    assert!(
        lines[3].contains("worker-b  second reason  application/json     3"),
        "{}",
        run.stdout
    );
    assert!(
        lines[4].contains("worker-a  first reason   application/json     7"),
        "{}",
        run.stdout
    );

    let limited = Mailtrail::new(&["dead", "list", "--limit", "1"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        limited
            .stdout
            .starts_with("2 dead letters; showing 1 newest first")
    );
    assert!(!limited.stdout.contains("worker-a"));

    let empty = TestRedis::new();
    let none = Mailtrail::new(&["dead", "list"])
        .redis(&empty)
        .run()
        .await
        .success();
    assert_eq!(none.stdout, "no dead letters\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_show_prints_the_reason_and_the_body_pretty_printed() {
    let redis = TestRedis::new();
    let body = r#"{"signature":{"token":"t"},"event-data":{"event":"delivered"}}"#;
    dead_letter(&redis, "worker-a", &envelope(0, body), "missing message id").await;

    let run = Mailtrail::new(&["dead", "show", "0"])
        .redis(&redis)
        .run()
        .await
        .success();
    let text = run.stdout;
    assert!(text.starts_with("dead letter 0\n"), "{text}");
    assert!(
        text.contains("reason:        missing message id\n"),
        "{text}"
    );
    assert!(text.contains("worker:        worker-a\n"), "{text}");
    assert!(text.contains("content type:  application/json\n"), "{text}");
    assert!(
        text.contains(&format!("body:          {} bytes, JSON\n", body.len())),
        "{text}"
    );
    assert!(
        text.contains("{\n  \"event-data\": {\n    \"event\": \"delivered\"\n  },"),
        "{text}"
    );

    let raw = Mailtrail::new(&["dead", "show", "0", "--raw"])
        .redis(&redis)
        .run()
        .await
        .success();
    let entry: DeadLetter = serde_json::from_str(raw.stdout.trim_end()).unwrap();
    assert_eq!(entry.reason, "missing message id");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_show_escapes_control_characters_of_a_text_body() {
    let redis = TestRedis::new();
    dead_letter(&redis, "w", &envelope(0, "evil\u{1b}[2Jbody"), "not JSON").await;
    let run = Mailtrail::new(&["dead", "show", "0"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(run.stdout.contains("evil\\u{1b}[2Jbody"), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'));
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_show_of_a_missing_index_says_how_long_the_list_is() {
    let redis = TestRedis::new();
    dead_letter(&redis, "w", &envelope(0, "x"), "bad").await;
    let run = Mailtrail::new(&["dead", "show", "5"])
        .redis(&redis)
        .run()
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("no dead letter at index 5 (the list holds 1; 0 is the newest)"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_replay_dry_run_changes_nothing() {
    let redis = TestRedis::new();
    let first = envelope(0, "one");
    let second = envelope(0, "two");
    dead_letter(&redis, "w", &first, "bad").await;
    dead_letter(&redis, "w", &second, "bad").await;
    let dead_before = redis.list("dead");

    for args in [
        &["dead", "replay", "0", "--dry-run"][..],
        &["dead", "replay", "--all", "--dry-run"][..],
    ] {
        let run = Mailtrail::new(args).redis(&redis).run().await.success();
        assert!(
            run.stdout.contains("dry run: would replay"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(redis.list("dead"), dead_before);
    assert!(redis.list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_replay_by_index_puts_exactly_that_envelope_back_on_the_backlog() {
    let redis = TestRedis::new();
    let older = envelope(0, "older");
    let newer = envelope(0, "newer");
    dead_letter(&redis, "w", &older, "bad").await;
    dead_letter(&redis, "w", &newer, "bad").await;

    // Index 1 is the older one; naming it twice replays it once.
    let run = Mailtrail::new(&["dead", "replay", "1", "1"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        run.stdout
            .contains("replayed 1 dead letters onto the backlog"),
        "{}",
        run.stdout
    );
    assert_eq!(redis.list("events"), std::slice::from_ref(&older));
    let dead = redis.list("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("newer"));

    // The worker takes it next: it is at the consumer end.
    let claimed = redis
        .worker_queue("w2")
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(claimed, [older]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_replay_of_a_missing_index_replays_nothing() {
    let redis = TestRedis::new();
    dead_letter(&redis, "w", &envelope(0, "one"), "bad").await;
    let run = Mailtrail::new(&["dead", "replay", "0", "3"])
        .redis(&redis)
        .run()
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no dead letter at index 3"),
        "{}",
        run.stderr
    );
    assert_eq!(redis.list("dead").len(), 1);
    assert!(redis.list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_replay_all_twice_never_queues_an_envelope_twice() {
    dead_replay_all_twice(QueueLayout::Single).await;
}

async fn dead_replay_all_twice(layout: QueueLayout) {
    let redis = TestRedis::with_layout(layout);
    let envelopes: Vec<String> = (0..3).map(|i| envelope(0, &format!("e{i}"))).collect();
    for envelope in &envelopes {
        dead_letter(&redis, "w", envelope, "bad").await;
    }

    let first = Mailtrail::new(&["dead", "replay", "--all"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        first.stdout.contains("replayed 3 dead letters"),
        "{}",
        first.stdout
    );
    let second = Mailtrail::new(&["dead", "replay", "--all"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert_eq!(second.stdout, "no dead letters\n");

    let mut backlog = redis.list("events");
    backlog.sort();
    let mut expected = envelopes.clone();
    expected.sort();
    assert_eq!(backlog, expected);
    assert!(redis.list("dead").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_replay_all_crosses_chunks_and_leaves_unreadable_entries_in_place() {
    let redis = TestRedis::new();
    // 1,200 entries (more than two chunks of 500), every 100th not a dead letter at all.
    let mut expected = Vec::new();
    for i in 0..1_200 {
        if i % 100 == 0 {
            redis.lpush("dead", format!("garbage {i}"));
        } else {
            let envelope = envelope(0, &format!("e{i}"));
            redis.lpush("dead", old_dead_letter(DAY, &envelope));
            expected.push(envelope);
        }
    }

    let run = Mailtrail::new(&["dead", "replay", "--all"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        run.stdout
            .contains("replayed 1188 dead letters onto the backlog"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("12 entries hold no readable envelope and stay in the dead list"),
        "{}",
        run.stdout
    );
    let mut backlog = redis.list("events");
    backlog.sort();
    expected.sort();
    assert_eq!(backlog, expected);
    let dead = redis.list("dead");
    assert_eq!(dead.len(), 12);
    assert!(dead.iter().all(|entry| entry.starts_with("garbage ")));
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_purge_with_yes_removes_only_entries_older_than_the_threshold() {
    dead_purge_with_yes(QueueLayout::Single).await;
}

async fn dead_purge_with_yes(layout: QueueLayout) {
    let redis = TestRedis::with_layout(layout);
    redis.lpush("dead", old_dead_letter(10 * DAY, "ten days"));
    redis.lpush("dead", "garbage: no age, never purged");
    redis.lpush("dead", old_dead_letter(8 * DAY, "eight days"));
    redis.lpush("dead", old_dead_letter(6 * DAY, "six days"));
    dead_letter(&redis, "w", &envelope(0, "just now"), "bad").await;

    let run = Mailtrail::new(&["dead", "purge", "--older-than", "7d", "--yes"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        run.stdout
            .starts_with("purged 2 dead letters older than 7d"),
        "{}",
        run.stdout
    );
    let mut dead = redis.list("dead");
    if redis.shard_count() > 1 {
        // "just now" was dead-lettered in whichever shard its claim came from; the others were
        // written to the first shard's list. The order within each list is checked unsharded.
        dead.sort_by_key(|entry| !entry.contains("just now"));
    }
    assert_eq!(dead.len(), 3);
    assert!(dead[0].contains("just now"));
    assert!(dead[1].contains("six days"));
    assert_eq!(dead[2], "garbage: no age, never purged");

    let again = Mailtrail::new(&["dead", "purge", "--older-than", "7d", "--yes"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        again.stdout.starts_with("no dead letters older than 7d"),
        "{}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_purge_asks_first_and_only_yes_purges() {
    let redis = TestRedis::new();
    redis.lpush("dead", old_dead_letter(2 * DAY, "old"));

    let declined = Mailtrail::new(&["dead", "purge", "--older-than", "12h"])
        .redis(&redis)
        .stdin("n\n")
        .run()
        .await;
    assert_eq!(declined.code, Some(1));
    assert!(
        declined
            .stderr
            .contains("purge 1 of 1 dead letters older than 12h"),
        "{}",
        declined.stderr
    );
    assert!(declined.stderr.contains("[y/N]"));
    assert!(declined.stderr.contains("aborted; nothing was purged"));
    assert_eq!(redis.list("dead").len(), 1);

    // No answer at all (stdin closed) is a no as well, and says how to purge without asking.
    let silent = Mailtrail::new(&["dead", "purge", "--older-than", "12h"])
        .redis(&redis)
        .run()
        .await;
    assert_eq!(silent.code, Some(1));
    assert!(silent.stderr.contains("--yes"), "{}", silent.stderr);

    let accepted = Mailtrail::new(&["dead", "purge", "--older-than", "12h"])
        .redis(&redis)
        .stdin("y\n")
        .run()
        .await
        .success();
    assert!(
        accepted.stdout.starts_with("purged 1 dead letters"),
        "{}",
        accepted.stdout
    );
    assert!(redis.list("dead").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_purge_crosses_chunks_and_keeps_every_younger_entry() {
    let redis = TestRedis::new();
    // 1,100 entries alternating old and young, so every window removes some and keeps some.
    for i in 0..1_100 {
        let age = if i % 2 == 0 {
            3 * DAY
        } else {
            Duration::from_secs(60)
        };
        redis.lpush("dead", old_dead_letter(age, &format!("e{i}")));
    }
    let run = Mailtrail::new(&["dead", "purge", "--older-than", "1d", "--yes"])
        .redis(&redis)
        .run()
        .await
        .success();
    assert!(
        run.stdout.starts_with("purged 550 dead letters"),
        "{}",
        run.stdout
    );
    let dead = redis.list("dead");
    assert_eq!(dead.len(), 550);
    let kept: Vec<DeadLetter> = dead
        .iter()
        .map(|entry| serde_json::from_str(entry).unwrap())
        .collect();
    assert!(
        kept.iter()
            .all(|letter| now_ms() - letter.dead_at_ms < 3_600_000)
    );
    // The young ones keep their order (newest first).
    let numbers: Vec<u32> = kept
        .iter()
        .map(|letter| letter.envelope[1..].parse().unwrap())
        .collect();
    let expected: Vec<u32> = (0..1_100).rev().filter(|i| i % 2 == 1).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_purge_refuses_a_duration_without_a_unit() {
    let run = Mailtrail::new(&["dead", "purge", "--older-than", "7"])
        .run()
        .await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("`7` is not a duration"),
        "{}",
        run.stderr
    );
}
