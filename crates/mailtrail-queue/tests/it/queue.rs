//! The queue's scripts against a real Redis: atomic push, claim order, settle, requeue, reaping,
//! poison detection, leases and dead-letter replay.

use std::time::Duration;

use mailtrail_queue::{
    ClaimedBatch, DeadEnvelope, PushOutcome, SettledBy, Settlement, SkippedCount,
};
use mailtrail_testing::TestRedis;

fn dead_envelope(envelope: &str, reason: &str) -> DeadEnvelope {
    DeadEnvelope {
        envelope: envelope.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(crate) fn skipped(reason: &str, count: u64) -> SkippedCount {
    SkippedCount {
        reason: reason.to_owned(),
        count,
    }
}

fn command(redis: &TestRedis, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut redis.connection()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_marked_only_together_with_its_push() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let ttl = Duration::from_secs(60);
    assert_eq!(
        queue.push_webhook("t1", ttl, "a", 2).await.unwrap(),
        PushOutcome::Queued
    );
    assert_eq!(
        queue.push_webhook("t1", ttl, "a-again", 2).await.unwrap(),
        PushOutcome::DuplicateToken
    );
    assert_eq!(
        queue.push_webhook("t2", ttl, "b", 2).await.unwrap(),
        PushOutcome::Queued
    );
    // At the cap: refused, and the token stays unused so Mailgun's retry can succeed later.
    assert_eq!(
        queue.push_webhook("t3", ttl, "c", 2).await.unwrap(),
        PushOutcome::BacklogFull
    );
    assert_eq!(redis.list("events"), ["b", "a"]);
    let marked = command(&redis, &["EXISTS", &redis.key("token:t3")]);
    assert_eq!(marked, redis::Value::Int(0));
    let ttl_left = command(&redis, &["TTL", &redis.key("token:t1")]);
    assert!(matches!(ttl_left, redis::Value::Int(left) if left > 0 && left <= 60));
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_claimed_oldest_first_and_settled_after_the_write() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    for item in ["1", "2", "3", "4", "5"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let batch = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(batch, ["1", "2", "3"]);
    assert_eq!(redis.list("processing:w1"), ["3", "2", "1"]);
    assert_eq!(redis.list("events"), ["5", "4"]);

    worker
        .settle(&Settlement {
            done: vec!["1".into(), "3".into()],
            dead: vec![dead_envelope("2", "unreadable")],
            skipped: vec![skipped("missing_backer_id", 1)],
            claimed: None,
        })
        .await
        .unwrap();
    assert!(redis.list("processing:w1").is_empty());
    let dead = worker.queue().dead_letters(0, 10).await.unwrap();
    let letter = dead[0].parsed.as_ref().unwrap();
    assert_eq!(
        (
            letter.envelope.as_str(),
            letter.reason.as_str(),
            letter.worker.as_str()
        ),
        ("2", "unreadable", "w1")
    );
    assert_eq!(
        worker.queue().skipped_counts().await.unwrap(),
        [skipped("missing_backer_id", 1)]
    );

    // An empty backlog: the blocking claim waits, then returns nothing.
    let rest = worker
        .claim_batch(10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(rest, ["4", "5"]);
    worker
        .settle(&Settlement {
            done: rest.into_envelopes(),
            ..Settlement::default()
        })
        .await
        .unwrap();
    assert!(
        worker
            .claim_batch(10, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_batch_is_settled_by_position_while_the_next_one_is_claimed() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    for item in ["1", "2", "3", "4", "5", "6"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let first = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    // The next batch is claimed while the first is being written, as the worker does.
    let second = worker.claim_waiting(2).await.unwrap();
    assert_eq!(redis.list("processing:w1"), ["5", "4", "3", "2", "1"]);

    let settled = worker
        .settle(&Settlement {
            done: vec!["1".into(), "3".into()],
            dead: vec![dead_envelope("2", "unreadable")],
            skipped: vec![skipped("missing_backer_id", 1)],
            claimed: ClaimedBatch::of(&first),
        })
        .await
        .unwrap();
    assert_eq!(settled, SettledBy::Position);
    assert_eq!(redis.list("processing:w1"), ["5", "4"]);
    let dead = worker.queue().dead_letters(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].parsed.as_ref().unwrap().envelope, "2");
    assert_eq!(
        worker.queue().skipped_counts().await.unwrap(),
        [skipped("missing_backer_id", 1)]
    );

    let settled = worker
        .settle(&Settlement {
            claimed: ClaimedBatch::of(&second),
            done: second.into_envelopes(),
            ..Settlement::default()
        })
        .await
        .unwrap();
    assert_eq!(settled, SettledBy::Position);
    assert!(redis.list("processing:w1").is_empty());
    assert_eq!(redis.list("events"), ["6"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_no_longer_at_the_tail_is_settled_by_value() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    for item in ["1", "2", "3"] {
        worker.queue().push_envelope(item).await.unwrap();
    }
    let batch = worker
        .claim_batch(3, Duration::from_millis(100))
        .await
        .unwrap();
    // Someone else changed the processing list: an envelope now sits after the batch's oldest.
    let processing = redis.key("processing:w1");
    command(&redis, &["RPUSH", &processing, "foreign"]);

    let settled = worker
        .settle(&Settlement {
            done: vec!["1".into(), "2".into()],
            dead: vec![dead_envelope("3", "unreadable")],
            skipped: vec![skipped("missing_backer_id", 2)],
            claimed: ClaimedBatch::of(&batch),
        })
        .await
        .unwrap();
    assert_eq!(settled, SettledBy::Value);
    assert_eq!(redis.list("processing:w1"), ["foreign"]);
    let dead = worker.queue().dead_letters(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered once, not by both paths");
    assert_eq!(
        worker.queue().skipped_counts().await.unwrap(),
        [skipped("missing_backer_id", 2)],
        "counted once, not by both paths"
    );

    // A settlement that covers only part of its batch is settled by value too.
    worker.queue().push_envelope("4").await.unwrap();
    worker.queue().push_envelope("5").await.unwrap();
    let batch = worker
        .claim_batch(2, Duration::from_millis(100))
        .await
        .unwrap();
    let settled = worker
        .settle(&Settlement {
            done: vec!["4".into()],
            claimed: ClaimedBatch::of(&batch),
            ..Settlement::default()
        })
        .await
        .unwrap();
    assert_eq!(settled, SettledBy::Value);
    assert_eq!(redis.list("processing:w1"), ["5", "foreign"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_workers_batch_goes_back_in_order_and_a_live_ones_stays() {
    let redis = TestRedis::new();
    let dead = redis.worker_queue("dead");
    let alive = redis.worker_queue("alive");
    for item in ["1", "2", "3", "4"] {
        dead.queue().push_envelope(item).await.unwrap();
    }
    assert!(
        dead.queue()
            .renew_lease("dead", "i1", Duration::from_millis(200))
            .await
            .unwrap()
    );
    assert!(
        alive
            .queue()
            .renew_lease("alive", "i2", Duration::from_secs(30))
            .await
            .unwrap()
    );
    dead.claim_batch(2, Duration::from_millis(100))
        .await
        .unwrap();
    alive
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let reaped = alive.queue().reap_dead_workers().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(
        (reaped[0].worker.as_str(), reaped[0].requeued.moved),
        ("dead", 2)
    );
    // Back at the consumer end, oldest first: taken next, in the original order.
    assert_eq!(redis.list("events"), ["4", "2", "1"]);
    assert!(redis.list("processing:dead").is_empty());
    assert_eq!(redis.list("processing:alive"), ["3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envelope_that_keeps_killing_workers_is_dead_lettered_as_poison() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    queue.push_envelope("poison").await.unwrap();
    queue.push_envelope("innocent").await.unwrap();
    // Four workers in turn claim the poison envelope and die holding it.
    for round in 1..=4 {
        let id = format!("victim-{round}");
        let worker = redis.worker_queue(&id);
        assert!(
            worker
                .queue()
                .renew_lease(&id, "i", Duration::from_millis(100))
                .await
                .unwrap()
        );
        let claimed = worker
            .claim_batch(1, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(claimed, ["poison"], "round {round}");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let reaped = queue.reap_dead_workers().await.unwrap();
        let requeued = reaped[0].requeued;
        if round <= 3 {
            assert_eq!((requeued.moved, requeued.poisoned), (1, 0), "round {round}");
        } else {
            assert_eq!((requeued.moved, requeued.poisoned), (0, 1));
        }
    }
    assert_eq!(
        redis.list("events"),
        ["innocent"],
        "the rest of the queue flows"
    );
    let dead = queue.dead_letters(0, 10).await.unwrap();
    let letter = dead[0].parsed.as_ref().unwrap();
    assert_eq!(letter.envelope, "poison");
    assert!(letter.reason.starts_with("poison"), "{}", letter.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_release_requeues_without_counting_a_crash() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    worker.queue().push_envelope("x").await.unwrap();
    for _ in 0..5 {
        assert!(
            worker
                .queue()
                .renew_lease("w1", "i", Duration::from_secs(30))
                .await
                .unwrap()
        );
        worker
            .claim_batch(1, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(worker.queue().release("w1").await.unwrap(), 1);
    }
    assert_eq!(redis.list("events"), ["x"]);
    assert!(redis.list("dead").is_empty());
    let workers = command(&redis, &["SCARD", &redis.key("workers")]);
    assert_eq!(workers, redis::Value::Int(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_belongs_to_one_process_at_a_time() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let ttl = Duration::from_millis(300);
    assert!(queue.renew_lease("w", "first", ttl).await.unwrap());
    assert!(queue.renew_lease("w", "first", ttl).await.unwrap());
    assert!(!queue.renew_lease("w", "second", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        queue.renew_lease("w", "second", ttl).await.unwrap(),
        "an expired lease is free"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_dead_letters_moves_each_back_once() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    worker.queue().push_envelope("bad").await.unwrap();
    let claimed = worker
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    worker
        .settle(&Settlement {
            dead: vec![dead_envelope(&claimed[0], "reason")],
            ..Settlement::default()
        })
        .await
        .unwrap();
    let letters: Vec<_> = worker
        .queue()
        .dead_letters(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.into_replayable().unwrap())
        .collect();
    assert_eq!(worker.queue().replay_dead(&letters).await.unwrap(), 1);
    assert_eq!(worker.queue().replay_dead(&letters).await.unwrap(), 0);
    assert_eq!(redis.list("events"), ["bad"]);
    assert!(redis.list("dead").is_empty());
}

/// The recovery counter's field for `envelope`: its SHA-1, as Redis computes it.
fn recovery_field(redis: &TestRedis, envelope: &str) -> String {
    redis::cmd("EVAL")
        .arg("return redis.sha1hex(ARGV[1])")
        .arg(0)
        .arg(envelope)
        .query(&mut redis.connection())
        .unwrap()
}

fn recovery_counters(redis: &TestRedis) -> std::collections::BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(redis.key("recovered"))
        .query(&mut redis.connection())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_is_counted_in_one_hash_and_an_expired_count_starts_again() {
    let redis = TestRedis::new();
    let worker = redis.worker_queue("w1");
    let field = recovery_field(&redis, "x");
    // Three recoveries, but the first was longer ago than the window: it no longer counts.
    let long_ago = mailtrail_queue::now_ms()
        - i64::try_from(mailtrail_queue::POISON_WINDOW.as_millis()).unwrap()
        - 60_000;
    command(
        &redis,
        &[
            "HSET",
            &redis.key("recovered"),
            &field,
            &format!("3:{long_ago}"),
        ],
    );
    worker.queue().push_envelope("x").await.unwrap();
    worker
        .claim_batch(1, Duration::from_millis(100))
        .await
        .unwrap();
    let requeued = worker.queue().requeue_in_flight("w1", true).await.unwrap();
    assert_eq!((requeued.moved, requeued.poisoned), (1, 0));
    assert_eq!(redis.list("events"), ["x"]);

    let counters = recovery_counters(&redis);
    assert_eq!(counters.len(), 1, "{counters:?}");
    let (count, first_ms) = counters[&field].split_once(':').unwrap();
    assert_eq!(count, "1", "the window restarted");
    let first_ms: i64 = first_ms.parse().unwrap();
    assert!((mailtrail_queue::now_ms() - first_ms).abs() < 60_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_prunes_recovery_counters_whose_window_is_over() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let now = mailtrail_queue::now_ms();
    let window_ms = i64::try_from(mailtrail_queue::POISON_WINDOW.as_millis()).unwrap();
    let hash = redis.key("recovered");
    let stale = format!("1:{}", now - window_ms - 1_000);
    let fresh = format!("2:{}", now - 1_000);
    command(
        &redis,
        &[
            "HSET", &hash, "stale", &stale, "fresh", &fresh, "garbled", "?",
        ],
    );

    assert!(queue.reap_dead_workers().await.unwrap().is_empty());
    assert_eq!(
        recovery_counters(&redis),
        [("fresh".to_owned(), fresh)].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_recovery_hash_is_pruned_a_bounded_step_at_a_time() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    let hash = redis.key("recovered");
    let stale = format!("1:{}", mailtrail_queue::now_ms() - 100 * 3_600_000);
    let mut hset = redis::cmd("HSET");
    hset.arg(&hash);
    for field in 0..2_500 {
        hset.arg(format!("field-{field}")).arg(&stale);
    }
    let _: i64 = hset.query(&mut redis.connection()).unwrap();
    let left = || -> i64 {
        redis::cmd("HLEN")
            .arg(&hash)
            .query(&mut redis.connection())
            .unwrap()
    };

    queue.reap_dead_workers().await.unwrap();
    assert!(left() > 0, "one reaper pass does not sweep the whole hash");
    for _ in 0..10 {
        queue.reap_dead_workers().await.unwrap();
    }
    assert_eq!(left(), 0, "the sweep goes on where it stopped");
}
