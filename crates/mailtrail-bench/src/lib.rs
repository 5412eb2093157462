//! mailtrail-bench: the load generator behind `just bench` (`scripts/bench.sh`), in four modes.
//!
//! | mode | flags | module | needs |
//! |---|---|---|---|
//! | HTTP (default) | `[--url URL] [--connections N] [--duration D] [--rate R] [--sent-log FILE]` | [`load`], [`senders`] | a receiver, a signing key |
//! | bare `LPUSH` | `--lpush-baseline [--connections N] [--duration D] [--rate R]` | [`load`], [`senders`] | Redis |
//! | backlog fill | `--fill N` | [`bulk`] | Redis |
//! | SQL baseline | `--sql-baseline N [--batch-size B]` | [`bulk`] | Postgres |
//! | statistics | `--stats 250000,2500000` | [`stats_stage`] | Postgres (a database of its own) |
//! | dashboard | `--dashboard http://IP:PORT` | [`dashboard_stage`] | `mailtrail-api` on the statistics stage's database |
//! | chaos load | `--chaos-send N --plan FILE [--url URL] [--connections N] [--rate R] [--give-up-after D]` | [`chaos`] | a receiver, a signing key |
//! | chaos check | `--chaos-check --plan FILE` | [`chaos`] | Postgres, Redis |
//! | proxy | `--proxy LISTEN --proxy-target ADDR` | [`proxy`] | nothing |
//! | conversions | `--conversions N --api-url URL --token T [--per-report K] [--connections N]` | [`conversions_stage`] | the read API, a worker, Postgres |
//!
//! - **HTTP** posts realistic, signed JSON webhooks ([`bodies`]: about 2 KB each, a unique token
//!   each, three events per message id) to a receiver over `--connections` keep-alive HTTP/1.1
//!   connections, for `--duration`, either as fast as the receiver answers or at a fixed offered
//!   `--rate`. It reports requests/s, latency percentiles and every answer that was not 200.
//! - **`--lpush-baseline`** paces, connects and measures exactly as the HTTP mode, but each
//!   connection is a Redis connection sending a bare `LPUSH` of the envelope the receiver would
//!   queue for the webhook: the latency floor the receiver's answers sit on (every push waits
//!   for Redis' append-only-file fsync), measured at the same offered rate.
//! - **`--fill N`** and **`--sql-baseline N`** time a backlog fill and the store's upsert
//!   statement alone, the worker's input and its ceiling.
//! - **`--chaos-send`**, **`--chaos-check`** and **`--proxy`** are `just chaos`
//!   (`scripts/chaos.sh`): webhooks posted until each is answered 200 while everything around
//!   them is killed and restarted, a check that each landed exactly once, and a TCP proxy that
//!   refuses connections on a signal, between the workers and Postgres.
//! - **`--conversions N`** posts conversion reports to the read API and times them until the
//!   worker has stored every one: conversions/s through API, queue and worker.
//!
//! It is a binary of its own so that the operator CLI, `mailtrail`, links neither the worker nor
//! an HTTP server or client stack. `main.rs` parses the arguments, reads [`BenchConfig`] and
//! calls [`run`], which writes its report to the `out` it is given.

pub mod bodies;
pub mod bulk;
pub mod chaos;
pub mod conversions_stage;
pub mod dashboard_stage;
pub mod environment;
pub mod load;
pub mod proxy;
pub mod senders;
pub mod stats_stage;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mailtrail_cli::clock::parse_duration;
use mailtrail_core::SigningKey;

pub use environment::{BenchConfig, BenchConfigError, BenchEnv};
pub use load::LoadReport;

