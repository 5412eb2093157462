//! Reading a webhook costs time in proportion to its body, in every format and whatever the body
//! repeats: many tags, many custom variables, many headers. A body is unsigned, so anything
//! worse than linear is a lever for whoever can reach the receiver.
//!
//! Each case times the parser on a body of `n` repetitions and on one of `16 n`. Linear work
//! takes about 16 times as long; quadratic work 256 times. The assertion allows 64: four times
//! off either way. It takes the fastest of several runs of each size, interleaved, so one
//! descheduled run cannot fail it, and a machine busy enough to stretch every run of the larger
//! body (preempted many times where the smaller fits in one time slice) still stays inside the
//! margin. The cases run one after the other in a single test, so they never compete with each
//! other for the CPU.
//!
//! The caps on what one body may hold are checked here too.

use std::time::{Duration, Instant};

use mailtrail_core::SigningKey;
use mailtrail_core::mailgun::{
    MAX_FORM_FIELDS, MAX_TAGS, ParseError, WebhookFormat, parse_event, read_signature,
};
use mailtrail_core::sample::{signed_form, signed_json};
use serde_json::{Value, json};

const ROUNDS: usize = 9;
const GROWTH: usize = 16;
/// Linear is about GROWTH, quadratic about GROWTH²: their geometric mean.
const MOST_RATIO: f64 = 4.0 * GROWTH as f64;

const BOUNDARY: &str = "linear-parsing-boundary";

fn key() -> SigningKey {
    SigningKey::new("linear-parsing-key")
}

/// The fastest of `ROUNDS` runs of `parse` on each body, interleaved.
fn fastest(bodies: [&[u8]; 2], parse: &dyn Fn(&[u8])) -> [Duration; 2] {
    let mut best = [Duration::MAX; 2];
    for _ in 0..ROUNDS {
        for (body, best) in bodies.iter().zip(best.iter_mut()) {
            let started = Instant::now();
            parse(body);
            *best = (*best).min(started.elapsed());
        }
    }
    best
}

/// Asserts that `parse` on `body(GROWTH * n)` takes at most `MOST_RATIO` times as long as on
/// `body(n)`.
fn assert_linear(case: &str, n: usize, body: impl Fn(usize) -> Vec<u8>, parse: impl Fn(&[u8])) {
    let (small, large) = (body(n), body(GROWTH * n));
    let [small_time, large_time] = fastest([&small, &large], &parse);
    let ratio = large_time.as_secs_f64() / small_time.as_secs_f64().max(1e-9);
    eprintln!(
        "{case}: {n} in {small_time:?}, {} in {large_time:?}: {ratio:.1}",
        GROWTH * n
    );
    assert!(
        ratio < MOST_RATIO,
        "{case}: {n} took {small_time:?}, {} took {large_time:?}: {ratio:.1} times as long \
         for {GROWTH} times the input",
        GROWTH * n
    );
}

/// Parses the body the way the receiver and then the worker do.
fn receive_and_parse(format: &WebhookFormat) -> impl Fn(&[u8]) + '_ {
    move |body| {
        read_signature(format, body).unwrap();
        parse_event(format, body, 0).unwrap();
    }
}

/// A signed legacy click with `extra` after its own fields (and before the signature).
fn legacy_form(extra: &[(String, String)]) -> Vec<u8> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("event", "clicked"),
        ("recipient", "a@example.com"),
        ("message-id", "m@example.com"),
    ];
    fields.extend(
        extra
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    signed_form(&key(), 1_764_000_000, "linear-token", &fields)
}

/// A signed legacy form with `repeated(i)` as its `n` extra fields.
fn form_with(repeated: impl Fn(usize) -> (String, String)) -> impl Fn(usize) -> Vec<u8> {
    move |n| legacy_form(&(0..n).map(&repeated).collect::<Vec<_>>())
}

