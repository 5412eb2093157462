//! Every row of `docs/status-mapping.md`, checked against the code that implements it.
//!
//! Each case builds its event from a small webhook body through the real parsers
//! (`mailgun::parse_event` with `WebhookFormat::Json` or `WebhookFormat::FormUrlEncoded`), then
//! reads the effect on its row that Mailgun's mapping (`mailgun::status`) decided; the precedence rows apply parsed
//! events to a `MessageState` in both orders. Cases are grouped by story, each case names its
//! doc row, and `every_row_of_the_mapping_doc_has_a_case` keeps the doc and the cases in step.

use std::collections::BTreeSet;

use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::{ParseError, WebhookFormat, parse_event};
use mailtrail_core::status::{DeliveryStatus, Effect, Engagement, MessageState};
use mailtrail_core::{Event, EventKind};

use DeliveryStatus::{Accepted, Bounced, Complained, Deferred, Delivered, Dropped};

/// What a row of the doc says happens.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The event's effect on its row.
    Effect(Effect),
    /// The body is refused before it is an event.
    Refused(ParseError),
    /// The row after applying a list of events (the same in both orders).
    Row(RowState),
    /// Applying the events forward and backward disagreed: never what a row says.
    OrderDependent(RowState, RowState),
}

/// The parts of a row the precedence rows talk about.
#[derive(Debug, PartialEq)]
struct RowState {
    status: Option<DeliveryStatus>,
    explicit: Option<bool>,
    opens: i64,
    events: i64,
}

/// One check of one doc row.
struct Case {
    row: &'static str,
    got: Outcome,
    want: Outcome,
}

/// A JSON webhook around `event_data`, read by the real JSON parser.
fn json(event_data: &str) -> Result<Event, ParseError> {
    let body = format!(
        r#"{{"signature": {{"timestamp": "1700000000", "token": "tok", "signature": "00"}},
            "event-data": {event_data}}}"#
    );
    parse_event(&WebhookFormat::Json, body.as_bytes(), 0)
}

/// A legacy urlencoded webhook with `fields` (already encoded), read by the real form parser.
fn form(fields: &str) -> Result<Event, ParseError> {
    let body = format!("{fields}&timestamp=1461261330&token=tok&signature=00");
    parse_event(&WebhookFormat::FormUrlEncoded, body.as_bytes(), 0)
}

/// A case about one event's effect.
fn effect(row: &'static str, event: Result<Event, ParseError>, want: Effect) -> Case {
    let got = match event {
        Ok(event) => Outcome::Effect(event.effect),
        Err(error) => Outcome::Refused(error),
    };
    Case {
        row,
        got,
        want: Outcome::Effect(want),
    }
}

fn status(row: &'static str, event: Result<Event, ParseError>, want: DeliveryStatus) -> Case {
    effect(row, event, Effect::Status(want))
}

/// Applies `events` to a fresh row, keyed as the store keys them.
fn apply<'a>(events: impl Iterator<Item = &'a Event>) -> RowState {
    let mut state = MessageState::default();
    for event in events {
        state.apply(&event_key(event), event);
    }
    RowState {
        status: state.delivery_status(),
        explicit: state.status.as_ref().map(|claim| claim.explicit),
        opens: state.engagement.opened_count,
        events: state.event_count,
    }
}

/// A precedence case: the row after `events`, which must not depend on their order.
fn precedence(row: &'static str, events: &[Event], want: RowState) -> Case {
    let forward = apply(events.iter());
    let backward = apply(events.iter().rev());
    let got = if forward == backward {
        Outcome::Row(forward)
    } else {
        Outcome::OrderDependent(forward, backward)
    };
    Case {
        row,
        got,
        want: Outcome::Row(want),
    }
}

fn row(status: DeliveryStatus, explicit: bool, opens: i64, events: i64) -> RowState {
    RowState {
        status: Some(status),
        explicit: Some(explicit),
        opens,
        events,
    }
}

