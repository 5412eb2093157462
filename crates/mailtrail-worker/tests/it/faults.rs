//! Fault tests with the real `mailtrail-worker` binary, real Postgres and real Redis: kill -9 at
//! any moment, several workers with one killed, Postgres cut off, Redis restarted. After each,
//! every event is in Postgres exactly once.

use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_core::{Envelope, SigningKey, Source};
use mailtrail_store::schema::sent_emails;
use mailtrail_testing::{ChaosProxy, PrivateRedis, QueueLayout, TestDatabase, TestRedis};

use crate::worker_process::WorkerProcess;

/// A lease short enough for a dead worker's batch to be reaped within seconds.
const SHORT_LEASE: [(&str, &str); 1] = [("MAILTRAIL_LEASE_TTL_SECS", "3")];

/// How long the workers get to empty the queue once the fault is over.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Two events (delivered, opened) per message, as envelopes ready to LPUSH.
fn envelopes(run: &str, messages: usize) -> Vec<String> {
    let key = SigningKey::new("fault-key");
    let mut envelopes = Vec::with_capacity(messages * 2);
    for i in 0..messages {
        let message_id = format!("{run}-{i}@mg.example.com");
        for (kind, at) in [(SampleKind::Delivered, 0.0), (SampleKind::Opened, 60.0)] {
            let sample = SampleEvent {
                kind,
                message_id: &message_id,
                recipient: "backer@example.com",
                timestamp: 1_764_000_000.0 + i as f64 + at,
                backer_id: Some((i % 50) as i64),
                project_id: Some((i % 7) as i64),
                subject: "Fault test",
            };
            let token = token_from_seed(&format!("{run}-{i}-{kind:?}"));
            let body = signed_json(&key, 1_764_000_000, &token, sample.event_data());
            envelopes.push(
                Envelope::new(
                    Source::Mailgun,
                    1_764_000_000_000,
                    "application/json",
                    &body,
                )
                .to_json(),
            );
        }
    }
    envelopes
}

/// Pushes through the queue's own client, so on a sharded queue the envelopes spread over the
/// shards as pushes without a token do.
async fn push_all(redis: &TestRedis, envelopes: &[String]) {
    let queue = redis.queue();
    for chunk in envelopes.chunks(1000) {
        queue.push_envelopes(chunk).await.unwrap();
    }
}

