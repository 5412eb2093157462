//! `--proxy LISTEN --proxy-target ADDR`: a TCP proxy that a script can make refuse connections,
//! to take Postgres "down" for a worker without touching the Postgres everyone else uses.
//!
//! SIGUSR1 drops every open connection and closes the listening socket, so new connections are
//! refused (ECONNREFUSED), as with a Postgres that is down; SIGUSR2 listens again on the same
//! address. SIGTERM or SIGINT ends it. Like `mailtrail_testing::ChaosProxy`, which the tests use
//! in-process, but a process of its own for `scripts/chaos.sh`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Runs the proxy until SIGTERM or SIGINT; each change of state is a line on `out`.
pub async fn run(
    listen: SocketAddr,
    target: SocketAddr,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut refuse = signal(SignalKind::user_defined1()).context("cannot listen for SIGUSR1")?;
    let mut accept = signal(SignalKind::user_defined2()).context("cannot listen for SIGUSR2")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    // Bumped at every cut: each forwarding task ends when it changes.
    let (generation, _) = watch::channel(0_u64);
    loop {
        let listener = bind(listen).await?;
        writeln!(out, "proxy: forwarding {listen} to {target}")?;
        out.flush()?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { continue };
                    tokio::spawn(forward(client, target, generation.subscribe()));
                }
                _ = refuse.recv() => break,
                _ = terminate.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
            }
        }
        drop(listener);
        generation.send_modify(|generation| *generation += 1);
        writeln!(out, "proxy: refusing connections")?;
        out.flush()?;
        tokio::select! {
            _ = accept.recv() => {}
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
    }
}

/// Binds `listen`, retrying briefly: the port may still be held by connections being closed.
async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(listen).await {
            Ok(listener) => return Ok(listener),
            Err(error) if tries < 50 => {
                tries += 1;
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("cannot listen on {listen}")),
        }
    }
}

/// Copies between `client` and a new connection to `target` until either side closes or the
/// proxy cuts.
async fn forward(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}
