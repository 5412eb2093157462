//! `--stats SIZES`: the statistics stage of `just bench`.
//!
//! For each size (e.g. `250000,2500000`, ascending) it tops the database up to that many messages
//! through the store's real write path (the worker's batched statement, so the counters are kept
//! as in production), then times each of the four questions, all-time and over the last 30 days,
//! answered from the counters (median of [`COUNTER_RUNS`]) next to the same question answered by a
//! plain `GROUP BY` over `sent_emails` (median of [`GROUP_BY_RUNS`]), in the same run.
//!
//! The messages look like the origin's: 90 days, 2,000 projects of very different sizes (the
//! largest holds about 8% of all messages, as the origin's largest did), four subjects a project,
//! 200,000 backers, and 2 to 5 events a message (accepted; delivered, bounced, dropped or
//! deferred; human and machine opens and clicks; a few complaints).

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration as Days, NaiveDate};
use diesel_async::RunQueryDsl;
use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::status::mapped;
use mailtrail_core::{Event, EventKind, EventRow, MessageId, Severity};
use mailtrail_store::{
    Source, StatsQuery, StatsScope, StoreConnection, status_counts, upsert_events,
};
use serde::Serialize;

use crate::environment::BenchConfig;

/// Runs of each question from the counters; the median is reported.
const COUNTER_RUNS: usize = 7;
/// Runs of each question by `GROUP BY`; the median is reported.
const GROUP_BY_RUNS: usize = 3;
/// Events per statement while seeding (the worker's default batch).
const SEED_BATCH: usize = 1000;
/// The last day of the seeded period; the first is 89 days before.
const LAST_DAY: (i32, u32, u32) = (2026, 11, 30);
const DAYS: i64 = 90;
const PROJECTS: f64 = 2000.0;
const BACKERS: u64 = 200_000;

/// One timed question.
#[derive(Clone, Debug, Serialize)]
pub struct StatsTiming {
    /// Messages in the database.
    pub messages: u64,
    /// Which question (`system`, `project`, `project by subject`, `backer`).
    pub question: &'static str,
    /// `all time` or `30 days`.
    pub range: &'static str,
    /// Groups in the answer.
    pub groups: usize,
    /// Median milliseconds from the counters.
    pub counters_ms: f64,
    /// Median milliseconds of the plain `GROUP BY` over `sent_emails`.
    pub group_by_ms: f64,
}

/// A small, fast, deterministic generator (SplitMix64): the same database every run.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The events of message number `n`.
fn message_events(n: u64, draws: &mut Draws) -> Vec<EventRow> {
    let first_day = last_day() - Days::days(DAYS - 1);
    let day = first_day + Days::days((draws.unit() * DAYS as f64) as i64);
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .map_or(0, |time| time.and_utc().timestamp());
    let sent = midnight + (draws.unit() * 86_000.0) as i64;
    // u^3 makes project 0 the largest (about 8%) and most projects small.
    let project = (PROJECTS * draws.unit().powi(3)) as i64;
    let subject = format!("Update {} of project {project}", draws.next() % 4);
    let backer = (draws.next() % BACKERS) as i64;
    let message = format!("bench-{n}@mg.example.com");
    let Some(message_id) = MessageId::parse(&message) else {
        return Vec::new();
    };
    let recipient = format!("backer-{backer}@example.com");

    let mut events = vec![(EventKind::Accepted, sent, None, false)];
    let outcome = draws.unit();
    if outcome < 0.90 {
        events.push((EventKind::Delivered, sent + 5, None, false));
        if draws.unit() < 0.30 {
            events.push((EventKind::Opened, sent + 3600, None, false));
        }
        if draws.unit() < 0.15 {
            events.push((EventKind::Opened, sent + 60, None, true));
        }
        if draws.unit() < 0.08 {
            events.push((EventKind::Clicked, sent + 3700, None, false));
        }
        if draws.unit() < 0.02 {
            events.push((EventKind::Clicked, sent + 30, None, true));
        }
        if draws.unit() < 0.001 {
            events.push((EventKind::Complained, sent + 7200, None, false));
        }
    } else if outcome < 0.95 {
        events.push((
            EventKind::Failed,
            sent + 5,
            Some(Severity::Permanent),
            false,
        ));
    } else if outcome < 0.98 {
        events.push((
            EventKind::Dropped,
            sent + 1,
            Some(Severity::Permanent),
            false,
        ));
    } else {
        events.push((
            EventKind::Failed,
            sent + 60,
            Some(Severity::Temporary),
            false,
        ));
    }
    events
        .into_iter()
        .map(|(kind, at, severity, bot)| {
            let mut event = Event::new(kind, at * 1_000_000);
            event.message_id = Some(message_id.clone());
            event.recipient = Some(recipient.clone());
            event.severity = severity;
            event.bot = bot;
            if bot {
                event.bot_kind = Some("apple".to_owned());
            }
            let event = mapped(event);
            EventRow::new(
                event_key(&event),
                &event,
                &message_id,
                &recipient,
                backer,
                project,
                Some(subject.clone()),
            )
        })
        .collect()
}