/// Checks every case and reports all mismatches at once, by doc row.
fn assert_rows(cases: Vec<Case>) {
    let failures: Vec<String> = cases
        .iter()
        .filter(|case| case.got != case.want)
        .map(|case| {
            format!(
                "row {}: got {:?}, the doc says {:?}",
                case.row, case.got, case.want
            )
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// --- Current JSON webhooks -------------------------------------------------------------------

fn json_outcomes_that_name_their_status() -> Vec<Case> {
    vec![
        status(
            "J01",
            json(
                r#"{"event": "accepted", "timestamp": 1700000000.1, "recipient": "a@example.com",
                    "message": {"headers": {"message-id": "m@mg.example.com"}},
                    "delivery-status": null}"#,
            ),
            Accepted,
        ),
        status(
            "J02",
            json(
                r#"{"event": "delivered", "timestamp": 1700000001.2, "recipient": "a@example.com",
                    "message": {"headers": {"message-id": "m@mg.example.com"}},
                    "delivery-status": {"code": 250, "message": "OK", "description": null}}"#,
            ),
            Delivered,
        ),
        status(
            "J19",
            json(
                r#"{"event": "complained", "timestamp": 1700000050, "recipient": "a@example.com",
                    "log-level": "warn",
                    "message": {"headers": {"message-id": "m@mg.example.com"}}}"#,
            ),
            Complained,
        ),
    ]
}

fn json_temporary_failures() -> Vec<Case> {
    let temporary = |reason: &str, code: &str| {
        json(&format!(
            r#"{{"event": "failed", "severity": "temporary", "reason": "{reason}",
                "log-level": "warn", "recipient": "a@example.com",
                "delivery-status": {{"code": {code}, "retry-seconds": 600, "attempt-no": 1}}}}"#
        ))
    };
    vec![
        status("J03", temporary("generic", "452"), Deferred),
        status("J03", temporary("generic", "421"), Deferred),
        status("J03", temporary("generic", "498"), Deferred),
        status("J04", temporary("greylisted", "450"), Deferred),
        status("J05", temporary("espblock", "421"), Deferred),
        status("J05", temporary("something-new", "\"4.7.1\""), Deferred),
        status("J06", temporary("old", "498"), Dropped),
        status("J06", temporary("OLD", "498"), Dropped),
    ]
}

fn json_permanent_failures() -> Vec<Case> {
    let permanent = |reason: &str, code: &str| {
        json(&format!(
            r#"{{"event": "failed", "severity": "permanent", "reason": "{reason}",
                "log-level": "error", "recipient": "a@example.com",
                "delivery-status": {{"code": {code}, "message": "", "attempt-no": 1}}}}"#
        ))
    };
    vec![
        status("J07", permanent("bounce", "550"), Bounced),
        status(
            "J08",
            json(
                r#"{"event": "failed", "severity": "permanent", "reason": "generic",
                    "flags": {"is-delayed-bounce": true}, "recipient": "a@example.com",
                    "delivery-status": {"bounce-code": "5.1.1", "code": 550,
                                        "enhanced-code": "5.1.1"}}"#,
            ),
            Bounced,
        ),
        status("J09", permanent("suppress-bounce", "605"), Dropped),
        status("J10", permanent("suppress-unsubscribe", "606"), Dropped),
        status("J11", permanent("suppress-complaint", "607"), Dropped),
        status("J12", permanent("generic", "605"), Dropped),
        status("J12", permanent("bounce", "606"), Dropped),
        status("J12", permanent("generic", "\"607\""), Dropped),
        status("J12", permanent("generic", "625"), Dropped),
        status("J13", permanent("old", "498"), Dropped),
        status("J13", permanent("old", "550"), Dropped),
    ]
}

fn json_failures_without_a_severity() -> Vec<Case> {
    vec![
        status(
            "J14",
            json(
                r#"{"event": "failed", "reason": "bounce", "recipient": "a@example.com",
                    "delivery-status": {"code": 550}}"#,
            ),
            Bounced,
        ),
        status(
            "J14",
            json(
                r#"{"event": "failed", "severity": "fatal", "reason": "bounce",
                    "delivery-status": {"code": 550}}"#,
            ),
            Bounced,
        ),
        status(
            "J14",
            json(
                r#"{"event": "failed", "reason": "suppress-bounce",
                    "delivery-status": {"code": 605}}"#,
            ),
            Dropped,
        ),
    ]
}

