//! The worker keeps `email_events`' partitions ahead: at start it creates the months to come. It
//! leaves a row that landed in the default partition where it is (moving it would hide that
//! month's rows from a query planned just before the move; `mailtrail partitions ensure` does it).

use std::time::{Duration, Instant};

use chrono::{Datelike, Months, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use mailtrail_core::EventKind;
use mailtrail_store::upsert_events;
use mailtrail_testing::{TestApp, event_at, worker_row};

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = Text)]
    name: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_starting_worker_creates_the_months_ahead_and_leaves_the_default_rows_alone() {
    let mut app = TestApp::builder().worker(false).build().await;
    let mut connection = app.database().connect().await;
    // The last month ahead is gone (as if the database were three months older).
    let today = Utc::now().date_naive();
    let last_ahead = today
        .with_day(1)
        .and_then(|first| first.checked_add_months(Months::new(3)))
        .unwrap();
    let last_ahead_name = format!("email_events_{}", last_ahead.format("%Y_%m"));
    diesel::sql_query(format!("DROP TABLE {last_ahead_name}"))
        .execute(&mut connection)
        .await
        .unwrap();
    // March 2019 has no partition: the event is stored in the default one.
    let stray = worker_row(
        &event_at(
            EventKind::Delivered,
            "stray@x",
            "ann@example.com",
            1_552_219_200,
        ),
        1,
        7,
        None,
    );
    upsert_events(&mut connection, &[stray]).await.unwrap();

    let _worker = app.driven_worker().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partitions: Vec<Partition> = diesel::sql_query(
            "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'email_events'::regclass",
        )
        .load(&mut connection)
        .await
        .unwrap();
        if partitions.iter().any(|p| p.name == last_ahead_name) {
            assert!(
                !partitions.iter().any(|p| p.name == "email_events_2019_03"),
                "the worker moved rows out of the default partition"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not create {last_ahead_name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let holding: Vec<Partition> = diesel::sql_query(
        "SELECT tableoid::regclass::text AS name FROM email_events WHERE message_id = 'stray@x'",
    )
    .load(&mut connection)
    .await
    .unwrap();
    let holding: Vec<&str> = holding.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(holding, ["email_events_default"]);
}
