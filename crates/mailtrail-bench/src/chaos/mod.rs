//! The load and the reckoning of `just chaos` (`scripts/chaos.sh`): webhooks posted the way
//! Mailgun posts them while the script kills and restarts everything around them, then a check
//! that every one of them landed exactly once.
//!
//! - **`--chaos-send N --plan FILE`** builds `N` signed webhooks: good events (three per message:
//!   accepted, delivered, opened), a few events without `backer_id` (the worker skips and counts
//!   them) and a few signed bodies that name no event (the worker dead-letters them). It posts
//!   each until it is answered 200, retrying any other answer or a broken connection with backoff,
//!   as Mailgun retries (faster: seconds, not hours), paced at `--rate` if given. It writes the
//!   plan (what the database and the queue must hold in the end) to `FILE` and reports the
//!   answers it got.
//! - **`--chaos-check --plan FILE`**, once the queue is drained, compares Postgres and Redis with
//!   the plan: every good event exactly once in `email_events` and in the `sent_emails`
//!   counters, the dead list holding exactly the run's bad bodies, each once, and the skip count
//!   equal to the events sent without `backer_id`. It prints the figures and fails on any
//!   difference.

mod check;

pub use check::{ChaosCheck, check};

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text};
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_core::{Envelope, SigningKey};
use mailtrail_queue::DeadLetter;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bodies::run_id;
use crate::environment::BenchConfig;
use crate::senders::{HttpSender, SendFailed, Sender, Target, http_target};

/// One webhook in this many is a signed body that names no event (dead-lettered).
const GARBAGE_EVERY: usize = 100;
/// One webhook in this many (of the rest) is an event without `backer_id` (skipped).
const UNINSTRUMENTED_EVERY: usize = 50;
/// Events per good message, in order.
const KINDS: [SampleKind; 3] = [
    SampleKind::Accepted,
    SampleKind::Delivered,
    SampleKind::Opened,
];
/// Retries of one webhook wait this long at first, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// What the database and the queue must hold once a chaos run's webhooks are all in.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChaosPlan {
    /// The run's id, in every message id and bad body.
    pub run: String,
    /// Webhooks sent.
    pub webhooks: u64,
    /// Mailgun event ids of the good events: each must be in `email_events` exactly once.
    pub good_event_ids: Vec<String>,
    /// Messages the good events belong to: rows of `sent_emails`.
    pub messages: u64,
    /// Good `opened` events: the sum of `sent_emails.opened_count`.
    pub opens: u64,
    /// Signed bodies that name no event: the dead list, each once.
    pub garbage: u64,
    /// Events without `backer_id`: the skip count.
    pub uninstrumented: u64,
}

/// What the sender saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChaosSendReport {
    /// Webhooks to send.
    pub webhooks: u64,
    /// Webhooks answered 200 in the end.
    pub accepted: u64,
    /// Attempts in all (first tries and retries).
    pub attempts: u64,
    /// Answers other than 200, by status, as `(status, count)`; each was retried.
    pub non_200: Vec<(u16, u64)>,
    /// Attempts that failed below HTTP (refused, reset: the receiver was down); each was retried.
    pub transport_errors: u64,
    /// Webhooks still not answered 200 when the sender gave up.
    pub gave_up: u64,
    /// Seconds from the first attempt to the last answer.
    pub elapsed_s: f64,
}

/// One webhook to send.
struct ChaosBody {
    body: Bytes,
}

/// The webhooks of a run, and its plan.
fn build(key: &SigningKey, count: usize) -> (Vec<ChaosBody>, ChaosPlan) {
    let run = run_id();
    let signed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    let mut plan = ChaosPlan {
        run: run.clone(),
        webhooks: count as u64,
        ..ChaosPlan::default()
    };
    let mut good = 0_usize;
    let mut messages = BTreeSet::new();
    let bodies = (0..count)
        .map(|index| {
            let token = token_from_seed(&format!("mailtrail-chaos/{run}/{index}"));
            let data = if index % GARBAGE_EVERY == GARBAGE_EVERY - 1 {
                plan.garbage += 1;
                json!({"chaos": "garbage", "run": run, "n": index})
            } else if index % UNINSTRUMENTED_EVERY == UNINSTRUMENTED_EVERY / 2 {
                plan.uninstrumented += 1;
                let message_id = format!("chaos-{run}-u{index}@mg.example.com");
                event(
                    &message_id,
                    "backer@example.com",
                    SampleKind::Delivered,
                    None,
                    signed_at,
                )
            } else {
                let message = good / KINDS.len();
                let kind = KINDS[good % KINDS.len()];
                good += 1;
                messages.insert(message);
                if kind == SampleKind::Opened {
                    plan.opens += 1;
                }
                let message_id = format!("chaos-{run}-{message}@mg.example.com");
                let recipient = format!("backer-{}@example.com", message % 1000);
                let data = event(
                    &message_id,
                    &recipient,
                    kind,
                    Some((message % 1000) as i64 + 1),
                    signed_at,
                );
                plan.good_event_ids
                    .push(data["id"].as_str().unwrap_or_default().to_owned());
                data
            };
            ChaosBody {
                body: Bytes::from(signed_json(key, signed_at, &token, data)),
            }
        })
        .collect();
    plan.messages = messages.len() as u64;
    (bodies, plan)
}

/// A Mailgun event's `event-data`.
fn event(
    message_id: &str,
    recipient: &str,
    kind: SampleKind,
    backer_id: Option<i64>,
    signed_at: i64,
) -> Value {
    SampleEvent {
        kind,
        message_id,
        recipient,
        timestamp: signed_at as f64 - 60.0,
        backer_id,
        project_id: Some(7),
        subject: "Chaos: your pledge ships next week",
    }
    .event_data()
}

