//! `--dashboard URL`: the dashboard stage of `just bench`.
//!
//! Run against `mailtrail-api` serving the database the statistics stage seeded (2,000 projects,
//! project 0 the largest, 90 days ending 2026-11-30). It makes two tokens of its own (staff, and
//! project 0's), asks each main page [`RUNS`] times one after the other over one keep-alive
//! connection (after [`WARM_UP`] unmeasured requests), and reports the median, p99 and maximum
//! time from sending the request to reading the last byte of the page: the server's time plus
//! a loopback round trip, so an upper bound on what the server spends. The first request of
//! each page is reported apart (`first_ms`): the overview's rankings are kept for a minute, so
//! only the first of a minute pays for reading them. The tokens are revoked at the end.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{COOKIE, HOST};
use hyper_util::rt::TokioIo;
use mailtrail_store::tokens::{TokenScope, create_token, revoke_token};
use serde::Serialize;

use crate::environment::BenchConfig;

/// Measured requests per page.
const RUNS: usize = 100;
/// Unmeasured requests per page first (connection, caches, Postgres plans).
const WARM_UP: usize = 5;

/// One timed page.
#[derive(Clone, Debug, Serialize)]
pub struct PageTiming {
    /// The page, as requested.
    pub page: String,
    /// Which token asked.
    pub token: &'static str,
    /// The answer's status (every run's; a different one fails the stage).
    pub status: u16,
    /// The page's size in bytes.
    pub bytes: usize,
    /// Milliseconds of the very first request (cold: nothing cached in the API, the rankings
    /// included).
    pub first_ms: f64,
    /// Median milliseconds.
    pub p50_ms: f64,
    /// 99th percentile milliseconds.
    pub p99_ms: f64,
    /// Slowest milliseconds.
    pub max_ms: f64,
}

/// The pages timed: (path, use the staff token). Ranges are the seeded period's last 30 days and
/// all of its 90.
const PAGES: [(&str, bool); 8] = [
    ("/overview?since=2026-11-01&until=2026-11-30", true),
    ("/overview?since=2026-09-02&until=2026-11-30", true),
    ("/projects/0?since=2026-11-01&until=2026-11-30", false),
    ("/projects/0?since=2026-09-02&until=2026-11-30", false),
    (
        "/projects/0?since=2026-09-02&until=2026-11-30&sort=bounce&dir=desc",
        false,
    ),
    ("/backers/7", true),
    ("/backers/7", false),
    ("/messages/bench-7%40mg.example.com", true),
];

async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to the API at {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One GET: its status, size and milliseconds.
async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, usize, f64)> {
    let request = Request::get(path)
        .header(HOST, host)
        .header(COOKIE, format!("mailtrail_session={token}"))
        .body(Empty::new())?;
    let started = Instant::now();
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.len(), started.elapsed().as_secs_f64() * 1000.0))
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    let index = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Times every page of [`PAGES`] on the API at `url` and writes one line per page.
pub async fn run(
    config: &BenchConfig,
    url: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let address: SocketAddr = host
        .parse()
        .with_context(|| format!("--dashboard wants http://IP:PORT, got {url}"))?;
    let mut connection = config.connect_store("--dashboard").await?;
    let suffix = std::process::id();
    let (staff_name, creator_name) = (
        format!("bench-dashboard-staff-{suffix}"),
        format!("bench-dashboard-project-0-{suffix}"),
    );
    let staff = create_token(&mut connection, &staff_name, TokenScope::All).await?;
    let creator = create_token(&mut connection, &creator_name, TokenScope::Project(0)).await?;
    let result = time_pages(address, &host, &staff, &creator, json, out).await;
    revoke_token(&mut connection, &staff_name).await?;
    revoke_token(&mut connection, &creator_name).await?;
    result
}

async fn time_pages(
    address: SocketAddr,
    host: &str,
    staff: &str,
    creator: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut sender = connect(address).await?;
    for (page, as_staff) in PAGES {
        let (token, who) = if as_staff {
            (staff, "staff")
        } else {
            (creator, "project 0")
        };
        let mut millis = Vec::with_capacity(RUNS);
        let (mut status, mut bytes, mut first_ms) = (0, 0, 0.0);
        for run in 0..WARM_UP + RUNS {
            let (answered, size, elapsed) = get(&mut sender, host, page, token).await?;
            anyhow::ensure!(
                run == 0 || answered == status,
                "{page} answered {answered}, then {status}"
            );
            (status, bytes) = (answered, size);
            if run == 0 {
                first_ms = elapsed;
            }
            if run >= WARM_UP {
                millis.push(elapsed);
            }
        }
        millis.sort_by(f64::total_cmp);
        let timing = PageTiming {
            page: page.to_owned(),
            token: who,
            status,
            bytes,
            first_ms,
            p50_ms: percentile(&millis, 0.5),
            p99_ms: percentile(&millis, 0.99),
            max_ms: percentile(&millis, 1.0),
        };
        if json {
            writeln!(out, "{}", serde_json::to_string(&timing)?)?;
        } else {
            writeln!(
                out,
                "{page} ({who}): {status}, {bytes} bytes; first {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                timing.first_ms, timing.p50_ms, timing.p99_ms, timing.max_ms
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_timings() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
