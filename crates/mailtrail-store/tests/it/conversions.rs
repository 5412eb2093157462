//! Conversions are credited the same whatever the order things arrive in: for any opens,
//! clicks (by people and machines) and conversions, delivered in any order and batching, by one
//! writer or two at once, every conversion's credit equals what a reference model computes from
//! all of them, and the conversion counters equal a `GROUP BY` over `conversions`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailtrail_core::{Conversion, EventKind, EventRow};
use mailtrail_store::conversions::{StoredConversion, all_conversions};
use mailtrail_store::{StoreConnection, reattribute_all, write_batch};
use mailtrail_testing::{TestDatabase, event_at, worker_row};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::rollups::assert_counters_match;

/// 2026-11-10 00:00 UTC.
const DAY0: i64 = 1_762_732_800;
const DAY: i64 = 86_400;
const WINDOW_DAYS: i32 = 7;

/// One engagement of a generated case.
#[derive(Clone, Debug)]
struct Engagement {
    message: usize,
    click: bool,
    bot: bool,
    /// Seconds after DAY0, over 20 days.
    at: i64,
}

/// One conversion of a generated case.
#[derive(Clone, Debug)]
struct Converted {
    backer: usize,
    at: i64,
    value: Option<i64>,
}

/// Something to write: an event row or a conversion.
#[derive(Clone, Debug)]
enum Item {
    Row(Box<EventRow>),
    Conversion(Conversion),
}

fn engagement() -> impl Strategy<Value = Engagement> {
    (
        0..6usize,
        any::<bool>(),
        prop::bool::weighted(0.2),
        0..20 * DAY,
    )
        .prop_map(|(message, click, bot, at)| Engagement {
            message,
            click,
            bot,
            at,
        })
}

fn converted() -> impl Strategy<Value = Converted> {
    (0..2usize, 0..20 * DAY, prop::option::of(0i64..10_000))
        .prop_map(|(backer, at, value)| Converted { backer, at, value })
}

/// Message `m` of case `case` goes to backer `m % 2` of the case's one project, with a subject
/// of its own.
fn backer_of(case: usize, message: usize) -> i64 {
    (case * 10 + message % 2) as i64
}

fn project_of(case: usize) -> i64 {
    (case * 10) as i64
}

fn message_id(case: usize, message: usize) -> String {
    format!("conv-{case}-{message}@x")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(DAY0 + seconds, 0).unwrap()
}

/// The case's items: every message delivered, its engagements, its conversions.
fn items(case: usize, engagements: &[Engagement], conversions: &[Converted]) -> Vec<Item> {
    let mut items = Vec::new();
    for message in 0..6 {
        let event = event_at(
            EventKind::Delivered,
            &message_id(case, message),
            "r@x",
            DAY0,
        );
        let subject = format!("Subject {}", message % 3);
        items.push(Item::Row(Box::new(worker_row(
            &event,
            backer_of(case, message),
            project_of(case),
            Some(&subject),
        ))));
    }
    for (index, engagement) in engagements.iter().enumerate() {
        let kind = if engagement.click {
            EventKind::Clicked
        } else {
            EventKind::Opened
        };
        let mut event = event_at(
            kind,
            &message_id(case, engagement.message),
            "r@x",
            DAY0 + engagement.at,
        );
        event.bot = engagement.bot;
        // Two draws at the same second are two events (as two Mailgun events have two ids).
        event.event_id = Some(format!("e{index}"));
        let subject = format!("Subject {}", engagement.message % 3);
        items.push(Item::Row(Box::new(worker_row(
            &event,
            backer_of(case, engagement.message),
            project_of(case),
            Some(&subject),
        ))));
    }
    for (index, conversion) in conversions.iter().enumerate() {
        items.push(Item::Conversion(Conversion {
            id: format!("c{index}"),
            backer_id: (case * 10 + conversion.backer) as i64,
            project_id: project_of(case),
            kind: "pledge".to_owned(),
            occurred_at: at(conversion.at),
            value_cents: conversion.value,
        }));
    }
    items
}

