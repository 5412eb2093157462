//! The commands that read or write Postgres, run as the real binary against a fresh database:
//! `migrate`, `stats` (table and JSON, every scope) and `events`, and the message an operator
//! gets when `DATABASE_URL` is missing.

use crate::support::{Mailtrail, Seed};
use diesel_async::RunQueryDsl;
use mailtrail_core::{EventKind, Severity};
use mailtrail_store::upsert_events;
use mailtrail_testing::TestDatabase;
use serde_json::Value;

/// A small campaign with one message in every status:
///
/// | message | backer | project | subject | events | status |
/// |---|---|---|---|---|---|
/// | m1 | 42 | 7 | Your pledge | accepted, delivered, opened, clicked | delivered |
/// | m2 | 42 | 7 | Your pledge | accepted, failed permanent bounce | bounced |
/// | m3 | 43 | 7 | Project update | failed permanent suppress-bounce | dropped |
/// | m4 | 43 | 7 | Project update | accepted, failed temporary | deferred |
/// | m5 | 43 | 7 | (none) | delivered, complained | complained |
/// | m6 | 42 | 8 | Other project | accepted | accepted |
/// | m7 | 44 | 8 | Other project | delivered, bot open | delivered |
async fn seed_campaign(database: &TestDatabase) {
    let pledge = "Your pledge";
    let update = "Project update";
    let other = "Other project";
    let rows: Vec<_> = [
        Seed::new(EventKind::Accepted, "m1@x", "a@example.com", 0, (42, 7)).subject(pledge),
        Seed::new(EventKind::Delivered, "m1@x", "a@example.com", 5, (42, 7)).subject(pledge),
        Seed::new(EventKind::Opened, "<m1@x>", "a@example.com", 60, (42, 7)),
        Seed::new(EventKind::Clicked, "m1@x", "a@example.com", 90, (42, 7))
            .url("https://example.com/projects/7"),
        Seed::new(EventKind::Accepted, "m2@x", "b@example.com", 0, (42, 7)).subject(pledge),
        Seed::new(EventKind::Failed, "m2@x", "b@example.com", 8, (42, 7))
            .subject(pledge)
            .failure(Severity::Permanent, "bounce", "550"),
        Seed::new(EventKind::Failed, "m3@x", "c@example.com", 1, (43, 7))
            .subject(update)
            .failure(Severity::Permanent, "suppress-bounce", "605"),
        Seed::new(EventKind::Accepted, "m4@x", "d@example.com", 0, (43, 7)).subject(update),
        Seed::new(EventKind::Failed, "m4@x", "d@example.com", 30, (43, 7))
            .subject(update)
            .failure(Severity::Temporary, "greylisted", "450"),
        Seed::new(EventKind::Delivered, "m5@x", "e@example.com", 2, (43, 7)),
        Seed::new(EventKind::Complained, "m5@x", "e@example.com", 400, (43, 7)),
        Seed::new(EventKind::Accepted, "m6@x", "a@example.com", 3, (42, 8)).subject(other),
        Seed::new(EventKind::Delivered, "m7@x", "f@example.com", 4, (44, 8)).subject(other),
        Seed::new(EventKind::Opened, "m7@x", "f@example.com", 6, (44, 8)).bot(),
    ]
    .iter()
    .map(Seed::row)
    .collect();
    let mut connection = database.connect().await;
    let counts = upsert_events(&mut connection, &rows).await.unwrap();
    assert_eq!(counts.events_inserted, 14);
}

async fn seeded() -> TestDatabase {
    let database = TestDatabase::create().await;
    seed_campaign(&database).await;
    database
}

