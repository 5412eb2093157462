//! `mailtrail send-sample`: posts realistic, correctly signed Mailgun webhooks to a receiver, to
//! check a deployment end to end or to fill a development database.
//!
//! For every backer and project it sends one message per scenario (delivered then opened and
//! clicked; bounced; dropped; deferred then delivered; complained), plus one message without a
//! `backer_id`, which the worker skips and counts as `missing_backer_id`. Message ids carry a run
//! id and every webhook a fresh token, so running it twice sends new messages, never duplicates
//! the receiver would drop. Each webhook is signed "now" with the first `MAILTRAIL_SIGNING_KEYS`
//! key, so it passes the receiver's freshness window.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use mailtrail_core::SigningKey;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};

use crate::CliConfig;
use crate::http_post::{HttpUrl, post};
use crate::table::{clean, truncate};

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Non-200 answers listed one by one; the rest are only counted.
const LISTED_FAILURES: usize = 10;

/// Subjects the samples rotate through.
const SUBJECTS: [&str; 3] = [
    "Your pledge is confirmed",
    "Project update: shipping news",
    "Reward survey",
];

/// What happens to each sample message, in event order.
const SCENARIOS: [(&str, &[SampleKind]); 5] = [
    (
        "engaged",
        &[
            SampleKind::Accepted,
            SampleKind::Delivered,
            SampleKind::Opened,
            SampleKind::Clicked,
        ],
    ),
    ("bounced", &[SampleKind::Accepted, SampleKind::Bounced]),
    ("dropped", &[SampleKind::Accepted, SampleKind::Dropped]),
    (
        "deferred",
        &[
            SampleKind::Accepted,
            SampleKind::Deferred,
            SampleKind::Delivered,
        ],
    ),
    (
        "complained",
        &[
            SampleKind::Accepted,
            SampleKind::Delivered,
            SampleKind::Complained,
        ],
    ),
];

/// Arguments of `mailtrail send-sample`.
#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    /// Receiver base URL [default: $MAILTRAIL_RECEIVER_URL, else http://127.0.0.1:8080].
    #[arg(long)]
    pub url: Option<String>,
    /// Backers (ids 1..=N) to send messages to.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub backers: u32,
    /// Projects (ids 1..=N) the messages belong to.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub projects: u32,
}

/// One webhook to send.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    /// What happened.
    pub kind: SampleKind,
    /// Message id.
    pub message_id: String,
    /// Recipient.
    pub recipient: String,
    /// Event time, float seconds.
    pub timestamp: f64,
    /// `backer_id`, absent for the message the worker must skip.
    pub backer_id: Option<i64>,
    /// `project_id`.
    pub project_id: i64,
    /// Subject.
    pub subject: &'static str,
}

impl PlannedEvent {
    fn sample(&self) -> SampleEvent<'_> {
        SampleEvent {
            kind: self.kind,
            message_id: &self.message_id,
            recipient: &self.recipient,
            timestamp: self.timestamp,
            backer_id: self.backer_id,
            project_id: Some(self.project_id),
            subject: self.subject,
        }
    }
}

/// The events of one run, in sending order. Events of a message are a few seconds apart and end
/// shortly before `now_seconds`, as a campaign sent a minute ago would look.
pub fn plan(run_id: &str, backers: u32, projects: u32, now_seconds: f64) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    let mut message_number = 0_u32;
    for backer in 1..=i64::from(backers) {
        for project in 1..=i64::from(projects) {
            for (scenario, (name, kinds)) in SCENARIOS.iter().enumerate() {
                let subject = SUBJECTS[(scenario + project as usize) % SUBJECTS.len()];
                let message_id =
                    format!("sample-{run_id}-b{backer}-p{project}-{name}@mg.example.com");
                let start = now_seconds - 60.0 + f64::from(message_number) * 0.001;
                for (step, kind) in kinds.iter().enumerate() {
                    events.push(PlannedEvent {
                        kind: *kind,
                        message_id: message_id.clone(),
                        recipient: format!("backer-{backer}@example.com"),
                        timestamp: start + step as f64 * 5.0,
                        backer_id: Some(backer),
                        project_id: project,
                        subject,
                    });
                }
                message_number += 1;
            }
        }
    }
    events.push(PlannedEvent {
        kind: SampleKind::Delivered,
        message_id: format!("sample-{run_id}-no-backer@mg.example.com"),
        recipient: "no-backer@example.com".to_owned(),
        timestamp: now_seconds - 30.0,
        backer_id: None,
        project_id: 1,
        subject: SUBJECTS[0],
    });
    events
}

/// A token no other webhook of any run has used: time, process and a counter.
fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    token_from_seed(&format!(
        "mailtrail-send-sample/{nanos}/{}/{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Runs `mailtrail send-sample`.
pub async fn run(config: &CliConfig, args: &SampleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let key: SigningKey = config.signing_key()?;
    let base = args.url.as_deref().unwrap_or(config.receiver_url());
    let endpoint = format!("{}/webhooks/mailgun", base.trim_end_matches('/'));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let run_id = format!("{:x}{:x}", now.as_secs(), std::process::id());
    let events = plan(&run_id, args.backers, args.projects, now.as_secs_f64());
    let url = HttpUrl::parse(&endpoint)?;

    writeln!(
        out,
        "sending {} events ({} backers x {} projects x {} scenarios, plus 1 without backer_id) to {endpoint}",
        events.len(),
        args.backers,
        args.projects,
        SCENARIOS.len()
    )?;
    let mut ok = 0_usize;
    let mut failures: Vec<String> = Vec::new();
    for event in &events {
        let signed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or(0);
        let body = signed_json(&key, signed_at, &fresh_token(), event.sample().event_data());
        let answer = post(&url, "application/json", &body, REQUEST_TIMEOUT)
            .await
            .with_context(|| format!("cannot reach the receiver at {endpoint}"))?;
        if answer.status == 200 {
            ok += 1;
            continue;
        }
        let text = String::from_utf8_lossy(&answer.body);
        failures.push(format!(
            "{} for {:?} of {}: {}",
            answer.status,
            event.kind,
            event.message_id,
            truncate(&clean(text.trim()), 200)
        ));
    }
    writeln!(out, "{ok} answered 200")?;
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "{} answered otherwise:", failures.len())?;
    for failure in failures.iter().take(LISTED_FAILURES) {
        writeln!(out, "  {failure}")?;
    }
    if failures.len() > LISTED_FAILURES {
        writeln!(out, "  ... and {} more", failures.len() - LISTED_FAILURES)?;
    }
    anyhow::bail!(
        "{} of {} webhooks were not accepted",
        failures.len(),
        events.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_covers_every_scenario_for_every_backer_and_project_plus_one_skip() {
        let events = plan("r1", 2, 3, 1_700_000_000.0);
        let per_message: usize = SCENARIOS.iter().map(|(_, kinds)| kinds.len()).sum();
        assert_eq!(events.len(), 2 * 3 * per_message + 1);
        let without_backer: Vec<_> = events.iter().filter(|e| e.backer_id.is_none()).collect();
        assert_eq!(without_backer.len(), 1);
        let mut messages: Vec<_> = events.iter().map(|e| e.message_id.as_str()).collect();
        messages.dedup();
        assert_eq!(messages.len(), 2 * 3 * SCENARIOS.len() + 1);
        assert!(events.iter().all(|e| e.timestamp < 1_700_000_000.0));
        assert!(events.iter().all(|e| e.message_id.contains("-r1-")));
    }

    #[test]
    fn tokens_are_fresh_on_every_call() {
        let (a, b) = (fresh_token(), fresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 50);
    }
}
