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

/// `path` refuses `body` without a key (401) and with `forbidden_key` (403).
async fn assert_guarded(app: &TestApp, path: &str, body: &Value, forbidden_key: &str) {
    let anonymous = post_json_as(app, path, None, body).await;
    assert_problem(anonymous, 401, "unauthorized").await;
    let forbidden = post_json_as(app, path, Some(forbidden_key), body).await;
    assert_problem(forbidden, 403, "forbidden").await;
}

/// The (field, code) pairs of the 422 that `path` answers to `body`.
async fn rejected(app: &TestApp, path: &str, key: &str, body: &Value) -> Vec<(String, String)> {
    let response = post_json_as(app, path, Some(key), body).await;
    field_errors(&assert_problem(response, 422, "validation_failed").await)
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect()
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
        assert_eq!(
            rejected(&app, &path, READ_KEY, &body).await,
            pairs(&expected),
            "{body}"
        );
    }
    let body = json!({"fields": ["email"], "reason": "x"});
    assert_guarded(&app, &path, &body, OPS_KEY).await;
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

/// An app whose jobs fail at their first attempt, and two Carbn submissions failed that way.
async fn two_failed_submissions() -> (TestApp, Vec<Value>) {
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| s.workers.max_attempts = 1).await;
    app.set_fault(json!({"provider": "carbn", "status": 503, "error_rate": 1.0}))
        .await;
    for _ in 0..2 {
        let mut user = sample_user();
        user["providers"] = json!(["carbn"]);
        app.create_user(&user).await;
    }
    let page: Value = get_as(&app, "/v1/jobs?state=failed&provider=carbn", Some(OPS_KEY))
        .await
        .json()
        .await
        .unwrap();
    let failed = page["data"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 2, "{page}");
    // From here on Carbn answers, so a re-driven job never fails again under the test.
    app.client
        .delete(app.sim("/_sim/faults"))
        .send()
        .await
        .unwrap();
    (app, failed)
}

fn redriven_events(trail: &[Value]) -> Vec<&Value> {
    trail
        .iter()
        .filter(|e| e["type"] == "job_redriven")
        .collect()
}

#[tokio::test]
async fn jobs_are_listed_by_provider_and_re_driven_with_a_reason() {
    let (app, failed) = two_failed_submissions().await;
    let none: Value = get_as(&app, "/v1/jobs?provider=kraken", Some(OPS_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["data"], json!([]));
    let problem = assert_problem(
        get_as(&app, "/v1/jobs?provider=paypal", Some(OPS_KEY)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&problem)[0].0, "provider");

    // One job, with a reason.
    let (first, second) = (&failed[0], &failed[1]);
    let path = format!("/v1/jobs/{}/retry", first["id"].as_str().unwrap());
    let bad = post_json_as(&app, &path, Some(OPS_KEY), &json!({"reason": ""})).await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await)[0].0,
        "reason"
    );
    let bad = post_json_as(&app, &path, Some(OPS_KEY), &json!({"because": "x"})).await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await)[0].0,
        "because"
    );
    let retried = post_json_as(
        &app,
        &path,
        Some(OPS_KEY),
        &json!({"reason": "Carbn is back"}),
    )
    .await;
    assert_eq!(retried.status(), 200);
    let user_id = first["payload"]["user_id"].as_str().unwrap();
    let trail = events(&app, user_id).await;
    assert_eq!(
        redriven_events(&trail)
            .iter()
            .map(|e| {
                let mut e = (*e).clone();
                let data = e.as_object_mut().unwrap();
                data.retain(|k, _| !["id", "at", "category"].contains(&k.as_str()));
                e
            })
            .collect::<Vec<_>>(),
        vec![
            json!({"type": "job_redriven", "job_id": first["id"], "kind": "submit_link",
            "provider": "carbn", "reason": "Carbn is back", "key_name": "ops"})
        ]
    );

    // Every other failed submission at Carbn, in one call.
    let bulk = json!({"kind": "submit_link", "provider": "carbn", "reason": "outage over"});
    let response = post_json_as(&app, "/v1/jobs/retry", Some(OPS_KEY), &bulk).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"retried": 1, "remaining": 0}));
    let trail = events(&app, second["payload"]["user_id"].as_str().unwrap()).await;
    let recorded = redriven_events(&trail);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["job_id"], second["id"]);
    assert_eq!(recorded[0]["reason"], "outage over");
    let again: Value = post_json_as(&app, "/v1/jobs/retry", Some(OPS_KEY), &bulk)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"retried": 0, "remaining": 0}));

    // An empty body still re-drives (as before reasons existed); this job is not failed now.
    let plain = app
        .client
        .post(app.url(&path))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(plain, 409, "job_not_failed").await;
}

