//! Mailgun's Events API: `GET /v3/{domain}/events`, one page at a time.
//!
//! The caller asks for the first page of an ascending range with [`MailgunClient::events_url`]
//! and [`MailgunClient::events_page`], then for each following page with the page's `next` URL,
//! verbatim, until a page comes back empty (Mailgun always returns `next`, and the page after the
//! last is empty). Items are kept as the raw JSON Mailgun sent, so that what is queued is
//! byte-for-byte what a webhook's `event-data` would have carried (a float timestamp parsed and
//! printed again could lose its last microsecond, and with it the event's identity).
//!
//! Deciding whether a page can be trusted yet (Mailgun's polling rule) is the caller's job: this
//! module only reads.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::{MailgunClient, Method};
use crate::error::MailgunError;

/// The largest page Mailgun serves.
pub const PAGE_LIMIT: u32 = 300;

/// The event types a webhook can carry: what reconciliation asks for (`rejected` and `stored`
/// exist only in the Events API and would only be skipped).
pub const WEBHOOK_EVENT_FILTER: &str =
    "accepted OR delivered OR failed OR opened OR clicked OR unsubscribed OR complained";

/// The first page's query: an ascending range of whole seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsQuery {
    /// The range's start, in seconds since the epoch (inclusive).
    pub begin: i64,
    /// The range's end, in seconds since the epoch.
    pub end: i64,
    /// Items per page, at most [`PAGE_LIMIT`].
    pub limit: u32,
    /// An `event` filter expression, or none for every event type.
    pub event: Option<String>,
}

/// One page of events.
#[derive(Debug)]
pub struct EventsPage {
    /// The items, each as Mailgun sent it.
    pub items: Vec<Box<RawValue>>,
    /// The URL of the next page, as Mailgun gave it.
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct PageBody {
    items: Vec<Box<RawValue>>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ItemTime {
    timestamp: f64,
}

impl EventsPage {
    /// When the last item happened, in microseconds since the epoch; `None` for an empty page.
    pub fn last_micros(&self) -> Result<Option<i64>, MailgunError> {
        self.items.last().map(|item| item_micros(item)).transpose()
    }
}

/// When an item happened, in microseconds since the epoch.
pub fn item_micros(item: &RawValue) -> Result<i64, MailgunError> {
    let time: ItemTime =
        serde_json::from_str(item.get()).map_err(|error| MailgunError::InvalidResponse {
            what: "an events page".to_owned(),
            reason: format!("an item without a numeric timestamp: {error}"),
        })?;
    Ok((time.timestamp * 1e6).round() as i64)
}

impl MailgunClient {
    /// The URL of the first page of `query` over `domain`'s events.
    pub fn events_url(&self, domain: &str, query: &EventsQuery) -> Result<String, MailgunError> {
        check_domain(domain)?;
        let mut params = form_urlencoded::Serializer::new(String::new());
        params
            .append_pair("begin", &query.begin.to_string())
            .append_pair("end", &query.end.to_string())
            .append_pair("ascending", "yes")
            .append_pair("limit", &query.limit.clamp(1, PAGE_LIMIT).to_string());
        if let Some(event) = &query.event {
            params.append_pair("event", event);
        }
        Ok(format!(
            "{}/v3/{domain}/events?{}",
            self.base(),
            params.finish()
        ))
    }

    /// Reads the page at `url` (the first page's URL or a `next` one) of `domain`'s events.
    pub fn events_page(&self, domain: &str, url: &str) -> Result<EventsPage, MailgunError> {
        let what = format!("read events of {domain}");
        let body = self.call(Method::Get, url, None, &what, domain)?;
        let page: PageBody =
            serde_json::from_str(&body).map_err(|error| MailgunError::InvalidResponse {
                what,
                reason: error.to_string(),
            })?;
        Ok(EventsPage {
            items: page.items,
            next: page.paging.and_then(|paging| paging.next),
        })
    }
}

/// A domain goes into a URL path: letters, digits, dots and hyphens only.
pub(crate) fn check_domain(domain: &str) -> Result<(), MailgunError> {
    let valid = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(MailgunError::InvalidUrl {
            url: domain.to_owned(),
            reason: "a domain name has only letters, digits, dots and hyphens",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryPolicy;

    #[test]
    fn the_first_page_asks_for_an_ascending_range_of_the_webhook_events() {
        let client = MailgunClient::new(
            "https://api.eu.mailgun.net/",
            &"k".into(),
            RetryPolicy::default(),
        )
        .unwrap();
        let url = client
            .events_url(
                "mg.example.com",
                &EventsQuery {
                    begin: 1_700_000_000,
                    end: 1_700_003_600,
                    limit: 1000,
                    event: Some(WEBHOOK_EVENT_FILTER.to_owned()),
                },
            )
            .unwrap();
        assert_eq!(
            url,
            "https://api.eu.mailgun.net/v3/mg.example.com/events?begin=1700000000&end=1700003600\
             &ascending=yes&limit=300&event=accepted+OR+delivered+OR+failed+OR+opened+OR+clicked\
             +OR+unsubscribed+OR+complained"
        );
        assert!(
            client
                .events_url(
                    "a/b",
                    &EventsQuery {
                        begin: 0,
                        end: 1,
                        limit: 1,
                        event: None
                    }
                )
                .is_err()
        );
    }

    #[test]
    fn item_times_keep_their_microseconds() {
        let item =
            RawValue::from_string(r#"{"timestamp": 1529006854.329574, "id": "x"}"#.into()).unwrap();
        assert_eq!(item_micros(&item).unwrap(), 1_529_006_854_329_574);
        let bad = RawValue::from_string(r#"{"id": "x"}"#.into()).unwrap();
        assert!(item_micros(&bad).is_err());
    }
}
