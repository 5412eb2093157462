//! Every endpoint's answer for the stories of `support`, with an unscoped token.

use mailtrail_store::tokens::TokenScope;
use serde_json::Value;

use crate::support::TestApi;

fn group(body: &Value, index: usize) -> &Value {
    &body["groups"][index]
}

#[tokio::test(flavor = "multi_thread")]
async fn statistics_answer_the_known_stories_for_every_scope() {
    let api = TestApi::start().await;
    let token = api.token("staff", TokenScope::All).await;

    let system = api.ok("/v1/stats", &token).await;
    assert_eq!(system["scope"], "all");
    let all = group(&system, 0);
    assert_eq!(
        (
            &all["total"],
            &all["delivered"],
            &all["bounced"],
            &all["complained"]
        ),
        (&5.into(), &3.into(), &1.into(), &1.into())
    );
    assert_eq!(
        (&all["human_opens"], &all["bot_opens"], &all["human_clicks"]),
        (&1.into(), &1.into(), &1.into())
    );
    assert_eq!(all["delivery_rate_percent"], 80.0);
    assert_eq!(all["complaint_rate_percent"], 25.0);

    let project = api.ok("/v1/projects/7/stats", &token).await;
    assert_eq!(
        (&project["scope"], &project["id"]),
        (&"project".into(), &7.into())
    );
    assert_eq!(group(&project, 0)["total"], 4);
    assert_eq!(group(&project, 0)["open_rate_percent"], 33.3);

    let by_subject = api.ok("/v1/projects/7/stats?by=subject", &token).await;
    assert_eq!(by_subject["by_subject"], true);
    let subjects: Vec<_> = by_subject["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["subject"].as_str().unwrap(),
                group["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(subjects, [("Update", 2), ("Your pledge", 2)]);

    let backer = api.ok("/v1/backers/42/stats", &token).await;
    assert_eq!(
        (&backer["scope"], &backer["id"]),
        (&"backer".into(), &42.into())
    );
    assert_eq!(group(&backer, 0)["total"], 3);

    // The CLI and the API print one document: compare with `StatsReport` itself.
    let mut connection = api.database().connect().await;
    let report = mailtrail_store::stats_report(
        &mut connection,
        &mailtrail_store::StatsQuery::new(mailtrail_store::StatsScope::ProjectBySubject(7)),
    )
    .await
    .unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), by_subject);
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_and_the_daily_series_count_messages_by_the_day_of_their_first_event() {
    let api = TestApi::start().await;
    let token = api.token("staff", TokenScope::All).await;

    let daily = api.ok("/v1/projects/7/daily", &token).await;
    assert_eq!(daily["daily"], true);
    let days: Vec<_> = daily["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["day"].as_str().unwrap(),
                group["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [("2025-11-20", 2), ("2025-11-21", 1), ("2025-11-22", 1)]
    );

    let one_day = api
        .ok("/v1/stats?since=2025-11-21&until=2025-11-21", &token)
        .await;
    assert_eq!(
        (&one_day["since"], &one_day["until"]),
        (&"2025-11-21".into(), &"2025-11-21".into())
    );
    assert_eq!(group(&one_day, 0)["total"], 2);
    let later = api
        .ok("/v1/projects/7/stats?since=2025-11-22", &token)
        .await;
    assert_eq!(group(&later, 0)["complained"], 1);
    let ranged_daily = api
        .ok(
            "/v1/projects/7/daily?since=2025-11-21&until=2025-11-22",
            &token,
        )
        .await;
    assert_eq!(ranged_daily["groups"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_page_newest_first_without_repeating_or_skipping_while_rows_arrive() {
    let api = TestApi::start().await;
    let token = api.token("staff", TokenScope::All).await;

    let first = api.ok("/v1/messages?limit=2", &token).await;
    let ids = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut seen = ids(&first);
    assert_eq!(seen.len(), 2);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();

    // A new message arrives between pages: it belongs on page one, not in a later page.
    {
        use mailtrail_core::{Event, EventKind, MessageId};
        let mut event = Event::new(EventKind::Delivered, 1_763_700_000_000_000);
        event.message_id = MessageId::parse("late@mg.example.com");
        event.recipient = Some("late@example.com".into());
        let event = mailtrail_core::mailgun::status::mapped(event);
        let row = mailtrail_core::EventRow::new(
            mailtrail_core::event_key::event_key(&event),
            &event,
            event.message_id.as_ref().unwrap(),
            "late@example.com",
            42,
            7,
            None,
        );
        let mut connection = api.database().connect().await;
        mailtrail_store::upsert_events(&mut connection, &[row])
            .await
            .unwrap();
    }
    loop {
        let page = api
            .ok(&format!("/v1/messages?limit=2&cursor={cursor}"), &token)
            .await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a row repeated: {seen:?}");
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(!seen.contains(&"late@mg.example.com".to_owned()));

    let bounced = api.ok("/v1/messages?status=bounced", &token).await;
    assert_eq!(ids(&bounced), ["a2@mg.example.com"]);
    let backer = api
        .ok("/v1/messages?backer_id=43&until=2025-11-21", &token)
        .await;
    assert_eq!(ids(&backer), ["a3@mg.example.com"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_shows_its_rows_and_every_event_with_machines_marked() {
    let api = TestApi::start().await;
    let token = api.token("staff", TokenScope::All).await;
    let message = api.ok("/v1/messages/%3Ca3@mg.example.com%3E", &token).await;
    assert_eq!(message["message_id"], "a3@mg.example.com");
    assert_eq!(message["recipients"][0]["status"], "delivered");
    assert_eq!(message["recipients"][0]["bot_open_count"], 1);
    let events: Vec<_> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| (event["kind"].as_str().unwrap(), event["bot_kind"].as_str()))
        .collect();
    assert_eq!(events, [("delivered", None), ("opened", Some("apple"))]);

    let missing = api.get("/v1/messages/nobody@x", Some(&token)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "message not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_on_their_own_port() {
    let api = TestApi::start().await;
    assert_eq!(api.get("/healthz", None).await.status, 200);
    assert_eq!(api.get("/readyz", None).await.status, 200);
    let token = api.token("staff", TokenScope::All).await;
    api.ok("/v1/projects/7/stats", &token).await;
    let _ = api.get("/v1/projects/7/stats", None).await;
    let metrics = api.metrics().await;
    assert!(
        metrics.contains(r#"route="/v1/projects/{project_id}/stats",status="200""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"status="401""#), "{metrics}");
    assert!(!metrics.contains(&token), "a token reached the metrics");
    assert_eq!(api.get("/metrics", None).await.status, 404);
}

/// Every route the API serves, as actix matches it; the OpenAPI document must list each one.
const ROUTES: [&str; 9] = [
    "/v1/stats",
    "/v1/projects/{project_id}/stats",
    "/v1/projects/{project_id}/daily",
    "/v1/backers/{backer_id}/stats",
    "/v1/messages",
    "/v1/messages/{message_id}",
    "/v1/conversions",
    "/healthz",
    "/readyz",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route_and_the_bearer_scheme() {
    let api = TestApi::start().await;
    let document = api.get("/v1/openapi.json", None).await;
    assert_eq!(document.status, 200);
    let paths = document.body["paths"].as_object().unwrap();
    for route in ROUTES {
        assert!(
            paths.contains_key(route),
            "{route} is missing from the document"
        );
        // And the route really is served there (not a 404 from the default service).
        let concrete = route
            .replace("{project_id}", "7")
            .replace("{backer_id}", "42")
            .replace("{message_id}", "a1@mg.example.com");
        assert_ne!(api.get(&concrete, None).await.status, 404, "{concrete}");
    }
    assert_eq!(paths.len(), ROUTES.len(), "{:?}", paths.keys());
    assert_eq!(
        document.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let project = &paths["/v1/projects/{project_id}/stats"]["get"]["parameters"];
    let names: Vec<_> = project
        .as_array()
        .unwrap()
        .iter()
        .map(|parameter| parameter["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["project_id", "by", "since", "until"]);
}
