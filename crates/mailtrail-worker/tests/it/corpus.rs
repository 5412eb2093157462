//! The Mailgun corpus against mailtrail: real webhook bodies collected from public sources
//! (`MAILTRAIL_CORPUS_DIR`, with its `MANIFEST.tsv`) must
//!
//! 1. verify with the signing key the manifest names, and the three known forgeries must not;
//! 2. parse without panicking, as the event the manifest names (an inbound-route post is refused
//!    as not an event);
//! 3. once given `backer_id`/`project_id` variables the way Mailgun would carry them, a message id
//!    of their own and a fresh signature from the test app's key, go through the real receiver,
//!    Redis and worker and end as the `sent_emails.status` their manifest event means, or be
//!    skipped or dead-lettered for the reason the payload gives.
//!
//! CI sets the variable (a path relative to the workspace root is resolved against it); without
//! it the test fails on CI and only prints a note elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_core::mailgun::{ParseError, WebhookFormat, parse_event, read_signature};
use mailtrail_core::sample::{signed_form, signed_json};
use mailtrail_core::{Event, EventKind, MessageId, Severity, SigningKey, SigningKeys};
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_testing::{TestApp, fresh_token, now_seconds};
use serde_json::{Value, json};

/// Bodies whose signature must not verify, whatever key is tried.
const KNOWN_FORGERIES: [&str; 3] = [
    "json-delivered-anymail-badsig-1.json",
    "json-opened-spatie-1.json",
    "json-clicked-spatie-1.json",
];

/// Mailgun's codes for messages it never attempted (suppressed addresses, poor list quality).
const SUPPRESSION_CODES: [&str; 4] = ["605", "606", "607", "625"];

/// The corpus directory, resolved; `None` (after a note) when it is not configured off CI.
fn corpus_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("MAILTRAIL_CORPUS_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "MAILTRAIL_CORPUS_DIR is unset on CI: the Mailgun corpus test cannot be skipped there \
             (set it to ../shared/mailgun-corpus, relative to the workspace root)"
        );
        eprintln!("note: MAILTRAIL_CORPUS_DIR is unset; skipping the Mailgun corpus test");
        return None;
    };
    let dir = PathBuf::from(dir);
    let dir = if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir)
    } else {
        dir
    };
    assert!(
        dir.is_dir(),
        "MAILTRAIL_CORPUS_DIR points at {}, which is not a directory",
        dir.display()
    );
    Some(dir)
}

/// The wire format of a corpus file.
#[derive(Debug)]
enum Format {
    Json,
    Form,
    Multipart { boundary: String },
}

impl Format {
    fn webhook_format(&self) -> WebhookFormat {
        match self {
            Self::Json => WebhookFormat::Json,
            Self::Form => WebhookFormat::FormUrlEncoded,
            Self::Multipart { boundary } => WebhookFormat::Multipart {
                boundary: boundary.clone(),
            },
        }
    }

    fn content_type(&self) -> String {
        match self {
            Self::Json => "application/json".into(),
            Self::Form => "application/x-www-form-urlencoded".into(),
            Self::Multipart { boundary } => format!("multipart/form-data; boundary={boundary}"),
        }
    }
}

/// One corpus file with its manifest row.
#[derive(Debug)]
struct Entry {
    file: String,
    format: Format,
    /// `delivered`, `failed/permanent`, `(none)`, ...
    event: String,
    /// `yes`, `no` or `string`.
    has_variables: String,
    /// As the payload carries it; empty when it carries none.
    message_id: String,
    /// The key the signature verifies with, if the manifest knows it.
    key: Option<String>,
    /// The manifest says this signature must fail.
    must_fail: bool,
    body: Vec<u8>,
}

impl Entry {
    /// True for the docs samples that hold only `event-data`, without the signature wrapper.
    fn is_event_data_only(&self) -> bool {
        matches!(self.format, Format::Json)
            && serde_json::from_slice::<Value>(&self.body)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", self.file))
                .get("event-data")
                .is_none()
    }

