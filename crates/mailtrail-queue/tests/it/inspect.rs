//! The operator's queue operations against a real Redis: a consistent look at the backlog,
//! windows over the dead letters from the oldest end, and the purge of old dead letters.

use mailtrail_queue::{BacklogSnapshot, DeadEntry, DeadLetter, PurgedWindow, now_ms};
use mailtrail_testing::TestRedis;

fn letter(name: &str, dead_at_ms: i64) -> String {
    serde_json::to_string(&DeadLetter {
        reason: "bad".to_owned(),
        dead_at_ms,
        worker: "w".to_owned(),
        envelope: name.to_owned(),
    })
    .unwrap()
}

fn envelopes(window: &[DeadEntry]) -> Vec<String> {
    window
        .iter()
        .map(|entry| match &entry.parsed {
            Ok(letter) => letter.envelope.clone(),
            Err(_) => entry.raw.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_snapshot_names_the_envelope_taken_next() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    assert_eq!(
        queue.backlog_snapshot().await.unwrap(),
        BacklogSnapshot {
            length: 0,
            oldest: None
        }
    );
    for envelope in ["first", "second", "third"] {
        queue.push_envelope(envelope).await.unwrap();
    }
    assert_eq!(
        queue.backlog_snapshot().await.unwrap(),
        BacklogSnapshot {
            length: 3,
            oldest: Some("first".to_owned())
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_windows_walk_from_the_oldest_end() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let names = ["d0", "d1", "d2", "d3", "d4"];
    redis.lpush(
        "dead",
        names.iter().map(|name| letter(name, 1)).collect::<Vec<_>>(),
    );
    // Newest first within a window, like LRANGE; the window ends `skip` entries before the tail.
    let oldest = queue.dead_letters_from_tail(0, 2).await.unwrap();
    assert_eq!(envelopes(&oldest), ["d1", "d0"]);
    let next = queue.dead_letters_from_tail(2, 2).await.unwrap();
    assert_eq!(envelopes(&next), ["d3", "d2"]);
    let past_the_head = queue.dead_letters_from_tail(4, 10).await.unwrap();
    assert_eq!(envelopes(&past_the_head), ["d4"]);
    assert!(queue.dead_letters_from_tail(5, 1).await.unwrap().is_empty());
    assert!(queue.dead_letters_from_tail(0, 0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_window_removes_only_old_readable_entries_within_it() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let now = now_ms();
    let cutoff = now - 1_000;
    redis.lpush(
        "dead",
        &[
            letter("old-outside-window", now - 10_000),
            letter("old-a", now - 5_000),
            "not json, no age".to_owned(),
            letter("young", now),
            letter("old-b", now - 5_000),
            letter("newest-old", now - 5_000),
        ],
    );
    // Skip the oldest entry; examine the next four.
    let purged = queue.purge_dead_window(cutoff, 1, 4).await.unwrap();
    assert_eq!(
        purged,
        PurgedWindow {
            examined: 4,
            removed: 2
        }
    );
    assert_eq!(
        redis
            .list("dead")
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        [
            letter("newest-old", now - 5_000).as_str(),
            letter("young", now).as_str(),
            "not json, no age",
            letter("old-outside-window", now - 10_000).as_str(),
        ]
    );
    // Past the head nothing is examined; a window reaching beyond it is cut to the list.
    assert_eq!(
        queue.purge_dead_window(cutoff, 4, 10).await.unwrap(),
        PurgedWindow {
            examined: 0,
            removed: 0
        }
    );
    assert_eq!(
        queue.purge_dead_window(cutoff, 0, 100).await.unwrap(),
        PurgedWindow {
            examined: 4,
            removed: 2
        }
    );
    assert_eq!(
        redis
            .list("dead")
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        [letter("young", now).as_str(), "not json, no age"]
    );
}
