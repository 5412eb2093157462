//! The statistics counters are exact: for any events, in any order and batching, written by one
//! worker or by two at once, every question answered from the counters equals the same question
//! answered by a `GROUP BY` over `sent_emails`, over any range of days and per day.

use chrono::NaiveDate;
use mailtrail_core::{Event, EventKind, EventRow, MessageId, Severity};
use mailtrail_store::conversion_stats::verify_conversion_rollups;
use mailtrail_store::{
    Source, StatsQuery, StatsScope, StoreConnection, conversion_counts, rollups, status_counts,
    upsert_events,
};
use mailtrail_testing::{TestDatabase, worker_row};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::upsert::{any_kind, any_severity};

/// Midnight UTC of the first day events fall on (2026-11-10).
const DAY0: i64 = 1_762_732_800;

fn day(offset: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(2026, 11, 10 + offset)
}

/// One event of a generated case: which message, what happened, when.
#[derive(Clone, Debug)]
struct Draw {
    message: usize,
    kind: EventKind,
    severity: Option<Severity>,
    reason: Option<&'static str>,
    bot: bool,
    /// Seconds after DAY0: spread over five days, so a late early event moves a message's day.
    at: i64,
}

fn draw(messages: usize) -> impl Strategy<Value = Draw> {
    let reason = prop::option::of(prop_oneof![Just("bounce"), Just("suppress-bounce")]);
    (
        0..messages,
        any_kind(),
        any_severity(),
        reason,
        any::<bool>(),
        0i64..5 * 86_400,
    )
        .prop_map(|(message, kind, severity, reason, bot, at)| Draw {
            message,
            kind,
            severity,
            reason,
            bot,
            at,
        })
}

/// The row the worker would write for `draw` in case `case`: messages belong to one of three
/// backers and two projects of the case, with one of three subjects (or none).
fn event_row(case: usize, draw: &Draw) -> EventRow {
    let mut event = Event::new(draw.kind.clone(), (DAY0 + draw.at) * 1_000_000);
    event.message_id = MessageId::parse(&format!("rollup-{case}-{}@x", draw.message));
    event.recipient = Some("r@example.com".to_owned());
    event.severity = draw.severity;
    event.reason = draw.reason.map(str::to_owned);
    event.bot = draw.bot;
    let backer = (case * 10 + draw.message % 3) as i64;
    let project = (case * 10 + draw.message % 2) as i64;
    let subject = ["Welcome", "Update", "Reminder"]
        .get(draw.message % 4)
        .copied();
    worker_row(&event, backer, project, subject)
}

/// Every question of case `case`, all time, in three ranges and per day.
fn questions(case: usize) -> Vec<StatsQuery> {
    let base = (case * 10) as i64;
    let scopes = [
        StatsScope::All,
        StatsScope::Project(base),
        StatsScope::Project(base + 1),
        StatsScope::ProjectBySubject(base),
        StatsScope::ProjectBySubject(base + 1),
        StatsScope::Backer(base),
        StatsScope::Backer(base + 2),
    ];
    let ranges = [
        (None, None),
        (day(1), day(3)),
        (day(2), day(2)),
        (day(3), None),
        (None, day(0)),
    ];
    let mut questions = Vec::new();
    for scope in scopes {
        for (since, until) in ranges {
            let query = StatsQuery::new(scope).between(since, until);
            questions.push(query);
            questions.push(query.per_day());
        }
    }
    questions
}

/// Every question of case `case` answers the same from the counters as from the rows, the
/// conversions' too.
pub(crate) async fn assert_counters_match(connection: &mut StoreConnection, case: usize) {
    for query in questions(case) {
        let counters = status_counts(connection, &query, Source::Counters)
            .await
            .unwrap();
        let messages = status_counts(connection, &query, Source::Messages)
            .await
            .unwrap();
        assert_eq!(counters, messages, "case {case}: {query:?}");
        let counters = conversion_counts(connection, &query, Source::Counters)
            .await
            .unwrap();
        let conversions = conversion_counts(connection, &query, Source::Messages)
            .await
            .unwrap();
        assert_eq!(counters, conversions, "case {case}: {query:?}");
    }
    let differences = rollups::verify(connection).await.unwrap();
    assert!(differences.is_empty(), "case {case}: {differences:#?}");
    let differences = verify_conversion_rollups(connection).await.unwrap();
    assert!(differences.is_empty(), "case {case}: {differences:#?}");
}

