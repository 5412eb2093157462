//! `--conversions N --api-url URL --token T`: conversions per second through the read API, the
//! queue and the worker.
//!
//! Posts N conversions to `POST /v1/conversions` in reports of `--per-report` over
//! `--connections` keep-alive HTTP/1.1 connections, as fast as the API answers, then waits until
//! the worker has stored every one (`conversions` in Postgres, so it needs `DATABASE_URL`). The
//! conversions go to the backers and projects the webhook bodies use ([`crate::bodies`]), dated
//! within the last day, so a database that holds the other stages' emails credits some of them:
//! the worker pays for attribution as it would in production.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::BenchConfig;
use crate::senders::{Target, http_target};

/// How long the worker may take to store everything after the last report was accepted.
const STORE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the stage measured.
#[derive(Debug, Serialize)]
pub struct ConversionsReport {
    /// Conversions posted.
    pub conversions: u64,
    /// Reports (requests) they were posted in.
    pub reports: u64,
    /// Reports not answered 202 (or not answered).
    pub not_accepted: u64,
    /// From the first post to the last 202, in seconds.
    pub api_seconds: f64,
    /// Conversions accepted per second by the API (queued).
    pub accepted_per_s: f64,
    /// From the first post to the last conversion stored, in seconds.
    pub stored_seconds: f64,
    /// Conversions per second through API, queue and worker.
    pub stored_per_s: f64,
    /// Of them, credited to an email.
    pub attributed: u64,
}

impl ConversionsReport {
    /// The report as text or one JSON line.
    pub fn write(&self, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
        if json {
            writeln!(out, "{}", serde_json::to_string(self)?)?;
        } else {
            writeln!(
                out,
                "{} conversions in {} reports: accepted {:.0}/s ({} not accepted), stored {:.0}/s \
                 through API, queue and worker ({} attributed)",
                self.conversions,
                self.reports,
                self.accepted_per_s,
                self.not_accepted,
                self.stored_per_s,
                self.attributed
            )?;
        }
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    stored: i64,
    #[diesel(sql_type = BigInt)]
    attributed: i64,
}

/// Runs the stage; `run_id` keeps the conversion ids of two runs on one database apart.
pub async fn run(
    config: &BenchConfig,
    api_url: &str,
    token: &str,
    count: u64,
    per_report: usize,
    connections: u32,
) -> anyhow::Result<ConversionsReport> {
    let Target::Http { address, host } = http_target(api_url).await? else {
        anyhow::bail!("--api-url must be an http:// URL");
    };
    let mut store = config.connect_store("conversions").await?;
    let counts = async |store: &mut mailtrail_store::StoreConnection| {
        diesel::sql_query(
            "SELECT count(*) AS stored, count(*) FILTER (WHERE attributed_by <> 'none') AS attributed
             FROM conversions WHERE conversion_id LIKE 'bench-%'",
        )
        .get_result::<Counts>(store)
        .await
        .context("cannot count the stored conversions")
    };
    let before = counts(&mut store).await?.stored;
    let run_id = mailtrail_queue::now_ms();
    let reports: Arc<Vec<Bytes>> = Arc::new(
        (0..count)
            .collect::<Vec<_>>()
            .chunks(per_report.max(1))
            .map(|chunk| Bytes::from(report(run_id, chunk)))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let authorization = format!("Bearer {token}");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (reports, next, refused) = (reports.clone(), next.clone(), refused.clone());
        let (host, authorization) = (host.clone(), authorization.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = reports.get(index) else {
                    return anyhow::Ok(());
                };
                let request = Request::post("/v1/conversions")
                    .header(HOST, host.as_str())
                    .header(CONTENT_TYPE, "application/json")
                    .header(AUTHORIZATION, authorization.as_str())
                    .body(Full::new(body.clone()))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                if response.status().as_u16() != 202 {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                response.into_body().collect().await?;
            }
        }));
    }
    for task in tasks {
        task.await.context("a sender task panicked")??;
    }
    let api_seconds = started.elapsed().as_secs_f64();
    let expected = before + i64::try_from(count).unwrap_or(i64::MAX);
    let deadline = Instant::now() + STORE_TIMEOUT;
    let stored = loop {
        let now = counts(&mut store).await?;
        if now.stored >= expected {
            break now;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the worker stored {} of {count} conversions in {} s",
            now.stored - before,
            STORE_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stored_seconds = started.elapsed().as_secs_f64();
    Ok(ConversionsReport {
        conversions: count,
        reports: reports.len() as u64,
        not_accepted: AtomicU64::load(&refused, Ordering::Relaxed),
        api_seconds,
        accepted_per_s: count as f64 / api_seconds,
        stored_seconds,
        stored_per_s: count as f64 / stored_seconds,
        attributed: u64::try_from(stored.attributed).unwrap_or(0),
    })
}

/// One report: conversions `numbers` of this run, to the webhook bodies' backers and projects.
fn report(run_id: i64, numbers: &[u64]) -> String {
    let now = chrono::Utc::now();
    let items: Vec<serde_json::Value> = numbers
        .iter()
        .map(|&n| {
            let occurred_at = now - chrono::Duration::seconds((n % 86_400) as i64);
            serde_json::json!({
                "id": format!("bench-{run_id}-{n}"),
                "backer_id": (n % 100_000) + 1,
                "project_id": (n % 97) + 1,
                "kind": "pledge",
                "occurred_at": occurred_at.to_rfc3339(),
                "value_cents": 500 + n % 10_000,
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}
