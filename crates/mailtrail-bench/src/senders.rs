//! Where load goes, and how one connection sends a body and reads its answer.
//!
//! The HTTP client is hyper's bare HTTP/1.1 connection (one task per connection, no pool, no
//! URL parsing per request), which leaves more of a shared machine to the receiver than a pooled
//! client would. The Redis sender gives each connection a Redis connection of its own, as each
//! of `redis-benchmark`'s clients has, so the LPUSH baseline is paced and measured exactly like
//! the receiver. Both reopen their connection after a transport error.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

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

/// A request failed below the protocol's answer (refused, reset, an error reply).
pub struct SendFailed;

/// One connection's way of sending a body and reading its answer.
pub trait Sender: Send + 'static {
    /// Sends `body`; the answer's HTTP status (a Redis reply counts as 200).
    fn send(&mut self, body: &Bytes) -> impl Future<Output = Result<u16, SendFailed>> + Send;
}

/// A keep-alive HTTP/1.1 connection to the receiver, reopened after a transport error.
pub struct HttpSender {
    address: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpSender {
    /// A sender to the receiver at `address`, connecting on its first send.
    pub fn new(address: SocketAddr, host: String) -> Self {
        Self {
            address,
            host,
            sender: None,
        }
    }
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

/// Opens one HTTP/1.1 connection; its driver runs as a task of its own.
async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A Redis connection of its own, reopened after an error.
pub struct RedisSender {
    client: redis::Client,
    list: String,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl RedisSender {
    /// A sender pushing onto `list`, connecting on its first send.
    pub fn new(client: redis::Client, list: String) -> Self {
        Self {
            client,
            list,
            connection: None,
        }
    }
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
