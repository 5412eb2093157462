//! The queue's bookkeeping (dead letters, skip counts, poison counters) under the faults that
//! used to make it count twice, with the real `mailtrail-worker` binary, real Postgres and real
//! Redis: a settle retried after a Redis stall, a statement held by a lock for longer than the
//! lease, a worker frozen past its lease.
//!
//! Each batch here holds good events, one event without `backer_id` (skipped and counted) and one
//! signed body that names no event (dead-lettered), so a batch handled twice shows as two dead
//! letters or a skip count of 2.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_core::{Envelope, SigningKey, Source};
use mailtrail_testing::{PrivateRedis, TestDatabase, TestRedis};

use crate::worker_process::WorkerProcess;

/// `good` stored events, one skipped event and one unreadable body, as envelopes to LPUSH.
fn mixed_batch(run: &str, good: usize) -> Vec<String> {
    let key = SigningKey::new("bookkeeping-key");
    let envelope = |body: Vec<u8>| {
        Envelope::new(
            Source::Mailgun,
            1_764_000_000_000,
            "application/json",
            &body,
        )
        .to_json()
    };
    let event = |i: usize, backer_id: Option<i64>| {
        let message_id = format!("{run}-{i}@mg.example.com");
        let sample = SampleEvent {
            kind: SampleKind::Delivered,
            message_id: &message_id,
            recipient: "backer@example.com",
            timestamp: 1_764_000_000.0 + i as f64,
            backer_id,
            project_id: Some(7),
            subject: "Bookkeeping",
        };
        let token = token_from_seed(&format!("{run}-{i}"));
        envelope(signed_json(
            &key,
            1_764_000_000,
            &token,
            sample.event_data(),
        ))
    };
    let mut batch: Vec<String> = (0..good).map(|i| event(i, Some(42))).collect();
    batch.push(event(good, None));
    let token = token_from_seed(&format!("{run}-garbage"));
    batch.push(envelope(signed_json(
        &key,
        1_764_000_000,
        &token,
        serde_json::json!({"nothing": "here"}),
    )));
    batch
}

/// A connection to the queue's Redis, for pushing and looking.
struct Look {
    connection: redis::Connection,
    /// The first shard's key names (these tests run on one shard).
    base: String,
}

impl Look {
    fn new(redis: &TestRedis) -> Self {
        Self {
            connection: redis.connection(),
            base: redis.key(""),
        }
    }

    /// All of `envelopes` in one LPUSH, so one claim takes them as one batch.
    fn push(&mut self, envelopes: &[String]) {
        redis::cmd("LPUSH")
            .arg(format!("{}events", self.base))
            .arg(envelopes)
            .query::<i64>(&mut self.connection)
            .unwrap();
    }

    fn len(&mut self, key: &str) -> i64 {
        redis::cmd("LLEN")
            .arg(format!("{}{key}", self.base))
            .query(&mut self.connection)
            .unwrap()
    }

    fn exists(&mut self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(format!("{}{key}", self.base))
            .query::<i64>(&mut self.connection)
            .unwrap()
            == 1
    }

    /// The skip counts, by reason.
    fn skipped(&mut self) -> Vec<(String, i64)> {
        redis::cmd("HGETALL")
            .arg(format!("{}skipped", self.base))
            .query(&mut self.connection)
            .unwrap()
    }

    /// How many envelopes have a recovery (poison) counter.
    fn recovery_counters(&mut self) -> i64 {
        redis::cmd("HLEN")
            .arg(format!("{}recovered", self.base))
            .query(&mut self.connection)
            .unwrap()
    }

