//! The fake's Events API pages: an ascending range read after a cursor, and the opaque token of
//! the `next` URL that carries the cursor.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::HttpResponse;
use serde_json::json;

use super::{FakeEvent, State};

/// Where a page starts: the range, the filter, and the last item already served.
pub(super) struct Cursor {
    begin_micros: i64,
    end_micros: i64,
    limit: usize,
    kinds: Vec<String>,
    after: Option<(i64, u64)>,
}

impl Cursor {
    pub(super) fn first(query: &BTreeMap<String, String>) -> Option<Self> {
        if query.get("ascending").map(String::as_str) != Some("yes") {
            return None;
        }
        let seconds = |name: &str| query.get(name)?.parse::<i64>().ok();
        Some(Self {
            begin_micros: seconds("begin")? * 1_000_000,
            end_micros: seconds("end")? * 1_000_000,
            limit: query
                .get("limit")
                .and_then(|limit| limit.parse().ok())
                .unwrap_or(100),
            kinds: query
                .get("event")
                .map(|filter| {
                    filter
                        .split(" OR ")
                        .map(|kind| kind.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            after: None,
        })
    }

    /// The opaque token of a `next` URL.
    fn encode(&self) -> String {
        let (at, seq) = self
            .after
            .map_or(("-".to_owned(), 0), |(at, seq)| (at.to_string(), seq));
        format!(
            "{}_{}_{}_{}_{}_{}",
            self.begin_micros,
            self.end_micros,
            self.limit,
            at,
            seq,
            self.kinds.join(",")
        )
    }

    pub(super) fn decode(token: &str) -> Option<Self> {
        let parts: Vec<&str> = token.splitn(6, '_').collect();
        let [begin, end, limit, at, seq, kinds] = parts[..] else {
            return None;
        };
        Some(Self {
            begin_micros: begin.parse().ok()?,
            end_micros: end.parse().ok()?,
            limit: limit.parse().ok()?,
            after: match at {
                "-" => None,
                at => Some((at.parse().ok()?, seq.parse().ok()?)),
            },
            kinds: kinds
                .split(',')
                .filter(|kind| !kind.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

pub(super) fn events_page(state: &State, mut cursor: Cursor) -> HttpResponse {
    let now = Instant::now();
    let mut visible: Vec<&FakeEvent> = state
        .events
        .iter()
        .filter(|event| event.visible_at <= now)
        .filter(|event| event.micros >= cursor.begin_micros && event.micros <= cursor.end_micros)
        .filter(|event| cursor.kinds.is_empty() || cursor.kinds.contains(&event.kind))
        .filter(|event| {
            cursor
                .after
                .is_none_or(|after| (event.micros, event.seq) > after)
        })
        .collect();
    visible.sort_by_key(|event| (event.micros, event.seq));
    visible.truncate(cursor.limit.min(state.page_size));
    if let Some(last) = visible.last() {
        cursor.after = Some((last.micros, last.seq));
    }
    let items: Vec<&str> = visible.iter().map(|event| event.raw.as_str()).collect();
    let next = format!(
        "http://{}/v3/{}/events/{}",
        state.next_host,
        state.domain,
        cursor.encode()
    );
    // The items are written as given, byte for byte.
    let body = format!(
        r#"{{"items": [{}], "paging": {{"next": {}, "previous": {}, "first": {}, "last": {}}}}}"#,
        items.join(", "),
        json!(next),
        json!(format!("{next}?previous")),
        json!(format!("{next}?first")),
        json!(format!("{next}?last")),
    );
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}
