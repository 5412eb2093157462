//! `mailtrail queue migrate-keys` against a real Redis: what a deployment from before hash tags
//! left under the old names (`{prefix}events`, ...) moves to the new ones, oldest still first,
//! refused while an old worker holds a lease, and a second run has nothing to do.

use crate::support::Mailtrail;
use mailtrail_testing::TestRedis;

fn old(redis: &TestRedis, name: &str) -> String {
    format!("{}{name}", redis.prefix())
}

fn run(redis: &TestRedis, args: &[&str]) -> crate::support::Run {
    let mut command = vec!["queue", "migrate-keys"];
    command.extend_from_slice(args);
    Mailtrail::new(&command).redis(redis).run_blocking()
}

#[test]
fn an_old_queue_moves_to_the_new_names_once_its_workers_are_stopped() {
    let redis = TestRedis::new();
    let mut connection = redis.connection();
    let mut command = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query::<redis::Value>(&mut connection).unwrap();
    };
    // The old backlog (oldest "a", taken first), one old worker's in-flight envelope (claimed
    // before "a", so older still), a dead letter, a skip count and a token marker.
    command(&["LPUSH", &old(&redis, "events"), "a", "b"]);
    command(&["LPUSH", &old(&redis, "processing:old-w"), "in-flight"]);
    command(&["SADD", &old(&redis, "workers"), "old-w"]);
    command(&["LPUSH", &old(&redis, "dead"), "old dead letter"]);
    command(&["HSET", &old(&redis, "skipped"), "missing_backer_id", "2"]);
    command(&["SET", &old(&redis, "token:abc"), "1", "EX", "600"]);
    command(&["SET", &old(&redis, "worker:old-w"), "1:i", "EX", "600"]);
    // Something already queued under the new names by an upgraded receiver.
    redis.lpush("events", "new");

    let refused = run(&redis, &[]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("old-w"), "{}", refused.stderr);
    assert_eq!(redis.list("events"), ["new"]);

    let dry = run(&redis, &["--dry-run"]).success();
    assert!(
        dry.stdout.contains("backlog:            2 envelopes"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("dry run: nothing moved"),
        "{}",
        dry.stdout
    );

    command(&["DEL", &old(&redis, "worker:old-w")]);
    let moved = run(&redis, &[]).success();
    assert!(
        moved.stdout.contains("moved to the new key names"),
        "{}",
        moved.stdout
    );
    assert!(
        moved.stdout.contains("in flight:          1 envelopes"),
        "{}",
        moved.stdout
    );
    assert!(
        moved.stdout.contains("token markers:      1"),
        "{}",
        moved.stdout
    );

    // Taken from the right: the old worker's envelope first, then the old backlog, then the new.
    assert_eq!(redis.list("events"), ["new", "b", "a", "in-flight"]);
    assert_eq!(redis.list("dead"), ["old dead letter"]);
    assert_eq!(redis.counters("skipped")["missing_backer_id"], 2);
    let ttl: i64 = redis::cmd("TTL")
        .arg(redis.key("token:abc"))
        .query(&mut redis.connection())
        .unwrap();
    assert!(
        (1..=600).contains(&ttl),
        "the token marker keeps its TTL: {ttl}"
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", redis.prefix()))
        .query(&mut redis.connection())
        .unwrap();
    assert!(left.is_empty(), "left under the old names: {left:?}");

    let again = run(&redis, &[]).success();
    assert_eq!(
        again.stdout,
        "nothing under the old key names; nothing to migrate\n"
    );
}
