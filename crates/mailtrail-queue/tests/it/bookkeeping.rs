//! The queue's bookkeeping against a real Redis: a settle takes effect once however often it is
//! sent, only the lease holder settles, a running worker learns of a lapsed lease, and recovery
//! counts stand only for workers that really died.

use std::time::Duration;

use mailtrail_queue::{
    Claimed, ClaimedBatch, DeadEnvelope, Heartbeat, QueueError, SettledBy, Settlement,
};
use mailtrail_testing::TestRedis;

use crate::queue::skipped;

/// What a worker settles for a batch of (good, without backer_id, garbage).
fn settlement_of(batch: &Claimed) -> Settlement {
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

fn recovery_counters(redis: &TestRedis) -> i64 {
    query(redis, &["HLEN", &redis.key("recovered")])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settle_sent_twice_dead_letters_and_counts_once() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
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
    let processing = redis.key("processing:w1");
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
    let markers: Vec<String> = query(&redis, &["KEYS", &redis.key("settled:*")]);
    assert_eq!(markers.len(), 2);
    let ttl: i64 = query(&redis, &["TTL", &markers[0]]);
    assert!(ttl > 3600 && ttl <= 24 * 3600, "{ttl}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_claimed_again_after_a_requeue_is_settled_again() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
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
    let worker = redis.worker_queue("w1").with_instance("i1");
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
    let owner = redis.worker_queue("w1").with_instance("i2");
    assert_eq!(
        owner.settle(&settlement_of(&batch)).await.unwrap(),
        SettledBy::Position
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_workers_heartbeat_reports_a_lapsed_lease_instead_of_taking_it() {
    let redis = TestRedis::new();
    let queue = redis.worker_queue("w").queue().clone();
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
    let lease: i64 = query(&redis, &["EXISTS", &redis.key("worker:w")]);
    assert_eq!(
        lease, 0,
        "a lapsed lease is not taken again by the heartbeat"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reaped_worker_that_was_alive_takes_its_recovery_counts_back() {
    let redis = TestRedis::new();
    let slow = redis.worker_queue("slow");
    for item in ["x", "y"] {
        slow.queue().push_envelope(item).await.unwrap();
    }
    assert!(
        slow.queue()
            .renew_lease("slow", "i1", Duration::from_millis(100))
            .await
            .unwrap()
    );
    slow.claim_batch(2, Duration::from_millis(100))
        .await
        .unwrap();
    // Cut off from Redis for longer than its lease: reaped, and both envelopes counted.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reaper = redis.worker_queue("reaper");
    let reaped = reaper.queue().reap_dead_workers().await.unwrap();
    assert_eq!(reaped[0].requeued.moved, 2);
    assert_eq!(recovery_counters(&redis), 2);

    // Back, it finds its lease lapsed: it was alive, so the counts go back.
    assert_eq!(
        slow.queue()
            .heartbeat("slow", "i1", Duration::from_secs(30))
            .await
            .unwrap(),
        Heartbeat::Lapsed
    );
    assert_eq!(slow.queue().absolve("slow").await.unwrap(), 2);
    assert_eq!(recovery_counters(&redis), 0);
    // Taking them back twice takes nothing more.
    assert_eq!(slow.queue().absolve("slow").await.unwrap(), 0);
    assert_eq!(redis.list("events"), ["y", "x"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_under_the_same_id_keeps_the_counts_of_the_reap() {
    let redis = TestRedis::new();
    let dead = redis.worker_queue("w");
    dead.queue().push_envelope("x").await.unwrap();
    assert!(
        dead.queue()
            .renew_lease("w", "i1", Duration::from_millis(100))
            .await
            .unwrap()
    );
    dead.claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reaper = redis.worker_queue("reaper");
    reaper.queue().reap_dead_workers().await.unwrap();
    assert_eq!(recovery_counters(&redis), 1);

    // A new process with the id starts: the previous one did die. Its start-up recovery forgets
    // the reap's record, so nothing can take those counts back.
    let restarted = redis.worker_queue("w");
    assert!(
        restarted
            .queue()
            .renew_lease("w", "i2", Duration::from_secs(30))
            .await
            .unwrap()
    );
    restarted
        .queue()
        .requeue_in_flight("w", true)
        .await
        .unwrap();
    assert_eq!(restarted.queue().absolve("w").await.unwrap(), 0);
    assert_eq!(recovery_counters(&redis), 1);
    let x = restarted
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    restarted
        .settle(&Settlement {
            claimed: ClaimedBatch::of(&x),
            done: x.into_envelopes(),
            ..Settlement::default()
        })
        .await
        .unwrap();

    // A worker whose own loop was stuck keeps the counts of its reap the same way.
    let stuck = redis.worker_queue("stuck");
    stuck.queue().push_envelope("z").await.unwrap();
    assert!(
        stuck
            .queue()
            .renew_lease("stuck", "i3", Duration::from_millis(100))
            .await
            .unwrap()
    );
    stuck
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    reaper.queue().reap_dead_workers().await.unwrap();
    assert_eq!(recovery_counters(&redis), 2);
    stuck.queue().confirm_reap("stuck").await.unwrap();
    assert_eq!(stuck.queue().absolve("stuck").await.unwrap(), 0);
    assert_eq!(recovery_counters(&redis), 2);
}
