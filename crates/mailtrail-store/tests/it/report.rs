//! The statistics report read from Postgres, through a pooled connection as the read API reads
//! it: the same groups and rates as folding the store's rows by hand.

use std::time::Duration;

use mailtrail_core::{EventKind, Severity};
use mailtrail_store::report::{Percent, StatsReport};
use mailtrail_store::{
    Source, StatsQuery, StatsScope, connect_pool, stats_report, status_counts, upsert_events,
};
use mailtrail_testing::{TestDatabase, event_at, worker_row};

#[tokio::test(flavor = "multi_thread")]
async fn the_report_folds_the_status_counts_of_its_scope_into_groups_and_rates() {
    let database = TestDatabase::create().await;
    let mut bounce = event_at(EventKind::Failed, "r3@x", "c@example.com", 2);
    bounce.severity = Some(Severity::Permanent);
    let rows = [
        worker_row(
            &event_at(EventKind::Delivered, "r1@x", "a@example.com", 1),
            1,
            10,
            Some("Welcome"),
        ),
        worker_row(
            &event_at(EventKind::Clicked, "r1@x", "a@example.com", 3),
            1,
            10,
            None,
        ),
        worker_row(
            &event_at(EventKind::Delivered, "r2@x", "b@example.com", 1),
            1,
            10,
            Some("Update"),
        ),
        worker_row(&bounce, 2, 10, Some("Update")),
        worker_row(
            &event_at(EventKind::Accepted, "r4@x", "d@example.com", 1),
            2,
            20,
            Some("Welcome"),
        ),
    ];
    let pool = connect_pool(database.url(), 2, Duration::from_secs(30))
        .await
        .unwrap();
    let mut connection = pool.get().await.unwrap();
    upsert_events(&mut connection, &rows).await.unwrap();

    let by_subject = stats_report(
        &mut connection,
        &StatsQuery::new(StatsScope::ProjectBySubject(10)),
    )
    .await
    .unwrap();
    assert_eq!(by_subject.query.scope, StatsScope::ProjectBySubject(10));
    let subjects: Vec<_> = by_subject
        .groups
        .iter()
        .map(|g| g.subject.as_deref())
        .collect();
    assert_eq!(subjects, [Some("Update"), Some("Welcome")]);
    let update = &by_subject.groups[0];
    assert_eq!((update.total, update.delivered, update.bounced), (2, 1, 1));
    assert_eq!(update.delivery_rate_percent, Percent::of(1, 2));
    assert_eq!(by_subject.groups[1].clicked, 1);

    for scope in [
        StatsScope::Backer(1),
        StatsScope::Project(10),
        StatsScope::ProjectBySubject(10),
        StatsScope::All,
        StatsScope::Backer(99),
    ] {
        let rows = status_counts(&mut connection, &StatsQuery::new(scope), Source::Counters)
            .await
            .unwrap();
        assert_eq!(
            stats_report(&mut connection, &StatsQuery::new(scope))
                .await
                .unwrap(),
            StatsReport::from_rows(StatsQuery::new(scope), &rows),
            "{scope:?}"
        );
    }
    let all = stats_report(&mut connection, &StatsQuery::new(StatsScope::All))
        .await
        .unwrap();
    assert_eq!(all.groups.len(), 1);
    assert_eq!((all.groups[0].total, all.groups[0].accepted), (4, 1));
    assert_eq!(all.groups[0].bounce_rate_percent, Percent::of(1, 4));
}
