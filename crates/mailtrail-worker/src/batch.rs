//! One claimed batch on its way through the worker: triaged, written, then settled.
//!
//! [`TriagedBatch::of`] gives every event of every envelope its verdict (pure, from
//! `mailtrail_core::triage`). [`BatchWriter::write`] upserts the rows in one statement; a batch
//! Postgres refuses for its data (not its connection) is split, so the good rows commit and only
//! the offenders' envelopes are dead-lettered. [`TriagedBatch::into_settlement`] then says what
//! the queue must do with each envelope: acknowledge it, or dead-letter it with its reason.
//!
//! An envelope is acknowledged only when every one of its events was stored or skipped; one bad
//! event dead-letters its whole envelope (its good events are stored all the same, and a replay
//! writes them again, which changes nothing). Skips are counted only for acknowledged envelopes,
//! so a dead letter replayed later does not count its skips twice.

use std::collections::BTreeMap;
use std::time::Duration;

use mailtrail_core::{Conversion, EventRow, Verdict, triage};
use mailtrail_queue::{Claimed, ClaimedBatch, DeadEnvelope, Settlement, SkippedCount};
use mailtrail_store::{BatchCounts, StoreConnection, StoreError, write_batch};
use secrecy::{ExposeSecret, SecretString};

use crate::backoff::Backoff;
use crate::heartbeat::Progress;
use crate::shutdown::Shutdown;

/// What is decided so far about one envelope of the batch.
#[derive(Debug)]
enum Fate {
    /// Every event was stored or skipped (or its rows are being written now).
    Done,
    /// Can never succeed; dead-lettered with the reason.
    Dead(String),
}

/// A claimed batch with a verdict for every event.
#[derive(Debug)]
pub(crate) struct TriagedBatch {
    /// The batch as claimed (its size and ends), to settle it by position.
    claimed: Option<ClaimedBatch>,
    /// Every claimed envelope, oldest first.
    envelopes: Vec<String>,
    /// What becomes of each envelope, index for index.
    fates: Vec<Fate>,
    /// Rows to write.
    rows: Vec<EventRow>,
    /// The envelope each row came from (an index into `envelopes`), row for row: kept apart so
    /// the rows can be written as one slice without copying them.
    row_envelopes: Vec<usize>,
    /// Conversions to write.
    conversions: Vec<Conversion>,
    /// The envelope each conversion came from, conversion for conversion.
    conversion_envelopes: Vec<usize>,
    /// Skipped events: (envelope index, reason).
    skips: Vec<(usize, &'static str)>,
}

impl TriagedBatch {
    /// Triages a claimed batch (oldest first).
    pub(crate) fn of(batch: Claimed) -> Self {
        let mut triaged = Self {
            claimed: ClaimedBatch::of(&batch),
            envelopes: Vec::with_capacity(batch.len()),
            fates: Vec::with_capacity(batch.len()),
            rows: Vec::with_capacity(batch.len()),
            row_envelopes: Vec::with_capacity(batch.len()),
            conversions: Vec::new(),
            conversion_envelopes: Vec::new(),
            skips: Vec::new(),
        };
        for (index, raw) in batch.into_iter().enumerate() {
            let fate = match triage(&raw) {
                Err(unreadable) => Fate::Dead(unreadable.0),
                Ok(verdicts) => triaged.take_verdicts(index, verdicts),
            };
            triaged.envelopes.push(raw);
            triaged.fates.push(fate);
        }
        triaged
    }

    fn take_verdicts(&mut self, index: usize, verdicts: Vec<Verdict>) -> Fate {
        let mut fate = Fate::Done;
        for verdict in verdicts {
            match verdict {
                Verdict::Store(row) => {
                    self.rows.push(*row);
                    self.row_envelopes.push(index);
                }
                Verdict::Convert(conversion) => {
                    self.conversions.push(*conversion);
                    self.conversion_envelopes.push(index);
                }
                Verdict::Skip(reason) => self.skips.push((index, reason)),
                Verdict::Dead(reason) => {
                    if matches!(fate, Fate::Done) {
                        fate = Fate::Dead(reason);
                    }
                }
            }
        }
        fate
    }

    /// Envelopes in the batch.
    pub(crate) fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// Rows to write.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Marks the envelope of row `row` dead (keeping an earlier reason).
    fn refuse_row(&mut self, row: usize, reason: String) {
        self.refuse_envelope(self.row_envelopes[row], reason);
    }

    /// Marks the envelope of conversion `conversion` dead (keeping an earlier reason).
    fn refuse_conversion(&mut self, conversion: usize, reason: String) {
        self.refuse_envelope(self.conversion_envelopes[conversion], reason);
    }

