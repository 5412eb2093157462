//! Erasing a person from the dead letters removes exactly the letters that hold their address.

use mailtrail_queue::{DeadLetter, now_ms};
use mailtrail_testing::TestRedis;

fn letter(body: &str) -> String {
    serde_json::to_string(&DeadLetter {
        reason: "unreadable body".to_owned(),
        dead_at_ms: now_ms(),
        worker: "w1".to_owned(),
        envelope: serde_json::json!({"v": 1, "body": body}).to_string(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dead_letters_holding_an_address_are_removed_and_no_others() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let kept = [
        letter(r#"{"event-data": {"recipient": "jimbob@example.com"}}"#),
        letter("not json at all"),
    ];
    let erased = [
        letter(r#"{"event-data": {"recipient": "Bob@Example.com"}}"#),
        letter("event=bounced&recipient=bob%40example.com"),
    ];
    redis.lpush("dead", vec![&kept[0], &erased[0], &kept[1], &erased[1]]);

    let entries = queue.dead_letters(0, 100).await.unwrap();
    let matching: Vec<_> = entries
        .iter()
        .filter(|entry| entry.mentions_address("bob@example.com"))
        .collect();
    assert_eq!(matching.len(), 2);
    assert_eq!(queue.remove_dead(&matching).await.unwrap(), 2);

    let mut left = redis.list("dead");
    left.sort();
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(left, expected);
    // Removing them again removes nothing.
    assert_eq!(queue.remove_dead(&matching).await.unwrap(), 0);
}
