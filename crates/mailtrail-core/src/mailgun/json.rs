//! Current JSON webhooks: `{"signature": {...}, "event-data": {...}}`.
//!
//! Mailgun only ever adds fields and its samples disagree on types (timestamps as strings or
//! numbers, `delivery-status` null, `storage` as `[]`, `user-variables` as `[]` or an error
//! string), so every field is read leniently: a field of an unexpected shape is treated as
//! absent rather than failing the event. Only a body that is not JSON, or has no `event-data`,
//! is an error.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{MAX_TAGS, ParseError, WebhookSignature};
use crate::event::{Event, EventKind, MessageId, Severity, seconds_to_micros};
use crate::excerpt::Excerpt;
use crate::variables::UserVariables;

/// The outer object, with `event-data` left unparsed (the receiver only validates it is JSON).
#[derive(Deserialize)]
struct SignatureOnly<'a> {
    #[serde(borrow, default)]
    signature: Option<SignatureBlock<'a>>,
    #[serde(rename = "event-data", borrow, default)]
    event_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SignatureBlock<'a> {
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(rename = "parent-signature", borrow, default)]
    parent_signature: Option<Cow<'a, str>>,
}

/// Pulls the signature block out of a JSON webhook and checks `event-data` is an object.
pub fn read_signature(body: &[u8]) -> Result<WebhookSignature, ParseError> {
    let outer: SignatureOnly<'_> = serde_json::from_slice(body)
        .map_err(|error| ParseError::InvalidJson(Excerpt::of(error)))?;
    match outer.event_data {
        Some(raw) if raw.get().trim_start().starts_with('{') => {}
        _ => return Err(ParseError::MissingEventData),
    }
    let block = outer.signature.ok_or(ParseError::MissingSignature)?;
    let timestamp = match block.timestamp {
        // Documented as an integer, sent as a string of one; accept both.
        Some(Value::String(text)) => text,
        Some(Value::Number(number)) => number.to_string(),
        _ => return Err(ParseError::MissingSignature),
    };
    let (Some(token), Some(signature)) = (block.token, block.signature) else {
        return Err(ParseError::MissingSignature);
    };
    Ok(WebhookSignature {
        timestamp,
        token: token.into_owned(),
        signature: signature.into_owned(),
        parent_signature: block.parent_signature.map(Cow::into_owned),
    })
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "event-data", default)]
    event_data: Option<Value>,
    #[serde(default)]
    signature: Option<Value>,
}

/// Reads a JSON webhook into a normalised event.
pub fn parse_event(body: &[u8], fallback_micros: i64) -> Result<Event, ParseError> {
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|error| ParseError::InvalidJson(Excerpt::of(error)))?;
    let Some(Value::Object(data)) = payload.event_data else {
        return Err(ParseError::MissingEventData);
    };
    // Some senders' samples have no event time; the signed timestamp is the next best clock.
    let signed_micros = payload
        .signature
        .as_ref()
        .and_then(|signature| signature.get("timestamp"))
        .and_then(number_like)
        .and_then(seconds_to_micros);
    event_from_data(&data, signed_micros.unwrap_or(fallback_micros))
}