    /// The body as Mailgun would post it: event-data-only samples get a signature wrapper, the
    /// file's own bytes kept inside.
    fn as_posted(&self) -> Vec<u8> {
        if !self.is_event_data_only() {
            return self.body.clone();
        }
        let mut wrapped = br#"{"signature": {"timestamp": "1700000000", "token": "corpus", "signature": "00"}, "event-data": "#.to_vec();
        wrapped.extend_from_slice(&self.body);
        wrapped.push(b'}');
        wrapped
    }

    /// The event as the worker reads it.
    fn parse(&self) -> Result<Event, ParseError> {
        parse_event(&self.format.webhook_format(), &self.as_posted(), 0)
    }
}

/// Reads the manifest and every file in the directory; each must have the other.
fn load(dir: &Path) -> Vec<Entry> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut entries = Vec::new();
    for line in manifest
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
    {
        let columns: Vec<&str> = line.split('\t').collect();
        let [
            file,
            format,
            event,
            has_variables,
            message_id,
            key,
            _source,
            notes,
            ..,
        ] = columns[..]
        else {
            panic!("MANIFEST.tsv: malformed row {line:?}");
        };
        let format = match format {
            "json" => Format::Json,
            "form" => Format::Form,
            "multipart" => Format::Multipart {
                // The boundary lives in the notes: `boundary=...;`.
                boundary: notes
                    .split_once("boundary=")
                    .and_then(|(_, rest)| rest.split([';', ' ']).next())
                    .unwrap_or_else(|| panic!("{file}: no boundary in the manifest notes"))
                    .to_owned(),
            },
            other => panic!("{file}: unknown format {other:?} in the manifest"),
        };
        let body = std::fs::read(dir.join(file))
            .unwrap_or_else(|e| panic!("{file} is in the manifest but cannot be read: {e}"));
        entries.push(Entry {
            file: file.to_owned(),
            format,
            event: event.to_owned(),
            has_variables: has_variables.to_owned(),
            message_id: message_id.to_owned(),
            key: key
                .split_whitespace()
                .next()
                .filter(|key| key.starts_with("key-") || *key == "TEST_WEBHOOK_SIGNING_KEY")
                .map(str::to_owned),
            // The key column says so for a wrong key, the notes for a non-hex signature.
            must_fail: key.contains("MUST FAIL")
                || notes.to_ascii_uppercase().contains("MUST FAIL"),
            body,
        });
    }
    for listed in std::fs::read_dir(dir).unwrap() {
        let name = listed.unwrap().file_name().into_string().unwrap();
        if name == "MANIFEST.tsv" || name == "README.md" {
            continue;
        }
        assert!(
            entries.iter().any(|entry| entry.file == name),
            "{name} is in the corpus directory but not in MANIFEST.tsv"
        );
    }
    assert!(
        entries.len() >= 60,
        "only {} corpus files listed",
        entries.len()
    );
    entries
}