    fn refuse_envelope(&mut self, envelope: usize, reason: String) {
        let fate = &mut self.fates[envelope];
        if matches!(fate, Fate::Done) {
            *fate = Fate::Dead(reason);
        }
    }

    /// What the queue must do: acknowledge the done envelopes (with their skip counts) and
    /// dead-letter the others.
    pub(crate) fn into_settlement(self) -> Settlement {
        let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (index, reason) in &self.skips {
            if matches!(self.fates[*index], Fate::Done) {
                *skipped.entry(reason).or_default() += 1;
            }
        }
        let mut settlement = Settlement {
            claimed: self.claimed,
            ..Settlement::default()
        };
        for (envelope, fate) in self.envelopes.into_iter().zip(self.fates) {
            match fate {
                Fate::Done => settlement.done.push(envelope),
                Fate::Dead(reason) => settlement.dead.push(DeadEnvelope { envelope, reason }),
            }
        }
        settlement.skipped = skipped
            .into_iter()
            .map(|(reason, count)| SkippedCount {
                reason: reason.to_owned(),
                count,
            })
            .collect();
        settlement
    }
}

/// The worker's Postgres side: one connection, reopened after a failure.
pub(crate) struct BatchWriter {
    connection: StoreConnection,
    database_url: SecretString,
    statement_timeout: Duration,
    /// Days before a conversion a click or open may be credited with it.
    attribution_window_days: i32,
}

impl BatchWriter {
    /// Wraps an open connection; `database_url` and `statement_timeout` reopen it.
    pub(crate) fn new(
        connection: StoreConnection,
        database_url: SecretString,
        statement_timeout: Duration,
        attribution_window_days: i32,
    ) -> Self {
        Self {
            connection,
            database_url,
            statement_timeout,
            attribution_window_days,
        }
    }