/// The same fields as a multipart post.
fn multipart_with(repeated: impl Fn(usize) -> (String, String)) -> impl Fn(usize) -> Vec<u8> {
    move |n| {
        let timestamp = "1764000000";
        let signature = key().sign(timestamp, "linear-token");
        let mut fields: Vec<(String, String)> = vec![
            ("event".into(), "clicked".into()),
            ("recipient".into(), "a@example.com".into()),
        ];
        fields.extend((0..n).map(&repeated));
        fields.extend([
            ("timestamp".into(), timestamp.into()),
            ("token".into(), "linear-token".into()),
            ("signature".into(), signature),
        ]);
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n\
                     {value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }
}

/// A signed JSON webhook whose `event-data` gets `grow(n)` merged in.
fn json_with(grow: impl Fn(usize) -> Value) -> impl Fn(usize) -> Vec<u8> {
    move |n| {
        let mut data = json!({"event": "clicked", "timestamp": 1_764_000_000.5,
                              "recipient": "a@example.com",
                              "message": {"headers": {"Message-ID": "m@example.com"}}});
        if let (Value::Object(data), Value::Object(more)) = (&mut data, grow(n)) {
            data.extend(more);
        }
        signed_json(&key(), 1_764_000_000, "linear-token", data)
    }
}

fn distinct(i: usize) -> String {
    format!("value-{i:08}")
}

#[test]
fn every_format_is_read_in_linear_time_whatever_the_body_repeats() {
    legacy_forms();
    multipart_forms();
    json_webhooks();
}

fn legacy_forms() {
    let format = WebhookFormat::FormUrlEncoded;
    let n = MAX_FORM_FIELDS / 20;
    assert_linear(
        "distinct tags",
        n,
        form_with(|i| ("tag".into(), distinct(i))),
        receive_and_parse(&format),
    );
    assert_linear(
        "distinct X-Mailgun-Tag",
        n,
        form_with(|i| ("X-Mailgun-Tag".into(), distinct(i))),
        receive_and_parse(&format),
    );
    assert_linear(
        "one tag repeated",
        n,
        form_with(|_| ("tag".into(), "same".into())),
        receive_and_parse(&format),
    );
    assert_linear(
        "distinct custom variables",
        n,
        form_with(|i| (distinct(i), "1".into())),
        receive_and_parse(&format),
    );
    assert_linear(
        "one custom variable repeated",
        n,
        form_with(|_| ("backer_id".into(), "1".into())),
        receive_and_parse(&format),
    );
    assert_linear(
        "repeated signature fields",
        n,
        form_with(|i| {
            (
                ["timestamp", "token", "signature"][i % 3].into(),
                distinct(i),
            )
        }),
        receive_and_parse(&format),
    );
    assert_linear(
        "X-Mailgun-Variables headers",
        n,
        |n| {
            let headers: Vec<Value> = (0..n)
                .map(|i| json!(["X-Mailgun-Variables", format!("{{\"{}\": 1}}", distinct(i))]))
                .collect();
            legacy_form(&[("message-headers".into(), Value::Array(headers).to_string())])
        },
        receive_and_parse(&format),
    );
}

fn multipart_forms() {
    let format = WebhookFormat::Multipart {
        boundary: BOUNDARY.into(),
    };
    let n = MAX_FORM_FIELDS / 20;
    assert_linear(
        "distinct tags",
        n,
        multipart_with(|i| ("tag".into(), distinct(i))),
        receive_and_parse(&format),
    );
    assert_linear(
        "distinct custom variables",
        n,
        multipart_with(|i| (distinct(i), "1".into())),
        receive_and_parse(&format),
    );
    assert_linear(
        "a long value with many line breaks",
        n,
        multipart_with(|_| ("notes".into(), "\n--linear-parsing-boundar\r\n".repeat(8))),
        receive_and_parse(&format),
    );
}

fn json_webhooks() {
    let format = WebhookFormat::Json;
    let n = 500;
    assert_linear(
        "distinct tags",
        n,
        json_with(|n| json!({"tags": (0..n).map(distinct).collect::<Vec<_>>()})),
        receive_and_parse(&format),
    );
    assert_linear(
        "distinct user variables",
        n,
        json_with(|n| {
            let variables: serde_json::Map<String, Value> =
                (0..n).map(|i| (distinct(i), json!(1))).collect();
            json!({"user-variables": variables})
        }),
        receive_and_parse(&format),
    );
    assert_linear(
        "headers looked up without regard to case",
        n,
        json_with(|n| {
            let headers: serde_json::Map<String, Value> = (0..n)
                .map(|i| (distinct(i), json!("x")))
                .chain([("Message-ID".to_owned(), json!("m@example.com"))])
                .collect();
            json!({"message": {"headers": headers}})
        }),
        receive_and_parse(&format),
    );
}

#[test]
fn a_form_with_more_fields_than_the_cap_is_refused_and_tags_are_capped() {
    let at_cap = form_with(|i| ("tag".into(), distinct(i)))(MAX_FORM_FIELDS - 6);
    let event = parse_event(&WebhookFormat::FormUrlEncoded, &at_cap, 0).unwrap();
    assert_eq!(event.tags.len(), MAX_TAGS);
    assert_eq!(event.tags[0], distinct(0));

    let over = form_with(|i| ("tag".into(), distinct(i)))(MAX_FORM_FIELDS);
    for refused in [
        read_signature(&WebhookFormat::FormUrlEncoded, &over).map(|_| ()),
        parse_event(&WebhookFormat::FormUrlEncoded, &over, 0).map(|_| ()),
    ] {
        let Err(ParseError::InvalidForm(reason)) = refused else {
            panic!("a form over the cap was read: {refused:?}");
        };
        assert!(
            reason.as_str().contains(&MAX_FORM_FIELDS.to_string()),
            "{reason}"
        );
    }

    let format = WebhookFormat::Multipart {
        boundary: BOUNDARY.into(),
    };
    let over = multipart_with(|i| ("tag".into(), distinct(i)))(MAX_FORM_FIELDS);
    assert!(matches!(
        read_signature(&format, &over),
        Err(ParseError::InvalidForm(_))
    ));
    let json = json_with(|n| json!({"tags": (0..n).map(distinct).collect::<Vec<_>>()}))(1_000);
    let event = parse_event(&WebhookFormat::Json, &json, 0).unwrap();
    assert_eq!(event.tags.len(), MAX_TAGS);
}
