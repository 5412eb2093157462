//! Micro-benchmarks of the hot steps: what the receiver does per webhook (read the signature,
//! verify the HMAC, build the envelope) and what the worker does per event (parse it whole), and
//! how parsing grows with a body that repeats a field (it must stay linear; the test
//! `tests/linear_parsing.rs` holds that, this shows the curve).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mailtrail_core::mailgun::{WebhookFormat, parse_event, read_signature};
use mailtrail_core::sample::{SampleEvent, SampleKind, signed_form, signed_json};
use mailtrail_core::{Envelope, SigningKey, SigningKeys, Source};

fn json_body() -> Vec<u8> {
    let sample = SampleEvent {
        kind: SampleKind::Delivered,
        message_id: "20261127110000.1a2b3c4d5e6f7081@mg.example.com",
        recipient: "backer@example.com",
        timestamp: 1_764_000_000.123_456,
        backer_id: Some(42),
        project_id: Some(7),
        subject: "Your pledge to Project Seven has been confirmed",
    };
    signed_json(
        &SigningKey::new("bench-key"),
        1_764_000_000,
        "0123456789abcdef0123456789abcdef0123456789abcdef01",
        sample.event_data(),
    )
}

fn form_body() -> Vec<u8> {
    signed_form(
        &SigningKey::new("bench-key"),
        1_764_000_000,
        "0123456789abcdef0123456789abcdef0123456789abcdef01",
        &[
            ("event", "delivered"),
            ("recipient", "backer@example.com"),
            ("domain", "mg.example.com"),
            (
                "Message-Id",
                "<20261127110000.1a2b3c4d5e6f7081@mg.example.com>",
            ),
            (
                "message-headers",
                r#"[["Subject", "Your pledge"], ["X-Mailgun-Variables", "{\"backer_id\": \"42\"}"]]"#,
            ),
            ("backer_id", "42"),
            ("project_id", "7"),
        ],
    )
}

fn receiver_path(c: &mut Criterion) {
    let body = json_body();
    let keys = SigningKeys::from_comma_separated("old-key,bench-key").unwrap_or_default();
    c.bench_function("json_read_signature", |b| {
        b.iter(|| read_signature(&WebhookFormat::Json, black_box(&body)))
    });
    let signature = read_signature(&WebhookFormat::Json, &body).ok();
    c.bench_function("verify_signature_second_of_two_keys", |b| {
        b.iter(|| {
            signature
                .as_ref()
                .map(|s| keys.verify(black_box(&s.signed())))
        })
    });
    c.bench_function("envelope_to_json", |b| {
        b.iter(|| Envelope::new(Source::Mailgun, 1, "application/json", black_box(&body)).to_json())
    });
    let form = form_body();
    c.bench_function("form_read_signature", |b| {
        b.iter(|| read_signature(&WebhookFormat::FormUrlEncoded, black_box(&form)))
    });
}

fn worker_path(c: &mut Criterion) {
    let body = json_body();
    c.bench_function("json_parse_event", |b| {
        b.iter(|| parse_event(&WebhookFormat::Json, black_box(&body), 0))
    });
    let form = form_body();
    c.bench_function("form_parse_event", |b| {
        b.iter(|| parse_event(&WebhookFormat::FormUrlEncoded, black_box(&form), 0))
    });
    let envelope = Envelope::new(Source::Mailgun, 1, "application/json", &body).to_json();
    c.bench_function("envelope_from_json", |b| {
        b.iter(|| Envelope::from_json(black_box(&envelope)))
    });
}

/// A signed legacy click carrying `n` distinct tags.
fn form_with_tags(n: usize) -> Vec<u8> {
    let tags: Vec<String> = (0..n).map(|i| format!("tag-{i:06}")).collect();
    let mut fields = vec![("event", "clicked"), ("recipient", "backer@example.com")];
    fields.extend(tags.iter().map(|tag| ("tag", tag.as_str())));
    signed_form(
        &SigningKey::new("bench-key"),
        1_764_000_000,
        "growth-token",
        &fields,
    )
}

fn growth(c: &mut Criterion) {
    let mut group = c.benchmark_group("form_parse_event_by_tag_count");
    for n in [100, 1_000, 9_000] {
        let body = form_with_tags(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
            b.iter(|| parse_event(&WebhookFormat::FormUrlEncoded, black_box(body), 0))
        });
    }
    group.finish();
}

criterion_group!(benches, receiver_path, worker_path, growth);
criterion_main!(benches);