    /// Writes the batch's rows; rows Postgres refuses for their data dead-letter their
    /// envelopes. `None` means the stop came first (the batch stays in the processing list).
    /// Every attempt is reported to `progress`: the lease heartbeat keeps the lease while the
    /// write is waiting out an outage, and only while it is.
    pub(crate) async fn write(
        &mut self,
        batch: &mut TriagedBatch,
        progress: &Progress,
        shutdown: &mut Shutdown,
    ) -> Option<BatchCounts> {
        let rows = std::mem::take(&mut batch.rows);
        let conversions = std::mem::take(&mut batch.conversions);
        let counts = match self
            .write_with_retry(&rows, &conversions, progress, shutdown)
            .await?
        {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, batch.size = rows.len() + conversions.len(), "Postgres refused the batch; writing its rows one by one");
                let mut total = BatchCounts::default();
                for (index, row) in rows.iter().enumerate() {
                    match self
                        .write_with_retry(std::slice::from_ref(row), &[], progress, shutdown)
                        .await?
                    {
                        Ok(counts) => add(&mut total, &counts),
                        Err(error) => {
                            batch.refuse_row(index, format!("Postgres refused the event: {error}"))
                        }
                    }
                }
                for (index, conversion) in conversions.iter().enumerate() {
                    match self
                        .write_with_retry(&[], std::slice::from_ref(conversion), progress, shutdown)
                        .await?
                    {
                        Ok(counts) => add(&mut total, &counts),
                        Err(error) => batch.refuse_conversion(
                            index,
                            format!("Postgres refused the conversion: {error}"),
                        ),
                    }
                }
                total
            }
        };
        Some(counts)
    }

    /// Writes `rows`, retrying transient failures (reconnecting as needed) until it succeeds,
    /// fails for good (the data is at fault), or the stop is requested (`None`).
    async fn write_with_retry(
        &mut self,
        rows: &[EventRow],
        conversions: &[Conversion],
        progress: &Progress,
        shutdown: &mut Shutdown,
    ) -> Option<Result<BatchCounts, StoreError>> {
        let mut backoff = Backoff::new("postgres").reporting_to(progress);
        let mut reconnect = false;
        loop {
            progress.report();
            if reconnect {
                let url = self.database_url.expose_secret();
                // Bounded like a statement: a host that drops packets would otherwise hold the
                // connect for minutes (TCP's own retries), which the heartbeat takes for a stall.
                let connected = match tokio::time::timeout(
                    self.statement_timeout,
                    mailtrail_store::connect(url, self.statement_timeout),
                )
                .await
                {
                    Ok(connected) => connected.map_err(|error| error.to_string()),
                    Err(_) => Err(format!(
                        "connecting to Postgres took longer than {} ms",
                        self.statement_timeout.as_millis()
                    )),
                };
                match connected {
                    Ok(connection) => self.connection = connection,
                    Err(error) => {
                        if !backoff.failed(&error, shutdown).await {
                            return None;
                        }
                        continue;
                    }
                }
            }
            let written = write_batch(
                &mut self.connection,
                rows,
                conversions,
                self.attribution_window_days,
            )
            .await;
            match written {
                Ok(counts) => {
                    backoff.recovered();
                    return Some(Ok(counts));
                }
                Err(error) if error.is_transient() => {
                    reconnect = true;
                    if !backoff.failed(&error, shutdown).await {
                        return None;
                    }
                }
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// Adds one write's counts to a batch's.
fn add(total: &mut BatchCounts, counts: &BatchCounts) {
    total.events.events_inserted += counts.events.events_inserted;
    total.events.rows_upserted += counts.events.rows_upserted;
    total.conversions_inserted += counts.conversions_inserted;
    total.conversions_reattributed += counts.conversions_reattributed;
}

/// Connects to Postgres, retrying until it answers or the stop is requested.
pub(crate) async fn connect_store(
    database_url: &SecretString,
    statement_timeout: Duration,
    shutdown: &mut Shutdown,
) -> Option<StoreConnection> {
    let mut backoff = Backoff::new("postgres");
    loop {
        match mailtrail_store::connect(database_url.expose_secret(), statement_timeout).await {
            Ok(connection) => {
                backoff.recovered();
                return Some(connection);
            }
            Err(error) => {
                if !backoff.failed(&error, shutdown).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mailtrail_core::{Envelope, Source};

    use super::*;

    fn webhook(variables: &str) -> String {
        let body = format!(
            r#"{{"signature": {{"timestamp": "1", "token": "t", "signature": "s"}},
                "event-data": {{"event": "delivered", "timestamp": 1700000000.5,
                  "recipient": "a@example.com", "message": {{"headers": {{"message-id": "m@x"}}}},
                  "user-variables": {variables}}}}}"#
        );
        Envelope::new(
            Source::Mailgun,
            1_700_000_000_000,
            "application/json",
            body.as_bytes(),
        )
        .to_json()
    }

    #[test]
    fn a_batch_is_settled_envelope_by_envelope_in_claim_order() {
        let stored = webhook(r#"{"backer_id": 1, "project_id": 2}"#);
        let skipped = webhook("{}");
        let garbage = "not an envelope".to_owned();
        let mut batch = TriagedBatch::of(Claimed::new(
            0,
            vec![stored.clone(), skipped.clone(), garbage.clone()],
        ));
        assert_eq!((batch.len(), batch.rows()), (3, 1));
        batch.rows.clear();

        let settlement = batch.into_settlement();
        assert_eq!(settlement.done, [stored, skipped]);
        assert_eq!(settlement.dead.len(), 1);
        assert_eq!(settlement.dead[0].envelope, garbage);
        assert!(settlement.dead[0].reason.contains("unreadable envelope"));
        assert_eq!(settlement.skipped.len(), 1);
        assert_eq!(
            (
                settlement.skipped[0].reason.as_str(),
                settlement.skipped[0].count
            ),
            ("missing_backer_id", 1)
        );
        assert!(settlement.claimed.is_some());
    }

    #[test]
    fn a_refused_row_dead_letters_its_envelope_and_its_skips_are_not_counted() {
        let page = Envelope::new(
            Source::MailgunEventsApi,
            1_700_000_000_000,
            "application/json",
            br#"[{"event": "delivered", "timestamp": 1700000000, "recipient": "a@example.com",
                  "message": {"headers": {"message-id": "m@x"}},
                  "user-variables": {"backer_id": 1, "project_id": 2}},
                 {"event": "delivered", "timestamp": 1700000000, "recipient": "b@example.com",
                  "message": {"headers": {"message-id": "m@x"}}}]"#,
        )
        .to_json();
        let mut batch = TriagedBatch::of(Claimed::new(0, vec![page.clone()]));
        assert_eq!(batch.rows(), 1);
        batch.refuse_row(0, "Postgres refused the event: x".to_owned());
        let settlement = batch.into_settlement();
        assert!(settlement.done.is_empty());
        assert_eq!(settlement.dead.len(), 1);
        assert_eq!(settlement.dead[0].envelope, page);
        assert_eq!(settlement.dead[0].reason, "Postgres refused the event: x");
        assert!(settlement.skipped.is_empty());
    }
}
