use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/v1/users{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_select_the_right_users() {
    let app = spawn_app().await;
    let mut a = minimal_user();
    a["email"] = json!("Alice@Example.com");
    let a = app.create_user(&a).await;
    let b = app.create_user(&minimal_user()).await;

    let by_email = list(&app, "?email=alice%40EXAMPLE.com").await;
    assert_eq!(ids(&by_email), vec![a["id"].as_str().unwrap()]);

    let by_external = list(
        &app,
        &format!("?external_id={}", b["external_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ids(&by_external), vec![b["id"].as_str().unwrap()]);

    let pending = list(&app, "?status=pending_submission").await;
    assert_eq!(ids(&pending).len(), 2);
    let approved = list(&app, "?status=approved").await;
    assert!(ids(&approved).is_empty());
    let at_kraken = list(&app, "?provider=kraken").await;
    assert!(ids(&at_kraken).is_empty(), "no links exist yet");
    assert_eq!(at_kraken["next_cursor"], Value::Null);
}

#[tokio::test]
async fn bad_filters_are_named() {
    let app = spawn_app().await;
    for (query, field) in [
        ("?status=happy", "status"),
        ("?provider=paypal", "provider"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=garbage", "cursor"),
        ("?colour=blue", "colour"),
    ] {
        let problem = assert_problem(
            app.get(&format!("/v1/users{query}")).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn pagination_is_stable_while_users_are_inserted() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(
            app.create_user(&minimal_user()).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let first = list(&app, "?limit=3").await;
    assert_eq!(
        ids(&first),
        created.iter().rev().take(3).cloned().collect::<Vec<_>>()
    );

    // New users arrive between page reads; they must not shift or duplicate later pages.
    for _ in 0..3 {
        app.create_user(&minimal_user()).await;
    }
    let mut seen: Vec<String> = ids(&first);
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = list(&app, &format!("?limit=3&cursor={c}")).await;
        seen.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(
        seen, expected,
        "every original user exactly once, newest first"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
}

#[tokio::test]
async fn a_provider_filtered_list_pages_newest_first_through_that_providers_users_only() {
    let app = spawn_app_routed().await;
    let mut at_killb = Vec::new();
    for n in 0..7 {
        let mut body = sample_user();
        body["providers"] = json!([if n % 3 == 0 { "kraken" } else { "killb" }]);
        let user = app.create_user(&body).await;
        if n % 3 != 0 {
            at_killb.push(user["id"].as_str().unwrap().to_owned());
        }
    }
    at_killb.reverse(); // newest first
    let mut seen = Vec::new();
    let mut page = list(&app, "?provider=killb&limit=2").await;
    loop {
        seen.extend(ids(&page));
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else {
            break;
        };
        page = list(&app, &format!("?provider=killb&limit=2&cursor={cursor}")).await;
    }
    assert_eq!(
        seen, at_killb,
        "every KillB user once, newest first, no Kraken user"
    );
    // Combined with a status the links of another provider do not have.
    let status = page["data"]
        .as_array()
        .and_then(|d| d.first())
        .map(|u| u["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "under_review".into());
    let filtered = list(&app, &format!("?provider=killb&status={status}&limit=50")).await;
    assert!(ids(&filtered).iter().all(|id| at_killb.contains(id)));
    let at_nobody = list(&app, "?provider=carbn").await;
    assert!(ids(&at_nobody).is_empty());
}
