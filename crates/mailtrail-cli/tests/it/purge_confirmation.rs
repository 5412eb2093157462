//! `mailtrail dead purge` run by a script: without `--yes` and without a terminal there is no one
//! to confirm, and a purge that did not happen must not look like one that did. The real binary,
//! with standard input a pipe, against a unique Redis prefix.

use mailtrail_testing::TestRedis;

use crate::support::{DAY, Mailtrail, Run, old_dead_letter};

/// `mailtrail dead purge --older-than 12h [extra]` with `stdin` piped in (closed when `None`).
fn purge(redis: &TestRedis, extra: &[&str], stdin: Option<&str>) -> Run {
    let mut args = vec!["dead", "purge", "--older-than", "12h"];
    args.extend_from_slice(extra);
    let mut mailtrail = Mailtrail::new(&args).redis(redis);
    if let Some(text) = stdin {
        mailtrail = mailtrail.stdin(text);
    }
    mailtrail.run_blocking()
}

/// A dead letter from two days ago, old enough for `--older-than 12h`.
fn seed_old_dead_letter(redis: &TestRedis) {
    redis.lpush("dead", old_dead_letter(2 * DAY, "{}"));
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
