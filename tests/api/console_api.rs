//! The API the ops console needs (issue 13): who a key is, search by provider user id, masked
//! views with recorded reveals, operator actions with reasons, the ops overview and the
//! categorised audit trail.

use serde_json::{json, Value};

use crate::helpers::*;

async fn get_as(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn post_json_as(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// A user submitted to `provider` (the simulators accept it at once).
async fn onboarded(app: &TestApp, provider: &str) -> Value {
    let mut user = sample_user();
    user["providers"] = json!([provider]);
    let created = app.create_user(&user).await;
    assert!(
        link(&created, provider)["provider_user_id"].is_string(),
        "not submitted: {created}"
    );
    created
}

#[tokio::test]
async fn me_names_the_key_and_its_scopes() {
    let app = spawn_app().await;
    let me: Value = get_as(&app, "/v1/me", Some(READ_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"key_name": "reader", "scopes": ["users:read"]}));
    let me: Value = get_as(&app, "/v1/me", Some(OPS_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"key_name": "ops", "scopes": ["ops"]}));
    assert_problem(get_as(&app, "/v1/me", None).await, 401, "unauthorized").await;
    assert_problem(
        get_as(&app, "/v1/me", Some("nope")).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn users_are_found_by_provider_user_id() {
    let app = spawn_app().await;
    let at_kraken = onboarded(&app, "kraken").await;
    app.create_user(&minimal_user()).await;
    let provider_user_id = link(&at_kraken, "kraken")["provider_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = |q: String| {
        let app = &app;
        async move {
            let response = app.get(&format!("/v1/users?{q}")).await;
            assert_eq!(response.status(), 200);
            let page: Value = response.json().await.unwrap();
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let encoded = provider_user_id.replace(' ', "%20");
    let id = at_kraken["id"].as_str().unwrap().to_owned();
    assert_eq!(
        query(format!("provider_user_id={encoded}")).await,
        vec![id.clone()]
    );
    assert_eq!(
        query(format!("provider_user_id={encoded}&provider=kraken")).await,
        vec![id]
    );
    assert!(query(format!("provider_user_id={encoded}&provider=killb"))
        .await
        .is_empty());
    assert!(query("provider_user_id=nobody".into()).await.is_empty());

    let long = "x".repeat(201);
    for (q, field) in [
        ("provider_user_id=".to_owned(), "provider_user_id"),
        (format!("provider_user_id={long}"), "provider_user_id"),
        ("view=secret".to_owned(), "view"),
    ] {
        let problem = assert_problem(
            app.get(&format!("/v1/users?{q}")).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(field_errors(&problem)[0].0, field, "{q}");
    }
}

#[tokio::test]
async fn the_masked_view_masks_every_personal_value() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let full: Value = app
        .get(&format!("/v1/users/{id}?view=full"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        full,
        app.get(&format!("/v1/users/{id}"))
            .await
            .json::<Value>()
            .await
            .unwrap()
    );

    let masked: Value = app
        .get(&format!("/v1/users/{id}?view=masked"))
        .await
        .json()
        .await
        .unwrap();
    let text = masked.to_string();
    for pii in [
        "jane.doe",
        "example.com",
        "15112345678",
        "Jane",
        "Doe",
        "1990",
        "Invalidenstr",
        "Berlin",
        "10115",
        "C01X00T47",
        "12345678901",
        "caller-owned",
    ] {
        assert!(!text.contains(pii), "{pii} shown in {text}");
    }
    assert_eq!(masked["email"], "j***@e***.com");
    assert_eq!(
        masked["name"],
        json!({"first": "J***", "middle": "Q***", "last": "D***"})
    );
    assert_eq!(masked["phone"], "+49***78");
    assert_eq!(masked["date_of_birth"], "****-**-**");
    assert_eq!(masked["address"]["line1"], "***");
    assert_eq!(masked["address"]["line2"], Value::Null);
    assert_eq!(masked["address"]["country"], "DE");
    assert_eq!(masked["tax_ids"][0]["number"], "***8901");
    assert_eq!(masked["identity_document"]["number"], "***0T47");
    assert_eq!(masked["external_id"], full["external_id"]);
    assert_eq!(masked["status"], full["status"]);
    assert_eq!(masked["id"], full["id"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&masked), keys(&full), "the same members");

    let page: Value = app.get("/v1/users?view=masked").await.json().await.unwrap();
    assert_eq!(page["data"][0], masked);

    let problem = assert_problem(
        app.get(&format!("/v1/users/{id}?view=raw")).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        vec![("view".into(), "invalid_value".into())]
    );
}

#[tokio::test]
async fn a_reveal_answers_the_values_and_is_recorded_without_them() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}/reveal");
    let response = post_json_as(
        &app,
        &path,
        Some(READ_KEY),
        &json!({"fields": ["email", "date_of_birth", "tax_ids"], "reason": "  ticket 4711 "}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"values": {
            "email": "jane.doe@example.com",
            "date_of_birth": "1990-01-15",
            "tax_ids": [{"type": "steuer_id", "number": "12345678901", "issuing_country": "DE"}],
        }})
    );
    let trail = events(&app, id).await;
    let reveal = trail.iter().find(|e| e["type"] == "pii_revealed").unwrap();
    assert_eq!(
        reveal["fields"],
        json!(["email", "date_of_birth", "tax_ids"])
    );
    assert_eq!(reveal["reason"], "ticket 4711");
    assert_eq!(reveal["key_name"], "reader");
    let recorded = reveal.to_string();
    assert!(!recorded.contains("jane.doe") && !recorded.contains("1990"));
}

#[tokio::test]
async fn bad_reveals_name_the_field_and_record_nothing() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}/reveal");
    for (body, expected) in [
        (
            json!({"fields": ["email", "password"], "reason": "x"}),
            vec![("fields[1]", "invalid_value")],
        ),
        (
            json!({"fields": ["email", "email"], "reason": "x"}),
            vec![("fields[1]", "duplicate_item")],
        ),
        (
            json!({"fields": [], "reason": "x"}),
            vec![("fields", "too_short")],
        ),
        (
            json!({"fields": "email", "reason": "x"}),
            vec![("fields", "invalid_type")],
        ),
        (
            json!({"fields": [1], "reason": "x"}),
            vec![("fields[0]", "invalid_type")],
        ),
        (json!({"fields": ["email"]}), vec![("reason", "required")]),
        (
            json!({"fields": ["email"], "reason": " "}),
            vec![("reason", "required")],
        ),
        (
            json!({"fields": ["email"], "reason": "x".repeat(501)}),
            vec![("reason", "too_long")],
        ),
        (json!({"reason": "x"}), vec![("fields", "required")]),
        (
            json!({"fields": ["email"], "reason": "x", "why": 1}),
            vec![("why", "unknown_field")],
        ),
    ] {
        let problem = assert_problem(
            post_json_as(&app, &path, Some(READ_KEY), &body).await,
            422,
            "validation_failed",
        )
        .await;
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(f, c)| (f.to_owned(), c.to_owned()))
            .collect();
        assert_eq!(field_errors(&problem), expected, "{body}");
    }
    let body = json!({"fields": ["email"], "reason": "x"});
    assert_problem(
        post_json_as(&app, &path, None, &body).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        post_json_as(&app, &path, Some(OPS_KEY), &body).await,
        403,
        "forbidden",
    )
    .await;
    let nobody = format!("/v1/users/{}/reveal", uuid::Uuid::now_v7());
    assert_problem(
        post_json_as(&app, &nobody, Some(READ_KEY), &body).await,
        404,
        "not_found",
    )
    .await;
    assert!(
        events(&app, id)
            .await
            .iter()
            .all(|e| e["type"] != "pii_revealed"),
        "refused reveals leave no record"
    );

    // An erased user has nothing to reveal.
    assert_eq!(app.delete(&format!("/v1/users/{id}")).await.status(), 200);
    assert_problem(
        post_json_as(&app, &path, Some(READ_KEY), &body).await,
        410,
        "user_erased",
    )
    .await;
}