#[tokio::test]
async fn bulk_re_drives_are_bounded_and_checked() {
    let db = TestDatabase::create().await;
    // Workers asleep: the re-driven rows stay as the call left them.
    let app = spawn_app_with(db, |s| s.workers.poll_interval_ms = 3_600_000).await;
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state)
         SELECT gen_random_uuid(), 'erase_link', '{\"provider\": \"killb\"}', 'failed'
           FROM generate_series(1, 501)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let bulk = json!({"kind": "erase_link", "reason": "KillB fixed its DELETE"});
    let first: Value = post_json_as(&app, "/v1/jobs/retry", Some(OPS_KEY), &bulk)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first, json!({"retried": 500, "remaining": 1}));
    let other_provider = json!({"kind": "erase_link", "provider": "kraken", "reason": "x"});
    let none: Value = post_json_as(&app, "/v1/jobs/retry", Some(OPS_KEY), &other_provider)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({"retried": 0, "remaining": 0}));

    for (body, expected) in [
        (json!({"kind": "erase_link"}), vec![("reason", "required")]),
        (json!({"reason": "x"}), vec![("kind", "required")]),
        (
            json!({"kind": "mine_bitcoin", "reason": "x"}),
            vec![("kind", "invalid_value")],
        ),
        (
            json!({"kind": 7, "reason": "x"}),
            vec![("kind", "invalid_type")],
        ),
        (
            json!({"kind": "notify", "provider": "paypal", "reason": "x"}),
            vec![("provider", "invalid_value")],
        ),
        (
            json!({"kind": "notify", "reason": "x", "state": "failed"}),
            vec![("state", "unknown_field")],
        ),
    ] {
        assert_eq!(
            rejected(&app, "/v1/jobs/retry", OPS_KEY, &body).await,
            pairs(&expected),
            "{body}"
        );
    }
    let bulk = json!({"kind": "erase_link", "reason": "x"});
    assert_guarded(&app, "/v1/jobs/retry", &bulk, READ_KEY).await;
}

