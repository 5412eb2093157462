//! `mailtrail mailgun webhooks install | list` against the fake Mailgun: every event type
//! registered in one command, a second install changing nothing, a URL registered elsewhere
//! reported and kept unless `--replace`, and a wrong key refused in one line.

use mailtrail_mailgun::WEBHOOK_NAMES;
use mailtrail_testing::{FAKE_API_KEY, FakeMailgun};

use crate::support::Mailtrail;

const DOMAIN: &str = "mg.example.com";
const RECEIVER: &str = "https://hooks.example.com/webhooks/mailgun";

fn mailtrail(fake: &FakeMailgun, args: &[&str]) -> Mailtrail {
    Mailtrail::new(args)
        .env("MAILGUN_API_BASE", &fake.base_url())
        .env("MAILGUN_API_KEY", FAKE_API_KEY)
}

#[tokio::test(flavor = "multi_thread")]
async fn install_registers_every_event_type_once_and_leaves_other_urls_unless_told() {
    let fake = FakeMailgun::start(DOMAIN);
    fake.set_webhook("opened", &["https://old.example.com/hook"]);
    let install = [
        "mailgun", "webhooks", "install", "--domain", DOMAIN, "--url", RECEIVER,
    ];

    // The seven free types are created; `opened` points elsewhere and is only reported.
    let first = mailtrail(&fake, &install).run().await;
    assert_eq!(first.code, Some(1), "{first:?}");
    assert_eq!(
        first.stdout.matches(" created ").count(),
        7,
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("opened          elsewhere  https://old.example.com/hook"),
        "{}",
        first.stdout
    );
    assert!(first.stderr.contains("--replace"), "{}", first.stderr);
    assert_eq!(fake.webhooks()["opened"], ["https://old.example.com/hook"]);

    // Again: nothing is created twice.
    let posts_before = fake.requests().iter().filter(|r| r.method != "GET").count();
    let second = mailtrail(&fake, &install).run().await;
    assert_eq!(second.code, Some(1));
    assert_eq!(
        second.stdout.matches(" unchanged ").count(),
        7,
        "{}",
        second.stdout
    );
    let posts_after = fake.requests().iter().filter(|r| r.method != "GET").count();
    assert_eq!(posts_after, posts_before);

    // With --replace every type sends here.
    let replace = [&install[..], &["--replace"]].concat();
    let third = mailtrail(&fake, &replace).run().await.success();
    assert!(
        third.stdout.contains("opened          replaced   "),
        "{}",
        third.stdout
    );
    let registered = fake.webhooks();
    for name in WEBHOOK_NAMES {
        assert_eq!(registered[name], [RECEIVER], "{name}");
    }
    mailtrail(&fake, &replace).run().await.success();

    let list = mailtrail(&fake, &["mailgun", "webhooks", "list"])
        .env("MAILGUN_DOMAIN", DOMAIN)
        .run()
        .await
        .success();
    assert_eq!(list.stdout.lines().count(), 8, "{}", list.stdout);
    assert!(
        list.stdout.lines().all(|line| line.ends_with(RECEIVER)),
        "{}",
        list.stdout
    );

    let refused = mailtrail(&fake, &["mailgun", "webhooks", "list", "--domain", DOMAIN])
        .env("MAILGUN_API_KEY", "key-wrong")
        .run()
        .await;
    assert_eq!(refused.code, Some(1));
    assert_eq!(
        refused.stderr.trim_end().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
}