/// The reference: each conversion's credit (`attributed_by`, message) from all the events.
fn expected(
    case: usize,
    engagements: &[Engagement],
    conversions: &[Converted],
    window_days: i64,
) -> BTreeMap<String, (String, Option<String>)> {
    let mut credits = BTreeMap::new();
    for (index, conversion) in conversions.iter().enumerate() {
        let backer = (case * 10 + conversion.backer) as i64;
        let best = |click: bool| {
            engagements
                .iter()
                .filter(|e| e.click == click && !e.bot)
                .filter(|e| backer_of(case, e.message) == backer)
                .filter(|e| e.at <= conversion.at && e.at >= conversion.at - window_days * DAY)
                .map(|e| (e.at, message_id(case, e.message)))
                .max()
                .map(|(_, message)| message)
        };
        let credit = match (best(true), best(false)) {
            (Some(message), _) => ("click".to_owned(), Some(message)),
            (None, Some(message)) => ("open".to_owned(), Some(message)),
            (None, None) => ("none".to_owned(), None),
        };
        credits.insert(format!("c{index}"), credit);
    }
    credits
}

async fn credits(
    connection: &mut StoreConnection,
    case: usize,
) -> BTreeMap<String, (String, Option<String>)> {
    all_conversions(connection)
        .await
        .unwrap()
        .into_iter()
        .filter(|c: &StoredConversion| c.project_id == project_of(case))
        .map(|c| (c.conversion_id, (c.attributed_by, c.credited_message_id)))
        .collect()
}