/// Draws the cases: events (with redeliveries) in a shuffled order, cut into batches.
fn cases(count: usize) -> Vec<(Vec<Draw>, Vec<prop::sample::Index>, u64, usize)> {
    let strategy = (
        prop::collection::vec(draw(8), 1..40),
        prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        any::<u64>(),
        1usize..8,
    );
    let mut runner = TestRunner::new(Config::default());
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// The case's rows, redelivered and shuffled as the queue might hand them over.
fn delivered_rows(
    case: usize,
    draws: &[Draw],
    duplicates: &[prop::sample::Index],
    seed: u64,
) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = draws.iter().map(|draw| event_row(case, draw)).collect();
    for index in duplicates {
        rows.push(index.get(&rows).clone());
    }
    let mut state = seed;
    for i in (1..rows.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rows.swap(i, (state >> 33) as usize % (i + 1));
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_equal_a_group_by_for_any_events_order_and_batching() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    for (case, (draws, duplicates, seed, batch)) in cases(24).into_iter().enumerate() {
        let rows = delivered_rows(case, &draws, &duplicates, seed);
        for chunk in rows.chunks(batch) {
            upsert_events(&mut connection, chunk).await.unwrap();
        }
        assert_counters_match(&mut connection, case).await;
    }
}

/// Two workers writing the same messages at the same time (the hot buckets of one campaign):
/// no deadlock, no lost update.
#[tokio::test(flavor = "multi_thread")]
async fn counters_stay_exact_with_two_workers_writing_the_same_buckets_at_once() {
    let database = TestDatabase::create().await;
    let mut first = database.connect().await;
    let mut second = database.connect().await;
    for (case, (draws, duplicates, seed, batch)) in cases(16).into_iter().enumerate() {
        let case = case + 100;
        let rows = delivered_rows(case, &draws, &duplicates, seed);
        let (odd, even): (Vec<_>, Vec<_>) = rows
            .chunks(batch)
            .enumerate()
            .partition(|(index, _)| index % 2 == 1);
        let write = async |connection: &mut StoreConnection, chunks: Vec<(usize, &[EventRow])>| {
            for (_, chunk) in chunks {
                upsert_events(connection, chunk).await.unwrap();
            }
        };
        tokio::join!(write(&mut first, odd), write(&mut second, even));
        assert_counters_match(&mut first, case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_repairs_counters_changed_by_hand_and_verify_names_the_difference() {
    use diesel_async::RunQueryDsl;

    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let (mut draws, duplicates, seed, _) = cases(1).remove(0);
    // At least one message with a status, so there is a counter to change by hand (a draw of
    // only unknown kinds would leave none).
    draws.push(Draw {
        message: 0,
        kind: EventKind::Delivered,
        severity: None,
        reason: None,
        bot: false,
        at: 60,
    });
    let rows = delivered_rows(7, &draws, &duplicates, seed);
    upsert_events(&mut connection, &rows).await.unwrap();
    assert!(rollups::verify(&mut connection).await.unwrap().is_empty());

    diesel::sql_query("UPDATE system_rollups SET messages = messages + 1")
        .execute(&mut connection)
        .await
        .unwrap();
    let differences = rollups::verify(&mut connection).await.unwrap();
    assert!(!differences.is_empty());
    assert!(
        differences
            .iter()
            .all(|difference| difference.table == "system")
    );

    rollups::rebuild(&mut connection).await.unwrap();
    assert!(rollups::verify(&mut connection).await.unwrap().is_empty());
    assert_counters_match(&mut connection, 7).await;
}
