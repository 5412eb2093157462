//! `mailtrail stats` over a range of days and per day, and `mailtrail rollups`, run as the real
//! binary against a fresh database. A message belongs to the day (UTC) of its first event.

use crate::support::{Mailtrail, Seed};
use diesel_async::RunQueryDsl;
use mailtrail_core::{EventKind, Severity};
use mailtrail_store::upsert_events;
use mailtrail_testing::TestDatabase;

/// Seconds from [`crate::support::T0`] (2023-11-14 22:13:20 UTC) to 2023-11-15 00:00 UTC.
const NOV15: i64 = 6_400;
const DAY: i64 = 86_400;

/// One project over three days:
///
/// | message | first event | subject | events | status |
/// |---|---|---|---|---|
/// | d1 | 11-15 | Launch | delivered, human open, bot click | delivered |
/// | d2 | 11-15 | Launch | failed permanent bounce | bounced |
/// | d3 | 11-16 | Reminder | delivered, human click | delivered |
/// | d4 | 11-17 | Reminder | accepted (11-17), then an earlier accepted (11-16) arrives later | accepted, day 11-16 |
/// | d5 | 11-17 | Reminder | delivered, complained | complained |
async fn seeded() -> TestDatabase {
    let database = TestDatabase::create().await;
    let project = (42, 7);
    let at = |day: i64, seconds: i64| NOV15 + day * DAY + seconds;
    let batches: [Vec<Seed>; 2] = [
        vec![
            Seed::new(
                EventKind::Delivered,
                "d1@x",
                "a@example.com",
                at(0, 60),
                project,
            )
            .subject("Launch"),
            Seed::new(
                EventKind::Opened,
                "d1@x",
                "a@example.com",
                at(0, 90),
                project,
            ),
            Seed::new(
                EventKind::Clicked,
                "d1@x",
                "a@example.com",
                at(0, 95),
                project,
            )
            .bot(),
            Seed::new(
                EventKind::Failed,
                "d2@x",
                "b@example.com",
                at(0, 70),
                project,
            )
            .subject("Launch")
            .failure(Severity::Permanent, "bounce", "550"),
            Seed::new(
                EventKind::Delivered,
                "d3@x",
                "c@example.com",
                at(1, 10),
                project,
            )
            .subject("Reminder"),
            Seed::new(
                EventKind::Clicked,
                "d3@x",
                "c@example.com",
                at(1, 20),
                project,
            ),
            Seed::new(
                EventKind::Accepted,
                "d4@x",
                "d@example.com",
                at(2, 5),
                project,
            )
            .subject("Reminder"),
            Seed::new(
                EventKind::Delivered,
                "d5@x",
                "e@example.com",
                at(2, 30),
                project,
            )
            .subject("Reminder"),
            Seed::new(
                EventKind::Complained,
                "d5@x",
                "e@example.com",
                at(2, 900),
                project,
            ),
        ],
        // A late webhook from the day before moves d4 to 11-16.
        vec![
            Seed::new(
                EventKind::Accepted,
                "d4@x",
                "d@example.com",
                at(1, 30_000),
                project,
            )
            .subject("Reminder"),
        ],
    ];
    let mut connection = database.connect().await;
    for batch in batches {
        let rows: Vec<_> = batch.iter().map(Seed::row).collect();
        upsert_events(&mut connection, &rows).await.unwrap();
    }
    database
}

async fn mailtrail(database: &TestDatabase, args: &[&str]) -> crate::support::Run {
    Mailtrail::new(args).database(database).run().await
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_per_day_show_one_row_per_day_of_first_event() {
    let database = seeded().await;
    let table = mailtrail(&database, &["stats", "--project", "7", "--daily"])
        .await
        .success()
        .stdout;
    insta::assert_snapshot!("stats_project_daily_table", table);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_by_subject_over_a_range_count_only_its_days() {
    let database = seeded().await;
    let json = mailtrail(
        &database,
        &[
            "stats",
            "--project",
            "7",
            "--by-subject",
            "--since",
            "2023-11-16",
            "--until",
            "2023-11-17",
            "--json",
        ],
    )
    .await
    .success()
    .stdout;
    insta::assert_snapshot!("stats_project_by_subject_range_json", json);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_per_day_as_json_for_the_whole_system() {
    let database = seeded().await;
    let json = mailtrail(&database, &["stats", "--all", "--daily", "--json"])
        .await
        .success()
        .stdout;
    insta::assert_snapshot!("stats_all_daily_json", json);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_that_ends_before_it_starts_is_refused() {
    let database = seeded().await;
    let run = mailtrail(
        &database,
        &[
            "stats",
            "--all",
            "--since",
            "2023-11-17",
            "--until",
            "2023-11-15",
        ],
    )
    .await;
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr
            .contains("--since 2023-11-17 is after --until 2023-11-15"),
        "{}",
        run.stderr
    );
    let run = mailtrail(&database, &["stats", "--all", "--since", "yesterday"]).await;
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("--since"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_verify_passes_then_fails_after_a_hand_edit_until_rebuilt() {
    let database = seeded().await;
    let verified = mailtrail(&database, &["rollups", "verify"]).await.success();
    assert!(
        verified.stdout.contains("every counter matches"),
        "{}",
        verified.stdout
    );

    let mut connection = database.connect().await;
    diesel::sql_query("UPDATE project_rollups SET messages = messages + 2")
        .execute(&mut connection)
        .await
        .unwrap();
    let failed = mailtrail(&database, &["rollups", "verify"]).await;
    assert_ne!(failed.code, Some(0));
    assert!(
        failed.stdout.contains("project project=7"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stderr.contains("rollups rebuild"),
        "{}",
        failed.stderr
    );

    mailtrail(&database, &["rollups", "rebuild"])
        .await
        .success();
    mailtrail(&database, &["rollups", "verify"]).await.success();
}
