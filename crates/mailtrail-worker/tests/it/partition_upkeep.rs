//! The worker keeps `email_events`' partitions ahead: at start it creates the months to come and
//! moves a row that landed in the default partition into a month of its own.

use std::time::{Duration, Instant};

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
async fn a_starting_worker_moves_rows_out_of_the_default_partition_into_their_month() {
    let mut app = TestApp::builder().worker(false).build().await;
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
    let mut connection = app.database().connect().await;
    upsert_events(&mut connection, &[stray]).await.unwrap();

    let _worker = app.driven_worker().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let holding: Vec<Partition> = diesel::sql_query(
            "SELECT tableoid::regclass::text AS name FROM email_events WHERE message_id = 'stray@x'",
        )
        .load(&mut connection)
        .await
        .unwrap();
        if holding.iter().any(|p| p.name == "email_events_2019_03") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not move the row out of the default partition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