fn json_engagement() -> Vec<Case> {
    let engagement = |fields: &str| {
        json(&format!(
            r#"{{{fields}, "timestamp": 1700000100, "recipient": "a@example.com",
                "ip": "203.0.113.7", "geolocation": {{"country": "US", "region": "Unknown"}},
                "message": {{"headers": {{"message-id": "m@mg.example.com"}}}}}}"#
        ))
    };
    vec![
        effect(
            "J15",
            engagement(r#""event": "opened", "client-info": {"bot": ""}"#),
            Effect::Engagement(Engagement::Opened { bot: false }),
        ),
        effect(
            "J15",
            engagement(r#""event": "opened", "client-info": {"bot": null}"#),
            Effect::Engagement(Engagement::Opened { bot: false }),
        ),
        effect(
            "J15",
            engagement(r#""event": "opened""#),
            Effect::Engagement(Engagement::Opened { bot: false }),
        ),
        effect(
            "J16",
            engagement(r#""event": "opened", "client-info": {"bot": "apple"}"#),
            Effect::Engagement(Engagement::Opened { bot: true }),
        ),
        effect(
            "J16",
            engagement(r#""event": "opened", "client-info": {"bot": "gmail"}"#),
            Effect::Engagement(Engagement::Opened { bot: true }),
        ),
        effect(
            "J17",
            engagement(r#""event": "clicked", "url": "https://example.com/p/7""#),
            Effect::Engagement(Engagement::Clicked { bot: false }),
        ),
        effect(
            "J18",
            engagement(r#""event": "unsubscribed", "tags": ["*"], "storage": []"#),
            Effect::Engagement(Engagement::Unsubscribed),
        ),
    ]
}

fn json_rejected_and_unknown_kinds() -> Vec<Case> {
    vec![
        status(
            "J20",
            json(
                r#"{"event": "rejected", "timestamp": 1529704976.1, "log-level": "warn",
                    "reject": {"reason": "Sandbox subdomains are for test purposes only."},
                    "message": {"headers": {"message-id": "r@sandbox.mailgun.org"}}}"#,
            ),
            Dropped,
        ),
        effect(
            "J21",
            json(
                r#"{"event": "stored", "timestamp": 1700000000, "recipient": "a@example.com",
                    "storage": {"key": "k", "url": "https://storage.example.com/k"}}"#,
            ),
            Effect::None,
        ),
        effect(
            "J21",
            json(r#"{"event": "list_member_uploaded", "timestamp": 1700000000}"#),
            Effect::None,
        ),
    ]
}

// --- Legacy form webhooks --------------------------------------------------------------------

const LEGACY_ID: &str =
    "Message-Id=%3C20160421175529.19495%40example.com%3E&recipient=alice%40example.com";
const LEGACY_TRACKING: &str = "message-id=20160421175529.19495%40example.com&recipient=alice%40example.com&ip=50.56.129.169&country=US&client-name=Chrome";

fn legacy_deliveries_complaints_and_engagement() -> Vec<Case> {
    vec![
        status(
            "L01",
            form(&format!("event=delivered&{LEGACY_ID}")),
            Delivered,
        ),
        effect(
            "L08",
            form(&format!("event=opened&{LEGACY_TRACKING}")),
            Effect::Engagement(Engagement::Opened { bot: false }),
        ),
        effect(
            "L09",
            form(&format!(
                "event=clicked&{LEGACY_TRACKING}&url=http%3A%2F%2Fexample.com%2Fp"
            )),
            Effect::Engagement(Engagement::Clicked { bot: false }),
        ),
        effect(
            "L10",
            form(&format!("event=unsubscribed&{LEGACY_TRACKING}&tag=%2A")),
            Effect::Engagement(Engagement::Unsubscribed),
        ),
        status(
            "L11",
            form(&format!("event=complained&{LEGACY_ID}&campaign-id=c1")),
            Complained,
        ),
    ]
}

fn legacy_bounces() -> Vec<Case> {
    let bounced = |code: &str| {
        form(&format!(
            "event=bounced&{LEGACY_ID}&code={code}&error=550+5.1.1+The+email+account+does+not+exist"
        ))
    };
    vec![
        status("L02", bounced("550"), Bounced),
        status("L03", bounced("5.1.1"), Bounced),
        status("L04", bounced("605"), Dropped),
        status("L04", bounced("606"), Dropped),
        status("L04", bounced("607"), Dropped),
        status("L04", bounced("625"), Dropped),
    ]
}

fn legacy_drops() -> Vec<Case> {
    let dropped =
        |reason_and_code: &str| form(&format!("event=dropped&{LEGACY_ID}{reason_and_code}"));
    vec![
        status(
            "L05",
            dropped(
                "&reason=hardfail&code=605&description=Not+delivering+to+previously+bounced+address",
            ),
            Dropped,
        ),
        status("L05", dropped("&reason=hardfail&code=607"), Dropped),
        status(
            "L06",
            dropped("&reason=old&code=499&description=Unable+to+connect+to+MX+servers"),
            Dropped,
        ),
        status("L07", dropped(""), Dropped),
    ]
}

fn legacy_unknown_events_and_inbound_posts() -> Vec<Case> {
    vec![
        effect(
            "L12",
            form(&format!("event=stored&{LEGACY_ID}")),
            Effect::None,
        ),
        Case {
            row: "L13",
            got: match form(
                "recipient=test%40inbound.example.com&sender=from%40example.org&body-plain=Hi",
            ) {
                Ok(event) => Outcome::Effect(event.effect),
                Err(error) => Outcome::Refused(error),
            },
            want: Outcome::Refused(ParseError::MissingEvent),
        },
    ]
}

// --- Precedence ------------------------------------------------------------------------------

/// A JSON event about the same message and recipient at `timestamp` seconds.
fn at(timestamp: u32, fields: &str) -> Event {
    json(&format!(
        r#"{{{fields}, "timestamp": {timestamp}, "recipient": "a@example.com",
            "message": {{"headers": {{"message-id": "p@mg.example.com"}}}}}}"#
    ))
    .unwrap_or_else(|error| panic!("{fields}: {error}"))
}

fn precedence_rows() -> Vec<Case> {
    let accepted = at(100, r#""event": "accepted""#);
    let delivered = at(
        110,
        r#""event": "delivered", "delivery-status": {"code": 250}"#,
    );
    let deferred_later = at(
        120,
        r#""event": "failed", "severity": "temporary", "reason": "generic",
           "delivery-status": {"code": 452}"#,
    );
    let delayed_bounce = at(
        500,
        r#""event": "failed", "severity": "permanent", "reason": "generic",
           "flags": {"is-delayed-bounce": true}, "delivery-status": {"bounce-code": "5.1.1"}"#,
    );
    let bounce = at(
        105,
        r#""event": "failed", "severity": "permanent", "reason": "bounce",
           "delivery-status": {"code": 550}"#,
    );
    let opened = at(200, r#""event": "opened", "client-info": {"bot": ""}"#);
    let clicked = at(210, r#""event": "clicked", "url": "https://example.com/""#);
    let bounced_at = |t| {
        at(
            t,
            r#""event": "failed", "severity": "permanent", "reason": "bounce",
               "delivery-status": {"code": 550}"#,
        )
    };
    let dropped_at = |t| {
        at(
            t,
            r#""event": "failed", "severity": "permanent", "reason": "suppress-bounce",
               "delivery-status": {"code": 605}"#,
        )
    };
    let complained = at(300, r#""event": "complained""#);
    let unknown = at(400, r#""event": "stored""#);
    vec![
        precedence(
            "P01",
            &[delivered.clone(), deferred_later],
            row(Delivered, true, 0, 2),
        ),
        precedence(
            "P01",
            &[delivered.clone(), at(900, r#""event": "accepted""#)],
            row(Delivered, true, 0, 2),
        ),
        precedence(
            "P02",
            &[delivered.clone(), delayed_bounce],
            row(Bounced, true, 0, 2),
        ),
        precedence(
            "P03",
            &[bounce.clone(), opened.clone()],
            row(Bounced, true, 1, 2),
        ),
        precedence("P04", &[accepted, clicked], row(Delivered, false, 0, 2)),
        precedence(
            "P05",
            &[opened, delivered.clone()],
            row(Delivered, true, 1, 2),
        ),
        precedence(
            "P06",
            &[bounced_at(100), dropped_at(101)],
            row(Dropped, true, 0, 2),
        ),
        precedence(
            "P06",
            &[dropped_at(100), bounced_at(101)],
            row(Bounced, true, 0, 2),
        ),
        precedence("P07", &[bounce, complained], row(Complained, true, 0, 2)),
        precedence(
            "P08",
            &[delivered.clone(), unknown],
            row(Delivered, true, 0, 1),
        ),
        precedence(
            "P09",
            &[delivered.clone(), delivered],
            row(Delivered, true, 0, 1),
        ),
    ]
}

// --- The tests -------------------------------------------------------------------------------

#[test]
fn json_accepted_delivered_and_complained_claim_their_own_status() {
    assert_rows(json_outcomes_that_name_their_status());
}

#[test]
fn json_temporary_failures_defer_unless_mailgun_gave_up_as_old() {
    assert_rows(json_temporary_failures());
}

#[test]
fn json_permanent_failures_bounce_unless_suppressed_or_old() {
    assert_rows(json_permanent_failures());
}

#[test]
fn json_failures_without_a_known_severity_count_as_permanent() {
    assert_rows(json_failures_without_a_severity());
}

#[test]
fn json_opens_clicks_and_unsubscribes_are_engagement_and_bots_are_flagged() {
    assert_rows(json_engagement());
}

#[test]
fn json_rejected_is_dropped_and_unknown_kinds_touch_nothing() {
    assert_rows(json_rejected_and_unknown_kinds());
}

#[test]
fn legacy_deliveries_complaints_and_engagement_map_like_json() {
    assert_rows(legacy_deliveries_complaints_and_engagement());
}

#[test]
fn legacy_bounces_are_bounced_unless_their_code_is_a_suppression() {
    assert_rows(legacy_bounces());
}

#[test]
fn every_legacy_drop_is_dropped_whatever_its_reason() {
    assert_rows(legacy_drops());
}

#[test]
fn legacy_unknown_events_touch_nothing_and_inbound_posts_are_refused() {
    assert_rows(legacy_unknown_events_and_inbound_posts());
}

#[test]
fn the_precedence_rows_hold_in_either_order() {
    assert_rows(precedence_rows());
}

#[test]
fn an_unknown_kind_keeps_its_name_for_the_events_table() {
    let event = json(r#"{"event": "stored", "recipient": "a@example.com"}"#).unwrap();
    assert_eq!(event.kind, EventKind::Other("stored".into()));
    assert_eq!(event.kind.as_str(), "stored");
}

#[test]
fn every_row_of_the_mapping_doc_has_a_case() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/status-mapping.md");
    let doc = std::fs::read_to_string(doc_path).unwrap();
    // Table rows start with `| J01 |`, `| L07 |`, `| P03 |`.
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split_once(' ').map(|(id, _)| id))
        .filter(|id| {
            id.len() == 3
                && id.starts_with(['J', 'L', 'P'])
                && id[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect();
    let tested: BTreeSet<String> = [
        json_outcomes_that_name_their_status(),
        json_temporary_failures(),
        json_permanent_failures(),
        json_failures_without_a_severity(),
        json_engagement(),
        json_rejected_and_unknown_kinds(),
        legacy_deliveries_complaints_and_engagement(),
        legacy_bounces(),
        legacy_drops(),
        legacy_unknown_events_and_inbound_posts(),
        precedence_rows(),
    ]
    .into_iter()
    .flatten()
    .map(|case| case.row.to_owned())
    .collect();
    assert!(
        documented.len() >= 40,
        "only {documented:?} found in {doc_path}"
    );
    assert_eq!(
        documented, tested,
        "the rows of docs/status-mapping.md and the cases here differ"
    );
}
