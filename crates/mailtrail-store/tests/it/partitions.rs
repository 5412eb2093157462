//! `email_events` partitioned by month: the migration converts a table with data in it, a row
//! that lands in the default partition never blocks its month, retention drops whole months
//! (and says what it will drop first), and a message's timeline reads only its months.

use chrono::{TimeZone, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use mailtrail_core::{EventKind, EventRow};
use mailtrail_store::partitions::{
    DEFAULT_PARTITION, apply_retention, ensure_partitions, list_partitions, retention_plan,
};
use mailtrail_store::{
    MIGRATIONS, StoreConnection, TimelineFilter, migrate, timeline, upsert_events,
};
use mailtrail_testing::{TestDatabase, event_at, worker_row};

/// Seconds since the epoch of a day at noon UTC.
fn noon(year: i32, month: u32, day: u32) -> i64 {
    Utc.with_ymd_and_hms(year, month, day, 12, 0, 0)
        .single()
        .map(|t| t.timestamp())
        .unwrap()
}

fn delivered(message: &str, recipient: &str, at: i64) -> EventRow {
    worker_row(
        &event_at(EventKind::Delivered, message, recipient, at),
        1,
        7,
        Some("Update"),
    )
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Placement {
    #[diesel(sql_type = Text)]
    partition: String,
    #[diesel(sql_type = BigInt)]
    events: i64,
}

/// How many events each partition holds, by partition name.
async fn placement(connection: &mut StoreConnection) -> Vec<(String, i64)> {
    let rows: Vec<Placement> = diesel::sql_query(
        "SELECT tableoid::regclass::text AS partition, count(*) AS events
         FROM email_events GROUP BY 1 ORDER BY 1",
    )
    .load(connection)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.partition, r.events)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_migration_converts_an_events_table_with_rows_in_it() {
    let database = TestDatabase::create_unmigrated().await;
    // Migrate up to, not including, the partitioning.
    let mut harness = AsyncMigrationHarness::new(database.connect().await);
    loop {
        let pending = harness.pending_migrations(MIGRATIONS).unwrap();
        let next = <[_]>::first(&pending).expect("the partitioning migration exists");
        if next.name().to_string().contains("partition_email_events") {
            break;
        }
        harness.run_migration(next.as_ref()).unwrap();
    }
    let mut connection = harness.into_inner();

    // Events in three months, written as the previous version wrote them (unique on the key).
    let rows = [
        delivered("a@x", "ann@example.com", noon(2025, 1, 31)),
        delivered("b@x", "bob@example.com", noon(2025, 2, 1)),
        delivered("c@x", "cat@example.com", noon(2025, 4, 15)),
    ];
    for row in &rows {
        diesel::sql_query(
            "INSERT INTO email_events (event_key, message_id, recipient, kind, occurred_at,
                                       backer_id, project_id, subject, status, status_tier,
                                       status_explicit, recipient_as_sent)
             VALUES ($1, $2, $3, $4, $5, 1, 7, 'Update', $6, 2, true, $3)
             ON CONFLICT (event_key) DO NOTHING",
        )
        .bind::<Text, _>(&row.event_key)
        .bind::<Text, _>(&row.message_id)
        .bind::<Text, _>(&row.recipient)
        .bind::<Text, _>(&row.kind)
        .bind::<Timestamptz, _>(row.occurred_at)
        .bind::<Text, _>(row.status.as_deref().unwrap_or("delivered"))
        .execute(&mut connection)
        .await
        .unwrap();
    }

    // An index another migration put on the table before this one must survive the conversion.
    diesel::sql_query("CREATE INDEX email_events_extra_idx ON email_events (backer_id) WHERE bot")
        .execute(&mut connection)
        .await
        .unwrap();

    let (mut connection, applied) = migrate(connection).await.unwrap();
    assert_eq!(applied.len(), 1, "{applied:?}");

    // Every row kept, each in its month; this month and the next three exist too.
    assert_eq!(
        placement(&mut connection).await,
        [
            ("email_events_2025_01".to_owned(), 1),
            ("email_events_2025_02".to_owned(), 1),
            ("email_events_2025_04".to_owned(), 1),
        ]
    );
    let names: Vec<String> = list_partitions(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let today = Utc::now().date_naive();
    for ahead in 0..=3 {
        let month = today
            .checked_add_months(chrono::Months::new(ahead))
            .unwrap();
        let name = mailtrail_store::partitions::partition_name(month);
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(names.last().map(String::as_str), Some(DEFAULT_PARTITION));

    let indexes: Vec<Placement> = diesel::sql_query(
        "SELECT indexdef AS partition, 0::int8 AS events FROM pg_indexes
         WHERE tablename = 'email_events' AND indexname = 'email_events_extra_idx'",
    )
    .load(&mut connection)
    .await
    .unwrap();
    assert_eq!(indexes.len(), 1, "the extra index was lost");
    assert!(indexes[0].partition.contains("WHERE bot"), "{indexes:?}");

    // Deduplication is as exact as before: the same events again insert nothing.
    let again = upsert_events(&mut connection, &rows).await.unwrap();
    assert_eq!(again.events_inserted, 0);
    assert_eq!(database.stored_events().await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_in_the_default_partition_does_not_block_its_month() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    // March 2019 has no partition: the event lands in the default one, the batch succeeds.
    let old = delivered("old@x", "ann@example.com", noon(2019, 3, 10));
    let counts = upsert_events(&mut connection, std::slice::from_ref(&old))
        .await
        .unwrap();
    assert_eq!(counts.events_inserted, 1);
    assert_eq!(
        placement(&mut connection).await,
        [(DEFAULT_PARTITION.to_owned(), 1)]
    );

    // Ensuring partitions creates March 2019 and moves the row into it.
    let now = Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap();
    let ensured = ensure_partitions(&mut connection, now, 3).await.unwrap();
    let created: Vec<(&str, i64)> = ensured
        .iter()
        .filter(|p| p.created)
        .map(|p| (p.partition_name.as_str(), p.moved_from_default))
        .collect();
    assert_eq!(created, [("email_events_2019_03", 1)]);
    assert_eq!(
        placement(&mut connection).await,
        [("email_events_2019_03".to_owned(), 1)]
    );
    // Ahead of `now`: December 2026 to March 2027 (the migration made them already).
    assert_eq!(ensured.len(), 5, "{ensured:?}");
    assert!(
        ensured
            .iter()
            .any(|p| p.partition_name == "email_events_2027_03")
    );

    // Idempotent, and the event is still recognised.
    let again = ensure_partitions(&mut connection, now, 3).await.unwrap();
    assert!(again.iter().all(|p| !p.created), "{again:?}");
    let counts = upsert_events(&mut connection, &[old]).await.unwrap();
    assert_eq!(counts.events_inserted, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_drops_whole_months_past_the_cutoff_and_the_default_rows_it_names() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let now = Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap();
    let rows = [
        delivered("jan@x", "ann@example.com", noon(2025, 1, 10)),
        delivered("feb@x", "ann@example.com", noon(2025, 2, 10)),
        delivered("feb-late@x", "ann@example.com", noon(2025, 2, 25)),
        delivered("mar@x", "ann@example.com", noon(2025, 3, 10)),
    ];
    upsert_events(&mut connection, &rows).await.unwrap();
    ensure_partitions(&mut connection, now, 3).await.unwrap();
    // A row that arrives after its month's partitions were ensured stays in the default one.
    let stray = delivered("stray@x", "ann@example.com", noon(2018, 6, 1));
    upsert_events(&mut connection, &[stray]).await.unwrap();

    let cutoff = Utc.with_ymd_and_hms(2025, 2, 20, 0, 0, 0).unwrap();
    let plan = retention_plan(&mut connection, cutoff).await.unwrap();
    let names = |partitions: &[mailtrail_store::partitions::EventPartition]| {
        partitions
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&plan.drop), ["email_events_2025_01"]);
    assert_eq!(plan.drop[0].rows, 1);
    assert_eq!(names(&plan.straddling), ["email_events_2025_02"]);
    assert_eq!(plan.default_rows, 1);
    // The plan changed nothing.
    assert_eq!(database.stored_events().await, 5);

    let outcome = apply_retention(&mut connection, &plan).await.unwrap();
    assert_eq!(outcome.dropped, ["email_events_2025_01"]);
    assert_eq!(outcome.default_rows_deleted, 1);
    assert_eq!(
        placement(&mut connection).await,
        [
            ("email_events_2025_02".to_owned(), 2),
            ("email_events_2025_03".to_owned(), 1),
        ]
    );
    let after = retention_plan(&mut connection, cutoff).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
}

#[derive(QueryableByName, Debug)]
struct Scanned {
    #[diesel(sql_type = Text)]
    partition: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn the_message_timeline_reads_only_its_months() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let now = Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap();
    // A message delivered at the end of January and opened in February; others in other months.
    let mut rows = vec![
        delivered("busy@x", "ann@example.com", noon(2025, 1, 31)),
        worker_row(
            &event_at(
                EventKind::Opened,
                "busy@x",
                "ann@example.com",
                noon(2025, 2, 2),
            ),
            1,
            7,
            None,
        ),
    ];
    for (month, message) in [(3, "m3@x"), (4, "m4@x"), (5, "m5@x")] {
        rows.push(delivered(message, "ann@example.com", noon(2025, month, 3)));
    }
    upsert_events(&mut connection, &rows).await.unwrap();
    ensure_partitions(&mut connection, now, 0).await.unwrap();

    let (events, scanned) =
        timeline_and_partitions_read(&database, TimelineFilter::MessageId("busy@x".to_owned()))
            .await;
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["delivered", "opened"]
    );
    assert_eq!(scanned, ["email_events_2025_01", "email_events_2025_02"]);

    // A recipient's timeline names no time, so it reads every month (and the default partition).
    let (events, scanned) = timeline_and_partitions_read(
        &database,
        TimelineFilter::Recipient("ann@example.com".to_owned()),
    )
    .await;
    assert_eq!(events.len(), 5);
    assert!(scanned.len() >= 6, "{scanned:?}");
}

/// Runs a timeline query in a transaction of a fresh session and returns its events with the
/// partitions it read, from that transaction's own scan counters.
async fn timeline_and_partitions_read(
    database: &TestDatabase,
    filter: TimelineFilter,
) -> (Vec<mailtrail_store::TimelineEvent>, Vec<String>) {
    let mut connection = database.connect().await;
    connection
        .transaction::<_, diesel::result::Error, _>(async |connection| {
            let events = timeline(connection, &filter, 100)
                .await
                .map_err(|_| diesel::result::Error::RollbackTransaction)?;
            let scanned: Vec<Scanned> = diesel::sql_query(
                "SELECT relname::text AS partition FROM pg_stat_xact_user_tables
                 WHERE relname LIKE 'email\\_events\\_%' AND seq_scan + coalesce(idx_scan, 0) > 0
                 ORDER BY 1",
            )
            .load(connection)
            .await?;
            Ok((events, scanned.into_iter().map(|s| s.partition).collect()))
        })
        .await
        .unwrap()
}