/// Shuffles `items` by `seed` (the order the queue might hand them over in).
fn shuffled(mut items: Vec<Item>, seed: u64) -> Vec<Item> {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

async fn write(connection: &mut StoreConnection, chunk: &[Item], window_days: i32) {
    let rows: Vec<EventRow> = chunk
        .iter()
        .filter_map(|item| match item {
            Item::Row(row) => Some((**row).clone()),
            Item::Conversion(_) => None,
        })
        .collect();
    let conversions: Vec<Conversion> = chunk
        .iter()
        .filter_map(|item| match item {
            Item::Conversion(conversion) => Some(conversion.clone()),
            Item::Row(_) => None,
        })
        .collect();
    write_batch(connection, &rows, &conversions, window_days)
        .await
        .unwrap();
}

type Case = (Vec<Engagement>, Vec<Converted>, u64, usize);

fn cases(count: usize) -> Vec<Case> {
    let strategy = (
        prop::collection::vec(engagement(), 0..24),
        prop::collection::vec(converted(), 1..6),
        any::<u64>(),
        1usize..6,
    );
    let mut runner = TestRunner::new(Config::default());
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_credit_is_the_same_for_any_order_and_batching() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    for (case, (engagements, conversions, seed, batch)) in cases(32).into_iter().enumerate() {
        let items = shuffled(items(case, &engagements, &conversions), seed);
        for chunk in items.chunks(batch) {
            write(&mut connection, chunk, WINDOW_DAYS).await;
        }
        // Everything again (a redelivery): nothing changes.
        write(&mut connection, &items, WINDOW_DAYS).await;
        assert_eq!(
            credits(&mut connection, case).await,
            expected(case, &engagements, &conversions, WINDOW_DAYS.into()),
            "case {case}: {engagements:?} {conversions:?}"
        );
        assert_counters_match(&mut connection, case * 10).await;
    }
}

/// Two workers, one writing conversions while the other writes the clicks that credit them:
/// neither may miss the other's rows.
#[tokio::test(flavor = "multi_thread")]
async fn the_credit_is_exact_with_two_writers_at_once() {
    let database = TestDatabase::create().await;
    let mut first = database.connect().await;
    let mut second = database.connect().await;
    for (case, (engagements, conversions, seed, batch)) in cases(16).into_iter().enumerate() {
        let case = case + 100;
        let items = shuffled(items(case, &engagements, &conversions), seed);
        let (odd, even): (Vec<_>, Vec<_>) = items
            .chunks(batch)
            .enumerate()
            .partition(|(index, _)| index % 2 == 1);
        let run = async |connection: &mut StoreConnection, chunks: Vec<(usize, &[Item])>| {
            for (_, chunk) in chunks {
                write(connection, chunk, WINDOW_DAYS).await;
            }
        };
        tokio::join!(run(&mut first, odd), run(&mut second, even));
        assert_eq!(
            credits(&mut first, case).await,
            expected(case, &engagements, &conversions, WINDOW_DAYS.into()),
            "case {case}"
        );
        assert_counters_match(&mut first, case * 10).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_window_is_applied_to_history_by_reattributing() {
    let database = TestDatabase::create().await;
    let mut connection = database.connect().await;
    let (engagements, conversions, _, _) = cases(1).remove(0);
    let engagements = [
        engagements,
        vec![Engagement {
            message: 0,
            click: true,
            bot: false,
            at: 2 * DAY,
        }],
    ]
    .concat();
    let conversions = [
        conversions,
        vec![Converted {
            backer: 0,
            at: 5 * DAY,
            value: Some(100),
        }],
    ]
    .concat();
    write(&mut connection, &items(0, &engagements, &conversions), 7).await;
    assert_eq!(
        credits(&mut connection, 0).await,
        expected(0, &engagements, &conversions, 7)
    );
    reattribute_all(&mut connection, 1).await.unwrap();
    assert_eq!(
        credits(&mut connection, 0).await,
        expected(0, &engagements, &conversions, 1)
    );
    assert_counters_match(&mut connection, 0).await;
}

/// Writes `held` in a transaction kept open half a second after it wrote, and `other` on a
/// second connection meanwhile; returns the credit of conversion `c0` once both committed.
async fn credit_with_one_write_held_open(held: Vec<Item>, other: Vec<Item>) -> String {
    use diesel_async::AsyncConnection;

    let database = TestDatabase::create().await;
    let mut first = database.connect().await;
    let mut second = database.connect().await;
    let (written, wait_for_written) = tokio::sync::oneshot::channel::<()>();
    let holder = async {
        first
            .transaction(
                async move |connection| -> Result<(), mailtrail_store::StoreError> {
                    write(connection, &held, WINDOW_DAYS).await;
                    let _ = written.send(());
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    Ok(())
                },
            )
            .await
            .unwrap();
    };
    let writer = async {
        wait_for_written.await.unwrap();
        write(&mut second, &other, WINDOW_DAYS).await;
    };
    tokio::join!(holder, writer);
    let credits = credits(&mut first, 0).await;
    credits["c0"].0.clone()
}

/// Case 0's click on message 0 a day before its backer's conversion.
fn click_and_conversion() -> (Vec<Item>, Vec<Item>) {
    let click = Engagement {
        message: 0,
        click: true,
        bot: false,
        at: DAY,
    };
    let conversion = Converted {
        backer: 0,
        at: 2 * DAY,
        value: None,
    };
    let all = items(0, &[click], &[conversion]);
    let (conversions, rows): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|item| matches!(item, Item::Conversion(_)));
    (rows, conversions)
}

/// Without the attribution lock, a conversion committed while its click's batch is still open
/// would see no click, and the click's batch would have seen no conversion: unattributed for
/// good. These two hold each side open in turn.
#[tokio::test(flavor = "multi_thread")]
async fn a_conversion_written_while_its_click_is_uncommitted_still_finds_it() {
    let (clicks, conversions) = click_and_conversion();
    assert_eq!(
        credit_with_one_write_held_open(clicks, conversions).await,
        "click"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_click_written_while_its_conversion_is_uncommitted_still_takes_the_credit() {
    let (clicks, conversions) = click_and_conversion();
    assert_eq!(
        credit_with_one_write_held_open(conversions, clicks).await,
        "click"
    );
}
