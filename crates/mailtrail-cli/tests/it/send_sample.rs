//! `mailtrail send-sample` against the real receiver, started in this process on port 0 with a
//! unique Redis prefix: what it sends is signed correctly, fresh on every run, and queued.

use std::collections::BTreeMap;

use crate::support::Mailtrail;
use mailtrail_testing::TestApp;

/// A receiver on port 0 under the test's Redis prefix that accepts `signing_keys`.
async fn start_receiver(signing_keys: &str) -> TestApp {
    TestApp::builder()
        .receiver_only()
        .signing_keys(signing_keys)
        .build()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sample_posts_signed_webhooks_that_the_real_receiver_queues() {
    // The receiver is mid-rotation: both keys are valid; the CLI signs with its first one.
    let receiver = start_receiver("old-key,new-key").await;
    let (url, redis) = (receiver.receiver_url(), receiver.redis());

    let run = Mailtrail::new(&["send-sample", "--backers", "2", "--projects", "1"])
        .env("MAILTRAIL_RECEIVER_URL", url)
        .env("MAILTRAIL_SIGNING_KEYS", "new-key,old-key")
        .run()
        .await
        .success();
    // 2 backers x 1 project x (4 + 2 + 2 + 3 + 3 events per scenario) + 1 without backer_id.
    assert!(run.stdout.contains("sending 29 events"), "{}", run.stdout);
    assert!(run.stdout.ends_with("29 answered 200\n"), "{}", run.stdout);

    let events = redis.queued_event_data();
    assert_eq!(events.len(), 29);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        *kinds
            .entry(event["event"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("accepted", 10),
        ("clicked", 2),
        ("complained", 2),
        ("delivered", 7),
        ("failed", 6),
        ("opened", 2),
    ]
    .into_iter()
    .map(|(kind, count)| (kind.to_owned(), count))
    .collect();
    assert_eq!(kinds, expected);
    let without_backer = events
        .iter()
        .filter(|event| event["user-variables"].get("backer_id").is_none())
        .count();
    assert_eq!(without_backer, 1);

    // A second run sends new messages with fresh tokens: nothing is dropped as a duplicate.
    let again = Mailtrail::new(&[
        "send-sample",
        "--backers",
        "2",
        "--projects",
        "1",
        "--url",
        url,
    ])
    .env("MAILTRAIL_SIGNING_KEYS", "new-key")
    .run()
    .await
    .success();
    assert!(
        again.stdout.ends_with("29 answered 200\n"),
        "{}",
        again.stdout
    );
    assert_eq!(redis.list("events").len(), 58);
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sample_reports_refusals_and_fails_when_its_key_is_not_the_receivers() {
    let receiver = start_receiver("the-receivers-key").await;
    let (url, redis) = (receiver.receiver_url(), receiver.redis());
    let run = Mailtrail::new(&[
        "send-sample",
        "--backers",
        "1",
        "--projects",
        "1",
        "--url",
        url,
    ])
    .env("MAILTRAIL_SIGNING_KEYS", "some-other-key")
    .run()
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.contains("0 answered 200\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("15 answered otherwise:"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  ... and 5 more"), "{}", run.stdout);
    assert!(
        run.stderr.contains("15 of 15 webhooks were not accepted"),
        "{}",
        run.stderr
    );
    assert!(redis.list("events").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sample_without_signing_keys_names_the_variable() {
    let run = Mailtrail::new(&["send-sample"]).run().await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("MAILTRAIL_SIGNING_KEYS is not set"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sample_says_which_receiver_it_could_not_reach() {
    let run = Mailtrail::new(&["send-sample", "--url", "http://127.0.0.1:1"])
        .env("MAILTRAIL_SIGNING_KEYS", "k")
        .run()
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("cannot reach the receiver at http://127.0.0.1:1/webhooks/mailgun"),
        "{}",
        run.stderr
    );
}