async fn wait_for_events(database: &TestDatabase, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while database.stored_events().await < at_least {
        assert!(
            Instant::now() < deadline,
            "no progress towards {at_least} events"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every message is one delivered row with exactly one open and two events.
async fn assert_exactly_once(database: &TestDatabase, messages: i64) {
    let mut connection = database.connect().await;
    assert_eq!(database.stored_events().await, 2 * messages);
    let (rows, opens, events): (i64, i64, i64) = sent_emails::table
        .select((
            diesel::dsl::count_star(),
            sql::<BigInt>("coalesce(sum(opened_count), 0)::bigint"),
            sql::<BigInt>("coalesce(sum(event_count), 0)::bigint"),
        ))
        .first(&mut connection)
        .await
        .unwrap();
    assert_eq!(rows, messages);
    assert_eq!(opens, messages, "an open was counted twice or lost");
    assert_eq!(events, 2 * messages);
    let not_delivered: i64 = sent_emails::table
        .filter(sent_emails::status.ne("delivered"))
        .count()
        .get_result(&mut connection)
        .await
        .unwrap();
    assert_eq!(not_delivered, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_batch_then_restart_loses_nothing_and_counts_nothing_twice() {
    kill_9_mid_batch_then_restart(QueueLayout::Single).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_with_one_and_three_shards_kill_9_then_restart_loses_nothing() {
    for layout in QueueLayout::ON_CLUSTER {
        kill_9_mid_batch_then_restart(layout).await;
    }
}

async fn kill_9_mid_batch_then_restart(layout: QueueLayout) {
    let database = TestDatabase::create().await;
    let redis = TestRedis::with_layout(layout);
    let messages = 4_000;
    push_all(&redis, &envelopes("kill", messages)).await;

    // Kill it twice at different points, then let a third run finish.
    for progress in [1, messages as i64] {
        let worker = WorkerProcess::start(database.url(), &redis, "w1", &SHORT_LEASE);
        wait_for_events(&database, progress).await;
        worker.kill_9();
    }
    assert!(
        database.stored_events().await < 2 * messages as i64,
        "killed too late to mean anything"
    );
    let worker = WorkerProcess::start(database.url(), &redis, "w1", &SHORT_LEASE);
    redis.wait_drained(DRAIN_TIMEOUT).await;
    assert_exactly_once(&database, messages as i64).await;
    assert!(
        worker.terminate().0.success(),
        "SIGTERM must end the worker with status 0"
    );
    assert!(redis.list("dead").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_a_backlog_and_a_killed_ones_batch_is_reaped() {
    three_workers_and_a_reaped_one(QueueLayout::Single).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_with_one_and_three_shards_a_killed_workers_batch_is_reaped() {
    for layout in QueueLayout::ON_CLUSTER {
        three_workers_and_a_reaped_one(layout).await;
    }
}

async fn three_workers_and_a_reaped_one(layout: QueueLayout) {
    let database = TestDatabase::create().await;
    let redis = TestRedis::with_layout(layout);
    let messages = 4_000;
    push_all(&redis, &envelopes("three", messages)).await;

    let w1 = WorkerProcess::start(database.url(), &redis, "w1", &SHORT_LEASE);
    let w2 = WorkerProcess::start(database.url(), &redis, "w2", &SHORT_LEASE);
    let w3 = WorkerProcess::start(database.url(), &redis, "w3", &SHORT_LEASE);
    wait_for_events(&database, 400).await;
    w2.kill_9();
    // w2 is never restarted: only the others' reapers can recover what it held, once its
    // 3-second lease has run out.
    redis.wait_drained(DRAIN_TIMEOUT).await;
    assert_exactly_once(&database, messages as i64).await;
    assert!(redis.list("dead").is_empty());
    assert!(w1.terminate().0.success());
    assert!(w3.terminate().0.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_outage_is_waited_out_and_nothing_is_lost() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let messages = 3_000;
    push_all(&redis, &envelopes("pg", messages)).await;

    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied_url = database
        .url()
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port()));
    assert_ne!(
        proxied_url,
        database.url(),
        "the test database must be on 127.0.0.1:5432"
    );
    let worker = WorkerProcess::start(&proxied_url, &redis, "w1", &SHORT_LEASE);
    wait_for_events(&database, 1).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_outage = database.stored_events().await;
    assert!(
        during_outage < 2 * messages as i64,
        "the outage came too late to mean anything"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        database.stored_events().await,
        during_outage,
        "writes went through a cut proxy"
    );
    proxy.restore();
    redis.wait_drained(DRAIN_TIMEOUT).await;
    assert_exactly_once(&database, messages as i64).await;
    assert!(
        redis.list("dead").is_empty(),
        "an outage must not dead-letter good events"
    );
    assert!(worker.terminate().0.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reconnects_after_a_redis_restart() {
    let database = TestDatabase::create().await;
    let mut server = PrivateRedis::start();
    let redis = TestRedis::on(&server.url());
    let messages = 3_000;
    push_all(&redis, &envelopes("redis", messages)).await;

    let worker = WorkerProcess::start(database.url(), &redis, "w1", &SHORT_LEASE);
    wait_for_events(&database, 1).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    redis.wait_drained(DRAIN_TIMEOUT).await;
    assert_exactly_once(&database, messages as i64).await;
    assert!(worker.terminate().0.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_with_a_live_workers_id_is_refused() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let first = WorkerProcess::start(database.url(), &redis, "same-id", &SHORT_LEASE);
    // Start the second only once the first holds the lease.
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis::cmd("EXISTS")
        .arg(redis.key("worker:same-id"))
        .query::<i64>(&mut redis.connection())
        .unwrap()
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the first worker never took its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second = WorkerProcess::start(database.url(), &redis, "same-id", &SHORT_LEASE);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second worker kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    assert!(first.terminate().0.success());
}
