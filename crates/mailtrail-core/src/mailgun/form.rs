//! Legacy `application/x-www-form-urlencoded` webhooks.
//!
//! Until 2018 (and until 2023 for accounts that kept them) Mailgun posted events as flat forms,
//! with quirks the JSON format lacks:
//!
//! - **Custom variables are merged into the event's own fields.** Every field Mailgun does not
//!   define is a custom variable, and a variable that shares a name with a Mailgun field makes
//!   that name repeat. Mailgun's own value comes *last* for `signature`, `timestamp` and `token`
//!   and *first* for everything else, so those are the values read here (a sender can never
//!   displace the signed fields, nor the event name or recipient).
//! - **Two Message-Id spellings.** Delivered, dropped and bounced carry `Message-Id` with angle
//!   brackets; opened, clicked and unsubscribed carry `message-id` without. Both are read, and
//!   the `Message-Id` inside `message-headers` is the last resort.
//! - **`message-headers` is JSON inside a form field**: a list of `[name, value]` pairs whose
//!   value is sometimes `[value, {params}]`. It holds the Subject and, for delivered, dropped and
//!   bounced, the `X-Mailgun-Variables` header, the only copy of a variable whose name collides
//!   with a Mailgun field. Opened and clicked lack it, so top-level fields come first and the
//!   header only fills gaps.
//! - **No severity.** Legacy `bounced` and `dropped` are always final, so they are permanent.
//! - **Codes are text**: `550` or the RFC 3463 form `5.1.1`.
//! - **No event id.** Opens and clicks can truly repeat within a second with identical content
//!   (a double click, a scanner and then the person), so they take their signature token, unique
//!   per webhook, as their id: see [`legacy_event_id`]. Events that happen once per message and
//!   recipient keep none, so a retry of one is recognised by its content.
//!
//! The multipart variant (bounces and drops with the original message attached) carries the
//! same fields, so `LegacyFields` is shared with `multipart.rs`: each format only has to turn
//! its body into an ordered list of fields.
//!
//! **Linear in the body.** The fields are unsigned and the sender picks how many there are, so
//! nothing here may cost more than a constant per field: the positions of Mailgun's fields are
//! found in one pass when the fields are collected, tags are deduplicated with a set, and a body
//! with more than [`MAX_FORM_FIELDS`] fields is refused before its fields are held.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Value;

use super::{MAX_FORM_FIELDS, MAX_TAGS, ParseError, WebhookSignature};
use crate::event::{Event, EventKind, MessageId, Severity, seconds_to_micros};
use crate::event_key::short_hash;
use crate::excerpt::Excerpt;
use crate::variables::UserVariables;

/// Pulls the signed fields out of a legacy form (the last `signature`, `timestamp` and `token`).
pub fn read_signature(body: &[u8]) -> Result<WebhookSignature, ParseError> {
    decode(body)?.signature()
}

/// Reads a legacy form event.
pub fn parse_event(body: &[u8], fallback_micros: i64) -> Result<Event, ParseError> {
    decode(body)?.event(fallback_micros)
}

/// Splits a urlencoded body into its fields (`+` is a space, `%XX` a byte).
fn decode(body: &[u8]) -> Result<LegacyFields<'_>, ParseError> {
    // A urlencoded body is ASCII by construction; raw bytes that are not even UTF-8 mean it is
    // not a form at all. Percent-encoded bytes that decode to invalid UTF-8 are replaced with
    // U+FFFD instead, as every web framework does, so one odd value cannot cost the event.
    std::str::from_utf8(body).map_err(|error| {
        ParseError::InvalidForm(Excerpt::of(format_args!("the body is not UTF-8: {error}")))
    })?;
    LegacyFields::collect(form_urlencoded::parse(body))
}

/// The fields Mailgun itself defines in legacy webhooks; anything else is a custom variable.
/// `attachment-1`, `attachment-2`, ... are recognised by [`is_mailgun_field`] separately.
const MAILGUN_FIELDS: &[&str] = &[
    "event",
    "recipient",
    "domain",
    "message-headers",
    "Message-Id",
    "message-id",
    "timestamp",
    "token",
    "signature",
    "code",
    "error",
    "notification",
    "reason",
    "description",
    "campaign-id",
    "campaign-name",
    "tag",
    "X-Mailgun-Tag",
    "mailing-list",
    "ip",
    "country",
    "region",
    "city",
    "user-agent",
    "device-type",
    "client-type",
    "client-name",
    "client-os",
    "url",
    "X-Mailgun-Sid",
    "attachment-count",
    // Undocumented but present in real posts (`h` on opens and clicks, an empty `body-plain`
    // almost everywhere).
    "body-plain",
    "h",
];

