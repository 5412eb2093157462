//! Building realistic, correctly signed webhooks: for `mailtrail send-sample`, load generation,
//! benchmarks and tests. Nothing here is used on the receiving path.

use serde_json::{Value, json};

use crate::signature::SigningKey;

/// The outcome a sample event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// `accepted`.
    Accepted,
    /// `delivered`.
    Delivered,
    /// `failed`, temporary (greylisted).
    Deferred,
    /// `failed`, permanent bounce (550).
    Bounced,
    /// `failed`, permanent, suppressed (605).
    Dropped,
    /// `opened`.
    Opened,
    /// `clicked`.
    Clicked,
    /// `complained`.
    Complained,
}

/// One sample message event.
#[derive(Clone, Debug)]
pub struct SampleEvent<'a> {
    /// What happened.
    pub kind: SampleKind,
    /// Message id, without brackets.
    pub message_id: &'a str,
    /// Recipient address.
    pub recipient: &'a str,
    /// Event time, float seconds.
    pub timestamp: f64,
    /// `backer_id` custom variable (sent as a string, as Mailgun does).
    pub backer_id: Option<i64>,
    /// `project_id` custom variable.
    pub project_id: Option<i64>,
    /// `subject` custom variable and header.
    pub subject: &'a str,
}

impl SampleEvent<'_> {
    /// The `event-data` object, shaped like Mailgun's current webhooks.
    pub fn event_data(&self) -> Value {
        let mut variables = serde_json::Map::new();
        if let Some(backer) = self.backer_id {
            variables.insert("backer_id".into(), Value::String(backer.to_string()));
        }
        if let Some(project) = self.project_id {
            variables.insert("project_id".into(), Value::String(project.to_string()));
        }
        variables.insert("subject".into(), Value::String(self.subject.to_owned()));
        let domain = self.recipient.rsplit('@').next().unwrap_or("example.com");
        let id = crate::event_key::short_hash(&format!(
            "{}{}{:?}{}",
            self.message_id, self.recipient, self.kind, self.timestamp
        ));
        let mut data = json!({
            "id": id,
            "timestamp": self.timestamp,
            "log-level": "info",
            "recipient": self.recipient,
            "recipient-domain": domain,
            "tags": ["mailtrail-sample"],
            "campaigns": [],
            "user-variables": variables,
            "flags": {"is-authenticated": true, "is-test-mode": false},
            "envelope": {"sender": "bounce@mg.example.com", "transport": "smtp",
                         "targets": self.recipient},
            "storage": {"key": "sample", "url": "https://storage.example.com/messages/sample"},
        });
        let full_headers = json!({
            "message-id": self.message_id,
            "from": "Crowdfunding <updates@mg.example.com>",
            "to": self.recipient,
            "subject": self.subject,
        });
        let id_only = json!({"message-id": self.message_id});
        let engagement = json!({
            "ip": "203.0.113.7",
            "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
            "client-info": {"client-name": "Thunderbird", "client-type": "mobile browser",
                            "client-os": "iOS", "device-type": "mobile", "bot": "",
                            "user-agent": "Mozilla/5.0"},
        });
        let extra = match self.kind {
            SampleKind::Accepted => json!({"event": "accepted", "method": "HTTP",
                "message": {"headers": full_headers, "attachments": [], "size": 4096}}),
            SampleKind::Delivered => json!({"event": "delivered",
                "message": {"headers": full_headers, "attachments": [], "size": 4096},
                "delivery-status": {"code": 250, "message": "OK", "description": "",
                    "attempt-no": 1, "session-seconds": 0.42, "tls": true,
                    "mx-host": "mx.example.net", "certificate-verified": true}}),
            SampleKind::Deferred => json!({"event": "failed", "severity": "temporary",
                "reason": "greylisted", "log-level": "warn",
                "message": {"headers": full_headers, "attachments": [], "size": 4096},
                "delivery-status": {"code": 450, "message": "4.2.0 Greylisted, try again",
                    "attempt-no": 1, "retry-seconds": 600}}),
            SampleKind::Bounced => json!({"event": "failed", "severity": "permanent",
                "reason": "bounce", "log-level": "error",
                "message": {"headers": full_headers, "attachments": [], "size": 4096},
                "delivery-status": {"code": 550, "bounce-type": "hard",
                    "message": "5.1.1 The email account that you tried to reach does not exist",
                    "attempt-no": 1, "enhanced-code": "5.1.1"}}),
            SampleKind::Dropped => json!({"event": "failed", "severity": "permanent",
                "reason": "suppress-bounce", "log-level": "error",
                "message": {"headers": full_headers, "attachments": [], "size": 4096},
                "delivery-status": {"code": 605, "attempt-no": 1,
                    "message": "Not delivering to previously bounced address"}}),
            SampleKind::Opened => {
                let mut value = engagement.clone();
                value["event"] = json!("opened");
                value["message"] = json!({"headers": id_only});
                value
            }
            SampleKind::Clicked => {
                let mut value = engagement.clone();
                value["event"] = json!("clicked");
                value["url"] = json!("https://example.com/projects/7/updates");
                value["message"] = json!({"headers": id_only});
                value
            }
            SampleKind::Complained => json!({"event": "complained", "log-level": "warn",
                "message": {"headers": full_headers, "attachments": [], "size": 4096}}),
        };
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        data
    }
}

