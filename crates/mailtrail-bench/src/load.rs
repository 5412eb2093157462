//! A timed load run: `--connections` connections each sending pre-built bodies one after
//! another, for `--duration`, either as fast as the target answers or at a fixed offered
//! `--rate`, and what they saw: requests/s, latency percentiles, every answer that was not 200.
//!
//! Latency at a fixed rate is measured from the moment a request was *due*, when a busy
//! connection delayed it (so a stalled receiver cannot hide its queueing: no coordinated
//! omission), and from the moment it was sent otherwise (the timer's own ~1 ms granularity is
//! the client's, not the receiver's).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mailtrail_core::SigningKey;
use serde::Serialize;

use crate::BenchArgs;
use crate::bodies::{LoadBody, build_bodies, into_envelopes, run_id};
use crate::senders::{HttpSender, RedisSender, SendFailed, Sender, Target};

/// Bodies built per second of duration when no rate caps the run.
const FULL_SPEED_BODIES_PER_S: f64 = 60_000.0;

/// The outcome of a load run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Connections used.
    pub connections: u32,
    /// The offered rate, if one was set.
    pub offered_rate: Option<u32>,
    /// Seconds from the first request to the last answer.
    pub elapsed_s: f64,
    /// Answers received (any status).
    pub answered: u64,
    /// Answers that were 200.
    pub ok: u64,
    /// Answers by status other than 200, as `(status, count)`.
    pub non_200: Vec<(u16, u64)>,
    /// Requests that failed below HTTP (connection refused, reset, ...).
    pub transport_errors: u64,
    /// Answers per second.
    pub requests_per_s: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency, milliseconds.
    pub p999_ms: f64,
    /// Slowest answer, milliseconds.
    pub max_ms: f64,
    /// True when the pre-built bodies ran out before the duration did.
    pub bodies_exhausted: bool,
}