/// Where `name` is in [`MAILGUN_FIELDS`] (names are case-sensitive, as Mailgun spells them).
fn mailgun_field_index(name: &str) -> Option<usize> {
    MAILGUN_FIELDS.iter().position(|field| *field == name)
}

/// True for a field name Mailgun defines.
fn is_mailgun_field(name: &str) -> bool {
    mailgun_field_index(name).is_some()
        || name
            .strip_prefix("attachment-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The fields of a legacy webhook in body order, read with Mailgun's rules for repeated names.
/// Both legacy formats build one of these and read the signature and event from it.
#[derive(Debug)]
pub(crate) struct LegacyFields<'a> {
    /// `(name, value)` in body order.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// For each name of [`MAILGUN_FIELDS`], the positions of its first and last value in
    /// `fields`, so reading a field costs the same however many fields the body has.
    positions: [Option<(usize, usize)>; MAILGUN_FIELDS.len()],
}

impl<'a> LegacyFields<'a> {
    /// Collects `(name, value)` pairs in body order; more than [`MAX_FORM_FIELDS`] is refused.
    pub(crate) fn collect(
        pairs: impl IntoIterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
    ) -> Result<Self, ParseError> {
        let fields: Vec<_> = pairs.into_iter().take(MAX_FORM_FIELDS + 1).collect();
        if fields.len() > MAX_FORM_FIELDS {
            return Err(too_many_fields());
        }
        let mut positions = [None; MAILGUN_FIELDS.len()];
        for (at, (name, _)) in fields.iter().enumerate() {
            if let Some(slot) = mailgun_field_index(name).and_then(|index| positions.get_mut(index))
            {
                *slot = Some(slot.map_or((at, at), |(first, _)| (first, at)));
            }
        }
        Ok(Self { fields, positions })
    }

    /// The signed fields: the last of each, since a custom variable with the same name comes first.
    pub(crate) fn signature(&self) -> Result<WebhookSignature, ParseError> {
        let signed = |name| {
            self.last(name)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or(ParseError::MissingSignature)
        };
        Ok(WebhookSignature {
            timestamp: signed("timestamp")?,
            token: signed("token")?,
            signature: signed("signature")?,
            // Legacy webhooks have no parent-account signature; a `parent-signature` field here
            // could only be a custom variable.
            parent_signature: None,
        })
    }

    /// The whole event; `fallback_micros` is used when the signed timestamp is missing or odd.
    pub(crate) fn event(&self, fallback_micros: i64) -> Result<Event, ParseError> {
        // An inbound route posting to the event URL has every other field but this one.
        let kind = self.text("event").ok_or(ParseError::MissingEvent)?;
        let kind = EventKind::from_name(&kind);
        // The timestamp is a signed field, so Mailgun's value is the last one.
        let occurred_at = self
            .last("timestamp")
            .and_then(|seconds| seconds.trim().parse::<f64>().ok())
            .and_then(seconds_to_micros)
            .unwrap_or(fallback_micros);
        let headers = self
            .first("message-headers")
            .map(MessageHeaders::parse)
            .unwrap_or_default();

        let mut event = Event::new(kind, occurred_at);
        event.severity = match event.kind {
            // Legacy bounces and drops are final: Mailgun only reported a failure once it had
            // given up (temporary failures had no legacy webhook at all).
            EventKind::Bounced | EventKind::Dropped => Some(Severity::Permanent),
            _ => None,
        };
        event.message_id = self
            .text("Message-Id")
            .or_else(|| self.text("message-id"))
            .or_else(|| headers.first("Message-Id"))
            .and_then(|id| MessageId::parse(&id));
        event.recipient = self.text("recipient");
        event.reason = self.text("reason");
        event.delivery_code = self.text("code");
        event.subject = headers.first("Subject");
        event.url = self.text("url");
        event.tags = self.tags();
        event.variables = self.variables(&headers);
        if matches!(event.kind, EventKind::Opened | EventKind::Clicked) {
            event.event_id = self.last("token").and_then(legacy_event_id);
        }
        Ok(super::status::mapped(event))
    }

    /// The first and last position of Mailgun's field `name`.
    fn positions(&self, name: &str) -> Option<(usize, usize)> {
        // Only Mailgun's own fields are ever looked up; a name outside the list is a bug here.
        debug_assert!(mailgun_field_index(name).is_some(), "{name} is not indexed");
        *self.positions.get(mailgun_field_index(name)?)?
    }

    /// The value at `at`.
    fn value(&self, at: usize) -> Option<&str> {
        self.fields.get(at).map(|(_, value)| value.as_ref())
    }

    /// The first value of Mailgun's field `name`, as sent.
    fn first(&self, name: &str) -> Option<&str> {
        self.value(self.positions(name)?.0)
    }

    /// The last value of Mailgun's field `name`, as sent.
    fn last(&self, name: &str) -> Option<&str> {
        self.value(self.positions(name)?.1)
    }

    /// The first value of `name`, trimmed; empty is absent (`body-plain=` and the like).
    fn text(&self, name: &str) -> Option<String> {
        let value = self.first(name)?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Tags come as repeated `tag` fields, except on delivered, which repeats `X-Mailgun-Tag`.
    /// The first [`MAX_TAGS`] distinct ones are kept, in body order.
    fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (name, value) in &self.fields {
            if tags.len() == MAX_TAGS {
                break;
            }
            let value = value.trim();
            let is_tag = name == "tag" || name == "X-Mailgun-Tag";
            if is_tag && !value.is_empty() && seen.insert(value) {
                tags.push(value.to_owned());
            }
        }
        tags
    }

    /// Custom variables: top-level fields Mailgun does not define (the first value of each),
    /// then whatever `X-Mailgun-Variables` adds that the fields did not have.
    fn variables(&self, headers: &MessageHeaders) -> UserVariables {
        let mut variables = UserVariables::default();
        for (name, value) in &self.fields {
            if !name.is_empty() && !is_mailgun_field(name) {
                variables.insert_if_absent(name, Value::String(value.clone().into_owned()));
            }
        }
        // Several X-Mailgun-Variables headers are merged by Mailgun; the earliest wins here.
        for header in headers.all("X-Mailgun-Variables") {
            let parsed = UserVariables::from_json(Some(Value::String(header.to_owned())));
            for (name, value) in parsed.as_map() {
                variables.insert_if_absent(name, value.clone());
            }
        }
        variables
    }
}

/// The event id of a legacy open or click: a hash of its signature token.
///
/// Legacy webhooks carry no event id, and the event key hashes only what an event says, so two
/// clicks on one link in the same second by the same recipient had one key and were stored as
/// one. The token is unique per webhook Mailgun signs, so it tells them apart; the same webhook
/// delivered twice keeps its token and stays one event. The cost: if Mailgun re-signs a retry
/// with a new token (it does not document whether it does), a retried open or click is counted
/// twice. See decisions.md. The token is hashed so the id column never holds a token.
fn legacy_event_id(token: &str) -> Option<String> {
    let token = token.trim();
    (!token.is_empty()).then(|| format!("legacy-token:{}", short_hash(token)))
}

/// The error for a form with more than [`MAX_FORM_FIELDS`] fields.
pub(crate) fn too_many_fields() -> ParseError {
    ParseError::InvalidForm(Excerpt::of(format_args!(
        "the form has more than {MAX_FORM_FIELDS} fields"
    )))
}

/// The `message-headers` field: a JSON list of `[name, value]` pairs, in message order.
#[derive(Debug, Default)]
struct MessageHeaders(Vec<(String, String)>);

impl MessageHeaders {
    /// Reads the JSON leniently: a malformed list is empty, a malformed pair is skipped.
    fn parse(json: &str) -> Self {
        let Ok(Value::Array(pairs)) = serde_json::from_str::<Value>(json) else {
            return Self::default();
        };
        let headers = pairs
            .iter()
            .filter_map(|pair| match pair.as_array()?.as_slice() {
                [Value::String(name), value, ..] => Some((name.clone(), header_value(value)?)),
                _ => None,
            })
            .collect();
        Self(headers)
    }

    /// The values of header `name` (case-insensitive, as header names are), in order.
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.0
            .iter()
            .filter(move |(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first value of header `name`, trimmed; empty is absent.
    fn first(&self, name: &str) -> Option<String> {
        let value = self.all(name).next()?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }
}

/// A header value: a string, or `[value, {params}]` for structured headers like Content-Type.
fn header_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => match parts.first() {
            Some(Value::String(text)) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;
    use crate::signature::SigningKeys;
    use crate::status::{DeliveryStatus, Effect, Engagement};

    /// Encodes fields the way Mailgun (and every form encoder) does.
    fn form(fields: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
            .into_bytes()
    }

    /// `message-headers` as Mailgun serialises it.
    fn headers(pairs: Value) -> String {
        pairs.to_string()
    }

    const SIGNED: [(&str, &str); 3] = [
        ("timestamp", "1461261330"),
        (
            "token",
            "06c96bafc3f42a66b9edd546347a2fe18dc23461fe80dc52f0",
        ),
        (
            "signature",
            "3e24f71c7e802be94c5abca2fd6ca6957cca2e1e2396d26716b87e1ca8c56634",
        ),
    ];

    fn with_signature<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        fields.iter().copied().chain(SIGNED).collect()
    }

    fn parse(fields: &[(&str, &str)]) -> Event {
        parse_event(&form(&with_signature(fields)), 0).unwrap()
    }

    #[test]
    fn a_delivered_form_yields_id_subject_time_and_both_sources_of_variables() {
        let message_headers = headers(serde_json::json!([
            ["Message-Id", "<20160421175529.19495.89030.B3AE3728@example.com>"],
            ["Content-Type", ["multipart/alternative", {"boundary": "74fb5617"}]],
            ["Subject", "Your pledge to Project 7"],
            ["X-Mailgun-Variables", "{\"backer_id\": \"42\", \"project_id\": 7, \"only_here\": \"x\"}"],
        ]));
        let event = parse(&[
            ("domain", "example.com"),
            ("message-headers", &message_headers),
            ("X-Mailgun-Sid", "WyIxZmY4ZSIsICJtZWRt"),
            (
                "Message-Id",
                "<20160421175529.19495.89030.B3AE3728@example.com>",
            ),
            ("recipient", " backer@example.com "),
            ("event", "delivered"),
            ("backer_id", "42"),
            ("project_id", "7"),
            ("body-plain", ""),
        ]);
        assert_eq!(event.kind, EventKind::Delivered);
        assert_eq!(
            event.message_id.as_ref().map(MessageId::as_str),
            Some("20160421175529.19495.89030.B3AE3728@example.com")
        );
        assert_eq!(event.recipient.as_deref(), Some("backer@example.com"));
        assert_eq!(event.subject.as_deref(), Some("Your pledge to Project 7"));
        assert_eq!(event.occurred_at_micros, 1_461_261_330_000_000);
        assert_eq!(event.severity, None);
        assert_eq!(event.event_id, None);
        assert!(!event.bot);
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(42)));
        assert_eq!(event.variables.integer("project_id"), Ok(Some(7)));
        // The top-level field won; the header only filled what the fields lacked.
        assert_eq!(
            event.variables.as_map().get("project_id"),
            Some(&Value::String("7".into()))
        );
        assert_eq!(event.variables.text("only_here").as_deref(), Some("x"));
        // Mailgun's own fields never leak into the variables.
        let names: Vec<&str> = event
            .variables
            .as_map()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(event.effect, Effect::Status(DeliveryStatus::Delivered));
    }

    #[test]
    fn a_bounce_is_permanent_and_keeps_its_code() {
        let event = parse(&[
            ("event", "bounced"),
            ("recipient", "gone@example.com"),
            ("code", "550"),
            (
                "error",
                "550 5.1.1 The email account that you tried to reach does not exist.",
            ),
            ("Message-Id", "<b@example.com>"),
            ("backer_id", "1"),
            ("project_id", "2"),
            ("attachment-count", "1"),
        ]);
        assert_eq!(event.kind, EventKind::Bounced);
        assert_eq!(event.severity, Some(Severity::Permanent));
        assert_eq!(event.delivery_code.as_deref(), Some("550"));
        assert_eq!(event.message_id.as_ref().unwrap().as_str(), "b@example.com");
        assert_eq!(event.variables.as_map().len(), 2);
        assert_eq!(event.effect, Effect::Status(DeliveryStatus::Bounced));
    }

    #[test]
    fn an_rfc_3463_code_like_5_1_1_is_kept_as_text() {
        let event = parse(&[("event", "bounced"), ("code", "5.1.1")]);
        assert_eq!(event.delivery_code.as_deref(), Some("5.1.1"));
        assert_eq!(event.effect, Effect::Status(DeliveryStatus::Bounced));
    }

    #[test]
    fn bounces_with_suppression_codes_and_every_drop_count_as_dropped() {
        for code in ["605", "606", "607", "625"] {
            let event = parse(&[("event", "bounced"), ("code", code)]);
            assert_eq!(
                event.effect,
                Effect::Status(DeliveryStatus::Dropped),
                "{code}"
            );
        }
        for (reason, code) in [("hardfail", "605"), ("hardfail", "607"), ("old", "499")] {
            let event = parse(&[
                ("event", "dropped"),
                ("reason", reason),
                ("code", code),
                (
                    "description",
                    "Not delivering to previously bounced address",
                ),
                ("backer_id", "3"),
                ("project_id", "4"),
            ]);
            assert_eq!(event.severity, Some(Severity::Permanent));
            assert_eq!(event.reason.as_deref(), Some(reason));
            assert_eq!(event.variables.integer("backer_id"), Ok(Some(3)));
            assert_eq!(event.effect, Effect::Status(DeliveryStatus::Dropped));
        }
    }

    #[test]
    fn a_complaint_carries_its_subject_and_variables_from_the_headers_only() {
        let message_headers = headers(serde_json::json!([
            ["Subject", "Weekly update"],
            ["Message-Id", "<c@example.com>"],
            [
                "X-Mailgun-Variables",
                "{\"backer_id\": 5, \"project_id\": \"\\\"6\\\"\"}"
            ],
        ]));
        let event = parse(&[
            ("event", "complained"),
            ("recipient", "angry@example.com"),
            ("message-headers", &message_headers),
            ("campaign-id", "c1"),
            ("tag", "weekly"),
        ]);
        assert_eq!(event.kind, EventKind::Complained);
        assert_eq!(event.severity, None);
        // No Message-Id field: the header's copy is used.
        assert_eq!(event.message_id.as_ref().unwrap().as_str(), "c@example.com");
        assert_eq!(event.subject.as_deref(), Some("Weekly update"));
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(5)));
        assert_eq!(event.variables.integer("project_id"), Ok(Some(6)));
        assert_eq!(event.tags, ["weekly"]);
        assert_eq!(event.effect, Effect::Status(DeliveryStatus::Complained));
    }

    #[test]
    fn opens_clicks_and_unsubscribes_use_the_lowercase_bare_message_id() {
        let tracking = [
            ("recipient", "alice@example.com"),
            ("domain", "example.com"),
            ("message-id", "20130503182626.18666.16540@example.com"),
            ("ip", "50.56.129.169"),
            ("country", "US"),
            ("region", "CA"),
            ("city", "San Francisco"),
            ("user-agent", "Mozilla/5.0"),
            ("device-type", "desktop"),
            ("client-type", "browser"),
            ("client-name", "Chrome"),
            ("client-os", "Linux"),
            ("h", "an (undocumented) Mailgun event param"),
            ("backer_id", "42"),
            ("project_id", "7"),
            ("body-plain", ""),
        ];
        let cases = [
            (
                "opened",
                Effect::Engagement(Engagement::Opened { bot: false }),
            ),
            (
                "clicked",
                Effect::Engagement(Engagement::Clicked { bot: false }),
            ),
            ("unsubscribed", Effect::Engagement(Engagement::Unsubscribed)),
        ];
        for (name, effect) in cases {
            let mut fields = vec![("event", name), ("url", "http://example.com/p?a=1&b=2")];
            fields.extend(tracking);
            let event = parse(&fields);
            assert_eq!(event.kind.as_str(), name);
            assert_eq!(
                event.message_id.as_ref().map(MessageId::as_str),
                Some("20130503182626.18666.16540@example.com")
            );
            assert_eq!(event.variables.integer("backer_id"), Ok(Some(42)));
            assert_eq!(event.variables.integer("project_id"), Ok(Some(7)));
            assert_eq!(event.variables.as_map().len(), 2, "{name}");
            assert!(!event.bot);
            assert_eq!(event.effect, effect, "{name}");
        }
        let click = parse(&[
            ("event", "clicked"),
            ("url", "http://example.com/p?a=1&b=2"),
        ]);
        assert_eq!(click.url.as_deref(), Some("http://example.com/p?a=1&b=2"));
    }

    #[test]
    fn the_last_signature_and_the_first_event_win_on_a_clash() {
        // A sender's custom variables named like Mailgun fields: Mailgun's value is last for
        // the signed fields and first for the rest.
        let body = form(&[
            ("event", "clicked"),
            ("event", "metadata-event"),
            ("recipient", "actual@example.com"),
            ("recipient", "metadata-recipient"),
            ("token", "metadata-token"),
            ("token", "actual-token"),
            ("timestamp", "metadata-timestamp"),
            ("timestamp", "1461261330"),
            ("signature", "metadata-signature"),
            ("signature", "actual-signature"),
        ]);
        let signature = read_signature(&body).unwrap();
        assert_eq!(signature.timestamp, "1461261330");
        assert_eq!(signature.token, "actual-token");
        assert_eq!(signature.signature, "actual-signature");
        assert_eq!(signature.parent_signature, None);
        let event = parse_event(&body, 0).unwrap();
        assert_eq!(event.kind, EventKind::Clicked);
        assert_eq!(event.recipient.as_deref(), Some("actual@example.com"));
        assert_eq!(event.occurred_at_micros, 1_461_261_330_000_000);
        assert!(event.variables.is_empty());
    }

    #[test]
    fn repeated_custom_fields_keep_their_first_value() {
        let event = parse(&[("event", "opened"), ("backer_id", "1"), ("backer_id", "2")]);
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(1)));
    }

    #[test]
    fn tags_come_from_repeated_tag_and_x_mailgun_tag_fields() {
        let opened = parse_event(b"tag=tag1&tag=tag2&tag=&event=opened&timestamp=1", 0).unwrap();
        assert_eq!(opened.tags, ["tag1", "tag2"]);
        let delivered = parse_event(
            b"X-Mailgun-Tag=tag1&X-Mailgun-Tag=tag2&X-Mailgun-Tag=tag1&event=delivered",
            0,
        )
        .unwrap();
        assert_eq!(delivered.tags, ["tag1", "tag2"]);
        assert!(delivered.variables.is_empty());
    }

    #[test]
    fn plus_signs_are_spaces_and_percent_escapes_are_decoded() {
        let event = parse_event(
            b"event=opened&recipient=alice%40example.com&subject=Hello+there%21&a+b=c%2Bd",
            0,
        )
        .unwrap();
        assert_eq!(event.recipient.as_deref(), Some("alice@example.com"));
        assert_eq!(
            event.variables.text("subject").as_deref(),
            Some("Hello there!")
        );
        assert_eq!(event.variables.text("a b").as_deref(), Some("c+d"));
    }

    #[test]
    fn x_mailgun_variables_fill_in_what_the_fields_lack() {
        let message_headers = headers(serde_json::json!([
            ["X-Mailgun-Variables", "{\"backer_id\": \"8\"}"],
            [
                "x-mailgun-variables",
                "{\"backer_id\": \"9\", \"project_id\": \"10\"}"
            ],
            ["X-Mailgun-Variables", "not json"],
            "not a pair",
            [1, 2],
        ]));
        let event = parse(&[("event", "dropped"), ("message-headers", &message_headers)]);
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(8)));
        assert_eq!(event.variables.integer("project_id"), Ok(Some(10)));
    }

    #[test]
    fn malformed_message_headers_are_ignored() {
        for junk in ["", "{", "{\"Subject\": \"x\"}", "[[\"Subject\"]]", "null"] {
            let event = parse(&[("event", "delivered"), ("message-headers", junk)]);
            assert_eq!(event.subject, None, "{junk}");
            assert!(event.variables.is_empty(), "{junk}");
        }
    }

    #[test]
    fn the_fallback_time_is_used_without_a_usable_timestamp() {
        assert_eq!(
            parse_event(b"event=opened", 77).unwrap().occurred_at_micros,
            77
        );
        assert_eq!(
            parse_event(b"event=opened&timestamp=soon", 77)
                .unwrap()
                .occurred_at_micros,
            77
        );
        assert_eq!(
            parse_event(b"event=opened&timestamp=NaN", 77)
                .unwrap()
                .occurred_at_micros,
            77
        );
    }

    #[test]
    fn a_post_without_an_event_or_a_signature_is_refused() {
        let inbound = form(&with_signature(&[
            ("recipient", "test@inbound.example.com"),
            ("sender", "envelope-from@example.org"),
            ("body-plain", "Test body plain"),
        ]));
        assert!(read_signature(&inbound).is_ok());
        assert_eq!(parse_event(&inbound, 0), Err(ParseError::MissingEvent));
        assert_eq!(parse_event(b"event=", 0), Err(ParseError::MissingEvent));
        assert_eq!(read_signature(b""), Err(ParseError::MissingSignature));
        assert_eq!(
            read_signature(b"timestamp=1&token=t"),
            Err(ParseError::MissingSignature)
        );
        assert_eq!(
            read_signature(b"timestamp=1&token=t&signature="),
            Err(ParseError::MissingSignature)
        );
    }

    #[test]
    fn broken_encodings_are_errors_or_replacement_characters_never_panics() {
        assert!(matches!(
            read_signature(b"event=opened&\xff\xfe=1"),
            Err(ParseError::InvalidForm(_))
        ));
        assert!(matches!(
            parse_event(b"event=opened&x=\xc3", 0),
            Err(ParseError::InvalidForm(_))
        ));
        // Bad escapes are kept literally; escapes of invalid UTF-8 become U+FFFD.
        let event = parse_event(b"event=opened&a=%zz%4&b=%ff%c3&recipient=%", 0).unwrap();
        assert_eq!(event.variables.text("a").as_deref(), Some("%zz%4"));
        assert_eq!(
            event.variables.text("b").as_deref(),
            Some("\u{fffd}\u{fffd}")
        );
        assert_eq!(event.recipient.as_deref(), Some("%"));
    }

    #[test]
    fn every_legacy_form_in_the_corpus_reads_as_its_manifest_says() {
        let Some(dir) = super::super::corpus_dir() else {
            return;
        };
        let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
        let mut checked = 0;
        for line in manifest.lines().skip(1) {
            let columns: Vec<&str> = line.split('\t').collect();
            let [file, "form", event_name, has_variables, message_id, key, ..] = columns[..] else {
                continue;
            };
            let body = std::fs::read(dir.join(file)).unwrap();
            let signature = read_signature(&body).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !key.is_empty() && !key.contains("MUST FAIL") {
                let keys = SigningKeys::from_comma_separated(key).unwrap();
                assert!(
                    keys.verify(&signature.signed()).is_ok(),
                    "{file}: signature"
                );
            }
            let parsed = parse_event(&body, 0);
            if event_name == "(none)" {
                assert_eq!(parsed, Err(ParseError::MissingEvent), "{file}");
                checked += 1;
                continue;
            }
            let event = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(event.kind.as_str(), event_name, "{file}");
            if let Some(expected) = MessageId::parse(message_id) {
                assert_eq!(event.message_id, Some(expected), "{file}");
            }
            assert_eq!(
                !event.variables.is_empty(),
                has_variables == "yes",
                "{file}: {:?}",
                event.variables
            );
            assert_ne!(event.occurred_at_micros, 0, "{file}");
            checked += 1;
        }
        assert!(
            checked >= 18,
            "only {checked} legacy forms found in the manifest"
        );
    }

    proptest! {
        #[test]
        fn tags_are_the_first_distinct_trimmed_values_in_body_order(
            fields in prop::collection::vec(
                (
                    prop_oneof![Just("tag"), Just("X-Mailgun-Tag"), Just("Tag"), Just("v")],
                    " ?[a-z]{0,2} ?",
                ),
                0..(3 * MAX_TAGS),
            ),
        ) {
            let mut body: Vec<(&str, &str)> = vec![("event", "opened")];
            body.extend(fields.iter().map(|(name, value)| (*name, value.as_str())));
            let event = parse_event(&form(&body), 0).unwrap();
            // The obvious quadratic reading of the rule, as the reference.
            let mut expected: Vec<String> = Vec::new();
            for (name, value) in &fields {
                let value = value.trim();
                if (*name == "tag" || *name == "X-Mailgun-Tag")
                    && !value.is_empty()
                    && !expected.iter().any(|tag| tag == value)
                    && expected.len() < MAX_TAGS
                {
                    expected.push(value.to_owned());
                }
            }
            prop_assert_eq!(event.tags, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_signature(&body);
            let _ = parse_event(&body, 0);
        }

        #[test]
        fn arbitrary_form_like_text_never_panics(
            body in "([a-zA-Z%+=&_.-]|%[0-9a-fA-F]{2}|event=(bounced|opened)|message-headers=%5B%5B)*"
        ) {
            let _ = read_signature(body.as_bytes());
            let _ = parse_event(body.as_bytes(), 0);
        }
    }
}
