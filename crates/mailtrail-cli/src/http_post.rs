//! A minimal HTTP/1.1 client that does one thing: POST a body to a plain `http://` URL and read
//! the answer's status and body. `mailtrail send-sample` posts its webhooks with it.
//!
//! Why our own: the Rust HTTP client libraries sit on hyper (reqwest does, even with every
//! feature off), and the operator CLI should not link an HTTP stack, with its runtime
//! machinery, to send a few dozen requests to a receiver. What is needed is small enough to read
//! in one sitting:
//!
//! - one connection per request, announced with `Connection: close`, so there is no keep-alive
//!   state to get wrong; the answer is read until it is complete by its own framing
//!   (`Content-Length` or chunked) or, without framing, until the server closes;
//! - plain `http://` only, as before (the client it replaces was built without TLS too): the
//!   receiver listens on plain HTTP behind whatever terminates TLS;
//! - the whole exchange, connecting included, is bounded by one timeout, and an answer larger
//!   than [`ANSWER_LIMIT`] is refused rather than buffered.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer read: a receiver's answers are a few bytes of JSON.
pub const ANSWER_LIMIT: usize = 1024 * 1024;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// `host:port`, the port defaulting to 80, to connect to.
    address: String,
    /// The path and query, at least `/`.
    path: String,
}

impl HttpUrl {
    /// Parses `url`; only plain `http://` URLs without credentials are accepted.
    pub fn parse(url: &str) -> Result<Self, PostError> {
        let invalid = |reason| PostError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("not an http:// URL (https is not supported)"))?;
        // They would end the request line or a header early.
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains spaces or control characters"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(invalid("user names and passwords are not supported"));
        }
        // An IPv6 literal is bracketed, and only a colon after the bracket starts a port.
        let host_end = if authority.starts_with('[') {
            authority
                .find(']')
                .map(|at| at + 1)
                .ok_or_else(|| invalid("unclosed ["))?
        } else {
            authority.find(':').unwrap_or(authority.len())
        };
        if host_end == 0 {
            return Err(invalid("no host"));
        }
        let address = match &authority[host_end..] {
            "" => format!("{authority}:80"),
            port => match port.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(_)) => authority.to_owned(),
                _ => return Err(invalid("the port is not a number from 0 to 65535")),
            },
        };
        Ok(Self {
            authority: authority.to_owned(),
            address,
            path,
        })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// The server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not one this client can post to.
    #[error("`{url}` cannot be posted to: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server's answer is not HTTP/1.x as this client reads it.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

/// POSTs `body` as `content_type` to `url` and reads the answer, all within `timeout`.
pub async fn post(
    url: &HttpUrl,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, PostError> {
    tokio::time::timeout(timeout, exchange(url, content_type, body))
        .await
        .map_err(|_| PostError::Timeout(timeout))?
}

async fn exchange(url: &HttpUrl, content_type: &str, body: &[u8]) -> Result<Answer, PostError> {
    let mut stream = TcpStream::connect(&url.address).await?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;

    let mut received = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        let read = stream.read(&mut chunk).await?;
        received.extend_from_slice(&chunk[..read]);
        if received.len() > ANSWER_LIMIT {
            return Err(PostError::Malformed("the answer is larger than 1 MiB"));
        }
        if let Some(answer) = parse_answer(&received, read == 0)? {
            return Ok(answer);
        }
        if read == 0 {
            // parse_answer decides at the end of the stream; this only guards the loop.
            return Err(PostError::Malformed("the connection closed early"));
        }
    }
}

/// Reads a complete answer from `bytes`: `None` while more is needed, an error when the
/// bytes cannot become one (or the connection closed, `at_eof`, before they did).
pub fn parse_answer(bytes: &[u8], at_eof: bool) -> Result<Option<Answer>, PostError> {
    let incomplete = |what| {
        if at_eof {
            Err(PostError::Malformed(what))
        } else {
            Ok(None)
        }
    };
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return incomplete("the connection closed before the headers ended");
    };
    let head = std::str::from_utf8(&bytes[..head_end])
        .map_err(|_| PostError::Malformed("the headers are not UTF-8"))?;
    let rest = &bytes[head_end + 4..];
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next().unwrap_or_default().splitn(3, ' ');
    let status = match (status_line.next(), status_line.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") && code.len() == 3 => {
            code.parse::<u16>().ok()
        }
        _ => None,
    }
    .filter(|code| (100..600).contains(code))
    .ok_or(PostError::Malformed("the status line is not HTTP/1.x"))?;
    if (100..200).contains(&status) {
        // An interim answer (100 Continue): the real one follows.
        return parse_answer(rest, at_eof);
    }
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(PostError::Malformed("a header line has no colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<usize>()
                .map_err(|_| PostError::Malformed("Content-Length is not a number"))?;
            content_length = Some(length);
        }
    }
    if status == 204 || status == 304 {
        return Ok(Some(Answer {
            status,
            body: Vec::new(),
        }));
    }
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None => return incomplete("the connection closed inside a chunked body"),
        }
    } else if let Some(length) = content_length {
        match rest.get(..length) {
            Some(body) => body.to_vec(),
            None => return incomplete("the body is shorter than its Content-Length"),
        }
    } else if at_eof {
        // No framing: the body is whatever came before the server closed.
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Answer { status, body }))
}

