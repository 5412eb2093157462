//! The batched upsert against a real Postgres: idempotence, order independence (checked against
//! mailtrail-core's reference fold), and the statistics queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::status::mapped;
use mailtrail_core::{Event, EventKind, EventRow, MessageId, MessageState, Severity};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_store::{
    Source, StatsQuery, StatsScope, StoreConnection, status_counts, upsert_events,
};
use mailtrail_testing::{TestDatabase, event_at, worker_row};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// The row as stored, in the shape of the reference fold.
#[derive(Debug, PartialEq, Eq, Queryable)]
struct StoredRow {
    status: String,
    status_explicit: bool,
    status_at: DateTime<Utc>,
    status_reason: Option<String>,
    status_code: Option<String>,
    opened_count: i64,
    bot_open_count: i64,
    first_opened_at: Option<DateTime<Utc>>,
    last_opened_at: Option<DateTime<Utc>>,
    clicked_count: i64,
    first_clicked_at: Option<DateTime<Utc>>,
    last_clicked_at: Option<DateTime<Utc>>,
    unsubscribed_at: Option<DateTime<Utc>>,
    event_count: i64,
    last_event_at: DateTime<Utc>,
}

impl StoredRow {
    fn from_state(state: &MessageState) -> Option<Self> {
        let claim = state.status.as_ref()?;
        let time = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap();
        let engagement = &state.engagement;
        Some(Self {
            status: claim.status.as_str().to_owned(),
            status_explicit: claim.explicit,
            status_at: time(claim.at_micros),
            status_reason: claim.reason.clone(),
            status_code: claim.delivery_code.clone(),
            opened_count: engagement.opened_count,
            bot_open_count: engagement.bot_open_count,
            first_opened_at: engagement.first_opened_at.map(time),
            last_opened_at: engagement.last_opened_at.map(time),
            clicked_count: engagement.clicked_count,
            first_clicked_at: engagement.first_clicked_at.map(time),
            last_clicked_at: engagement.last_clicked_at.map(time),
            unsubscribed_at: engagement.unsubscribed_at.map(time),
            event_count: state.event_count,
            last_event_at: time(state.last_event_at?),
        })
    }
}

