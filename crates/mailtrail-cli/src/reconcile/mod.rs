//! `mailtrail reconcile --domain D [--since T] [--until T] [--trust-after 30m]`: fills what the
//! webhooks missed from Mailgun's Events API.
//!
//! Every event of the range is queued as an envelope of source `mailgun-events-api`, one item
//! each, and the worker reads it like a webhook's `event-data`; an event that also came (or will
//! come) by webhook has the same event key (same id, same time to the microsecond), so it is
//! stored and counted once.
//!
//! Mailgun's polling rule, followed to the letter (see `docs/reconcile.md`):
//!
//! - one ascending range, pages of 300, each following page read from the previous page's
//!   `paging.next` exactly as given (never rebuilt: that is how Ghost lost every page after the
//!   first on EU domains), until a page comes back empty;
//! - a page is trusted only when its last event is older than the trust threshold (events reach
//!   Mailgun's storage out of order, so a young page can still gain events); otherwise it is
//!   discarded and asked again after at least 15 s. The empty last page is trusted only once the
//!   range's end is older than the threshold. Without `--until` the range ends at the threshold,
//!   so a periodic run never waits;
//! - rate limits and transient failures are retried by the client (`mailtrail_mailgun`).
//!
//! One page is in memory at a time. Its envelopes and the domain's checkpoint are pushed in one
//! Redis transaction ([`mailtrail_queue::Queue::push_envelopes_with_checkpoint`]), so the
//! checkpoint never claims an event that is not queued, and a run that fails half-way has queued
//! whole pages only; running it again re-reads from the checkpoint, and anything read twice is
//! counted once by the worker. The checkpoint only moves forward, and only for a range that
//! starts at or before it (a backfill of a later, detached range must not jump over a gap).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_core::{Envelope, Source, Verdict, triage};
use mailtrail_mailgun::{
    EventsPage, EventsQuery, MailgunClient, MailgunError, PAGE_LIMIT, RetryPolicy,
    WEBHOOK_EVENT_FILTER, item_micros,
};
use mailtrail_queue::{Queue, now_ms};
use mailtrail_store::{StoreConnection, count_stored_events};

use crate::clock::parse_duration;
use crate::config::CliConfig;

mod summary;
mod time_arg;

pub use summary::{Summary, summary_line};
pub use time_arg::TimeArg;

/// How far back the first run of a domain reaches when no `--since` is given: Mailgun retries a
/// webhook for about 8 hours, so a day covers a whole retry span with room to spare.
const FIRST_RUN_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// `mailtrail reconcile`.
#[derive(Args, Clone, Debug)]
pub struct ReconcileArgs {
    /// The sending domain (default: MAILGUN_DOMAIN).
    #[arg(long)]
    pub domain: Option<String>,
    /// Start of the range: an RFC 3339 time or a duration back from now (`24h`). Default: the
    /// domain's checkpoint, or 24 hours ago on the first run.
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    pub since: Option<TimeArg>,
    /// End of the range, as `--since`. Default: now minus `--trust-after`, so nothing waits.
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    pub until: Option<TimeArg>,
    /// A page is trusted once its last event is this old (Mailgun's polling rule).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub trust_after: Duration,
    /// How long to wait before asking again for a page too young to trust (at least 15 s;
    /// lower only in tests).
    #[arg(long, hide = true, default_value_t = 15_000)]
    pub poll_wait_ms: u64,
    /// The first wait after a transient failure, doubled each time.
    #[arg(long, hide = true, default_value_t = 1_000)]
    pub retry_backoff_ms: u64,
}

/// One run's collaborators.
struct Reconciler {
    client: MailgunClient,
    queue: Queue,
    domain: String,
    trust_after: Duration,
    poll_wait: Duration,
    progress: ProgressBar,
    /// Postgres, to count the events stored already; `Err` says why there is none.
    store: Result<StoreConnection, &'static str>,
}

