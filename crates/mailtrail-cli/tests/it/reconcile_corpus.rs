//! Counted once, on real payloads: every JSON event of the Mailgun corpus (`MAILTRAIL_CORPUS_DIR`)
//! comes both as a signed webhook through the real receiver and as an Events API item through
//! `mailtrail reconcile` and the fake Mailgun, in both orders, and the real worker stores it
//! once: the second arrival, whichever way it comes, changes no row, no event and no statistic.
//!
//! Each file is used twice, under two message ids of its own: variant `w` comes by webhook
//! first, variant `e` by the Events API first; then each comes the other way.

use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mailtrail_mailgun::WEBHOOK_EVENT_FILTER;
use mailtrail_store::schema::{email_events, sent_emails};
use mailtrail_testing::{FAKE_API_KEY, FakeMailgun, TestApp};
use serde_json::{Value, json};

use crate::support::Mailtrail;

const DOMAIN: &str = "mg.example.com";

fn corpus_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("MAILTRAIL_CORPUS_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "MAILTRAIL_CORPUS_DIR is unset on CI: the corpus test cannot be skipped there"
        );
        eprintln!("note: MAILTRAIL_CORPUS_DIR is unset; skipping the reconcile corpus test");
        return None;
    };
    let dir = PathBuf::from(dir);
    Some(if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir)
    } else {
        dir
    })
}

/// One corpus event, instrumented twice.
struct CorpusEvent {
    file: String,
    /// Variant `w` then variant `e`: the event data with its own message id and variables.
    variants: [Value; 2],
}

/// The JSON corpus events an Events API item can be: with a numeric timestamp, of a type the
/// webhooks carry.
fn load(dir: &Path) -> (Vec<CorpusEvent>, Vec<String>) {
    let mut events = Vec::new();
    let mut left_out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("json-") && name.ends_with(".json"))
        .collect();
    files.sort();
    for (index, file) in files.into_iter().enumerate() {
        let outer: Value = serde_json::from_slice(&std::fs::read(dir.join(&file)).unwrap())
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        let data = outer.get("event-data").cloned().unwrap_or(outer);
        let kind = data["event"].as_str().unwrap_or_default();
        if !data["timestamp"].is_f64() || !WEBHOOK_EVENT_FILTER.split(" OR ").any(|k| k == kind) {
            left_out.push(file);
            continue;
        }
        let variants = ["w", "e"].map(|variant| {
            let mut data = data.clone();
            let (backer, project) = ((2000 + index).to_string(), "77".to_owned());
            match data.get_mut("user-variables") {
                Some(Value::Object(variables)) => {
                    variables.insert("backer_id".into(), json!(backer));
                    variables.insert("project_id".into(), json!(project));
                }
                _ => data["user-variables"] = json!({"backer_id": backer, "project_id": project}),
            }
            if let Some(id) = data["message"]["headers"]["message-id"].as_str() {
                let unique = format!("{variant}.{index}.{}", id.trim_matches(['<', '>']));
                data["message"]["headers"]["message-id"] = json!(unique);
            }
            data
        });
        events.push(CorpusEvent { file, variants });
    }
    (events, left_out)
}

/// What the database holds: every row, every event key, the statistics as the CLI prints them.
#[derive(Debug, PartialEq)]
struct Stored {
    rows: Vec<(String, String, String, i64, i64)>,
    event_keys: Vec<(String, String)>,
    stats: String,
}

async fn stored(app: &TestApp) -> Stored {
    let mut connection = app.database().connect().await;
    let rows = sent_emails::table
        .select((
            sent_emails::message_id,
            sent_emails::recipient,
            sent_emails::status,
            sent_emails::backer_id,
            sent_emails::project_id,
        ))
        .order((sent_emails::message_id, sent_emails::recipient))
        .load(&mut connection)
        .await
        .unwrap();
    let event_keys = email_events::table
        .select((email_events::message_id, email_events::event_key))
        .order(email_events::event_key)
        .load(&mut connection)
        .await
        .unwrap();
    let stats = Mailtrail::new(&["stats", "--all", "--json"])
        .database(app.database())
        .run()
        .await
        .success()
        .stdout;
    Stored {
        rows,
        event_keys,
        stats,
    }
}

/// Serves `items` from a fresh fake Mailgun and reconciles the whole corpus' time range.
async fn reconcile(app: &TestApp, items: &[&Value]) {
    let fake = FakeMailgun::start(DOMAIN);
    fake.page_size(7);
    for item in items {
        fake.add_event(&item.to_string());
    }
    let run = Mailtrail::new(&["reconcile", "--since", "2000-01-01T00:00:00Z"])
        .redis(app.redis())
        .env("MAILGUN_API_BASE", &fake.base_url())
        .env("MAILGUN_API_KEY", FAKE_API_KEY)
        .env("MAILGUN_DOMAIN", DOMAIN)
        .run()
        .await
        .success();
    assert!(
        run.stdout
            .contains(&format!(" {} events queued", items.len())),
        "{}",
        run.stdout
    );
}

async fn post_webhooks(app: &TestApp, items: &[&Value]) {
    for item in items {
        let status = app
            .post("application/json", app.signed_json((*item).clone()))
            .await;
        assert_eq!(status, 200, "{item}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_event_is_stored_once_by_webhook_and_events_api_in_either_order() {
    let Some(dir) = corpus_dir() else { return };
    let (events, left_out) = load(&dir);
    assert!(events.len() >= 35, "only {} corpus events", events.len());
    // A signature-test body without a timestamp, an Events-API-only `rejected`, ...
    assert!(left_out.len() <= 3, "{left_out:?}");
    let webhooks_first: Vec<&Value> = events.iter().map(|event| &event.variants[0]).collect();
    let api_first: Vec<&Value> = events.iter().map(|event| &event.variants[1]).collect();
    let mut app = TestApp::builder().build().await;

    // First arrivals: variant w by webhook, variant e from the Events API.
    post_webhooks(&app, &webhooks_first).await;
    reconcile(&app, &api_first).await;
    app.drain().await;
    let first = stored(&app).await;

    // Second arrivals, the other way round.
    reconcile(&app, &webhooks_first).await;
    post_webhooks(&app, &api_first).await;
    app.drain().await;
    let second = stored(&app).await;
    assert_eq!(second, first, "a second arrival changed what is stored");

    // Both variants of a file ended the same, whichever way each came first, each event once.
    let mut stored_files = 0;
    for (index, event) in events.iter().enumerate() {
        let of_variant = |variant: &str| {
            let prefix = format!("{variant}.{index}.");
            let rows: Vec<_> = first
                .rows
                .iter()
                .filter(|row| row.0.starts_with(&prefix))
                .map(|row| (row.1.clone(), row.2.clone(), row.3, row.4))
                .collect();
            let events = first
                .event_keys
                .iter()
                .filter(|(message, _)| message.starts_with(&prefix))
                .count();
            (rows, events)
        };
        let (by_webhook, by_api) = (of_variant("w"), of_variant("e"));
        assert_eq!(by_webhook, by_api, "{}", event.file);
        assert!(
            by_webhook.1 <= 1,
            "{}: stored {} times",
            event.file,
            by_webhook.1
        );
        stored_files += by_webhook.1;
    }
    assert!(
        stored_files >= 30,
        "only {stored_files} corpus events stored"
    );
    assert!(app.redis().list("dead").is_empty());
    app.stop_worker().await;
}
