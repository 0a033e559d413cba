//! `POST /v1/users/{id}/verification-sessions` against the built-in simulators: KillB's
//! `complianceUrl` and Carbn's onboarding session, reuse and expiry, Kraken's refusal, every
//! input the endpoint refuses, idempotent replays, the audit trail and metrics, and the URL kept
//! sealed (re-sealed on rotation, deleted by erasure).

use std::collections::BTreeMap;

use onboarding_gateway::crypto::Keyring;
use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::settings::EncryptionSettings;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

const REDIRECT: &str = "https://app.example.com/onboarding/done";

fn user_at(provider: &str) -> Value {
    let mut user = sample_user();
    let country = country_for(provider);
    user["email"] = json!(format!("session.{}@example.com", Uuid::new_v4().simple()));
    user["address"]["country"] = json!(country);
    user["address"]["region"] = json!("BOG");
    user["identity_document"]["issuing_country"] = json!(country);
    user["providers"] = json!([provider]);
    user
}

/// Creates a user at `provider`: (gateway id, provider user id).
async fn onboard(app: &TestApp, provider: &str) -> (String, String) {
    let created = app.create_user(&user_at(provider)).await;
    let provider_user_id = link(&created, provider)["provider_user_id"]
        .as_str()
        .unwrap_or_else(|| panic!("not submitted: {created}"))
        .to_owned();
    (created["id"].as_str().unwrap().to_owned(), provider_user_id)
}

