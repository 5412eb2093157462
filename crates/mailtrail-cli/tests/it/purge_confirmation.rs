//! `mailtrail dead purge` run by a script: without `--yes` and without a terminal there is no one
//! to confirm, and a purge that did not happen must not look like one that did. The real binary,
//! with standard input a pipe, against a unique Redis prefix.

use std::io::Write;
use std::process::{Command, Stdio};

use mailtrail_queue::{DeadLetter, now_ms};
use mailtrail_testing::TestRedis;

/// What one run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `mailtrail dead purge --older-than 12h [extra]` with `stdin` piped in (closed when `None`).
fn purge(redis: &TestRedis, extra: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args(["dead", "purge", "--older-than", "12h"])
        .args(extra)
        .env_clear()
        .env("REDIS_URL", redis.url())
        .env("MAILTRAIL_REDIS_PREFIX", redis.prefix())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A dead letter from two days ago, old enough for `--older-than 12h`.
fn seed_old_dead_letter(redis: &TestRedis) {
    let entry = serde_json::to_string(&DeadLetter {
        reason: "unreadable body".to_owned(),
        dead_at_ms: now_ms() - 2 * 86_400_000,
        worker: "old-worker".to_owned(),
        envelope: "{}".to_owned(),
    })
    .unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg(format!("{}dead", redis.prefix()))
        .arg(entry)
        .query(&mut redis.connection())
        .unwrap();
}

#[test]
fn a_purge_without_yes_and_without_an_answer_fails_and_says_to_pass_yes() {
    let redis = TestRedis::new();
    seed_old_dead_letter(&redis);
    // A script: stdin is a pipe that closes without a word.
    let run = purge(&redis, &[], None);
    assert_ne!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was purged"), "{}", run.stderr);
    assert!(!run.stdout.contains("purged 1"), "{}", run.stdout);
    assert_eq!(redis.list("dead").len(), 1);
}

#[test]
fn a_declined_purge_fails_and_a_confirmed_one_succeeds() {
    let redis = TestRedis::new();
    seed_old_dead_letter(&redis);
    let declined = purge(&redis, &[], Some("n\n"));
    assert_ne!(declined.code, Some(0), "{}", declined.stderr);
    assert!(declined.stderr.contains("aborted"), "{}", declined.stderr);
    assert_eq!(redis.list("dead").len(), 1);

    // `yes | mailtrail dead purge ...` is a confirmation like any other.
    let confirmed = purge(&redis, &[], Some("y\n"));
    assert_eq!(confirmed.code, Some(0), "{}", confirmed.stderr);
    assert!(
        confirmed.stdout.starts_with("purged 1 dead letters"),
        "{}",
        confirmed.stdout
    );
    assert!(redis.list("dead").is_empty());

    // Nothing to purge is a success with nothing to confirm.
    let nothing = purge(&redis, &[], None);
    assert_eq!(nothing.code, Some(0), "{}", nothing.stderr);
}

#[test]
fn yes_purges_without_asking() {
    let redis = TestRedis::new();
    seed_old_dead_letter(&redis);
    let run = purge(&redis, &["--yes"], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("[y/N]"), "{}", run.stderr);
    assert!(redis.list("dead").is_empty());
}
