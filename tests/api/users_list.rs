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