async fn stats(database: &TestDatabase, args: &[&str]) -> String {
    let mut full = vec!["stats"];
    full.extend_from_slice(args);
    Mailtrail::new(&full)
        .database(database)
        .run()
        .await
        .success()
        .stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_for_a_backer_show_every_status_and_both_rates() {
    let database = seeded().await;
    insta::assert_snapshot!(stats(&database, &["--backer", "42"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_for_a_project_add_up_all_its_subjects() {
    let database = seeded().await;
    insta::assert_snapshot!(stats(&database, &["--project", "7"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_by_subject_show_one_row_per_subject_including_messages_without_one() {
    let database = seeded().await;
    insta::assert_snapshot!(stats(&database, &["--project", "7", "--by-subject"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_for_all_messages_cover_every_project() {
    let database = seeded().await;
    insta::assert_snapshot!(stats(&database, &["--all"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_for_an_unknown_backer_are_a_row_of_zeros_without_rates() {
    let database = seeded().await;
    insta::assert_snapshot!(stats(&database, &["--backer", "999"]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_json_carries_the_same_numbers_as_the_table_for_every_scope() {
    let database = seeded().await;
    for (name, args) in [
        ("backer", &["--backer", "42", "--json"][..]),
        ("project", &["--project", "7", "--json"][..]),
        (
            "by_subject",
            &["--project", "7", "--by-subject", "--json"][..],
        ),
        ("all", &["--all", "--json"][..]),
    ] {
        let text = stats(&database, args).await;
        let json: Value = serde_json::from_str(&text).unwrap();
        // Every group's statuses add up to its total, as in the table.
        for group in json["groups"].as_array().unwrap() {
            let statuses: u64 = [
                "accepted",
                "deferred",
                "delivered",
                "bounced",
                "dropped",
                "complained",
            ]
            .iter()
            .map(|status| group[status].as_u64().unwrap())
            .sum();
            assert_eq!(statuses, group["total"].as_u64().unwrap(), "{name}");
        }
        insta::assert_snapshot!(format!("stats_json_{name}"), text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_refuse_by_subject_without_a_project_and_more_than_one_scope() {
    for args in [
        &["stats", "--backer", "1", "--by-subject"][..],
        &["stats", "--all", "--by-subject"][..],
        &["stats", "--backer", "1", "--project", "2"][..],
        &["stats"][..],
    ] {
        let run = Mailtrail::new(args).run().await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_that_need_postgres_name_database_url_when_it_is_missing() {
    for args in [
        &["stats", "--all"][..],
        &["migrate"][..],
        &["events", "--message-id", "m1@x"][..],
    ] {
        let run = Mailtrail::new(args).run().await;
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(
            run.stderr.contains("DATABASE_URL is not set"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_an_empty_database_applies_every_migration_then_is_up_to_date() {
    let database = TestDatabase::create().await;
    // TestDatabase comes migrated: empty it, migration bookkeeping included.
    let mut connection = database.connect().await;
    diesel::sql_query("DROP SCHEMA public CASCADE")
        .execute(&mut connection)
        .await
        .unwrap();
    diesel::sql_query("CREATE SCHEMA public")
        .execute(&mut connection)
        .await
        .unwrap();
    drop(connection);

    let first = Mailtrail::new(&["migrate"])
        .database(&database)
        .run()
        .await
        .success();
    let applied = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().join("up.sql").exists())
        .count();
    assert!(
        first.stdout.contains("applied migration 20261127000001"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains(&format!("migrations: {applied} applied")),
        "{}",
        first.stdout
    );

    let second = Mailtrail::new(&["migrate"])
        .database(&database)
        .run()
        .await
        .success();
    assert_eq!(second.stdout, "migrations: up to date\n");

    // The schema works: the campaign can be written and counted.
    seed_campaign(&database).await;
    let all = stats(&database, &["--all", "--json"]).await;
    let json: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(json["groups"][0]["total"], 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_a_message_are_listed_in_event_order() {
    let database = seeded().await;
    let run = Mailtrail::new(&["events", "--message-id", "<m1@x>"])
        .database(&database)
        .run()
        .await
        .success();
    insta::assert_snapshot!(run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_to_a_recipient_span_their_messages_and_respect_the_limit() {
    let database = seeded().await;
    let all = Mailtrail::new(&["events", "--recipient", "a@example.com"])
        .database(&database)
        .run()
        .await
        .success();
    insta::assert_snapshot!(all.stdout);

    let limited = Mailtrail::new(&["events", "--recipient", "a@example.com", "--limit", "2"])
        .database(&database)
        .run()
        .await
        .success();
    assert!(
        limited
            .stdout
            .contains("(showing the first 2 events; raise --limit to see more)"),
        "{}",
        limited.stdout
    );
    let rows = limited
        .stdout
        .lines()
        .filter(|line| line.starts_with("2023-"));
    assert_eq!(rows.count(), 2, "{}", limited.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_json_holds_every_field_of_the_timeline() {
    let database = seeded().await;
    let run = Mailtrail::new(&["events", "--message-id", "m2@x", "--json"])
        .database(&database)
        .run()
        .await
        .success();
    let events: Value = serde_json::from_str(&run.stdout).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "accepted");
    assert_eq!(events[1]["kind"], "failed");
    assert_eq!(events[1]["status"], "bounced");
    assert_eq!(events[1]["severity"], "permanent");
    assert_eq!(events[1]["reason"], "bounce");
    assert_eq!(events[1]["delivery_code"], "550");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_an_unknown_message_say_so() {
    let database = seeded().await;
    let run = Mailtrail::new(&["events", "--message-id", "nope@x"])
        .database(&database)
        .run()
        .await
        .success();
    assert_eq!(run.stdout, "events of message nope@x\n(no events)\n");
}