async fn stored(
    connection: &mut StoreConnection,
    message: &str,
    recipient: &str,
) -> Option<StoredRow> {
    use sent_emails::dsl as s;
    s::sent_emails
        .filter(s::message_id.eq(message))
        .filter(s::recipient.eq(recipient))
        .select((
            s::status,
            s::status_explicit,
            s::status_at,
            s::status_reason,
            s::status_code,
            s::opened_count,
            s::bot_open_count,
            s::first_opened_at,
            s::last_opened_at,
            s::clicked_count,
            s::first_clicked_at,
            s::last_clicked_at,
            s::unsubscribed_at,
            s::event_count,
            s::last_event_at,
        ))
        .first(connection)
        .await
        .optional()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_written_twice_changes_nothing_the_second_time() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let rows = vec![
        worker_row(
            &event_at(EventKind::Accepted, "m1@x", "a@example.com", 10),
            1,
            2,
            Some("Hi"),
        ),
        worker_row(
            &event_at(EventKind::Delivered, "m1@x", "a@example.com", 20),
            1,
            2,
            Some("Hi"),
        ),
        worker_row(
            &event_at(EventKind::Opened, "m1@x", "a@example.com", 30),
            1,
            2,
            None,
        ),
    ];
    let first = upsert_events(&mut connection, &rows).await.unwrap();
    assert_eq!(first.events_inserted, 3);
    assert_eq!(first.rows_upserted, 1);
    let before = stored(&mut connection, "m1@x", "a@example.com")
        .await
        .unwrap();

    let second = upsert_events(&mut connection, &rows).await.unwrap();
    assert_eq!(second.events_inserted, 0);
    assert_eq!(second.rows_upserted, 0);
    let after = stored(&mut connection, "m1@x", "a@example.com")
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(after.status, "delivered");
    assert_eq!(after.opened_count, 1);
    assert_eq!(after.event_count, 3);

    let events: i64 = email_events::table
        .count()
        .get_result(&mut connection)
        .await
        .unwrap();
    assert_eq!(events, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_inside_one_batch_are_counted_once() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let open = worker_row(
        &event_at(EventKind::Opened, "m2@x", "b@example.com", 5),
        1,
        2,
        None,
    );
    let counts = upsert_events(&mut connection, &[open.clone(), open.clone(), open])
        .await
        .unwrap();
    assert_eq!(counts.events_inserted, 1);
    let stored = stored(&mut connection, "m2@x", "b@example.com")
        .await
        .unwrap();
    assert_eq!(stored.opened_count, 1);
    assert_eq!(stored.status, "delivered");
    assert!(!stored.status_explicit, "an open only implies delivery");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_batch_fits_in_one_statement() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    // 5,000 rows × 18 columns would be 90,000 bind parameters as multi-row VALUES.
    let rows: Vec<EventRow> = (0..5_000)
        .map(|i| {
            worker_row(
                &event_at(
                    EventKind::Delivered,
                    &format!("bulk-{i}@x"),
                    "c@example.com",
                    i,
                ),
                3,
                4,
                None,
            )
        })
        .collect();
    let counts = upsert_events(&mut connection, &rows).await.unwrap();
    assert_eq!(counts.events_inserted, 5_000);
    assert_eq!(counts.rows_upserted, 5_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_messages_by_backer_project_subject_and_overall() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let mut rows = Vec::new();
    let mut bounce = event_at(EventKind::Failed, "s3@x", "c@example.com", 2);
    bounce.severity = Some(Severity::Permanent);
    for (backer, project, subject, ev) in [
        (
            1,
            10,
            "Welcome",
            event_at(EventKind::Delivered, "s1@x", "a@example.com", 1),
        ),
        (
            1,
            10,
            "Update",
            event_at(EventKind::Delivered, "s2@x", "b@example.com", 1),
        ),
        (2, 10, "Update", bounce),
        (
            2,
            20,
            "Welcome",
            event_at(EventKind::Accepted, "s4@x", "d@example.com", 1),
        ),
    ] {
        rows.push(worker_row(&ev, backer, project, Some(subject)));
    }
    rows.push(worker_row(
        &event_at(EventKind::Clicked, "s1@x", "a@example.com", 3),
        1,
        10,
        None,
    ));
    upsert_events(&mut connection, &rows).await.unwrap();

    let summary = |rows: Vec<mailtrail_store::StatsRow>| {
        rows.into_iter()
            .map(|row| {
                (
                    row.subject.unwrap_or_default(),
                    row.status,
                    row.messages,
                    row.clicked,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(
            status_counts(
                &mut connection,
                &StatsQuery::new(StatsScope::Backer(1)),
                Source::Counters
            )
            .await
            .unwrap()
        ),
        [("".into(), "delivered".into(), 2, 1)]
    );
    assert_eq!(
        summary(
            status_counts(
                &mut connection,
                &StatsQuery::new(StatsScope::Project(10)),
                Source::Counters
            )
            .await
            .unwrap()
        ),
        [
            ("".into(), "delivered".into(), 2, 1),
            ("".into(), "bounced".into(), 1, 0)
        ]
    );
    assert_eq!(
        summary(
            status_counts(
                &mut connection,
                &StatsQuery::new(StatsScope::ProjectBySubject(10)),
                Source::Counters
            )
            .await
            .unwrap()
        ),
        [
            ("Update".into(), "delivered".into(), 1, 0),
            ("Update".into(), "bounced".into(), 1, 0),
            ("Welcome".into(), "delivered".into(), 1, 1),
        ]
    );
    let all = status_counts(
        &mut connection,
        &StatsQuery::new(StatsScope::All),
        Source::Counters,
    )
    .await
    .unwrap();
    assert_eq!(all.iter().map(|row| row.messages).sum::<i64>(), 4);
    assert!(
        status_counts(
            &mut connection,
            &StatsQuery::new(StatsScope::Backer(99)),
            Source::Counters
        )
        .await
        .unwrap()
        .is_empty()
    );
}

/// Any kind of event, an unknown one (`stored`) too.
pub(crate) fn any_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Accepted),
        Just(EventKind::Delivered),
        Just(EventKind::Failed),
        Just(EventKind::Dropped),
        Just(EventKind::Opened),
        Just(EventKind::Clicked),
        Just(EventKind::Unsubscribed),
        Just(EventKind::Complained),
        Just(EventKind::Other("stored".into())),
    ]
}

/// A failure's severity.
pub(crate) fn any_severity() -> impl Strategy<Value = Option<Severity>> {
    prop_oneof![
        Just(Some(Severity::Permanent)),
        Just(Some(Severity::Temporary))
    ]
}

fn arbitrary_event(message: &'static str) -> impl Strategy<Value = Event> {
    let reason = prop::option::of(prop_oneof![
        Just("bounce"),
        Just("suppress-bounce"),
        Just("old")
    ]);
    let code = prop::option::of(prop_oneof![Just("550"), Just("605"), Just("Ω")]);
    (
        any_kind(),
        0i64..3,
        any_severity(),
        reason,
        code,
        any::<bool>(),
    )
        .prop_map(move |(kind, at, severity, reason, code, bot)| {
            let mut event = event_at(kind, message, "r@example.com", at);
            event.severity = severity;
            event.reason = reason.map(str::to_owned);
            event.delivery_code = code.map(str::to_owned);
            event.bot = bot;
            mapped(event)
        })
}

/// Postgres agrees with the reference fold for any events, in any order, split into any batches,
/// with redeliveries.
#[tokio::test(flavor = "multi_thread")]
async fn sql_upsert_matches_the_reference_fold_in_any_order_and_batching() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let strategy = (
        prop::collection::vec(arbitrary_event("prop@x"), 1..10),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        any::<u64>(),
    );
    // Each case costs two round trips, so cases are drawn here and run against one database.
    let mut runner = TestRunner::new(Config::default());
    let cases: Vec<_> = (0..48)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();

    for (case, (events, split, duplicates, seed)) in cases.into_iter().enumerate() {
        // A message of its own per case, so cases never see each other's rows.
        let message = format!("prop-{case}@x");
        let events: Vec<Event> = events
            .into_iter()
            .map(|mut event| {
                event.message_id = MessageId::parse(&message);
                event
            })
            .collect();
        let mut expected = MessageState::default();
        for event in &events {
            expected.apply(&event_key(event), event);
        }

        let mut delivered: Vec<Event> = events.clone();
        for index in &duplicates {
            delivered.push(index.get(&events).clone());
        }
        let mut state = seed;
        for i in (1..delivered.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            delivered.swap(i, (state >> 33) as usize % (i + 1));
        }
        let rows: Vec<EventRow> = delivered
            .iter()
            .map(|event| worker_row(event, 1, 1, None))
            .collect();
        let cut = split.index(rows.len() + 1);
        upsert_events(&mut connection, &rows[..cut]).await.unwrap();
        upsert_events(&mut connection, &rows[cut..]).await.unwrap();

        let actual = stored(&mut connection, &message, "r@example.com").await;
        assert_eq!(
            actual,
            StoredRow::from_state(&expected),
            "case {case}: events {events:#?}"
        );
    }
}