/// Runs `mailtrail reconcile`.
pub async fn run(
    config: &CliConfig,
    args: &ReconcileArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let domain = config.mailgun_domain(args.domain.as_deref())?;
    let retry = RetryPolicy {
        first_backoff: Duration::from_millis(args.retry_backoff_ms),
        ..RetryPolicy::default()
    };
    let client = MailgunClient::new(
        config.mailgun_api_base(),
        config.mailgun_api_key("reconcile")?,
        retry,
    )?;
    let queue = crate::connect_queue(config).await?;
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{wide_bar} {pos}/{len} s of the range {msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    // Optional: the count of events stored already is worth having, not worth failing for.
    let store = match config.database_url("reconcile") {
        Err(_) => Err("no DATABASE_URL"),
        Ok(url) => mailtrail_store::connect(url, config.statement_timeout())
            .await
            .map_err(|_| "Postgres unreachable"),
    };
    let mut reconciler = Reconciler {
        client,
        queue,
        domain,
        trust_after: args.trust_after,
        poll_wait: Duration::from_millis(args.poll_wait_ms),
        progress,
        store,
    };
    let summary = reconciler.run(args.since, args.until).await;
    reconciler.progress.finish_and_clear();
    let mut summary = summary?;
    summary.retried_requests = reconciler.client.retried();
    writeln!(out, "{}", summary_line(&reconciler.domain, &summary))?;
    Ok(())
}

impl Reconciler {
    /// Reads `[since, until]` (defaults as documented on [`ReconcileArgs`]) and queues it.
    async fn run(
        &mut self,
        since: Option<TimeArg>,
        until: Option<TimeArg>,
    ) -> anyhow::Result<Summary> {
        let now_micros = now_ms() * 1000;
        let checkpoint = self
            .queue
            .reconcile_checkpoint(&self.domain)
            .await
            .context("cannot read the reconciliation checkpoint from Redis")?;
        let trust_micros = micros_of(self.trust_after);
        let since_micros = match (since, checkpoint) {
            (Some(since), _) => since.micros(now_micros),
            (None, Some(checkpoint)) => checkpoint,
            (None, None) => now_micros - micros_of(FIRST_RUN_LOOKBACK),
        };
        // Whole seconds, the API's unit, rounded down: no event after the end is read (it could
        // be too young to trust), and the next run, starting at that second, reads it.
        // A future end is now: nothing exists after it yet.
        let until_micros = until
            .map_or(now_micros - trust_micros, |until| until.micros(now_micros))
            .min(now_micros)
            .div_euclid(1_000_000)
            * 1_000_000;
        let mut summary = Summary {
            since_micros,
            until_micros,
            checkpoint_micros: checkpoint,
            already_stored: self.store.as_ref().map(|_| 0).map_err(|why| *why),
            ..Summary::default()
        };
        if since_micros >= until_micros {
            return Ok(summary);
        }
        // A range that starts after the checkpoint leaves a gap before it: reading it must not
        // move the checkpoint over the gap.
        let advances = checkpoint.is_none_or(|checkpoint| since_micros <= checkpoint);
        self.progress
            .set_length(u64::try_from((until_micros - since_micros) / 1_000_000).unwrap_or(0));

        // The start rounded down to its second: the events of the checkpoint's own second are
        // read again (and counted once), none is skipped.
        let query = EventsQuery {
            begin: since_micros.div_euclid(1_000_000),
            end: until_micros / 1_000_000,
            limit: PAGE_LIMIT,
            event: Some(WEBHOOK_EVENT_FILTER.to_owned()),
        };
        let mut url = self.client.events_url(&self.domain, &query)?;
        loop {
            // Taken before asking, so a slow answer (or one retried after a 429) cannot make a
            // page look older than it was when Mailgun read it.
            let trusted_until = now_ms() * 1000 - trust_micros;
            let page = match self.fetch(&url).await {
                Ok(page) => page,
                Err(error) if summary.pages == 0 => return Err(error.into()),
                Err(error) => {
                    return Err(anyhow::Error::new(error).context(format!(
                        "reconciliation stopped after {} pages ({} events queued); run it \
                         again to continue from the checkpoint",
                        summary.pages, summary.events_queued
                    )));
                }
            };
            let Some(last_micros) = page.last_micros()? else {
                // The empty page after the last: the range is done once its end is trusted.
                if until_micros <= trusted_until {
                    break;
                }
                self.wait_for_trust(&mut summary).await;
                continue;
            };
            if last_micros > trusted_until {
                // Mailgun may still add events inside this page: discard it and ask again.
                self.wait_for_trust(&mut summary).await;
                continue;
            }
            let next = page
                .next
                .clone()
                .ok_or_else(|| MailgunError::InvalidResponse {
                    what: format!("read events of {}", self.domain),
                    reason: "a page without paging.next".to_owned(),
                })?;
            anyhow::ensure!(
                next != url,
                "Mailgun gave a page whose next page is itself; stopping rather than looping"
            );
            let checkpoint = advances
                .then_some(last_micros)
                .filter(|&at| summary.checkpoint_micros.is_none_or(|current| at > current));
            self.queue_page(&page, checkpoint, &mut summary).await?;
            summary.pages += 1;
            summary.events_queued += page.items.len() as u64;
            summary.checkpoint_micros = checkpoint.or(summary.checkpoint_micros);
            self.progress
                .set_position(u64::try_from((last_micros - since_micros) / 1_000_000).unwrap_or(0));
            url = next;
        }
        // Every event up to the range's end is queued: the checkpoint moves there.
        if advances && summary.checkpoint_micros.is_none_or(|at| until_micros > at) {
            self.queue
                .push_envelopes_with_checkpoint(&[], &self.domain, Some(until_micros))
                .await
                .context("cannot save the reconciliation checkpoint in Redis")?;
            summary.checkpoint_micros = Some(until_micros);
        }
        Ok(summary)
    }

    /// Reads one page on a blocking thread (the client is blocking).
    async fn fetch(&self, url: &str) -> Result<EventsPage, MailgunError> {
        let (client, domain, url) = (self.client.clone(), self.domain.clone(), url.to_owned());
        tokio::task::spawn_blocking(move || client.events_page(&domain, &url))
            .await
            .unwrap_or_else(|join| {
                Err(MailgunError::InvalidResponse {
                    what: "read events".to_owned(),
                    reason: format!("the request's thread failed: {join}"),
                })
            })
    }

    /// Queues a trusted page's items, one envelope each, with the checkpoint they reach, having
    /// counted those stored already.
    async fn queue_page(
        &mut self,
        page: &EventsPage,
        checkpoint: Option<i64>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let received_at_ms = now_ms();
        let envelopes: Vec<String> = page
            .items
            .iter()
            .map(|item| {
                // Checked here so one unreadable item fails the run before anything of its page
                // is queued, rather than becoming a dead letter with no time.
                item_micros(item)?;
                Ok(Envelope::encode(
                    Source::MailgunEventsApi,
                    received_at_ms,
                    "application/json",
                    item.get().as_bytes(),
                ))
            })
            .collect::<Result<_, MailgunError>>()?;
        if let (Ok(connection), Ok(stored)) = (&mut self.store, &mut summary.already_stored) {
            // The keys the worker will compute, computed the worker's way.
            let keys: Vec<String> = envelopes
                .iter()
                .filter_map(|envelope| triage(envelope).ok())
                .flatten()
                .filter_map(|verdict| match verdict {
                    Verdict::Store(row) => Some(row.event_key),
                    _ => None,
                })
                .collect();
            match count_stored_events(connection, &keys).await {
                Ok(count) => *stored += count,
                Err(_) => summary.already_stored = Err("Postgres failed during the run"),
            }
        }
        self.queue
            .push_envelopes_with_checkpoint(&envelopes, &self.domain, checkpoint)
            .await
            .context("cannot queue the events in Redis; nothing of this page was queued")
    }

    async fn wait_for_trust(&self, summary: &mut Summary) {
        summary.untrusted_pages += 1;
        self.progress.set_message(format!(
            "a page is too young to trust; asking again in {} s",
            self.poll_wait.as_secs()
        ));
        tokio::time::sleep(self.poll_wait).await;
        self.progress.set_message("");
    }
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
