//! Who may read what: project tokens see their project alone, unknown and revoked tokens nothing,
//! and every bad parameter is a 400 naming it.

use mailtrail_store::tokens::TokenScope;

use crate::support::TestApi;

#[tokio::test(flavor = "multi_thread")]
async fn a_project_token_reads_its_project_alone() {
    let api = TestApi::start().await;
    let creator = api.token("creator-7", TokenScope::Project(7)).await;

    assert_eq!(
        api.ok("/v1/projects/7/stats?by=subject", &creator).await["id"],
        7
    );
    assert_eq!(
        api.ok("/v1/projects/7/daily", &creator).await["daily"],
        true
    );
    for path in [
        "/v1/projects/8/stats",
        "/v1/projects/8/daily",
        "/v1/stats",
        "/v1/backers/42/stats",
        "/v1/messages?project_id=8",
    ] {
        let answer = api.get(path, Some(&creator)).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert!(answer.body["error"].as_str().unwrap().contains("project 7"));
    }
    // A backer's messages across projects: only this project's are listed.
    let listed = api.ok("/v1/messages?backer_id=42", &creator).await;
    let projects: Vec<_> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["project_id"].as_i64().unwrap())
        .collect();
    assert_eq!(projects, [7, 7]);
    // Another project's message does not exist for this token.
    assert_eq!(
        api.get("/v1/messages/b1@mg.example.com", Some(&creator))
            .await
            .status,
        404
    );
    assert_eq!(
        api.ok("/v1/messages/a1@mg.example.com", &creator).await["recipients"][0]["project_id"],
        7
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_unknown_and_revoked_tokens_are_refused_with_a_bearer_challenge() {
    let api = TestApi::start().await;
    let token = api.token("soon-revoked", TokenScope::All).await;
    assert_eq!(api.get("/v1/stats", Some(&token)).await.status, 200);
    api.revoke("soon-revoked").await;
    let unknown = format!("mt_{}", "0".repeat(64));
    for token in [
        None,
        Some(token.as_str()),
        Some(unknown.as_str()),
        Some("not-a-token"),
    ] {
        let answer = api.get("/v1/stats", token).await;
        assert_eq!(answer.status, 401, "{token:?}");
        assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
        assert!(answer.body["error"].as_str().unwrap().contains("Bearer"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_parameter_is_a_400_that_names_it() {
    let api = TestApi::start().await;
    let token = api.token("staff", TokenScope::All).await;
    for (path, name) in [
        ("/v1/stats?since=yesterday", "since"),
        ("/v1/stats?until=2025-02-30", "until"),
        ("/v1/stats?since=2025-11-22&until=2025-11-20", "until"),
        ("/v1/projects/seven/stats", "project_id"),
        ("/v1/projects/7/stats?by=recipient", "by"),
        ("/v1/backers/1e3/stats", "backer_id"),
        ("/v1/messages?limit=0", "limit"),
        ("/v1/messages?limit=100000", "limit"),
        ("/v1/messages?cursor=abc", "cursor"),
        ("/v1/messages?status=teleported", "status"),
        ("/v1/messages?backer_id=x", "backer_id"),
        ("/v1/stats?colour=blue", "colour"),
    ] {
        let answer = api.get(path, Some(&token)).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        let error = answer.body["error"].as_str().unwrap();
        assert!(error.contains(name), "{path}: {error}");
    }
    assert_eq!(api.get("/v1/nothing-here", Some(&token)).await.status, 404);
}