impl LoadReport {
    /// The three readable lines (four when the bodies ran out).
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut non_200 = self
            .non_200
            .iter()
            .map(|(status, count)| format!("{status}: {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        if non_200.is_empty() {
            non_200 = "none".to_owned();
        }
        writeln!(
            out,
            "{} connections{}, {:.1} s: {} answered ({} x 200), {:.0} req/s",
            self.connections,
            self.offered_rate
                .map(|rate| format!(", {rate} req/s offered"))
                .unwrap_or_default(),
            self.elapsed_s,
            self.answered,
            self.ok,
            self.requests_per_s
        )?;
        writeln!(
            out,
            "latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
        )?;
        writeln!(
            out,
            "not 200: {non_200}; transport errors: {}",
            self.transport_errors
        )?;
        if self.bodies_exhausted {
            writeln!(
                out,
                "stopped early: the pre-built bodies ran out (see --bodies)"
            )?;
        }
        Ok(())
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnectionStats {
    latencies_us: Vec<u32>,
    statuses: Vec<(u16, u64)>,
    transport_errors: u64,
    /// `(body index, answered_at_us)` of each 200, when a sent log was asked for.
    sent: Vec<(usize, i64)>,
}

impl ConnectionStats {
    fn count_status(&mut self, status: u16) {
        self.add_statuses(status, 1);
    }

    fn add_statuses(&mut self, status: u16, count: u64) {
        match self.statuses.iter_mut().find(|(known, _)| *known == status) {
            Some((_, known)) => *known += count,
            None => self.statuses.push((status, count)),
        }
    }
}

/// What every connection task shares.
struct Plan {
    bodies: Vec<LoadBody>,
    next: AtomicUsize,
    started: Instant,
    started_unix_us: i64,
    deadline: Instant,
    interval: Option<Duration>,
    log_sent: bool,
}

impl Plan {
    /// The next body to send and when it is due; `None` when the run is over.
    fn next(&self) -> Option<(usize, Option<Instant>)> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if index >= self.bodies.len() {
            return None;
        }
        let due = self
            .interval
            .map(|interval| self.started + interval.mul_f64(index as f64));
        if due.unwrap_or_else(Instant::now) >= self.deadline {
            return None;
        }
        Some((index, due))
    }
}

/// Sends webhooks (or their envelopes) to `target` as `args` say and measures the answers.
pub async fn run_load(
    key: &SigningKey,
    target: Target,
    args: &BenchArgs,
) -> anyhow::Result<LoadReport> {
    let seconds = args.duration.as_secs_f64();
    let count = args.bodies.unwrap_or_else(|| match args.rate {
        Some(rate) => (f64::from(rate) * seconds).ceil() as usize + 1,
        None => (FULL_SPEED_BODIES_PER_S * seconds).ceil() as usize,
    });
    let mut bodies = build_bodies(key, &run_id(), count);
    if matches!(target, Target::Redis { .. }) {
        // Push what the receiver would push for each webhook: its envelope.
        into_envelopes(&mut bodies);
    }
    let started = Instant::now();
    let plan = Arc::new(Plan {
        bodies,
        next: AtomicUsize::new(0),
        started,
        started_unix_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_micros() as i64)
            .unwrap_or(0),
        deadline: started + args.duration,
        interval: args.rate.map(|rate| Duration::from_secs(1) / rate),
        log_sent: args.sent_log.is_some(),
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let plan = Arc::clone(&plan);
            match &target {
                Target::Http { address, host } => tokio::spawn(connection_task(
                    plan,
                    HttpSender::new(*address, host.clone()),
                )),
                Target::Redis { client, list } => tokio::spawn(connection_task(
                    plan,
                    RedisSender::new(client.clone(), list.clone()),
                )),
            }
        })
        .collect();
    let mut merged = ConnectionStats::default();
    for task in tasks {
        let stats = task.await.context("a load connection task failed")?;
        merged.latencies_us.extend(stats.latencies_us);
        for (status, count) in stats.statuses {
            merged.add_statuses(status, count);
        }
        merged.transport_errors += stats.transport_errors;
        merged.sent.extend(stats.sent);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(path) = &args.sent_log {
        write_sent_log(path, &plan.bodies, &merged.sent)?;
    }
    merged.latencies_us.sort_unstable();
    let percentile = |fraction: f64| -> f64 {
        let latencies = &merged.latencies_us;
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((latencies.len() as f64 * fraction).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 1000.0
    };
    let answered: u64 = merged.statuses.iter().map(|(_, count)| count).sum();
    let ok = merged
        .statuses
        .iter()
        .find(|(status, _)| *status == 200)
        .map_or(0, |(_, count)| *count);
    let mut non_200: Vec<(u16, u64)> = merged
        .statuses
        .iter()
        .copied()
        .filter(|(status, _)| *status != 200)
        .collect();
    non_200.sort_unstable();
    Ok(LoadReport {
        connections: args.connections,
        offered_rate: args.rate,
        elapsed_s: elapsed,
        answered,
        ok,
        non_200,
        transport_errors: merged.transport_errors,
        requests_per_s: answered as f64 / elapsed.max(f64::EPSILON),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        p999_ms: percentile(0.999),
        max_ms: percentile(1.0),
        bodies_exhausted: plan.next.load(Ordering::Relaxed) >= plan.bodies.len()
            && Instant::now() < plan.deadline,
    })
}

/// One connection sending requests one after another until the plan runs out.
async fn connection_task(plan: Arc<Plan>, mut sender: impl Sender) -> ConnectionStats {
    let mut stats = ConnectionStats::default();
    while let Some((index, due)) = plan.next() {
        let started = match due {
            // Late because this connection was busy: count the wait against the receiver.
            Some(due) if Instant::now() > due => due,
            Some(due) => {
                tokio::time::sleep_until(due.into()).await;
                Instant::now()
            }
            None => Instant::now(),
        };
        match sender.send(&plan.bodies[index].body).await {
            Ok(status) => {
                let latency = started.elapsed();
                stats
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                stats.count_status(status);
                if status == 200 && plan.log_sent {
                    // Unix time of the answer, from the monotonic clock's offset to the start.
                    let offset = plan.started.elapsed().as_micros() as i64;
                    stats.sent.push((index, plan.started_unix_us + offset));
                }
            }
            Err(SendFailed) => {
                stats.transport_errors += 1;
                // Do not spin on a target that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

/// Writes `event_id,answered_at_us` for every webhook answered 200.
fn write_sent_log(path: &Path, bodies: &[LoadBody], sent: &[(usize, i64)]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    for (index, answered_at_us) in sent {
        writeln!(writer, "{},{answered_at_us}", bodies[*index].event_id)?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
