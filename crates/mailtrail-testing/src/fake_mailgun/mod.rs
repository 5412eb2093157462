//! [`FakeMailgun`]: Mailgun's API as far as mailtrail calls it, served over real HTTP on port 0
//! with the documented shapes, so `mailtrail reconcile` and `mailtrail mailgun webhooks` are
//! tested end to end without reaching Mailgun.
//!
//! - `GET /v3/{domain}/events?begin&end&ascending=yes&limit&event`: pages of at most `limit`
//!   (and at most [`FakeMailgun::page_size`]) items in ascending time, `{"items": [...],
//!   "paging": {"next", "previous", ...}}`. The `next` URL is absolute, opaque and on **another
//!   host name** than the first request (`localhost` instead of `127.0.0.1`), as Mailgun's are on
//!   its region host: a client that rebuilds it from its base URL instead of following it is
//!   caught. The page after the last is empty.
//! - An event can be made visible only some time after it happened
//!   ([`FakeMailgun::add_late_event`]), which is how Mailgun's storage behaves: a page read too
//!   early misses it, and a cursor past it never sees it.
//! - Faults on demand ([`FakeMailgun::fail_next`]): 429 with `Retry-After`, 429 with
//!   `X-RateLimit-Reset` (absolute Unix milliseconds), 500.
//! - Basic auth `api:KEY`: a wrong key gets 401, the sending key 403, another domain 404.
//! - `GET/POST /v3/domains/{domain}/webhooks`, `PUT /v3/domains/{domain}/webhooks/{name}`.

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

mod pages;

use base64::Engine;
use pages::{Cursor, events_page};
use serde_json::{Value, json};

/// The account API key the fake accepts.
pub const FAKE_API_KEY: &str = "key-fake-account-0123456789";

/// A domain sending key: valid, but it may only send (403 here).
pub const FAKE_SENDING_KEY: &str = "fake-sending-key-0123456789";

/// A failure served instead of the next answer.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// 429 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// 429 with `X-RateLimit-Reset` this far in the future, in absolute Unix milliseconds.
    RateLimitReset(Duration),
    /// 500.
    ServerError,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The `Host` header as sent.
    pub host: String,
    /// Path and query.
    pub uri: String,
    /// The status answered.
    pub status: u16,
}

struct FakeEvent {
    raw: String,
    kind: String,
    micros: i64,
    seq: u64,
    visible_at: Instant,
}

struct State {
    domain: String,
    next_host: String,
    page_size: usize,
    events: Vec<FakeEvent>,
    faults: VecDeque<Fault>,
    seen: Vec<SeenRequest>,
    webhooks: BTreeMap<String, Vec<String>>,
}

/// A fake Mailgun API for one domain; stops when dropped.
pub struct FakeMailgun {
    state: Arc<Mutex<State>>,
    port: u16,
    handle: ServerHandle,
}

impl FakeMailgun {
    /// Serves `domain` on `127.0.0.1`, port 0, with no events and no webhooks.
    pub fn start(domain: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Mailgun");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(Mutex::new(State {
            domain: domain.to_owned(),
            next_host: format!("localhost:{port}"),
            page_size: 300,
            events: Vec::new(),
            faults: VecDeque::new(),
            seen: Vec::new(),
            webhooks: BTreeMap::new(),
        }));
        let shared = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            state,
            port,
            handle,
        }
    }

    /// `http://127.0.0.1:port`: the API base to configure (`MAILGUN_API_BASE`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves at most `size` items a page, whatever the client asks (default 300).
    pub fn page_size(&self, size: usize) {
        self.state().page_size = size.max(1);
    }

    /// Adds an event, visible at once. `item` is an Events API item (an `event-data` object)
    /// with a numeric `timestamp`; it is served byte for byte as given.
    pub fn add_event(&self, item: &str) {
        self.add_late_event(item, Duration::ZERO);
    }

    /// Adds an event that becomes visible only `delay` from now.
    pub fn add_late_event(&self, item: &str, delay: Duration) {
        let value: Value = serde_json::from_str(item).expect("an event item is JSON");
        let timestamp = value["timestamp"]
            .as_f64()
            .expect("an event item has a numeric timestamp");
        let mut state = self.state();
        let seq = state.events.len() as u64;
        state.events.push(FakeEvent {
            raw: item.to_owned(),
            kind: value["event"].as_str().unwrap_or_default().to_owned(),
            micros: (timestamp * 1e6).round() as i64,
            seq,
            visible_at: Instant::now() + delay,
        });
    }

    /// Answers the next request with `fault` (faults queue up in order).
    pub fn fail_next(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state().seen.clone()
    }

    /// The webhooks registered, by name.
    pub fn webhooks(&self) -> BTreeMap<String, Vec<String>> {
        self.state().webhooks.clone()
    }

    /// Registers `urls` for webhook `name`, as if done elsewhere.
    pub fn set_webhook(&self, name: &str, urls: &[&str]) {
        let urls = urls.iter().map(|url| (*url).to_owned()).collect();
        self.state().webhooks.insert(name.to_owned(), urls);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeMailgun {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handle.stop(false).await });
        }
    }
}

