//! The queue's bookkeeping against a real Redis: a settle takes effect once however often it is
//! sent, only the lease holder settles, and a running worker learns of a lapsed lease.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::time::Duration;

use mailtrail_queue::{
    ClaimedBatch, DeadEnvelope, Heartbeat, QueueError, QueueSettings, SettledBy, Settlement,
    SkippedCount, WorkerQueue,
};
use mailtrail_testing::TestRedis;

fn settings(redis: &TestRedis) -> QueueSettings {
    QueueSettings {
        url: redis.url().to_owned(),
        prefix: redis.prefix().to_owned(),
        response_timeout: Duration::from_secs(2),
    }
}

fn worker(redis: &TestRedis, id: &str) -> WorkerQueue {
    WorkerQueue::connect(&settings(redis), id, Duration::from_millis(100)).unwrap()
}

fn skipped(reason: &str, count: u64) -> SkippedCount {
    SkippedCount {
        reason: reason.to_owned(),
        count,
    }
}

/// What a worker settles for a batch of (good, without backer_id, garbage).
fn settlement_of(batch: &[String]) -> Settlement {
    Settlement {
        done: batch[..2].to_vec(),
        dead: vec![DeadEnvelope {
            envelope: batch[2].clone(),
            reason: "unreadable".to_owned(),
        }],
        skipped: vec![skipped("missing_backer_id", 1)],
        claimed: ClaimedBatch::of(batch),
    }
}

fn query<T: redis::FromRedisValue>(redis: &TestRedis, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut redis.connection()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settle_sent_twice_dead_letters_and_counts_once() {
    let redis = TestRedis::new();
    let worker = worker(&redis, "w1");
    for item in ["good", "no-backer", "garbage"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let batch = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    let settlement = settlement_of(&batch);
    // The first send took effect but its reply was lost; the worker sends it again.
    assert_eq!(
        worker.settle(&settlement).await.unwrap(),
        SettledBy::Position
    );
    assert_eq!(
        worker.settle(&settlement).await.unwrap(),
        SettledBy::Earlier
    );
    assert_eq!(worker.queue().dead_letters(0, 10).await.unwrap().len(), 1);
    assert_eq!(
        worker.queue().skipped_counts().await.unwrap(),
        [skipped("missing_backer_id", 1)]
    );

    // The same by value (the batch is not at the tail: someone else changed the list).
    for item in ["good-2", "no-backer-2", "garbage-2"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let batch = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    let processing = format!("{}processing:w1", redis.prefix());
    let _: i64 = query(&redis, &["RPUSH", &processing, "foreign"]);
    let settlement = settlement_of(&batch);
    assert_eq!(worker.settle(&settlement).await.unwrap(), SettledBy::Value);
    assert_eq!(
        worker.settle(&settlement).await.unwrap(),
        SettledBy::Earlier
    );
    assert_eq!(worker.queue().dead_letters(0, 10).await.unwrap().len(), 2);
    assert_eq!(
        worker.queue().skipped_counts().await.unwrap(),
        [skipped("missing_backer_id", 2)]
    );
    assert_eq!(redis.list("processing:w1"), ["foreign"]);
    // The marker outlives any retry, and then goes.
    let markers: Vec<String> = query(&redis, &["KEYS", &format!("{}settled:*", redis.prefix())]);
    assert_eq!(markers.len(), 2);
    let ttl: i64 = query(&redis, &["TTL", &markers[0]]);
    assert!(ttl > 3600 && ttl <= 24 * 3600, "{ttl}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_claimed_again_after_a_requeue_is_settled_again() {
    let redis = TestRedis::new();
    let worker = worker(&redis, "w1");
    for item in ["a", "b", "c"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let first = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    let first_claim = ClaimedBatch::of(&first).unwrap();
    // The worker died before settling; its restart requeues the batch and claims it again.
    worker.queue().requeue_in_flight("w1", true).await.unwrap();
    let again = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(again, first);
    let settlement = settlement_of(&again);
    assert_ne!(
        settlement.claimed.as_ref().unwrap().id(),
        first_claim.id(),
        "a new claim, a new batch id"
    );
    assert_eq!(
        worker.settle(&settlement).await.unwrap(),
        SettledBy::Position
    );
    assert!(redis.list("processing:w1").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settle_without_the_lease_changes_nothing() {
    let redis = TestRedis::new();
    let worker = worker(&redis, "w1").with_instance("i1");
    for item in ["good", "no-backer", "garbage"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    assert!(
        worker
            .queue()
            .renew_lease("w1", "i1", Duration::from_millis(200))
            .await
            .unwrap()
    );
    let batch = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    // The lease runs out while the batch is being written; a reaper may take the list now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = worker.settle(&settlement_of(&batch)).await.unwrap_err();
    assert!(
        matches!(refused, QueueError::LeaseLost { ref worker } if worker == "w1"),
        "{refused}"
    );
    assert_eq!(redis.list("processing:w1").len(), 3);
    assert!(redis.list("dead").is_empty());
    assert!(worker.queue().skipped_counts().await.unwrap().is_empty());

    // Nor does another process's lease let it settle.
    assert!(
        worker
            .queue()
            .renew_lease("w1", "i2", Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(worker.settle(&settlement_of(&batch)).await.is_err());
    // Its own lease does.
    let owner = self::worker(&redis, "w1").with_instance("i2");
    assert_eq!(
        owner.settle(&settlement_of(&batch)).await.unwrap(),
        SettledBy::Position
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_workers_heartbeat_reports_a_lapsed_lease_instead_of_taking_it() {
    let redis = TestRedis::new();
    let queue = worker(&redis, "w").queue().clone();
    let ttl = Duration::from_millis(300);
    assert!(queue.renew_lease("w", "mine", ttl).await.unwrap());
    assert_eq!(
        queue.heartbeat("w", "mine", ttl).await.unwrap(),
        Heartbeat::Renewed
    );
    assert_eq!(
        queue.heartbeat("w", "theirs", ttl).await.unwrap(),
        Heartbeat::HeldByAnother
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        queue.heartbeat("w", "mine", ttl).await.unwrap(),
        Heartbeat::Lapsed
    );
    let lease: i64 = query(&redis, &["EXISTS", &format!("{}worker:w", redis.prefix())]);
    assert_eq!(
        lease, 0,
        "a lapsed lease is not taken again by the heartbeat"
    );
}
