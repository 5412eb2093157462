//! The load generator against the real receiver (in this process, on port 0), Redis and
//! Postgres: what it reports is what happened. Nothing here asserts a speed; benchmarks are not
//! tests. Each run goes through the library's `run`, as the binary does, with a configuration of
//! its own (nothing from the developer's shell leaks in); one test runs the binary itself.

use std::collections::BTreeSet;
use std::process::Command;

use clap::Parser;
use mailtrail_bench::{BenchArgs, BenchConfig};
use mailtrail_core::Envelope;
use mailtrail_core::mailgun::{WebhookFormat, read_signature};
use mailtrail_core::{Verdict, triage};
use mailtrail_testing::{TestApp, TestDatabase, TestRedis};
use serde_json::Value;

const KEY: &str = "load-test-key";

/// A receiver on port 0 under the test's Redis prefix, accepting the load generator's key.
async fn start_receiver() -> TestApp {
    TestApp::builder()
        .receiver_only()
        .signing_keys(KEY)
        .build()
        .await
}

/// One run of the load generator, configured by `env` alone.
struct Bench {
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Bench {
    /// `mailtrail-bench ARGS...` with no configuration at all.
    fn new(args: &[&str]) -> Self {
        Self {
            env: Vec::new(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        }
    }

    /// Points `REDIS_URL` and `MAILTRAIL_REDIS_PREFIX` at the test's Redis prefix.
    fn redis(self, redis: &TestRedis) -> Self {
        self.env("REDIS_URL", redis.url())
            .env("MAILTRAIL_REDIS_PREFIX", redis.prefix())
    }

    /// Points `DATABASE_URL` at the test's database.
    fn database(self, database: &TestDatabase) -> Self {
        self.env("DATABASE_URL", database.url())
    }

    /// Sets any other variable.
    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs it and returns its JSON report.
    async fn report(self) -> Value {
        let config = BenchConfig::from_vars(envy::from_iter(self.env).unwrap());
        let args = BenchArgs::try_parse_from(
            std::iter::once("mailtrail-bench".to_owned()).chain(self.args),
        )
        .unwrap();
        let mut out = Vec::new();
        mailtrail_bench::run(&config, &args, &mut out)
            .await
            .unwrap();
        let stdout = String::from_utf8(out).unwrap();
        serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
    }
}

/// The `event-data.id` of every queued webhook.
fn queued_event_ids(redis: &TestRedis) -> Vec<String> {
    redis
        .queued_event_data()
        .iter()
        .map(|data| data["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_speed_run_counts_its_200s_and_the_backlog_grew_by_as_many() {
    let receiver = start_receiver().await;
    let url = receiver.receiver_url();
    let report = Bench::new(&[
        "--url",
        url,
        "--connections",
        "4",
        "--duration",
        "1s",
        "--bodies",
        "400",
        "--json",
    ])
    .env("MAILTRAIL_SIGNING_KEYS", KEY)
    .report()
    .await;
    let ok = report["ok"].as_u64().unwrap();
    assert!(ok > 0, "{report}");
    assert_eq!(report["answered"].as_u64().unwrap(), ok, "{report}");
    assert_eq!(report["transport_errors"], 0, "{report}");
    assert_eq!(report["non_200"], Value::Array(vec![]), "{report}");
    assert!(report["p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
    // Every 200 is one envelope on the backlog: unique tokens, so none was a duplicate.
    let queued = queued_event_ids(receiver.redis());
    assert_eq!(queued.len() as u64, ok);
    assert_eq!(queued.iter().collect::<BTreeSet<_>>().len() as u64, ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_rate_run_sends_what_is_due_and_logs_every_accepted_webhook() {
    let receiver = start_receiver().await;
    let url = receiver.receiver_url();
    let sent_log = std::env::temp_dir().join(format!(
        "{}-sent.csv",
        receiver.redis().prefix().trim_end_matches(':')
    ));
    let report = Bench::new(&[
        "--url",
        url,
        "--connections",
        "2",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--sent-log",
        sent_log.to_str().unwrap(),
        "--json",
    ])
    .env("MAILTRAIL_SIGNING_KEYS", KEY)
    .report()
    .await;
    // 200 per second for one second: requests due at 0, 5, ..., 995 ms.
    assert_eq!(report["ok"], 200, "{report}");
    assert_eq!(report["offered_rate"], 200, "{report}");
    let logged: BTreeSet<String> = std::fs::read_to_string(&sent_log)
        .unwrap()
        .lines()
        .map(|line| {
            let (event_id, answered_at_us) = line.split_once(',').unwrap();
            assert!(answered_at_us.parse::<i64>().unwrap() > 1_700_000_000_000_000);
            event_id.to_owned()
        })
        .collect();
    let _ = std::fs::remove_file(&sent_log);
    let queued: BTreeSet<String> = queued_event_ids(receiver.redis()).into_iter().collect();
    assert_eq!(logged.len(), 200);
    assert_eq!(logged, queued);
}

#[tokio::test(flavor = "multi_thread")]
async fn fill_pushes_exactly_n_envelopes_the_worker_would_store() {
    let redis = TestRedis::new();
    // More than two pipelined chunks, and not a multiple of the chunk size.
    let report = Bench::new(&["--fill", "2345", "--json"])
        .redis(&redis)
        .env("MAILTRAIL_SIGNING_KEYS", KEY)
        .report()
        .await;
    assert_eq!(report["count"], 2345);
    let envelopes = redis.list("events");
    assert_eq!(envelopes.len(), 2345);
    let mut tokens = BTreeSet::new();
    for line in &envelopes {
        let envelope = Envelope::from_json(line).unwrap();
        assert_eq!(envelope.content_type, "application/json");
        let body = envelope.body_bytes().unwrap();
        assert!((1900..=2300).contains(&body.len()), "{}", body.len());
        tokens.insert(
            read_signature(&WebhookFormat::Json, &body)
                .unwrap()
                .token
                .to_string(),
        );
        assert!(
            matches!(triage(line).as_deref(), Ok([Verdict::Store(_)])),
            "{line}"
        );
    }
    assert_eq!(tokens.len(), 2345);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_baseline_writes_every_event_with_the_stores_statement() {
    let database = TestDatabase::create().await;
    let report = Bench::new(&["--sql-baseline", "1200", "--batch-size", "500", "--json"])
        .database(&database)
        .report()
        .await;
    assert_eq!(report["count"], 1200, "{report}");
    assert_eq!(report["batch_size"], 500, "{report}");
    let events = database.stored_events().await;
    let rows = database.stored_rows().await;
    // Three events (accepted, delivered, opened) per message.
    assert_eq!((events, rows), (1200, 400));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lpush_baseline_paces_bare_pushes_and_leaves_no_list_behind() {
    let redis = TestRedis::new();
    let report = Bench::new(&[
        "--lpush-baseline",
        "--connections",
        "2",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--json",
    ])
    .redis(&redis)
    .env("MAILTRAIL_SIGNING_KEYS", KEY)
    .report()
    .await;
    // 200 per second for one second, each an LPUSH answered by Redis.
    assert_eq!(report["ok"], 200, "{report}");
    assert_eq!(report["transport_errors"], 0, "{report}");
    assert!(report["p99_ms"].as_f64().unwrap() > 0.0, "{report}");
    // The baseline's scratch list is gone, and the real backlog was never touched.
    assert!(redis.list("load:lpush-baseline").is_empty());
    assert!(redis.list("events").is_empty());
}

#[test]
fn the_binary_reads_its_environment_and_names_the_variable_a_mode_needs() {
    let output = Command::new(env!("CARGO_BIN_EXE_mailtrail-bench"))
        .args(["--sql-baseline", "10", "--json"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("DATABASE_URL is not set; `mailtrail-bench --sql-baseline` needs it"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