#[tokio::test]
async fn a_sync_records_who_asked_and_why() {
    let app = spawn_app().await;
    let created = onboarded(&app, "kraken").await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}/sync");
    // An ops key may sync, with a provider and a reason.
    let response = post_json_as(
        &app,
        &path,
        Some(OPS_KEY),
        &json!({"provider": "kraken", "reason": "drift report"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    // A users:write key, with no body at all, as before.
    let plain = app
        .client
        .post(app.url(&path))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    // `null` for the optional body or its optional members means absent (found by
    // schemathesis: the OpenAPI document allows them).
    for body in [json!(null), json!({"provider": null, "reason": null})] {
        let response = post_json_as(&app, &path, Some(DEV_KEY), &body).await;
        assert_eq!(response.status(), 200, "{body}");
    }
    let trail = events(&app, id).await;
    let requested: Vec<&Value> = trail
        .iter()
        .filter(|e| e["type"] == "sync_requested")
        .collect();
    assert_eq!(requested.len(), 4);
    assert_eq!(requested[0]["provider"], "kraken");
    assert_eq!(requested[0]["reason"], "drift report");
    assert_eq!(requested[0]["key_name"], "ops");
    assert_eq!(requested[1]["provider"], Value::Null);
    assert_eq!(requested[1]["reason"], Value::Null);

    for (body, field) in [
        (json!({"provider": "killb"}), "provider"),
        (json!({"provider": "paypal"}), "provider"),
        (json!({"provider": 1}), "provider"),
        (json!({"reason": "  "}), "reason"),
        (json!({"why": "x"}), "why"),
    ] {
        let errors = rejected(&app, &path, OPS_KEY, &body).await;
        assert_eq!(errors[0].0, field, "{body}");
    }
    let body = json!({"reason": "x"});
    assert_guarded(&app, &path, &body, READ_KEY).await;
    let after = events(&app, id).await;
    assert_eq!(
        after
            .iter()
            .filter(|e| e["type"] == "sync_requested")
            .count(),
        4,
        "refused syncs leave no record"
    );
}

/// Posts an unsigned delivery, which the gateway refuses (401).
async fn refuse_unsigned_webhook(app: &TestApp, provider: &str) {
    let refused = app
        .client
        .post(app.url(&format!("/v1/webhooks/{provider}")))
        .header("content-type", "application/json")
        .body(r#"{"forged": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

async fn run_reconciliation(app: &TestApp) {
    let run = post_json_as(app, "/v1/reconciliation/runs", Some(OPS_KEY), &json!({})).await;
    assert_eq!(run.status(), 200);
}

async fn overview(app: &TestApp) -> Value {
    let response = get_as(app, "/v1/ops/overview", Some(OPS_KEY)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_overview_counts_links_drift_failures_and_refused_webhooks() {
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| s.workers.max_attempts = 1).await;
    let empty = overview(&app).await;
    assert_eq!(
        empty["links_by_status"],
        json!({"carbn": {}, "killb": {}, "kraken": {}})
    );
    assert_eq!(empty["drift"], json!({"total": 0, "by_kind": {}}));
    assert_eq!(empty["failed_jobs"], json!({"total": 0, "by_kind": {}}));
    assert_eq!(
        empty["webhook_verification_failures"],
        json!({"window_minutes": 60, "total": 0,
            "by_provider": {"carbn": 0, "killb": 0, "kraken": 0}})
    );
    assert_eq!(empty["last_reconciliation"], Value::Null);

    let at_kraken = onboarded(&app, "kraken").await;
    let kraken_status = link(&at_kraken, "kraken")["status"]
        .as_str()
        .unwrap()
        .to_owned();
    app.set_fault(json!({"provider": "carbn", "status": 503, "error_rate": 1.0}))
        .await;
    let mut user = sample_user();
    user["providers"] = json!(["carbn"]);
    app.create_user(&user).await;
    for _ in 0..3 {
        refuse_unsigned_webhook(&app, "kraken").await;
    }
    run_reconciliation(&app).await;

    let seen = overview(&app).await;
    assert_eq!(
        seen["links_by_status"]["kraken"],
        json!({ kraken_status: 1 })
    );
    // A submission out of attempts leaves its link pending (with `last_error`), its job failed.
    assert_eq!(
        seen["links_by_status"]["carbn"],
        json!({"pending_submission": 1})
    );
    assert_eq!(
        seen["failed_jobs"],
        json!({"total": 1, "by_kind": {"submit_link": 1}})
    );
    let by_kind_sum: i64 = seen["drift"]["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(seen["drift"]["total"], by_kind_sum);
    assert_eq!(seen["webhook_verification_failures"]["total"], 3);
    assert_eq!(
        seen["webhook_verification_failures"]["by_provider"]["kraken"],
        3
    );
    assert_eq!(
        seen["webhook_verification_failures"]["by_provider"]["killb"],
        0
    );
    let report: Value = get_as(&app, "/v1/reconciliation", Some(OPS_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["last_reconciliation"], report["last_run"]);
    assert!(seen["last_reconciliation"].is_object());

    assert_problem(
        get_as(&app, "/v1/ops/overview", None).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        get_as(&app, "/v1/ops/overview", Some(READ_KEY)).await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn verification_failures_are_counted_in_the_database_and_old_minutes_pruned() {
    let app = spawn_app().await;
    refuse_unsigned_webhook(&app, "killb").await;
    // Two hours ago (outside the window) and two days ago (past the kept day).
    sqlx::query(
        "INSERT INTO webhook_verification_failures (provider, minute, failures) VALUES
           ('killb', date_trunc('minute', now()) - interval '2 hours', 5),
           ('killb', date_trunc('minute', now()) - interval '2 days', 7)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let counts = || async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT provider, failures FROM webhook_verification_failures ORDER BY minute DESC",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    assert_eq!(counts().await.len(), 3);
    assert_eq!(counts().await[0], ("killb".to_owned(), 1));
    let seen = overview(&app).await;
    assert_eq!(
        seen["webhook_verification_failures"]["by_provider"]["killb"],
        1
    );

    run_reconciliation(&app).await;
    assert_eq!(
        counts().await,
        vec![("killb".to_owned(), 1), ("killb".to_owned(), 5)],
        "the day-old minute is pruned by the reconciliation pass"
    );
}