/// `mailtrail-bench`: load for benchmarks. Post signed webhooks at full speed or a fixed rate,
/// push bare LPUSHes at the same pace, fill the backlog, or time the store's upsert alone.
#[derive(Parser, Clone, Debug)]
#[command(name = "mailtrail-bench", version, about, long_about = None)]
pub struct BenchArgs {
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
    /// Seed a database up to each of these message counts (ascending, comma-separated) through
    /// the worker's statement and time the four statistics questions from the counters and by
    /// GROUP BY (needs DATABASE_URL; a database of its own: it writes millions of rows).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["rate", "fill", "sql_baseline", "sent_log", "lpush_baseline"])]
    pub stats: Option<Vec<u64>>,
    /// Time the dashboard's main pages on the `mailtrail-api` at this URL, serving the database
    /// `--stats` seeded (needs DATABASE_URL, to make and revoke its tokens).
    #[arg(long, conflicts_with_all = ["rate", "fill", "sql_baseline", "sent_log", "lpush_baseline", "stats"])]
    pub dashboard: Option<String>,
    /// Post N chaos webhooks (good events, events without backer_id, bodies that name no event)
    /// until each is answered 200, and write what must be stored to --plan.
    #[arg(long, requires = "plan", conflicts_with_all = ["fill", "sql_baseline", "lpush_baseline", "sent_log", "chaos_check", "proxy"])]
    pub chaos_send: Option<usize>,
    /// Compare Postgres and Redis with the --plan of a chaos run, once its queue is drained
    /// (needs DATABASE_URL and REDIS_URL).
    #[arg(long, requires = "plan", conflicts_with_all = ["fill", "sql_baseline", "lpush_baseline", "sent_log", "proxy"])]
    pub chaos_check: bool,
    /// The plan of a chaos run: written by --chaos-send, read by --chaos-check.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// How long --chaos-send keeps retrying a webhook not yet answered 200.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub give_up_after: Duration,
    /// Listen here and forward to --proxy-target; SIGUSR1 refuses connections, SIGUSR2 accepts
    /// again.
    #[arg(long, requires = "proxy_target", conflicts_with_all = ["fill", "sql_baseline", "lpush_baseline", "sent_log"])]
    pub proxy: Option<SocketAddr>,
    /// Where --proxy forwards to.
    #[arg(long, requires = "proxy")]
    pub proxy_target: Option<SocketAddr>,
    /// Post N conversions to the read API (--api-url, --token) and time them until the worker
    /// stored them all (needs DATABASE_URL).
    #[arg(long, requires_all = ["api_url", "token"], conflicts_with_all = ["fill", "sql_baseline", "lpush_baseline", "sent_log", "stats", "chaos_send", "chaos_check", "proxy"])]
    pub conversions: Option<u64>,
    /// The read API's base URL, for --conversions.
    #[arg(long)]
    pub api_url: Option<String>,
    /// A read API token, for --conversions.
    #[arg(long)]
    pub token: Option<String>,
    /// Conversions per report (request) for --conversions (the API takes up to 1,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub per_report: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the mode `args` name and writes its report to `out`.
pub async fn run(
    config: &BenchConfig,
    args: &BenchArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if let (Some(listen), Some(target)) = (args.proxy, args.proxy_target) {
        proxy::run(listen, target, out).await?;
    } else if let (Some(count), Some(plan)) = (args.chaos_send, &args.plan) {
        let report = chaos::send(
            config,
            args.url.as_deref(),
            count,
            args.connections,
            args.rate,
            args.give_up_after,
            plan,
        )
        .await?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            report.write_text(out)?;
        }
    } else if let (true, Some(plan)) = (args.chaos_check, &args.plan) {
        let check = chaos::check(config, plan).await?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&check)?)?;
        } else {
            check.write_text(out)?;
        }
        out.flush().context("cannot write the output")?;
        anyhow::ensure!(check.holds(), "the chaos run did not land exactly once");
    } else if let (Some(count), Some(api_url), Some(token)) =
        (args.conversions, &args.api_url, &args.token)
    {
        conversions_stage::run(
            config,
            api_url,
            token,
            count,
            args.per_report as usize,
            args.connections,
        )
        .await?
        .write(out, args.json)?;
    } else if let Some(sizes) = &args.stats {
        stats_stage::run(config, sizes, args.json, out).await?;
    } else if let Some(url) = &args.dashboard {
        dashboard_stage::run(config, url, args.json, out).await?;
    } else if let Some(count) = args.fill {
        bulk::fill(config, count).await?.write(out, args.json)?;
    } else if let Some(count) = args.sql_baseline {
        bulk::sql_baseline(config, count, args.batch_size as usize)
            .await?
            .write(out, args.json)?;
    } else {
        let key = config.signing_key()?;
        let report = if args.lpush_baseline {
            lpush_baseline(config, &key, args).await?
        } else {
            let base = args.url.as_deref().unwrap_or(config.receiver_url());
            load::run_load(&key, senders::http_target(base).await?, args).await?
        };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            report.write_text(out)?;
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// `--lpush-baseline`: the load run against a scratch list beside the backlog, deleted after.
async fn lpush_baseline(
    config: &BenchConfig,
    key: &SigningKey,
    args: &BenchArgs,
) -> anyhow::Result<LoadReport> {
    let queue = config.connect_queue().await?;
    let list = format!("{}load:lpush-baseline", queue.keys().base());
    let target = senders::Target::Redis {
        client: redis::Client::open(config.queue_settings().url)
            .context("REDIS_URL is not a usable Redis URL")?,
        list: list.clone(),
    };
    let report = load::run_load(key, target.clone(), args).await;
    // The baseline's list is scratch: never leave it behind, whatever happened. It is no queue
    // key, so it is deleted over the baseline's own client, like it was filled.
    if let senders::Target::Redis { client, list } = &target
        && let Ok(mut connection) = client.get_multiplexed_async_connection().await
    {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(list)
            .query_async(&mut connection)
            .await;
    }
    report
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parses(args: &[&str]) -> bool {
        BenchArgs::try_parse_from([&["mailtrail-bench"], args].concat()).is_ok()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        BenchArgs::command().debug_assert();
    }

    #[test]
    fn modes_exclude_the_flags_of_the_others() {
        assert!(parses(&[]));
        assert!(parses(&["--connections", "8", "--duration", "5s"]));
        assert!(parses(&["--rate", "2000", "--sent-log", "x.csv"]));
        assert!(parses(&["--fill", "1000"]));
        assert!(parses(&["--sql-baseline", "1000", "--batch-size", "200"]));
        assert!(parses(&[
            "--lpush-baseline",
            "--rate",
            "2000",
            "--duration",
            "10s"
        ]));
        assert!(!parses(&["--fill", "10", "--rate", "5"]));
        assert!(!parses(&["--connections", "0"]));
        assert!(!parses(&[
            "--lpush-baseline",
            "--url",
            "http://127.0.0.1:8080"
        ]));
        assert!(!parses(&["--duration", "10"]));
        assert!(parses(&[
            "--chaos-send",
            "100",
            "--plan",
            "p.json",
            "--rate",
            "50"
        ]));
        assert!(!parses(&["--chaos-send", "100"]));
        assert!(parses(&["--chaos-check", "--plan", "p.json"]));
        assert!(!parses(&[
            "--chaos-check",
            "--plan",
            "p.json",
            "--fill",
            "3"
        ]));
        assert!(parses(&[
            "--proxy",
            "127.0.0.1:1",
            "--proxy-target",
            "127.0.0.1:2"
        ]));
        assert!(!parses(&["--proxy", "127.0.0.1:1"]));
        assert!(parses(&[
            "--conversions",
            "1000",
            "--api-url",
            "http://127.0.0.1:8081",
            "--token",
            "mt_x"
        ]));
        assert!(!parses(&["--conversions", "1000"]));
    }
}
