//! `mailtrail load`: load generation for benchmarks, in three modes.
//!
//! - **HTTP** (default): posts realistic, signed JSON webhooks (about 2 KB each, a unique token
//!   each, three events per message id) to a receiver over `--connections` keep-alive HTTP/1.1
//!   connections, for `--duration`, either as fast as the receiver answers or at a fixed offered
//!   `--rate`. It reports requests/s, latency percentiles and every answer that was not 200.
//! - **`--fill N`**: pushes `N` envelopes of the same webhooks straight onto the Redis backlog
//!   (pipelined `LPUSH` chunks), to time a worker draining a backlog.
//! - **`--lpush-baseline`**: the same pacing, connections and measurement as HTTP mode, but
//!   each connection is a Redis connection sending a bare `LPUSH` of the envelope the receiver
//!   would queue for the webhook: the latency floor the receiver's answers sit on (every push
//!   waits for Redis' append-only-file fsync), measured at the same offered rate.
//! - **`--sql-baseline N`**: writes the same `N` events into Postgres with exactly the store's
//!   batched upsert statement ([`mailtrail_store::upsert_events`]) and batch size, with no Redis
//!   and no parsing in the timed part: the ceiling the worker is measured against.
//!
//! Every body is built and signed *before* the clock starts, so the client's cost during the run
//! is only HTTP. The client is hyper's bare HTTP/1.1 connection (one task per connection, no
//! pool, no URL parsing per request), which leaves more of a shared machine to the receiver than
//! a pooled client would.
//!
//! Latency at a fixed rate is measured from the moment a request was *due*, when a busy
//! connection delayed it (so a stalled receiver cannot hide its queueing: no coordinated
//! omission), and from the moment it was sent otherwise (the timer's own ~1 ms granularity is
//! the client's, not the receiver's).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_core::{Envelope, SigningKey, Source};
use serde::Serialize;
use serde_json::Value;

use crate::CliConfig;
use crate::clock::parse_duration;

/// The size the sample bodies are padded to: a Mailgun `delivered` webhook with a few custom
/// variables is about this large.
const TARGET_BODY_BYTES: usize = 2048;

/// Events per message: each message gets `accepted`, then `delivered`, then `opened`, so the
/// worker's fold and upsert see several events per row, as in a real campaign.
const KINDS: [SampleKind; 3] = [
    SampleKind::Accepted,
    SampleKind::Delivered,
    SampleKind::Opened,
];

/// Envelopes per `LPUSH` in fill mode.
const FILL_CHUNK: usize = 1000;

/// Arguments of `mailtrail load`.
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// Receiver base URL [default: $MAILTRAIL_RECEIVER_URL, else http://127.0.0.1:8080].
    #[arg(long)]
    pub url: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// How long to send (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Offered rate in requests per second; without it, as fast as the receiver answers.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Bodies to build before the run, which caps the requests sent [default: rate x duration,
    /// or 60,000 per second of duration without --rate].
    #[arg(long)]
    pub bodies: Option<usize>,
    /// Write `event_id,answered_at_us` for every webhook answered 200 to this file: when the
    /// receiver had accepted it, to measure how far behind Postgres runs from that moment.
    #[arg(long)]
    pub sent_log: Option<PathBuf>,
    /// Push N envelopes straight onto the Redis backlog instead of posting (needs REDIS_URL).
    #[arg(long, conflicts_with_all = ["rate", "sql_baseline", "sent_log"])]
    pub fill: Option<usize>,
    /// Send a bare `LPUSH` of each webhook's envelope over Redis connections instead of
    /// posting, paced and measured as in HTTP mode (needs REDIS_URL).
    #[arg(long, conflicts_with_all = ["url", "fill", "sql_baseline", "sent_log"])]
    pub lpush_baseline: bool,
    /// Upsert N events straight into Postgres with the store's statement, in --batch-size
    /// batches, and time it (needs DATABASE_URL).
    #[arg(long, conflicts_with_all = ["rate", "fill", "sent_log"])]
    pub sql_baseline: Option<usize>,
    /// Events per statement for --sql-baseline (the worker's MAILTRAIL_BATCH_SIZE).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One pre-built webhook.
#[derive(Clone, Debug)]
pub struct LoadBody {
    /// Mailgun's `event-data.id` (stored as `email_events.event_id`).
    pub event_id: String,
    /// The signed JSON body.
    pub body: Bytes,
}

