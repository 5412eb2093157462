//! The webhooks the load generator sends: realistic, signed Mailgun JSON bodies of about 2 KB,
//! all built (in parallel, on every core) before the clock starts, so a run times only their
//! sending.
//!
//! Every body has a token of its own, so the receiver's replay protection never drops one as a
//! duplicate, and every three share a message id (accepted, delivered, opened), so the worker's
//! fold and upsert see several events per row, as in a real campaign. A run id taken from the
//! clock and the process keeps repeated runs from reusing tokens or messages.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_json, token_from_seed};
use mailtrail_core::{Envelope, SigningKey, Source};
use serde_json::Value;

/// The size the bodies are padded to: a Mailgun `delivered` webhook with a few custom
/// variables is about this large.
const TARGET_BODY_BYTES: usize = 2048;

/// Events per message, in order.
const KINDS: [SampleKind; 3] = [
    SampleKind::Accepted,
    SampleKind::Delivered,
    SampleKind::Opened,
];

/// One pre-built webhook.
#[derive(Clone, Debug)]
pub struct LoadBody {
    /// Mailgun's `event-data.id` (stored as `email_events.event_id`).
    pub event_id: String,
    /// The signed JSON body (or, for Redis targets, the envelope the receiver would queue).
    pub body: Bytes,
}

/// Builds `count` signed webhooks for run `run_id`, in parallel on every core. Each has a unique
/// token and event id; every three share a message id (accepted, delivered, opened).
pub fn build_bodies(key: &SigningKey, run_id: &str, count: usize) -> Vec<LoadBody> {
    let signed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(count.max(1));
    let per_thread = count.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let start = thread * per_thread;
                let end = (start + per_thread).min(count);
                scope.spawn(move || {
                    (start..end)
                        .map(|index| build_body(key, run_id, index, signed_at as i64))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

fn build_body(key: &SigningKey, run_id: &str, index: usize, signed_at: i64) -> LoadBody {
    let message = index / KINDS.len();
    let kind = KINDS[index % KINDS.len()];
    let message_id = format!("load-{run_id}-{message}@mg.example.com");
    let recipient = format!("backer-{}@example.com", message % 100_000);
    let sample = SampleEvent {
        kind,
        message_id: &message_id,
        recipient: &recipient,
        timestamp: signed_at as f64 - 60.0 + (index % KINDS.len()) as f64 * 5.0,
        backer_id: Some((message % 100_000) as i64 + 1),
        project_id: Some((message % 97) as i64 + 1),
        subject: "Project update: your reward ships next week, here is what to expect",
    };
    let mut data = sample.event_data();
    let event_id = data["id"].as_str().unwrap_or_default().to_owned();
    if let Some(Value::Object(variables)) = data.get_mut("user-variables") {
        variables.insert(
            "campaign".into(),
            Value::from("update-2026-11-reward-shipping"),
        );
        variables.insert("locale".into(), Value::from("en-US"));
        variables.insert("template".into(), Value::from("project-update-v3"));
    }
    let token = token_from_seed(&format!("mailtrail-load/{run_id}/{index}"));
    let mut body = signed_json(key, signed_at, &token, data.clone());
    if body.len() < TARGET_BODY_BYTES {
        // Top up with a tracking variable, as senders often attach one, to reach ~2 KB.
        let missing = TARGET_BODY_BYTES - body.len();
        let filler = "t".repeat(missing.saturating_sub(20));
        if let Some(Value::Object(variables)) = data.get_mut("user-variables") {
            variables.insert("tracking".into(), Value::from(filler));
        }
        body = signed_json(key, signed_at, &token, data);
    }
    LoadBody {
        event_id,
        body: Bytes::from(body),
    }
}

/// Replaces each body by the envelope the receiver would queue for it, received now.
pub fn into_envelopes(bodies: &mut [LoadBody]) {
    let received_at_ms = mailtrail_queue::now_ms();
    for body in bodies {
        let envelope = Envelope::new(
            Source::Mailgun,
            received_at_ms,
            "application/json",
            &body.body,
        )
        .to_json();
        body.body = Bytes::from(envelope);
    }
}

/// The envelopes the receiver would have queued for `count` load webhooks of a new run.
pub fn build_envelopes(key: &SigningKey, count: usize) -> Vec<String> {
    let received_at_ms = mailtrail_queue::now_ms();
    build_bodies(key, &run_id(), count)
        .iter()
        .map(|body| {
            Envelope::new(
                Source::Mailgun,
                received_at_ms,
                "application/json",
                &body.body,
            )
            .to_json()
        })
        .collect()
}

/// A run id unique to this process and moment, so repeated runs never reuse tokens or messages.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", nanos, std::process::id())
}

#[cfg(test)]
mod tests {
    use mailtrail_core::SigningKeys;
    use mailtrail_core::mailgun::{WebhookFormat, read_signature};

    use super::*;

    #[test]
    fn bodies_are_about_2_kb_signed_and_unique() {
        let key = SigningKey::new("load-key");
        let keys = SigningKeys::new(vec![key.clone()]);
        let bodies = build_bodies(&key, "t1", 30);
        assert_eq!(bodies.len(), 30);
        let mut tokens = std::collections::BTreeSet::new();
        let mut event_ids = std::collections::BTreeSet::new();
        for body in &bodies {
            assert!(
                (1900..=2300).contains(&body.body.len()),
                "{}",
                body.body.len()
            );
            let signature = read_signature(&WebhookFormat::Json, &body.body).unwrap();
            assert_eq!(keys.verify(&signature.signed()), Ok(0));
            tokens.insert(signature.token.to_string());
            event_ids.insert(body.event_id.clone());
        }
        assert_eq!(tokens.len(), 30);
        assert_eq!(event_ids.len(), 30);
    }

    #[test]
    fn envelopes_carry_the_signed_body_unchanged() {
        let key = SigningKey::new("load-key");
        let mut bodies = build_bodies(&key, "t2", 3);
        let original = bodies[1].body.clone();
        into_envelopes(&mut bodies);
        let envelope = Envelope::from_json(std::str::from_utf8(&bodies[1].body).unwrap()).unwrap();
        assert_eq!(envelope.content_type, "application/json");
        assert_eq!(&*envelope.body_bytes().unwrap(), &original[..]);
    }
}