fn last_day() -> NaiveDate {
    let (year, month, day) = LAST_DAY;
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN)
}

/// Writes messages `from..to` through the worker's statement.
async fn seed(connection: &mut StoreConnection, from: u64, to: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut batch: Vec<EventRow> = Vec::with_capacity(SEED_BATCH + 8);
    for n in from..to {
        let mut draws = Draws(n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        batch.extend(message_events(n, &mut draws));
        if batch.len() >= SEED_BATCH {
            upsert_events(connection, &batch)
                .await
                .context("seeding failed")?;
            batch.clear();
        }
    }
    upsert_events(connection, &batch)
        .await
        .context("seeding failed")?;
    Ok(started.elapsed().as_secs_f64())
}

/// The median of `runs` timings of `query` from `source`, in milliseconds, and its group count.
async fn time(
    connection: &mut StoreConnection,
    query: &StatsQuery,
    source: Source,
    runs: usize,
) -> anyhow::Result<(f64, usize)> {
    let mut millis = Vec::with_capacity(runs);
    let mut groups = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let rows = status_counts(connection, query, source).await?;
        let report = mailtrail_store::StatsReport::from_rows(*query, &rows);
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
        groups = report.groups.len();
    }
    millis.sort_by(f64::total_cmp);
    Ok((millis[millis.len() / 2], groups))
}

/// Runs the stage for each of `sizes` and writes one line per timing (JSON lines with `json`).
pub async fn run(
    config: &BenchConfig,
    sizes: &[u64],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut connection = config.connect_store("--stats").await?;
    diesel::sql_query("SET statement_timeout = 0")
        .execute(&mut connection)
        .await?;
    let mut seeded = 0;
    for &size in sizes {
        if size > seeded {
            let seconds = seed(&mut connection, seeded, size).await?;
            writeln!(
                out,
                "# seeded messages {seeded}..{size} through the worker's statement in {seconds:.1} s"
            )?;
            seeded = size;
        }
        diesel::sql_query("VACUUM ANALYZE")
            .execute(&mut connection)
            .await?;
        let recent = Some(last_day() - Days::days(29));
        // Backer 7 has a few dozen messages spread over the period, like any backer.
        for (question, scope) in [
            ("system", StatsScope::All),
            ("project", StatsScope::Project(0)),
            ("project by subject", StatsScope::ProjectBySubject(0)),
            ("backer", StatsScope::Backer(7)),
        ] {
            for (range, since) in [("all time", None), ("30 days", recent)] {
                let query = StatsQuery::new(scope).between(since, None);
                let (counters_ms, groups) =
                    time(&mut connection, &query, Source::Counters, COUNTER_RUNS).await?;
                let (group_by_ms, _) =
                    time(&mut connection, &query, Source::Messages, GROUP_BY_RUNS).await?;
                let timing = StatsTiming {
                    messages: size,
                    question,
                    range,
                    groups,
                    counters_ms,
                    group_by_ms,
                };
                if json {
                    writeln!(out, "{}", serde_json::to_string(&timing)?)?;
                } else {
                    writeln!(
                        out,
                        "{size} messages, {question}, {range}: {counters_ms:.2} ms from the counters, \
                         {group_by_ms:.1} ms by GROUP BY ({groups} groups)"
                    )?;
                }
            }
        }
    }
    Ok(())
}