async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let response = route(&mut state, &request, &body);
    let host = request
        .headers()
        .get("host")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.seen.push(SeenRequest {
        method: request.method().to_string(),
        host,
        uri: request.uri().to_string(),
        status: response.status().as_u16(),
    });
    response
}

fn route(state: &mut State, request: &HttpRequest, body: &[u8]) -> HttpResponse {
    if let Some(fault) = state.faults.pop_front() {
        return fault_response(fault);
    }
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let basic = |key: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"))
        )
    };
    if authorization == basic(FAKE_SENDING_KEY) {
        return message(403, "Forbidden");
    }
    if authorization != basic(FAKE_API_KEY) {
        return HttpResponse::Unauthorized().body("Forbidden");
    }
    let path = request.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query: BTreeMap<String, String> = form_urlencoded::parse(request.query_string().as_bytes())
        .into_owned()
        .collect();
    let form: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let method = request.method().clone();
    match segments[..] {
        ["v3", domain, "events"] if method == Method::GET => {
            if domain != state.domain {
                return message(404, "Domain not found");
            }
            match Cursor::first(&query) {
                Some(cursor) => events_page(state, cursor),
                None => message(400, "begin, end and ascending=yes are required"),
            }
        }
        ["v3", domain, "events", token] if method == Method::GET => {
            if domain != state.domain {
                return message(404, "Domain not found");
            }
            match Cursor::decode(token) {
                Some(cursor) => events_page(state, cursor),
                None => message(400, "invalid page token"),
            }
        }
        ["v3", "domains", domain, "webhooks", ..] if domain != state.domain => {
            message(404, "Domain not found")
        }
        ["v3", "domains", _, "webhooks"] if method == Method::GET => {
            let webhooks: BTreeMap<&String, Value> = state
                .webhooks
                .iter()
                .map(|(name, urls)| (name, json!({ "urls": urls })))
                .collect();
            HttpResponse::Ok().json(json!({ "webhooks": webhooks }))
        }
        ["v3", "domains", _, "webhooks"] if method == Method::POST => {
            let (Some(name), Some(url)) = (form.get("id"), form.get("url")) else {
                return message(400, "id and url are required");
            };
            if state.webhooks.contains_key(name) {
                return message(400, "Webhook already exists");
            }
            state.webhooks.insert(name.clone(), vec![url.clone()]);
            HttpResponse::Ok()
                .json(json!({"message": "Webhook has been created", "webhook": {"urls": [url]}}))
        }
        ["v3", "domains", _, "webhooks", name] if method == Method::PUT => {
            let Some(url) = form.get("url") else {
                return message(400, "url is required");
            };
            if !state.webhooks.contains_key(name) {
                return message(404, "Webhook not found");
            }
            state.webhooks.insert(name.to_owned(), vec![url.clone()]);
            HttpResponse::Ok()
                .json(json!({"message": "Webhook has been updated", "webhook": {"urls": [url]}}))
        }
        _ => message(404, "Not found"),
    }
}

fn fault_response(fault: Fault) -> HttpResponse {
    match fault {
        Fault::RetryAfter(seconds) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", seconds.to_string()))
            .body("Too many requests"),
        Fault::RateLimitReset(delay) => {
            let reset = SystemTime::now() + delay;
            let reset_ms = reset
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_millis())
                .unwrap_or(0);
            HttpResponse::TooManyRequests()
                .insert_header(("X-RateLimit-Reset", reset_ms.to_string()))
                .body("Too many requests")
        }
        Fault::ServerError => message(500, "Internal Server Error"),
    }
}

fn message(status: u16, text: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({ "message": text }))
}
