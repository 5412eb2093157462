//! Reconciliation's checkpoint against a real Redis: it moves with the push of the page it
//! covers, per domain, and a push without one leaves it alone.

use mailtrail_testing::TestRedis;

#[tokio::test(flavor = "multi_thread")]
async fn a_page_and_its_checkpoint_are_pushed_together_per_domain() {
    let redis = TestRedis::new();
    let queue = redis.queue();
    assert_eq!(queue.reconcile_checkpoint("a.example").await.unwrap(), None);

    let page = vec!["first".to_owned(), "second".to_owned()];
    queue
        .push_envelopes_with_checkpoint(&page, "a.example", Some(1_700_000_000_250_000))
        .await
        .unwrap();
    assert_eq!(redis.list("events"), ["second", "first"]); // the first given is taken first
    assert_eq!(
        queue.reconcile_checkpoint("a.example").await.unwrap(),
        Some(1_700_000_000_250_000)
    );
    assert_eq!(queue.reconcile_checkpoint("b.example").await.unwrap(), None);

    queue
        .push_envelopes_with_checkpoint(&["third".to_owned()], "a.example", None)
        .await
        .unwrap();
    assert_eq!(redis.list("events").len(), 3);
    assert_eq!(
        queue.reconcile_checkpoint("a.example").await.unwrap(),
        Some(1_700_000_000_250_000)
    );
}