/// Builds `count` signed webhooks for run `run_id`, in parallel on every core. Each has a unique
/// token and event id; every three share a message id (accepted, delivered, opened).
pub fn build_bodies(key: &SigningKey, run_id: &str, count: usize) -> Vec<LoadBody> {
    let signed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(count.max(1));
    let per_thread = count.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let start = thread * per_thread;
                let end = (start + per_thread).min(count);
                scope.spawn(move || {
                    (start..end)
                        .map(|index| build_body(key, run_id, index, signed_at as i64))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

fn build_body(key: &SigningKey, run_id: &str, index: usize, signed_at: i64) -> LoadBody {
    let message = index / KINDS.len();
    let kind = KINDS[index % KINDS.len()];
    let message_id = format!("load-{run_id}-{message}@mg.example.com");
    let recipient = format!("backer-{}@example.com", message % 100_000);
    let sample = SampleEvent {
        kind,
        message_id: &message_id,
        recipient: &recipient,
        timestamp: signed_at as f64 - 60.0 + (index % KINDS.len()) as f64 * 5.0,
        backer_id: Some((message % 100_000) as i64 + 1),
        project_id: Some((message % 97) as i64 + 1),
        subject: "Project update: your reward ships next week, here is what to expect",
    };
    let mut data = sample.event_data();
    let event_id = data["id"].as_str().unwrap_or_default().to_owned();
    if let Some(Value::Object(variables)) = data.get_mut("user-variables") {
        variables.insert(
            "campaign".into(),
            Value::from("update-2026-11-reward-shipping"),
        );
        variables.insert("locale".into(), Value::from("en-US"));
        variables.insert("template".into(), Value::from("project-update-v3"));
    }
    let token = token_from_seed(&format!("mailtrail-load/{run_id}/{index}"));
    let mut body = signed_json(key, signed_at, &token, data.clone());
    if body.len() < TARGET_BODY_BYTES {
        // Top up with a tracking variable, as senders often attach one, to reach ~2 KB.
        let missing = TARGET_BODY_BYTES - body.len();
        let filler = "t".repeat(missing.saturating_sub(20));
        if let Some(Value::Object(variables)) = data.get_mut("user-variables") {
            variables.insert("tracking".into(), Value::from(filler));
        }
        body = signed_json(key, signed_at, &token, data);
    }
    LoadBody {
        event_id,
        body: Bytes::from(body),
    }
}

/// A run id unique to this process and moment, so repeated runs never reuse tokens or messages.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", nanos, std::process::id())
}

/// The outcome of an HTTP load run.
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
        match self.statuses.iter_mut().find(|(known, _)| *known == status) {
            Some((_, count)) => *count += 1,
            None => self.statuses.push((status, 1)),
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

/// Runs `mailtrail load`.
pub async fn run(config: &CliConfig, args: &LoadArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(count) = args.fill {
        return fill(config, count, out, args.json).await;
    }
    if let Some(count) = args.sql_baseline {
        return sql_baseline(config, count, args.batch_size as usize, out, args.json).await;
    }
    let key = config.signing_key()?;
    let report = if args.lpush_baseline {
        let queue = crate::connect_queue(config).await?;
        let target = Target::Redis {
            client: redis::Client::open(config.queue_settings().url)
                .context("REDIS_URL is not a usable Redis URL")?,
            list: format!("{}load:lpush-baseline", queue.keys().prefix()),
        };
        let report = run_load(&key, target.clone(), args).await;
        // The baseline's list is scratch: never leave it behind, whatever happened. It is no
        // queue key, so it is deleted over the baseline's own client, like it was filled.
        if let Target::Redis { client, list } = &target
            && let Ok(mut connection) = client.get_multiplexed_async_connection().await
        {
            let _: Result<i64, _> = redis::cmd("DEL")
                .arg(list)
                .query_async(&mut connection)
                .await;
        }
        report?
    } else {
        let base = args.url.as_deref().unwrap_or(config.receiver_url());
        run_load(&key, http_target(base).await?, args).await?
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    let mut non_200 = report
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
        report.connections,
        report
            .offered_rate
            .map(|rate| format!(", {rate} req/s offered"))
            .unwrap_or_default(),
        report.elapsed_s,
        report.answered,
        report.ok,
        report.requests_per_s
    )?;
    writeln!(
        out,
        "latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        report.p50_ms, report.p99_ms, report.p999_ms, report.max_ms
    )?;
    writeln!(
        out,
        "not 200: {non_200}; transport errors: {}",
        report.transport_errors
    )?;
    if report.bodies_exhausted {
        writeln!(
            out,
            "stopped early: the pre-built bodies ran out (see --bodies)"
        )?;
    }
    Ok(())
}

/// Where load goes.
#[derive(Clone)]
pub enum Target {
    /// A receiver, over HTTP/1.1.
    Http {
        /// Its address.
        address: SocketAddr,
        /// The `Host` header.
        host: String,
    },
    /// A Redis list, with a bare `LPUSH` of each webhook's envelope.
    Redis {
        /// The Redis to connect to.
        client: redis::Client,
        /// The list pushed onto.
        list: String,
    },
}

/// The receiver at `base` (an `http://` URL) as a load target.
pub async fn http_target(base: &str) -> anyhow::Result<Target> {
    let authority = base
        .trim_end_matches('/')
        .strip_prefix("http://")
        .with_context(|| format!("`{base}` is not an http:// URL (https is not supported)"))?;
    let address = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("cannot resolve `{authority}`"))?
        .next()
        .with_context(|| format!("`{authority}` resolves to no address"))?;
    Ok(Target::Http {
        address,
        host: authority.to_owned(),
    })
}

/// Sends webhooks (or their envelopes) to `target` as `args` say and measures the answers.
pub async fn run_load(
    key: &SigningKey,
    target: Target,
    args: &LoadArgs,
) -> anyhow::Result<LoadReport> {
    let seconds = args.duration.as_secs_f64();
    let count = args.bodies.unwrap_or_else(|| match args.rate {
        Some(rate) => (f64::from(rate) * seconds).ceil() as usize + 1,
        None => (60_000.0 * seconds).ceil() as usize,
    });
    let mut bodies = build_bodies(key, &run_id(), count);
    if matches!(target, Target::Redis { .. }) {
        // Push what the receiver would push for each webhook: its envelope.
        let received_at_ms = mailtrail_queue::now_ms();
        for body in &mut bodies {
            let envelope = Envelope::new(
                Source::Mailgun,
                received_at_ms,
                "application/json",
                &body.body,
            )
            .to_json();
            body.body = Bytes::from(envelope);
        }
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
                    HttpSender {
                        address: *address,
                        host: host.clone(),
                        sender: None,
                    },
                )),
                Target::Redis { client, list } => tokio::spawn(connection_task(
                    plan,
                    RedisSender {
                        client: client.clone(),
                        list: list.clone(),
                        connection: None,
                    },
                )),
            }
        })
        .collect();
    let mut merged = ConnectionStats::default();
    for task in tasks {
        let stats = task.await.context("a load connection task failed")?;
        merged.latencies_us.extend(stats.latencies_us);
        for (status, count) in stats.statuses {
            for _ in 0..count {
                merged.count_status(status);
            }
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

/// A request failed below the protocol's answer (refused, reset, an error reply).
struct SendFailed;

/// One connection's way of sending a body and reading its answer.
trait Sender: Send + 'static {
    /// Sends `body`; the answer's HTTP status (a Redis reply counts as 200).
    fn send(&mut self, body: &Bytes) -> impl Future<Output = Result<u16, SendFailed>> + Send;
}

/// A keep-alive HTTP/1.1 connection to the receiver, reopened after a transport error.
struct HttpSender {
    address: SocketAddr,
    host: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Sender for HttpSender {
    async fn send(&mut self, body: &Bytes) -> Result<u16, SendFailed> {
        let ready = match self.sender.as_mut() {
            Some(ready) => ready,
            None => match connect(self.address).await {
                Ok(connected) => self.sender.insert(connected),
                Err(_) => return Err(SendFailed),
            },
        };
        let request = Request::post("/webhooks/mailgun")
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|_| SendFailed)?;
        let answered = async {
            ready.ready().await?;
            let response = ready.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<u16, hyper::Error>(status)
        }
        .await;
        answered.map_err(|_| {
            self.sender = None;
            SendFailed
        })
    }
}

/// A Redis connection of its own (not shared with the other load connections, as each of
/// `redis-benchmark`'s clients has its own), reopened after an error.
struct RedisSender {
    client: redis::Client,
    list: String,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl Sender for RedisSender {
    async fn send(&mut self, body: &Bytes) -> Result<u16, SendFailed> {
        let connection = match self.connection.as_mut() {
            Some(connection) => connection,
            None => match self.client.get_multiplexed_async_connection().await {
                Ok(connected) => self.connection.insert(connected),
                Err(_) => return Err(SendFailed),
            },
        };
        let pushed: Result<i64, _> = redis::cmd("LPUSH")
            .arg(&self.list)
            .arg(body.as_ref())
            .query_async(connection)
            .await;
        pushed.map(|_| 200).map_err(|_| {
            self.connection = None;
            SendFailed
        })
    }
}

/// Opens one HTTP/1.1 connection; its driver runs as a task of its own.
async fn connect(
    address: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

fn write_sent_log(
    path: &PathBuf,
    bodies: &[LoadBody],
    sent: &[(usize, i64)],
) -> anyhow::Result<()> {
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

fn print_bulk(report: &BulkReport, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        writeln!(
            out,
            "{}: {} events in {:.3} s ({} per batch): {:.0} events/s",
            report.mode, report.count, report.elapsed_s, report.batch_size, report.per_s
        )?;
    }
    Ok(())
}

/// The envelopes the receiver would have queued for `count` load webhooks.
fn build_envelopes(key: &SigningKey, count: usize) -> Vec<String> {
    let received_at_ms = mailtrail_queue::now_ms();
    build_bodies(key, &run_id(), count)
        .iter()
        .map(|body| {
            Envelope::new(
                Source::Mailgun,
                received_at_ms,
                "application/json",
                &body.body,
            )
            .to_json()
        })
        .collect()
}

/// The configured signing key, or a stand-in for modes whose envelopes no one verifies.
fn unchecked_key(config: &CliConfig) -> SigningKey {
    config
        .signing_key()
        .unwrap_or_else(|_| SigningKey::new("mailtrail-load-fill"))
}

/// `--fill N`: pushes `count` envelopes onto the backlog in pipelined `LPUSH` chunks.
async fn fill(
    config: &CliConfig,
    count: usize,
    out: &mut dyn Write,
    json: bool,
) -> anyhow::Result<()> {
    // Unsigned runs are fine here: the worker does not check signatures. Sign anyway when a key
    // is configured, so the envelopes are exactly what the receiver would queue.
    let envelopes = build_envelopes(&unchecked_key(config), count);
    let queue = crate::connect_queue(config).await?;
    let started = Instant::now();
    for chunk in envelopes.chunks(FILL_CHUNK) {
        queue
            .push_envelopes(chunk)
            .await
            .context("cannot push onto the backlog")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    print_bulk(
        &BulkReport {
            mode: "fill",
            count,
            batch_size: FILL_CHUNK,
            elapsed_s: elapsed,
            per_s: count as f64 / elapsed.max(f64::EPSILON),
        },
        out,
        json,
    )
}

/// `--sql-baseline N`: the store's upsert, timed alone, on the same events the worker would get.
async fn sql_baseline(
    config: &CliConfig,
    count: usize,
    batch_size: usize,
    out: &mut dyn Write,
    json: bool,
) -> anyhow::Result<()> {
    let rows: Vec<_> = build_envelopes(&unchecked_key(config), count)
        .iter()
        .filter_map(|envelope| match mailtrail_core::triage(envelope) {
            Ok(mut verdicts) => match verdicts.pop() {
                Some(mailtrail_core::Verdict::Store(row)) => Some(*row),
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
    let mut connection = crate::connect_store(config, "load --sql-baseline").await?;
    let started = Instant::now();
    for batch in rows.chunks(batch_size) {
        mailtrail_store::upsert_events(&mut connection, batch)
            .await
            .context("the baseline upsert failed")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    print_bulk(
        &BulkReport {
            mode: "sql_baseline",
            count,
            batch_size,
            elapsed_s: elapsed,
            per_s: count as f64 / elapsed.max(f64::EPSILON),
        },
        out,
        json,
    )
}

#[cfg(test)]
mod tests {
    use mailtrail_core::SigningKeys;
    use mailtrail_core::mailgun::{WebhookFormat, read_signature};

    use super::*;

    #[test]
    fn bodies_are_about_2_kb_signed_and_unique() {
        let key = SigningKey::new("load-key");
        let keys = SigningKeys::new(vec![key.clone()]);
        let bodies = build_bodies(&key, "t1", 30);
        assert_eq!(bodies.len(), 30);
        let mut tokens = std::collections::BTreeSet::new();
        let mut event_ids = std::collections::BTreeSet::new();
        for body in &bodies {
            assert!(
                (1900..=2300).contains(&body.body.len()),
                "{}",
                body.body.len()
            );
            let signature = read_signature(&WebhookFormat::Json, &body.body).unwrap();
            assert_eq!(keys.verify(&signature.signed()), Ok(0));
            tokens.insert(signature.token.to_string());
            event_ids.insert(body.event_id.clone());
        }
        assert_eq!(tokens.len(), 30);
        assert_eq!(event_ids.len(), 30);
    }
}