#[test]
fn corpus_signatures_verify_with_their_manifest_keys_and_the_forgeries_fail() {
    let Some(dir) = corpus_dir() else { return };
    let entries = load(&dir);
    let every_key: Vec<&str> = {
        let mut keys: Vec<&str> = entries.iter().filter_map(|e| e.key.as_deref()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    assert!(every_key.len() >= 2, "{every_key:?}");

    let mut verified = 0;
    for entry in &entries {
        if entry.is_event_data_only() {
            continue;
        }
        let signature = read_signature(&entry.format.webhook_format(), &entry.body)
            .unwrap_or_else(|e| panic!("{}: no signature: {e}", entry.file));
        let forged = KNOWN_FORGERIES.contains(&entry.file.as_str());
        assert_eq!(
            forged, entry.must_fail,
            "{}: the manifest and the list of forgeries disagree",
            entry.file
        );
        if forged {
            for key in &every_key {
                let keys = SigningKeys::from_comma_separated(key).unwrap();
                assert!(
                    keys.verify(&signature.signed()).is_err(),
                    "{}: a forged signature verified with {key}",
                    entry.file
                );
            }
        } else if let Some(key) = &entry.key {
            let keys = SigningKeys::from_comma_separated(key).unwrap();
            assert_eq!(
                keys.verify(&signature.signed()),
                Ok(0),
                "{}: does not verify with {key}",
                entry.file
            );
            verified += 1;
        }
    }
    for forgery in KNOWN_FORGERIES {
        assert!(
            entries.iter().any(|entry| entry.file == forgery),
            "{forgery} is missing from the corpus"
        );
    }
    assert!(verified >= 30, "only {verified} signatures checked");
}

#[test]
fn every_corpus_payload_parses_as_its_manifest_says_and_the_inbound_post_is_refused() {
    let Some(dir) = corpus_dir() else { return };
    let mut failures = Vec::new();
    for entry in load(&dir) {
        let file = &entry.file;
        let posted = entry.as_posted();
        if let Err(error) = read_signature(&entry.format.webhook_format(), &posted) {
            failures.push(format!(
                "{file}: the receiver could not read its signature: {error}"
            ));
        }
        let event = match (entry.event.as_str(), entry.parse()) {
            ("(none)", Err(ParseError::MissingEvent)) => continue,
            ("(none)", other) => {
                failures.push(format!("{file}: not an event, yet read as {other:?}"));
                continue;
            }
            (_, Err(error)) => {
                failures.push(format!("{file}: {error}"));
                continue;
            }
            (_, Ok(event)) => event,
        };
        let (kind, severity) = match entry.event.split_once('/') {
            Some((kind, severity)) => (kind, Severity::from_name(severity)),
            None => (entry.event.as_str(), None),
        };
        if event.kind.as_str() != kind || (severity.is_some() && event.severity != severity) {
            failures.push(format!(
                "{file}: read as {} {:?}, the manifest says {}",
                event.kind.as_str(),
                event.severity,
                entry.event
            ));
        }
        if event.message_id != MessageId::parse(&entry.message_id) {
            failures.push(format!(
                "{file}: message id {:?}, the manifest says {:?}",
                event.message_id, entry.message_id
            ));
        }
        let has_variables = !event.variables.is_empty();
        if has_variables != (entry.has_variables == "yes") {
            failures.push(format!(
                "{file}: variables {:?}, the manifest says {}",
                event.variables, entry.has_variables
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// What the pipeline must make of one instrumented corpus file.
#[derive(Debug, PartialEq)]
enum Expected {
    /// A `sent_emails` row with this status.
    Status(&'static str),
    /// Counted under this skip reason, no row.
    Skipped(&'static str),
    /// Dead-lettered: it can never be an event.
    DeadLetter,
}

/// The manifest's event read as a status, by the rule in `docs/status-mapping.md`, written out
/// here again rather than asked of `effect_of`.
fn expected(entry: &Entry, event: Option<&Event>) -> Expected {
    let Some(event) = event else {
        return Expected::DeadLetter;
    };
    if entry.message_id.is_empty() {
        return Expected::Skipped("missing_message_id");
    }
    if entry.event == "rejected" {
        return Expected::Skipped("missing_recipient");
    }
    let reason = event.reason.as_deref().unwrap_or("").to_ascii_lowercase();
    let code = event.delivery_code.as_deref().unwrap_or("");
    let suppressed = reason.starts_with("suppress-") || SUPPRESSION_CODES.contains(&code);
    Expected::Status(match entry.event.as_str() {
        "accepted" => "accepted",
        "delivered" => "delivered",
        "opened" | "clicked" | "unsubscribed" => "delivered",
        "complained" => "complained",
        "dropped" => "dropped",
        "bounced" if suppressed => "dropped",
        "bounced" => "bounced",
        "failed/temporary" if reason == "old" => "dropped",
        "failed/temporary" => "deferred",
        "failed/permanent" if suppressed || reason == "old" => "dropped",
        "failed/permanent" => "bounced",
        other => panic!("{}: no expectation for event {other:?}", entry.file),
    })
}

/// The message id this file is posted with, so files sharing Mailgun's sample ids get rows of
/// their own.
fn unique_message_id(entry: &Entry, original: &MessageId) -> String {
    let stem = entry
        .file
        .rsplit_once('.')
        .map_or(entry.file.as_str(), |(stem, _)| stem);
    format!("{stem}.{original}")
}

/// The body instrumented as the application would have sent it and re-signed now with `key`
/// (the app's): variables added where Mailgun carries them, the message id made unique.
fn instrument(
    key: &SigningKey,
    entry: &Entry,
    original: Option<&MessageId>,
    backer_id: i64,
    project_id: i64,
) -> Vec<u8> {
    let unique = original.map(|id| (id.as_str(), unique_message_id(entry, id)));
    let (backer, project) = (backer_id.to_string(), project_id.to_string());
    match &entry.format {
        Format::Json => {
            let outer: Value = serde_json::from_slice(&entry.body).unwrap();
            let mut data = match outer.get("event-data") {
                Some(data) => data.clone(),
                None => outer,
            };
            // As Mailgun sends them: strings, in an object that replaces `[]` or an error string.
            match data.get_mut("user-variables") {
                Some(Value::Object(variables)) => {
                    variables.insert("backer_id".into(), json!(backer));
                    variables.insert("project_id".into(), json!(project));
                }
                _ => data["user-variables"] = json!({"backer_id": backer, "project_id": project}),
            }
            if let Some((_, unique)) = &unique {
                data["message"]["headers"]["message-id"] = json!(unique);
            }
            signed_json(key, now_seconds(), &fresh_token(), data)
        }
        Format::Form => {
            let mut fields: Vec<(String, String)> =
                form_urlencoded::parse(&entry.body).into_owned().collect();
            // Mailgun's signed fields are the last of their name; custom variables named like
            // them come first and stay.
            for name in ["timestamp", "token", "signature"] {
                if let Some(last) = fields.iter().rposition(|(field, _)| field == name) {
                    fields.remove(last);
                }
            }
            if let Some((original, unique)) = &unique {
                for (_, value) in &mut fields {
                    *value = value.replace(original, unique);
                }
            }
            fields.push(("backer_id".into(), backer));
            fields.push(("project_id".into(), project));
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            signed_form(key, now_seconds(), &fresh_token(), &pairs)
        }
        Format::Multipart { boundary } => {
            let mut text = String::from_utf8(entry.body.clone()).unwrap();
            if let Some((original, unique)) = &unique {
                text = text.replace(original, unique);
            }
            let timestamp = now_seconds().to_string();
            let token = fresh_token();
            let signature = key.sign(&timestamp, &token);
            for (name, value) in [
                ("timestamp", timestamp.as_str()),
                ("token", &token),
                ("signature", &signature),
            ] {
                text = set_multipart_field(&text, name, value);
            }
            let close = format!("--{boundary}--");
            let at = text.rfind(&close).unwrap();
            let variables = format!(
                "--{boundary}\nContent-Disposition: form-data; name=\"backer_id\"\n\n{backer}\n\
                 --{boundary}\nContent-Disposition: form-data; name=\"project_id\"\n\n{project}\n"
            );
            text.insert_str(at, &variables);
            // The corpus keeps the test's LF line breaks; the wire format is CRLF.
            text.replace("\r\n", "\n")
                .replace('\n', "\r\n")
                .into_bytes()
        }
    }
}

/// Replaces the value of the last part named `name` (Mailgun's, for the signed fields) in an
/// LF-separated multipart body.
fn set_multipart_field(text: &str, name: &str, value: &str) -> String {
    let header = format!("Content-Disposition: form-data; name=\"{name}\"\n\n");
    let start = text.rfind(&header).unwrap() + header.len();
    let end = start + text[start..].find('\n').unwrap();
    format!("{}{value}{}", &text[..start], &text[end..])
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_event_resigned_with_backer_and_project_ends_as_its_manifest_event_says() {
    let Some(dir) = corpus_dir() else { return };
    let entries = load(&dir);
    let mut app = TestApp::builder().build().await;

    // message id as posted -> (file, expected status, backer id)
    let mut rows: BTreeMap<String, (String, &'static str, i64)> = BTreeMap::new();
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    let mut dead = 0;
    for (index, entry) in entries.iter().enumerate() {
        let parsed = entry.parse().ok();
        let original = parsed.as_ref().and_then(|event| event.message_id.clone());
        let backer_id = 1_000 + index as i64;
        let body = instrument(app.signing_key(), entry, original.as_ref(), backer_id, 77);
        let status = app.post(&entry.format.content_type(), body).await;
        assert_eq!(
            status, 200,
            "{}: the receiver answered {status}",
            entry.file
        );
        match expected(entry, parsed.as_ref()) {
            Expected::Status(status) => {
                let id = unique_message_id(entry, original.as_ref().unwrap());
                rows.insert(id, (entry.file.clone(), status, backer_id));
            }
            Expected::Skipped(reason) => *skipped.entry(reason.to_owned()).or_default() += 1,
            Expected::DeadLetter => dead += 1,
        }
    }
    app.drain().await;
    eprintln!(
        "corpus: {} files posted: {} rows expected, skipped {skipped:?}, {dead} dead letter(s)",
        entries.len(),
        rows.len()
    );

    let mut connection = app.database().connect().await;
    let stored: HashMap<String, (String, i64, i64)> = sent_emails::table
        .select((
            sent_emails::message_id,
            sent_emails::status,
            sent_emails::backer_id,
            sent_emails::project_id,
        ))
        .load::<(String, String, i64, i64)>(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, status, backer, project)| (id, (status, backer, project)))
        .collect();
    let kinds: HashMap<String, String> = email_events::table
        .select((email_events::message_id, email_events::kind))
        .load::<(String, String)>(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .collect();

    let mut failures = Vec::new();
    for (message_id, (file, status, backer_id)) in &rows {
        match stored.get(message_id) {
            Some((got, backer, project))
                if got == status && *backer == *backer_id && *project == 77 => {}
            Some(other) => failures.push(format!(
                "{file}: row {other:?}, expected status {status}, backer {backer_id}, project 77"
            )),
            None => failures.push(format!("{file}: no sent_emails row, expected {status}")),
        }
        if !kinds.contains_key(message_id) {
            failures.push(format!("{file}: not kept in email_events"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(stored.len(), rows.len(), "rows nobody expected: {stored:?}");
    assert_eq!(kinds.len(), rows.len(), "events nobody expected: {kinds:?}");

    let counted = app.redis().counters("skipped");
    assert_eq!(counted, skipped, "skipped counters");
    assert!(skipped.contains_key("missing_recipient"), "{skipped:?}");

    let letters = app.redis().list("dead");
    assert_eq!(letters.len(), dead, "{letters:?}");
    for letter in letters {
        let letter: mailtrail_queue::DeadLetter = serde_json::from_str(&letter).unwrap();
        assert!(
            letter.reason.contains("names no event"),
            "{}",
            letter.reason
        );
    }
    app.stop_worker().await;
}

#[test]
fn every_corpus_event_is_of_a_kind_the_mapping_doc_lists() {
    // A kind mailtrail does not know would be kept without touching its row (row J21 of
    // docs/status-mapping.md); one turning up in real payloads needs a row of its own.
    let Some(dir) = corpus_dir() else { return };
    for entry in load(&dir) {
        if let Ok(event) = entry.parse() {
            assert!(
                !matches!(event.kind, EventKind::Other(_)),
                "{}: unknown kind {}; add it to docs/status-mapping.md",
                entry.file,
                event.kind.as_str()
            );
        }
    }
}