/// A complete JSON webhook body for `event_data`, signed with `key`.
pub fn signed_json(key: &SigningKey, timestamp: i64, token: &str, event_data: Value) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let signature = key.sign(&timestamp, token);
    let body = json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A legacy urlencoded webhook body with `fields` (in order) plus the signature fields.
pub fn signed_form(
    key: &SigningKey,
    timestamp: i64,
    token: &str,
    fields: &[(&str, &str)],
) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let signature = key.sign(&timestamp, token);
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    form.append_pair("timestamp", &timestamp);
    form.append_pair("token", token);
    form.append_pair("signature", &signature);
    form.finish().into_bytes()
}

/// A 50-character token derived from `seed` (callers mix in time and a counter).
pub fn token_from_seed(seed: &str) -> String {
    let mut token = crate::event_key::short_hash(seed);
    token.push_str(&crate::event_key::short_hash(&format!("{seed}/2")));
    token.truncate(50);
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailgun::{WebhookFormat, parse_event, read_signature};
    use crate::signature::SigningKeys;
    use crate::status::{DeliveryStatus, Effect};

    #[test]
    fn samples_verify_and_parse_to_the_status_they_name() {
        let key = SigningKey::new("sample-key");
        let keys = SigningKeys::new(vec![key.clone()]);
        for (kind, expected) in [
            (SampleKind::Accepted, Some(DeliveryStatus::Accepted)),
            (SampleKind::Delivered, Some(DeliveryStatus::Delivered)),
            (SampleKind::Deferred, Some(DeliveryStatus::Deferred)),
            (SampleKind::Bounced, Some(DeliveryStatus::Bounced)),
            (SampleKind::Dropped, Some(DeliveryStatus::Dropped)),
            (SampleKind::Complained, Some(DeliveryStatus::Complained)),
            (SampleKind::Opened, None),
            (SampleKind::Clicked, None),
        ] {
            let sample = SampleEvent {
                kind,
                message_id: "m@x",
                recipient: "a@example.com",
                timestamp: 1_700_000_000.25,
                backer_id: Some(4),
                project_id: Some(5),
                subject: "Hello",
            };
            let token = token_from_seed(&format!("{kind:?}"));
            assert_eq!(token.len(), 50);
            let body = signed_json(&key, 1_700_000_000, &token, sample.event_data());
            let signature = read_signature(&WebhookFormat::Json, &body).unwrap();
            assert_eq!(keys.verify(&signature.signed()), Ok(0));
            let event = parse_event(&WebhookFormat::Json, &body, 0).unwrap();
            assert_eq!(event.variables.integer("backer_id"), Ok(Some(4)));
            if let Some(expected) = expected {
                assert_eq!(event.effect, Effect::Status(expected), "{kind:?}");
            } else {
                assert!(matches!(event.effect, Effect::Engagement(_)), "{kind:?}");
            }
        }
    }
}
