//! Bulk modes, timed as a whole rather than per request:
//!
//! - **`--fill N`** pushes `N` envelopes of the load webhooks straight onto the Redis backlog
//!   (pipelined `LPUSH` chunks), to time a worker draining a backlog.
//! - **`--sql-baseline N`** writes the same `N` events into Postgres with exactly the store's
//!   batched upsert statement ([`mailtrail_store::upsert_events`]) and batch size, with no Redis
//!   and no parsing in the timed part: the ceiling the worker is measured against.
//!
//! Neither needs a signing key: the worker does not check signatures. Both sign with the
//! configured key all the same when there is one, so the envelopes are exactly what the
//! receiver would queue.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use mailtrail_core::SigningKey;
use mailtrail_core::{Verdict, triage};
use serde::Serialize;

use crate::bodies::build_envelopes;
use crate::environment::BenchConfig;

/// Envelopes per `LPUSH` in fill mode.
const FILL_CHUNK: usize = 1000;

/// What a fill or SQL baseline run did.
#[derive(Clone, Debug, Serialize)]
pub struct BulkReport {
    /// `fill` or `sql_baseline`.
    pub mode: &'static str,
    /// Envelopes pushed or events written.
    pub count: usize,
    /// Events per statement (SQL baseline) or per `LPUSH` (fill).
    pub batch_size: usize,
    /// Seconds the timed part took.
    pub elapsed_s: f64,
    /// `count / elapsed_s`.
    pub per_s: f64,
}

impl BulkReport {
    fn new(mode: &'static str, count: usize, batch_size: usize, started: Instant) -> Self {
        let elapsed_s = started.elapsed().as_secs_f64();
        Self {
            mode,
            count,
            batch_size,
            elapsed_s,
            per_s: count as f64 / elapsed_s.max(f64::EPSILON),
        }
    }

    /// Prints the report as one JSON object, or as one readable line.
    pub fn write(&self, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
        if json {
            writeln!(out, "{}", serde_json::to_string(self)?)?;
        } else {
            writeln!(
                out,
                "{}: {} events in {:.3} s ({} per batch): {:.0} events/s",
                self.mode, self.count, self.elapsed_s, self.batch_size, self.per_s
            )?;
        }
        Ok(())
    }
}

/// The configured signing key, or a stand-in for modes whose envelopes no one verifies.
fn unchecked_key(config: &BenchConfig) -> SigningKey {
    config
        .signing_key()
        .unwrap_or_else(|_| SigningKey::new("mailtrail-load-fill"))
}

/// `--fill N`: pushes `count` envelopes onto the backlog in pipelined `LPUSH` chunks.
pub async fn fill(config: &BenchConfig, count: usize) -> anyhow::Result<BulkReport> {
    let envelopes = build_envelopes(&unchecked_key(config), count);
    let queue = config.connect_queue().await?;
    let started = Instant::now();
    for chunk in envelopes.chunks(FILL_CHUNK) {
        queue
            .push_envelopes(chunk)
            .await
            .context("cannot push onto the backlog")?;
    }
    Ok(BulkReport::new("fill", count, FILL_CHUNK, started))
}

/// `--sql-baseline N`: the store's upsert, timed alone, on the same events the worker would get.
pub async fn sql_baseline(
    config: &BenchConfig,
    count: usize,
    batch_size: usize,
) -> anyhow::Result<BulkReport> {
    // Classified before the clock starts: only the statement is timed.
    let rows: Vec<_> = build_envelopes(&unchecked_key(config), count)
        .iter()
        .filter_map(|envelope| match triage(envelope) {
            Ok(mut verdicts) => match verdicts.pop() {
                Some(Verdict::Store(row)) => Some(*row),
                _ => None,
            },
            Err(_) => None,
        })
        .collect();
    anyhow::ensure!(
        rows.len() == count,
        "only {} of {count} load events are storable",
        rows.len()
    );
    let mut connection = config.connect_store("--sql-baseline").await?;
    let started = Instant::now();
    for batch in rows.chunks(batch_size) {
        mailtrail_store::upsert_events(&mut connection, batch)
            .await
            .context("the baseline upsert failed")?;
    }
    Ok(BulkReport::new("sql_baseline", count, batch_size, started))
}