    /// Waits until `condition` holds, or fails naming `what` and showing the queue.
    fn wait_until(&mut self, what: &str, within: Duration, condition: impl Fn(&mut Self) -> bool) {
        let deadline = Instant::now() + within;
        while !condition(self) {
            if Instant::now() >= deadline {
                let state = self.state();
                panic!("timed out waiting until {what}; {state}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The queue's lists and leases, for a failure message.
    fn state(&mut self) -> String {
        let lists = ["events", "processing:w1", "processing:w2", "dead"]
            .map(|key| format!("{key} {}", self.len(key)));
        let leases = ["worker:w1", "worker:w2"].map(|key| format!("{key} {}", self.exists(key)));
        format!(
            "{}; {}; {} recovery counters",
            lists.join(", "),
            leases.join(", "),
            self.recovery_counters()
        )
    }

    /// Waits until the backlog and both workers' processing lists are empty.
    fn wait_drained(&mut self, within: Duration) {
        self.wait_until("the queue is drained", within, |look| {
            look.len("events") + look.len("processing:w1") + look.len("processing:w2") == 0
        });
    }
}

/// Holds `LOCK TABLE sent_emails IN ACCESS EXCLUSIVE MODE` in a transaction of its own, so every
/// write of the worker waits, until released.
struct TableLock {
    connection: AsyncPgConnection,
}

impl TableLock {
    async fn take(database_url: &str) -> Self {
        let mut connection = AsyncPgConnection::establish(database_url).await.unwrap();
        diesel::sql_query("BEGIN")
            .execute(&mut connection)
            .await
            .unwrap();
        diesel::sql_query("LOCK TABLE sent_emails IN ACCESS EXCLUSIVE MODE")
            .execute(&mut connection)
            .await
            .unwrap();
        Self { connection }
    }

    async fn release(mut self) {
        diesel::sql_query("COMMIT")
            .execute(&mut self.connection)
            .await
            .unwrap();
    }
}

fn wait_for_lease(look: &mut Look, worker: &str) {
    look.wait_until(
        &format!("{worker} holds its lease"),
        Duration::from_secs(30),
        |look| look.exists(&format!("worker:{worker}")),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settle_retried_after_a_redis_stall_dead_letters_and_counts_once() {
    let database = TestDatabase::create().await;
    let server = PrivateRedis::start();
    let redis = TestRedis::on(&server.url());
    let mut look = Look::new(&redis);
    // A long lease: nothing but the settle talks to Redis while it is paused.
    let worker = WorkerProcess::start(
        database.url(),
        &redis,
        "w1",
        &[
            ("MAILTRAIL_REDIS_TIMEOUT_MS", "500"),
            ("MAILTRAIL_LEASE_TTL_SECS", "60"),
        ],
    );
    wait_for_lease(&mut look, "w1");
    // A first batch loads the scripts into Redis, as in any worker that has been running: a
    // script Redis does not know yet fails every queued call at once and runs once, after
    // loading, hiding what happens to a command Redis runs after its caller gave up on it.
    look.push(&mixed_batch("warm-up", 1)[..1]);
    look.wait_drained(Duration::from_secs(30));

    // The write waits on a lock, so Redis can be paused exactly between the write and the settle.
    let lock = TableLock::take(database.url()).await;
    look.push(&mixed_batch("stall", 3));
    look.wait_until("the batch is claimed", Duration::from_secs(10), |look| {
        look.len("processing:w1") == 5
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.pause();
    lock.release().await;
    // The write commits; the settle goes to a Redis that does not answer, times out after
    // 500 ms, and is sent again and again. When Redis goes on, it runs every one of them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.resume();

    look.wait_drained(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, log) = worker.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("settle batch"),
        "the settle was not retried, so this proves nothing:\n{log}"
    );
    assert_eq!(look.len("dead"), 1, "one unreadable body, one dead letter");
    assert_eq!(
        look.skipped(),
        [("missing_backer_id".to_owned(), 1)],
        "one event without backer_id, counted once"
    );
    assert_eq!(database.stored_events().await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_held_by_a_lock_for_longer_than_the_lease_does_not_get_a_live_worker_reaped() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let mut look = Look::new(&redis);
    let short_lease = [("MAILTRAIL_LEASE_TTL_SECS", "3")];
    // w1 claims the whole batch, and its write waits on the lock for four times the lease; w2,
    // idle, runs its reaper every 3 s meanwhile.
    let lock = TableLock::take(database.url()).await;
    look.push(&mixed_batch("lock", 20));
    let w1 = WorkerProcess::start(database.url(), &redis, "w1", &short_lease);
    look.wait_until("w1 claimed the batch", Duration::from_secs(30), |look| {
        look.len("processing:w1") == 22
    });
    let w2 = WorkerProcess::start(database.url(), &redis, "w2", &short_lease);
    wait_for_lease(&mut look, "w2");
    tokio::time::sleep(Duration::from_secs(12)).await;
    lock.release().await;

    look.wait_drained(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status1, log1) = w1.terminate();
    let (status2, log2) = w2.terminate();
    assert!(status1.success() && status2.success(), "{log1}\n{log2}");
    for log in [&log1, &log2] {
        assert!(
            !log.contains("reaped a dead worker"),
            "a live worker was reaped:\n{log1}\n{log2}"
        );
    }
    assert_eq!(look.len("dead"), 1, "dead-lettered once:\n{log1}\n{log2}");
    assert_eq!(look.skipped(), [("missing_backer_id".to_owned(), 1)]);
    assert_eq!(look.recovery_counters(), 0, "nobody died");
    assert_eq!(database.stored_events().await, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_frozen_past_its_lease_is_reaped_but_its_envelopes_are_not_counted_as_poison() {
    let database = TestDatabase::create().await;
    let redis = TestRedis::new();
    let mut look = Look::new(&redis);
    let short_lease = [("MAILTRAIL_LEASE_TTL_SECS", "3")];
    // w1 claims the whole batch; its write waits on the lock.
    let lock = TableLock::take(database.url()).await;
    look.push(&mixed_batch("frozen", 10));
    let w1 = WorkerProcess::start(database.url(), &redis, "w1", &short_lease);
    look.wait_until("w1 claimed the batch", Duration::from_secs(30), |look| {
        look.len("processing:w1") == 12
    });
    let w2 = WorkerProcess::start(database.url(), &redis, "w2", &short_lease);
    wait_for_lease(&mut look, "w2");
    // Frozen while its write waits: its heartbeat stops with it, its lease runs out, and w2's
    // reaper hands the batch over, counting a recovery for each envelope.
    w1.signal("-STOP");
    look.wait_until(
        "w2 holds the reaped batch",
        Duration::from_secs(30),
        |look| look.len("processing:w1") == 0 && look.len("processing:w2") == 12,
    );
    assert_eq!(look.recovery_counters(), 12, "the reap counted a recovery");
    lock.release().await;
    look.wait_drained(Duration::from_secs(60));
    // Back from the freeze, the worker finds its lease lapsed: it settles nothing, takes the
    // reap's counts back and starts over.
    w1.signal("-CONT");
    look.wait_until("w1 took its lease again", Duration::from_secs(30), |look| {
        look.exists("worker:w1")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (status1, log1) = w1.terminate();
    let (status2, log2) = w2.terminate();
    assert!(status1.success() && status2.success(), "{log1}\n{log2}");
    assert!(log1.contains("took the lease again"), "{log1}");
    assert_eq!(look.len("dead"), 1, "dead-lettered once:\n{log1}\n{log2}");
    assert_eq!(look.skipped(), [("missing_backer_id".to_owned(), 1)]);
    assert_eq!(
        look.recovery_counters(),
        0,
        "a worker that came back did not die:\n{log1}\n{log2}"
    );
    assert_eq!(database.stored_events().await, 10);
}