async fn post_session(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/users/{id}/verification-sessions")))
        .bearer_auth(DEV_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A 201 session answer.
async fn session(app: &TestApp, id: &str, body: Value) -> Value {
    let response = post_session(app, id, &body).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{answer}");
    answer
}

/// The simulator's record of `provider`'s requests with this method and path prefix.
async fn sim_requests(app: &TestApp, provider: &str, method: &str, path: &str) -> usize {
    let all: Vec<Value> = app
        .client
        .get(app.sim(&format!("/_sim/requests?provider={provider}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.iter()
        .filter(|r| r["method"] == method && r["path"].as_str().unwrap().starts_with(path))
        .count()
}

async fn sim_fault(app: &TestApp, fault: Value) {
    let response = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn session_rows(app: &TestApp, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM verification_sessions WHERE user_id = $1")
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn created_events(trail: &[Value]) -> Vec<(String, bool)> {
    trail
        .iter()
        .filter(|e| e["type"] == "verification_session_created")
        .map(|e| {
            let mut keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                ["at", "category", "id", "provider", "reused", "type"],
                "{e}"
            );
            (
                e["provider"].as_str().unwrap().to_owned(),
                e["reused"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn killb_sessions_are_the_users_current_compliance_url() {
    let app = spawn_app_routed().await;
    let (id, provider_user_id) = onboard(&app, "killb").await;
    let first = session(&app, &id, json!({"provider": "killb"})).await;
    // `complianceUrl`: the simulator's own hosted page.
    let url = app.sim(&format!("/_sim/killb/users/{provider_user_id}/verify"));
    assert_eq!(
        first,
        json!({"provider": "killb", "url": url, "expires_at": null, "reused": false})
    );
    // Read again each time; the same link as before counts as reused.
    let second = session(
        &app,
        &id,
        json!({"provider": "killb", "redirect_url": null}),
    )
    .await;
    assert_eq!(second["url"], json!(url));
    assert_eq!(second["reused"], true);
    let reads = sim_requests(
        &app,
        "killb",
        "GET",
        &format!("/api/v2/users/{provider_user_id}"),
    )
    .await;
    assert!(reads >= 2, "{reads}");
    assert_eq!(session_rows(&app, &id).await, 1);

    let trail = events(&app, &id).await;
    assert_eq!(
        created_events(&trail),
        [("killb".to_owned(), false), ("killb".to_owned(), true)]
    );
    let calls: Vec<&Value> = trail
        .iter()
        .filter(|e| e["type"] == "provider_call" && e["operation"] == "verification_session")
        .collect();
    assert_eq!(calls.len(), 2, "{trail:#?}");
    assert!(calls
        .iter()
        .all(|c| c["provider"] == "killb" && c["outcome"] == "ok"));
    assert!(!serde_json::to_string(&trail)
        .unwrap()
        .contains("/_sim/killb/users/"));
    // A session never moves the link.
    let user: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(link(&user, "killb")["status"], "under_review");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("gateway_provider_call_duration_seconds_count")
                && l.contains(r#"operation="verification_session""#)
                && l.contains(r#"provider="killb""#)
        ),
        "no session calls in the metrics"
    );
}

#[tokio::test]
async fn carbn_sessions_are_reused_while_valid() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "carbn").await;
    let body = json!({"provider": "carbn", "redirect_url": REDIRECT});
    let first = session(&app, &id, body.clone()).await;
    assert_eq!(first["provider"], "carbn");
    assert_eq!(first["reused"], false);
    let url = first["url"].as_str().unwrap().to_owned();
    assert!(url.contains("session="), "{url}");
    assert_eq!(
        sim_requests(&app, "carbn", "POST", "/onboarding/api/v1/users/session").await,
        1
    );

    // Unexpired: handed out again without asking Carbn.
    let again = session(&app, &id, body.clone()).await;
    assert_eq!(again["url"], json!(url));
    assert_eq!(again["reused"], true);
    assert_eq!(again["expires_at"], first["expires_at"]);
    assert_eq!(
        sim_requests(&app, "carbn", "POST", "/onboarding/api/v1/users/session").await,
        1
    );

    // Another redirect is another session.
    let other = session(
        &app,
        &id,
        json!({"provider": "carbn", "redirect_url": "http://localhost:3000/back"}),
    )
    .await;
    assert_eq!(other["reused"], false);
    assert_ne!(other["url"], json!(url));
    assert_eq!(
        sim_requests(&app, "carbn", "POST", "/onboarding/api/v1/users/session").await,
        2
    );

    let uid = Uuid::parse_str(&id).unwrap();
    let age = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(sql).bind(uid).execute(&pool).await.unwrap();
        }
    };
    // Without an expiry: reused only within `verification.session_reuse_secs` (600 s).
    age("UPDATE verification_sessions SET expires_at = NULL,
                created_at = now() - interval '11 minutes' WHERE user_id = $1")
    .await;
    let renewed = session(&app, &id, body.clone()).await;
    assert_eq!(renewed["reused"], false);
    assert_ne!(renewed["url"], json!(url));
    // An expiry under a minute away is as good as expired...
    age(
        "UPDATE verification_sessions SET expires_at = now() + interval '30 seconds',
                created_at = now() WHERE user_id = $1",
    )
    .await;
    let renewed_again = session(&app, &id, body.clone()).await;
    assert_eq!(renewed_again["reused"], false);
    // ...and one well ahead wins over the window, however old the session.
    age(
        "UPDATE verification_sessions SET expires_at = now() + interval '1 hour',
                created_at = now() - interval '2 days' WHERE user_id = $1",
    )
    .await;
    let kept = session(&app, &id, body.clone()).await;
    assert_eq!(kept["reused"], true);
    assert_eq!(kept["url"], renewed_again["url"]);
    assert!(kept["expires_at"].is_string(), "{kept}");
    // One row per user, provider and redirect.
    assert_eq!(session_rows(&app, &id).await, 2);

    let created = created_events(&events(&app, &id).await);
    let reused: Vec<bool> = created.iter().map(|(_, r)| *r).collect();
    assert_eq!(reused, [false, true, false, false, false, true]);
}

#[tokio::test]
async fn a_short_reuse_window_is_configurable() {
    let db = TestDatabase::create().await;
    let routing = configured_routing();
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.verification.session_reuse_secs = 0;
        s.providers.set("carbn", "session_redirect_url", REDIRECT);
    })
    .await;
    let (id, _) = onboard(&app, "carbn").await;
    // The configured redirect stands in for the caller's.
    let first = session(&app, &id, json!({"provider": "carbn"})).await;
    assert_eq!(first["reused"], false);
    // A session without an expiry is not reused beyond the (here empty) window.
    sqlx::query("UPDATE verification_sessions SET expires_at = NULL WHERE user_id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let second = session(&app, &id, json!({"provider": "carbn"})).await;
    assert_eq!(second["reused"], false);
    assert_ne!(first["url"], second["url"]);
    assert_eq!(
        sim_requests(&app, "carbn", "POST", "/onboarding/api/v1/users/session").await,
        2
    );
}

#[tokio::test]
async fn carbn_without_any_redirect_url_is_422_naming_it() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "carbn").await;
    let problem = assert_problem(
        post_session(&app, &id, &json!({"provider": "carbn"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        [("redirect_url".to_owned(), "required".to_owned())]
    );
    assert_eq!(
        sim_requests(&app, "carbn", "POST", "/onboarding/api/v1/users/session").await,
        0
    );
}

#[tokio::test]
async fn kraken_has_no_hosted_verification() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "kraken").await;
    let problem = assert_problem(
        post_session(
            &app,
            &id,
            &json!({"provider": "kraken", "redirect_url": REDIRECT}),
        )
        .await,
        422,
        "not_supported_by_provider",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        [(
            "provider".to_owned(),
            "not_supported_by_provider".to_owned()
        )]
    );
    assert_eq!(session_rows(&app, &id).await, 0);
    assert!(created_events(&events(&app, &id).await).is_empty());
}

#[tokio::test]
async fn bad_requests_are_4xx_naming_the_field() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "killb").await;
    let long = format!("https://app.example.com/{}", "a".repeat(2048));
    for (body, field, code) in [
        (json!({"provider": "acme"}), "provider", "invalid_value"),
        (json!({"provider": 7}), "provider", "invalid_type"),
        (json!({}), "provider", "required"),
        (json!({"redirect_url": REDIRECT}), "provider", "required"),
        (
            json!({"provider": "killb", "redirect_url": "http://app.example.com/"}),
            "redirect_url",
            "invalid_format",
        ),
        (
            json!({"provider": "killb", "redirect_url": "/relative"}),
            "redirect_url",
            "invalid_format",
        ),
        (
            json!({"provider": "killb", "redirect_url": "javascript:alert(1)"}),
            "redirect_url",
            "invalid_format",
        ),
        (
            json!({"provider": "killb", "redirect_url": long}),
            "redirect_url",
            "invalid_format",
        ),
        (
            json!({"provider": "killb", "redirect_url": 42}),
            "redirect_url",
            "invalid_type",
        ),
        (
            json!({"provider": "killb", "currency": "EUR"}),
            "currency",
            "unknown_field",
        ),
    ] {
        let problem = assert_problem(
            post_session(&app, &id, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            field_errors(&problem),
            [(field.to_owned(), code.to_owned())],
            "{body}"
        );
    }
    // Not JSON, not an object, not JSON's content type.
    let url = app.url(&format!("/v1/users/{id}/verification-sessions"));
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(DEV_KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        raw("{", "application/json").await.unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        raw("[]", "application/json").await.unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        raw(r#"{"provider":"killb"}"#, "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    // Scopes: reading is not enough.
    let response = app
        .client
        .post(&url)
        .bearer_auth(READ_KEY)
        .json(&json!({"provider": "killb"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .client
        .get(&url)
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
    assert_eq!(session_rows(&app, &id).await, 0);
}

#[tokio::test]
async fn users_without_a_submitted_link_there_get_a_clear_problem() {
    let app = spawn_app_routed().await;
    // No such user; an id that is not one.
    for id in [Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        assert_problem(
            post_session(&app, &id, &json!({"provider": "killb"})).await,
            404,
            "not_found",
        )
        .await;
    }
    // Linked elsewhere only.
    let (carbn_user, _) = onboard(&app, "carbn").await;
    let problem = assert_problem(
        post_session(&app, &carbn_user, &json!({"provider": "killb"})).await,
        422,
        "provider_not_linked",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        [("provider".to_owned(), "not_linked".to_owned())]
    );
    // Linked, but KillB was down at the create: nothing to open yet.
    sim_fault(
        &app,
        json!({"provider": "killb", "path": "/api/v2/users", "method": "POST", "status": 503}),
    )
    .await;
    let created = app.create_user(&user_at("killb")).await;
    assert_eq!(link(&created, "killb")["status"], "pending_submission");
    let id = created["id"].as_str().unwrap();
    assert_problem(
        post_session(&app, id, &json!({"provider": "killb"})).await,
        409,
        "link_not_submitted",
    )
    .await;
    // Erased: gone.
    let (erased, _) = onboard(&app, "carbn").await;
    assert_eq!(
        app.delete(&format!("/v1/users/{erased}")).await.status(),
        200
    );
    assert_problem(
        post_session(
            &app,
            &erased,
            &json!({"provider": "carbn", "redirect_url": REDIRECT}),
        )
        .await,
        410,
        "user_erased",
    )
    .await;
}

#[tokio::test]
async fn provider_failures_are_classified_and_recorded() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "carbn").await;
    let body = json!({"provider": "carbn", "redirect_url": REDIRECT});
    // Throttled: Carbn's Retry-After is passed on.
    sim_fault(
        &app,
        json!({"provider": "carbn", "path": "/onboarding/api/v1/users/session", "status": 429,
               "retry_after_secs": 7, "count": 1}),
    )
    .await;
    let response = post_session(&app, &id, &body).await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_problem(response, 503, "provider_rate_limited").await;
    sim_fault(
        &app,
        json!({"provider": "carbn", "path": "/onboarding/api/v1/users/session", "status": 503,
               "count": 1}),
    )
    .await;
    let response = post_session(&app, &id, &body).await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_problem(response, 503, "provider_unavailable").await;
    sim_fault(
        &app,
        json!({"provider": "carbn", "path": "/onboarding/api/v1/users/session", "status": 401,
               "count": 1}),
    )
    .await;
    assert_problem(
        post_session(&app, &id, &body).await,
        502,
        "provider_unauthorized",
    )
    .await;
    assert_eq!(session_rows(&app, &id).await, 0);
    let trail = events(&app, &id).await;
    let outcomes: Vec<&str> = trail
        .iter()
        .filter(|e| e["type"] == "provider_call" && e["operation"] == "verification_session")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rate_limited", "unavailable", "unauthorized"]);
    assert!(created_events(&trail).is_empty());
    // The provider is back: the same request now succeeds.
    assert_eq!(session(&app, &id, body).await["reused"], false);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "killb").await;
    let send = |key: &'static str, body: Value| {
        app.client
            .post(app.url(&format!("/v1/users/{id}/verification-sessions")))
            .bearer_auth(DEV_KEY)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("session-key-1", json!({"provider": "killb"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let replay = send("session-key-1", json!({"provider": "killb"}))
        .await
        .unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    // Replayed, not run again.
    assert_eq!(created_events(&events(&app, &id).await).len(), 1);
    assert_problem(
        send(
            "session-key-1",
            json!({"provider": "killb", "redirect_url": REDIRECT}),
        )
        .await
        .unwrap(),
        409,
        "idempotency_key_reused",
    )
    .await;
    // The stored answer shows the session URL: it belongs to the user, and erasure removes it.
    let uid = Uuid::parse_str(&id).unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resource_id = $1")
            .bind(uid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept, 1);
    assert_eq!(app.delete(&format!("/v1/users/{id}")).await.status(), 200);
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resource_id = $1")
            .bind(uid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept, 0);
}

#[tokio::test]
async fn a_session_for_another_provider_user_is_flagged_and_the_link_keeps_its_id() {
    let app = spawn_app_routed().await;
    let (id, _) = onboard(&app, "carbn").await;
    // The link's account id is one Carbn's session will not name.
    let ours = Uuid::new_v4().to_string();
    sqlx::query(
        "UPDATE provider_links SET provider_user_id = $2 WHERE user_id = $1 AND provider = 'carbn'",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .bind(&ours)
    .execute(&app.pool)
    .await
    .unwrap();
    let answer = session(
        &app,
        &id,
        json!({"provider": "carbn", "redirect_url": REDIRECT}),
    )
    .await;
    assert_eq!(answer["reused"], false);
    let user: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let carbn = link(&user, "carbn");
    assert_eq!(carbn["provider_user_id"], json!(ours));
    assert_eq!(carbn["last_error"]["code"], "session_user_mismatch");
    let trail = events(&app, &id).await;
    let flagged: Vec<&Value> = trail
        .iter()
        .filter(|e| e["type"] == "link_needs_review" && e["reason"] == "session_user_mismatch")
        .collect();
    assert_eq!(flagged.len(), 1, "{trail:#?}");
    assert_eq!(flagged[0]["provider"], "carbn");
    assert!(flagged[0]["session_provider_user_id"].is_string());
    let needs_review: bool = sqlx::query_scalar(
        "SELECT needs_review FROM provider_links WHERE user_id = $1 AND provider = 'carbn'",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(needs_review);
}

fn keyring_settings(current: &str, keys: &[(&str, &str)]) -> EncryptionSettings {
    EncryptionSettings {
        current_key_id: current.into(),
        keys: keys
            .iter()
            .map(|(id, k)| ((*id).to_owned(), SecretString::from((*k).to_owned())))
            .collect::<BTreeMap<_, _>>(),
        lookup_key: SecretString::from(onboarding_gateway::crypto::DEV_LOOKUP_KEY.to_owned()),
        rotation_interval_secs: 0,
        rotation_batch_size: 2,
    }
}

#[tokio::test]
async fn the_url_is_sealed_resealed_on_rotation_and_erased() {
    let app = spawn_app_routed().await;
    let (killb_user, _) = onboard(&app, "killb").await;
    let (carbn_user, _) = onboard(&app, "carbn").await;
    let killb = session(&app, &killb_user, json!({"provider": "killb"})).await;
    let carbn = session(
        &app,
        &carbn_user,
        json!({"provider": "carbn", "redirect_url": REDIRECT}),
    )
    .await;
    let urls = [
        killb["url"].as_str().unwrap().to_owned(),
        carbn["url"].as_str().unwrap().to_owned(),
    ];
    let token = urls[1].split("session=").nth(1).unwrap().to_owned();
    let dump = |pool: sqlx::PgPool| async move {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(s)::text FROM verification_sessions s")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 2);
        rows.join("\n")
    };
    let text = dump(app.pool.clone()).await;
    for needle in urls.iter().chain([&token, &REDIRECT.to_owned()]) {
        assert!(!text.contains(needle.as_str()), "{needle} in clear");
        assert!(!text.contains(&hex::encode(needle)), "{needle} hex-encoded");
    }
    // Sealed under the current key, opened by the store.
    let store = onboarding_gateway::store::sessions::latest(
        &app.pool,
        &app.keyring,
        Uuid::parse_str(&killb_user).unwrap(),
        ProviderId::from_wire("killb").unwrap(),
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(store.url, urls[0]);

    // Rotation re-seals the URLs; the old key can then go.
    const K2: &str = "c2Vjb25kLWRhdGEta2V5LWZvci1yb3RhdGlvbi10ZXM=";
    let dev = onboarding_gateway::crypto::DEV_DATA_KEY;
    let rotated =
        Keyring::from_settings(&keyring_settings("k2", &[("dev-1", dev), ("k2", K2)])).unwrap();
    let report = onboarding_gateway::workers::resealer::reseal_all(&app.pool, &rotated, 2)
        .await
        .unwrap();
    assert_eq!(report.verification_sessions_moved, 2, "{report:?}");
    assert_eq!(report.verification_sessions_stale, 0);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT url_key_id FROM verification_sessions")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(keys, ["k2"]);
    assert!(onboarding_gateway::store::sealed_key_ids(&app.pool)
        .await
        .unwrap()
        .contains(&"k2".to_owned()));
    let k2_only = Keyring::from_settings(&keyring_settings("k2", &[("k2", K2)])).unwrap();
    let store = onboarding_gateway::store::sessions::latest(
        &app.pool,
        &k2_only,
        Uuid::parse_str(&carbn_user).unwrap(),
        ProviderId::from_wire("carbn").unwrap(),
        Some(&onboarding_gateway::store::sessions::redirect_url_hash(
            &k2_only, REDIRECT,
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(store.url, urls[1]);
    assert!(!dump(app.pool.clone()).await.contains(&token));

    // Erasure deletes the user's sessions (and says so in its event).
    assert_eq!(
        app.delete(&format!("/v1/users/{carbn_user}"))
            .await
            .status(),
        200
    );
    assert_eq!(session_rows(&app, &carbn_user).await, 0);
    assert_eq!(session_rows(&app, &killb_user).await, 1);
    let erased = events(&app, &carbn_user)
        .await
        .into_iter()
        .find(|e| e["type"] == "user_erased")
        .unwrap();
    assert_eq!(erased["verification_sessions_removed"], 1);
}