/// Reads one `event-data` object (also what the Events API returns per item).
pub fn event_from_data(
    data: &serde_json::Map<String, Value>,
    fallback_micros: i64,
) -> Result<Event, ParseError> {
    let kind = text(data.get("event")).ok_or(ParseError::MissingEvent)?;
    let occurred_at = data
        .get("timestamp")
        .and_then(number_like)
        .and_then(seconds_to_micros)
        .unwrap_or(fallback_micros);
    let mut event = Event::new(EventKind::from_name(&kind), occurred_at);
    event.event_id = text(data.get("id"));
    event.recipient = text(data.get("recipient"));
    event.severity = text(data.get("severity")).and_then(|s| Severity::from_name(&s));
    event.reason = text(data.get("reason"));

    let headers = data
        .get("message")
        .and_then(|message| message.get("headers"))
        .and_then(Value::as_object);
    if let Some(headers) = headers {
        event.message_id = header(headers, "message-id").and_then(|id| MessageId::parse(&id));
        event.subject = header(headers, "subject");
    }

    if let Some(status) = data.get("delivery-status").and_then(Value::as_object) {
        event.delivery_code = code(status.get("code"))
            .or_else(|| code(status.get("bounce-code")))
            .or_else(|| code(status.get("enhanced-code")));
    }
    event.delayed_bounce = data
        .get("flags")
        .and_then(|flags| flags.get("is-delayed-bounce"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    event.tags = match data.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(|tag| text(Some(tag)))
            .take(MAX_TAGS)
            .collect(),
        _ => Vec::new(),
    };
    event.variables = UserVariables::from_json(data.get("user-variables").cloned());
    // `client-info.bot` is "" or null for people and a name ("apple", "gmail", ...) for machines.
    event.bot_kind = data
        .get("client-info")
        .and_then(|info| info.get("bot"))
        .and_then(|bot| text(Some(bot)));
    event.bot = event.bot_kind.is_some();
    event.url = text(data.get("url"));
    Ok(super::status::mapped(event))
}

/// A non-empty trimmed string, or a number written as one.
fn text(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A delivery code as text: `550`, `"5.1.1"`; empty and null are absent.
fn code(value: Option<&Value>) -> Option<String> {
    text(value)
}

/// A header value; Mailgun's keys are lower case, but tolerate other spellings.
fn header(headers: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    headers
        .get(name)
        .or_else(|| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
        .and_then(|value| text(Some(value)))
}

/// Seconds as a number or a numeric string.
fn number_like(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::status::{DeliveryStatus, Effect};

    fn body(event_data: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "signature": {"timestamp": "1529006854", "token": "tok", "signature": "abc"},
            "event-data": event_data,
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_signature_block_with_string_or_number_timestamps() {
        let signature = read_signature(&body(json!({"event": "opened"}))).unwrap();
        assert_eq!(signature.timestamp, "1529006854");
        assert_eq!(signature.token, "tok");
        let numeric = serde_json::to_vec(&json!({
            "signature": {"timestamp": 1529006854, "token": "t", "signature": "s",
                          "parent-signature": "p"},
            "event-data": {}
        }))
        .unwrap();
        let signature = read_signature(&numeric).unwrap();
        assert_eq!(signature.timestamp, "1529006854");
        assert_eq!(signature.parent_signature.as_deref(), Some("p"));
    }

    #[test]
    fn bodies_without_signature_or_event_data_are_refused() {
        assert_eq!(
            read_signature(br#"{"event-data": {"event": "opened"}}"#),
            Err(ParseError::MissingSignature)
        );
        assert_eq!(
            read_signature(br#"{"signature": {"timestamp": "1", "token": "t", "signature": "s"}}"#),
            Err(ParseError::MissingEventData)
        );
        assert!(matches!(
            read_signature(b"garbage"),
            Err(ParseError::InvalidJson(_))
        ));
        assert_eq!(
            parse_event(&body(json!({"id": "x"})), 0),
            Err(ParseError::MissingEvent)
        );
    }

    #[test]
    fn a_permanent_failure_keeps_severity_reason_code_and_variables() {
        let event = parse_event(
            &body(json!({
                "event": "failed", "severity": "permanent", "reason": "suppress-bounce",
                "timestamp": 1521233195.375624, "id": "G9Bn5sl1TC6nu79C8C0bwg",
                "recipient": "alice@example.com",
                "message": {"headers": {"message-id": "<20130503192659.13651.20287@x.com>",
                                        "subject": "Your pledge"}},
                "delivery-status": {"code": 605, "message": null, "description": ""},
                "user-variables": {"backer_id": "42", "project_id": 7},
                "tags": ["a", "b"],
                "storage": []
            })),
            0,
        )
        .unwrap();
        assert_eq!(event.kind, EventKind::Failed);
        assert_eq!(event.severity, Some(Severity::Permanent));
        assert_eq!(event.delivery_code.as_deref(), Some("605"));
        assert_eq!(
            event.message_id.unwrap().as_str(),
            "20130503192659.13651.20287@x.com"
        );
        assert_eq!(event.subject.as_deref(), Some("Your pledge"));
        assert_eq!(event.occurred_at_micros, 1_521_233_195_375_624);
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(42)));
        assert_eq!(event.variables.integer("project_id"), Ok(Some(7)));
        assert_eq!(event.tags, ["a", "b"]);
    }

    #[test]
    fn odd_shapes_are_absent_not_errors() {
        let event = parse_event(
            &body(json!({
                "event": "delivered", "timestamp": "1521233195.5",
                "delivery-status": null, "user-variables": "Could not load user-variables",
                "flags": {"is-delayed-bounce": null}, "message": {"headers": []},
                "client-info": {"bot": ""}, "tags": null
            })),
            0,
        )
        .unwrap();
        assert_eq!(event.occurred_at_micros, 1_521_233_195_500_000);
        assert_eq!(event.delivery_code, None);
        assert!(event.variables.is_empty());
        assert!(!event.delayed_bounce);
        assert!(!event.bot);
        assert_eq!(event.message_id, None);
    }

    #[test]
    fn a_missing_event_time_falls_back_to_the_signed_timestamp() {
        let event = parse_event(&body(json!({"event": "accepted"})), 7).unwrap();
        assert_eq!(event.occurred_at_micros, 1_529_006_854_000_000);
    }

    #[test]
    fn bot_opens_and_delayed_bounces_are_flagged() {
        let open = parse_event(
            &body(json!({"event": "opened", "client-info": {"bot": "apple"}})),
            0,
        )
        .unwrap();
        assert!(open.bot);
        assert_eq!(open.bot_kind.as_deref(), Some("apple"));
        assert_eq!(
            open.effect,
            Effect::Engagement(crate::status::Engagement::Opened { bot: true })
        );
        let bounce = parse_event(
            &body(
                json!({"event": "failed", "severity": "permanent", "reason": "generic",
                         "flags": {"is-delayed-bounce": true},
                         "delivery-status": {"bounce-code": "5.1.1"}}),
            ),
            0,
        )
        .unwrap();
        assert!(bounce.delayed_bounce);
        assert_eq!(bounce.delivery_code.as_deref(), Some("5.1.1"));
        assert_eq!(bounce.effect, Effect::Status(DeliveryStatus::Bounced));
    }

    /// Any JSON, with keys drawn mostly from the names the parser looks at, so the lenient
    /// readers meet every wrong type in every place.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("event"),
            Just("timestamp"),
            Just("id"),
            Just("recipient"),
            Just("severity"),
            Just("reason"),
            Just("message"),
            Just("headers"),
            Just("message-id"),
            Just("subject"),
            Just("delivery-status"),
            Just("code"),
            Just("bounce-code"),
            Just("flags"),
            Just("is-delayed-bounce"),
            Just("tags"),
            Just("user-variables"),
            Just("client-info"),
            Just("bot"),
            Just("url"),
            Just("token"),
            Just("signature"),
            Just("x"),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_signature(&body);
            let _ = parse_event(&body, 0);
        }

        #[test]
        fn arbitrary_json_never_panics(event_data in arbitrary_json(), signature in arbitrary_json()) {
            let wrapped = serde_json::to_vec(&json!({
                "signature": signature, "event-data": event_data.clone()
            })).unwrap();
            let _ = read_signature(&wrapped);
            let _ = parse_event(&wrapped, 0);
            let bare = serde_json::to_vec(&event_data).unwrap();
            let _ = read_signature(&bare);
            let _ = parse_event(&bare, 0);
        }
    }
}