/// Decodes a chunked body: `None` until its last (zero-sized) chunk has arrived.
fn dechunk(mut bytes: &[u8]) -> Result<Option<Vec<u8>>, PostError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&bytes[..line_end])
            .ok()
            .and_then(|line| line.split(';').next())
            .map(str::trim)
            .ok_or(PostError::Malformed("a chunk size is not text"))?;
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| PostError::Malformed("a chunk size is not hexadecimal"))?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // Trailers, if any, are not needed.
            return Ok(Some(body));
        }
        let Some(data) = bytes.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        match bytes.get(size..size + 2) {
            Some(b"\r\n") => bytes = &bytes[size + 2..],
            Some(_) => return Err(PostError::Malformed("a chunk does not end with CRLF")),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    fn answer(bytes: &[u8], at_eof: bool) -> Option<Answer> {
        parse_answer(bytes, at_eof).unwrap()
    }

    #[test]
    fn urls_name_the_host_header_the_address_and_the_path() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/webhooks/mailgun").unwrap();
        assert_eq!(url.authority, "127.0.0.1:8080");
        assert_eq!(url.address, "127.0.0.1:8080");
        assert_eq!(url.path, "/webhooks/mailgun");
        assert_eq!(url.to_string(), "http://127.0.0.1:8080/webhooks/mailgun");
        let bare = HttpUrl::parse("http://receiver.internal").unwrap();
        assert_eq!(
            (bare.address.as_str(), bare.path.as_str()),
            ("receiver.internal:80", "/")
        );
        let query = HttpUrl::parse("http://h?x=1#top").unwrap();
        assert_eq!(query.path, "/?x=1");
        let v6 = HttpUrl::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(
            (v6.address.as_str(), v6.authority.as_str()),
            ("[::1]:9000", "[::1]:9000")
        );
        assert_eq!(HttpUrl::parse("http://[::1]/").unwrap().address, "[::1]:80");
        for bad in [
            "https://h/x",
            "h:8080/x",
            "http:///x",
            "http://:80/x",
            "http://user:pw@h/x",
            "http://h:port/x",
            "http://h:70000/x",
            "http://[::1/x",
            "http://h/a b",
            "http://h/x\r\nX-Injected: 1",
        ] {
            assert!(
                matches!(HttpUrl::parse(bad), Err(PostError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_are_complete_by_their_own_framing() {
        let framed = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!";
        assert_eq!(
            answer(framed, false),
            Some(Answer {
                status: 401,
                body: b"nope!".to_vec()
            })
        );
        assert_eq!(answer(&framed[..framed.len() - 1], false), None);
        assert!(parse_answer(&framed[..framed.len() - 1], true).is_err());

        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(answer(chunked, false).unwrap().body, b"{\"a\":1}");
        assert_eq!(answer(&chunked[..chunked.len() - 7], false), None);

        let unframed = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end";
        assert_eq!(answer(unframed, false), None);
        assert_eq!(answer(unframed, true).unwrap().body, b"until the end");

        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(answer(interim, false).unwrap().status, 503);
        assert_eq!(
            answer(b"HTTP/1.1 204 No Content\r\n\r\n", false)
                .unwrap()
                .body,
            b""
        );
    }

    #[test]
    fn what_is_not_http_is_refused() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
        ] {
            assert!(
                matches!(parse_answer(bad, false), Err(PostError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n", true).is_err());
    }

    #[tokio::test]
    async fn a_post_sends_one_framed_request_and_stops_at_the_end_of_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (request_tx, request_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"{\"x\":1}") {
                let mut chunk = [0_u8; 1024];
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed early");
                request.extend_from_slice(&chunk[..read]);
            }
            stream
                .write_all(
                    b"HTTP/1.1 406 Not Acceptable\r\nContent-Length: 12\r\n\r\n{\"error\":1}\n",
                )
                .await
                .unwrap();
            let _ = request_tx.send(request);
            // Keep the connection open: the client must stop by the answer's own length.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let url = HttpUrl::parse(&format!("http://{address}/webhooks/mailgun")).unwrap();
        let answer = post(
            &url,
            "application/json",
            b"{\"x\":1}",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 406);
        assert_eq!(answer.body, b"{\"error\":1}\n");
        let request = String::from_utf8(request_rx.await.unwrap()).unwrap();
        assert_eq!(
            request,
            format!(
                "POST /webhooks/mailgun HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{{\"x\":1}}"
            )
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_given_up_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let url = HttpUrl::parse(&format!("http://{address}/")).unwrap();
        let error = post(&url, "text/plain", b"hi", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, PostError::Timeout(_)), "{error:?}");
        server.abort();
    }
}
