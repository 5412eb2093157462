//! The queue on a real local Redis Cluster (three masters), unsharded and with three shards:
//! every script runs there (no CROSSSLOT), a webhook's token picks its shard, claims serve every
//! shard, and leases, reaping and the operator's views cover them all.

use std::collections::BTreeSet;
use std::time::Duration;

use mailtrail_queue::{ClaimedBatch, PushOutcome, QueueKeys, Settlement, keys::hash_slot};
use mailtrail_testing::{CLUSTER_MASTERS, QueueLayout, TestRedis};

#[tokio::test(flavor = "multi_thread")]
async fn every_script_runs_on_a_cluster() {
    for layout in QueueLayout::ON_CLUSTER {
        let redis = TestRedis::with_layout(layout);
        let queue = redis.queue();
        let ttl = Duration::from_secs(60);
        for n in 0..12 {
            let outcome = queue
                .push_webhook(&format!("token-{n}"), ttl, &format!("e{n}"), 0)
                .await
                .unwrap();
            assert_eq!(outcome, PushOutcome::Queued, "{layout:?}");
        }
        assert_eq!(
            queue
                .push_webhook("token-3", ttl, "again", 0)
                .await
                .unwrap(),
            PushOutcome::DuplicateToken
        );
        assert_eq!(queue.backlog_len().await.unwrap(), 12);

        let worker = redis.worker_queue("w1").with_instance("i1");
        assert!(
            queue
                .renew_lease("w1", "i1", Duration::from_secs(30))
                .await
                .unwrap()
        );
        let mut seen = BTreeSet::new();
        while seen.len() < 12 {
            let batch = worker
                .claim_batch(5, Duration::from_millis(100))
                .await
                .unwrap();
            assert!(!batch.is_empty(), "{layout:?}: the backlog ran dry early");
            seen.extend(batch.iter().cloned());
            let settled = worker
                .settle(&Settlement {
                    claimed: ClaimedBatch::of(&batch),
                    done: batch.into_envelopes(),
                    ..Settlement::default()
                })
                .await
                .unwrap();
            assert_eq!(settled, mailtrail_queue::SettledBy::Position);
        }
        assert!(redis.queued().is_empty(), "{layout:?}");
        assert_eq!(queue.in_flight().await.unwrap()[0].envelopes, 0);
        assert_eq!(queue.release("w1").await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_land_on_three_masters_and_a_reaper_sees_them_all() {
    let redis = TestRedis::with_layout(QueueLayout::Cluster { shards: 3 });
    // The cluster splits the slots evenly, so the shards' tags fall one per master.
    let slots: Vec<u32> = QueueKeys::shards(redis.prefix(), 3)
        .iter()
        .map(|keys| hash_slot(keys.events().as_bytes()))
        .collect();
    let masters: BTreeSet<u32> = slots
        .iter()
        .map(|slot| slot * CLUSTER_MASTERS as u32 / 16_384)
        .collect();
    assert_eq!(masters.len(), 3, "slots {slots:?}");

    let queue = redis.queue();
    for n in 0..30 {
        queue.push_envelope(&format!("e{n}")).await.unwrap();
    }
    // A worker that claims from every shard, then dies.
    let dead = redis.worker_queue("dead");
    assert!(
        queue
            .renew_lease("dead", "i1", Duration::from_millis(200))
            .await
            .unwrap()
    );
    let mut shards_claimed = BTreeSet::new();
    for _ in 0..3 {
        let batch = dead
            .claim_batch(4, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(batch.len(), 4);
        shards_claimed.insert(batch.shard());
    }
    assert_eq!(shards_claimed.len(), 3, "claims take turns over the shards");
    assert_eq!(queue.in_flight().await.unwrap()[0].envelopes, 12);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let reaped = queue.reap_dead_workers().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].requeued.moved, 12);
    assert_eq!(queue.backlog_len().await.unwrap(), 30);
    assert!(redis.queued().in_flight.is_empty());
}