/// What every sending task shares.
struct Sending {
    bodies: Vec<ChaosBody>,
    next: AtomicUsize,
    started: Instant,
    interval: Option<Duration>,
    give_up_at: Instant,
    accepted: AtomicU64,
    attempts: AtomicU64,
    transport_errors: AtomicU64,
    gave_up: AtomicU64,
}

/// `--chaos-send N`: posts `count` webhooks until each is answered 200, writes the plan to
/// `plan_path`.
pub async fn send(
    config: &BenchConfig,
    url: Option<&str>,
    count: usize,
    connections: u32,
    rate: Option<u32>,
    give_up_after: Duration,
    plan_path: &Path,
) -> anyhow::Result<ChaosSendReport> {
    let key = config.signing_key()?;
    let (bodies, plan) = build(&key, count);
    std::fs::write(plan_path, serde_json::to_vec(&plan)?)
        .with_context(|| format!("cannot write the plan to {}", plan_path.display()))?;
    let Target::Http { address, host } = http_target(url.unwrap_or(config.receiver_url())).await?
    else {
        anyhow::bail!("the chaos load goes to a receiver over HTTP");
    };
    let started = Instant::now();
    let sending = Arc::new(Sending {
        bodies,
        next: AtomicUsize::new(0),
        started,
        interval: rate.map(|rate| Duration::from_secs(1) / rate),
        give_up_at: started + give_up_after,
        accepted: AtomicU64::new(0),
        attempts: AtomicU64::new(0),
        transport_errors: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let sending = Arc::clone(&sending);
            let sender = HttpSender::new(address, host.clone());
            tokio::spawn(connection(sending, sender))
        })
        .collect();
    let mut non_200: Vec<(u16, u64)> = Vec::new();
    for task in tasks {
        for (status, count) in task.await.context("a chaos connection task failed")? {
            match non_200.iter_mut().find(|(known, _)| *known == status) {
                Some((_, known)) => *known += count,
                None => non_200.push((status, count)),
            }
        }
    }
    non_200.sort_unstable();
    Ok(ChaosSendReport {
        webhooks: count as u64,
        accepted: sending.accepted.load(Ordering::Relaxed),
        attempts: sending.attempts.load(Ordering::Relaxed),
        non_200,
        transport_errors: sending.transport_errors.load(Ordering::Relaxed),
        gave_up: sending.gave_up.load(Ordering::Relaxed),
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// One connection: takes the next webhook when it is due and posts it until it is answered 200.
async fn connection(sending: Arc<Sending>, mut sender: HttpSender) -> Vec<(u16, u64)> {
    let mut non_200: Vec<(u16, u64)> = Vec::new();
    loop {
        let index = sending.next.fetch_add(1, Ordering::Relaxed);
        let Some(webhook) = sending.bodies.get(index) else {
            return non_200;
        };
        if let Some(interval) = sending.interval {
            tokio::time::sleep_until((sending.started + interval.mul_f64(index as f64)).into())
                .await;
        }
        let mut wait = RETRY_MIN;
        loop {
            sending.attempts.fetch_add(1, Ordering::Relaxed);
            match sender.send(&webhook.body).await {
                Ok(200) => {
                    sending.accepted.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(status) => match non_200.iter_mut().find(|(known, _)| *known == status) {
                    Some((_, known)) => *known += 1,
                    None => non_200.push((status, 1)),
                },
                Err(SendFailed) => {
                    sending.transport_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if Instant::now() >= sending.give_up_at {
                sending.gave_up.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

impl ChaosSendReport {
    /// The readable lines.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let non_200 = self
            .non_200
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "sent {} webhooks in {:.1} s: {} answered 200 in the end, {} attempts",
            self.webhooks, self.elapsed_s, self.accepted, self.attempts
        )?;
        writeln!(
            out,
            "retried: answers not 200 {}; transport errors {}; gave up on {}",
            if non_200.is_empty() {
                "none".to_owned()
            } else {
                non_200
            },
            self.transport_errors,
            self.gave_up
        )
    }
}

#[cfg(test)]
mod tests {
    use mailtrail_core::{Verdict, triage};

    use super::*;

    #[test]
    fn a_plan_counts_what_the_worker_will_store_skip_and_dead_letter() {
        let (bodies, plan) = build(&SigningKey::new("chaos-key"), 1000);
        assert_eq!(plan.webhooks, 1000);
        assert_eq!(plan.garbage, 10);
        assert_eq!(plan.uninstrumented, 20);
        assert_eq!(plan.good_event_ids.len(), 970);
        assert_eq!(plan.messages, 970_u64.div_ceil(3));
        let (mut stored, mut skipped, mut dead) = (0, 0, 0);
        for body in &bodies {
            // Received now, as the receiver would stamp it (an event far after its receipt is
            // refused).
            let envelope = Envelope::new(
                mailtrail_core::Source::Mailgun,
                mailtrail_queue::now_ms(),
                "application/json",
                &body.body,
            )
            .to_json();
            match triage(&envelope) {
                Err(_) => dead += 1,
                Ok(verdicts) => match verdicts.as_slice() {
                    [Verdict::Store(_)] => stored += 1,
                    [Verdict::Skip(_)] => skipped += 1,
                    [Verdict::Dead(_)] => dead += 1,
                    other => panic!("unexpected verdicts {other:?}"),
                },
            }
        }
        assert_eq!((stored, skipped, dead), (970, 20, 10));
    }
}
