//! End to end over real HTTP: the gateway onboards users at the in-process simulators, which
//! check each provider's auth and body exactly as the real APIs do.

use serde_json::{json, Value};

use crate::helpers::*;

async fn sim_requests(app: &TestApp, provider: &str) -> Vec<Value> {
    app.client
        .get(app.sim(&format!("/_sim/requests?provider={provider}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_is_routed_by_country_and_onboarded_at_each_provider() {
    let app = spawn_app_routed().await;

    // DE → carbn by rule; the default (no tag) answer is `under_review`.
    let de = app
        .create_user(&complete_user("DE", "de.user@example.com"))
        .await;
    let carbn = link(&de, "carbn");
    assert_eq!(carbn["status"], "under_review", "{de}");
    assert_eq!(carbn["provider_status"], "under_review");
    assert!(uuid::Uuid::parse_str(carbn["provider_user_id"].as_str().unwrap()).is_ok());
    assert!(carbn["submitted_at"].is_string() && carbn["last_synced_at"].is_string());
    assert_eq!(de["status"], "under_review");

    // CO → killb by rule; `+approve` makes the sim approve at once.
    let co = app
        .create_user(&complete_user("CO", "co+approve@example.com"))
        .await;
    assert_eq!(link(&co, "killb")["status"], "approved", "{co}");
    assert_eq!(link(&co, "killb")["provider_status"], "ACTIVE");
    assert_eq!(co["status"], "approved");

    // US → the default, kraken; a new Kraken user needs an identity verification.
    let us = app
        .create_user(&complete_user("US", "us.user@example.com"))
        .await;
    let kraken = link(&us, "kraken");
    assert_eq!(kraken["status"], "action_required", "{us}");
    let iiban = kraken["provider_user_id"].as_str().unwrap();
    assert!((14..=42).contains(&iiban.len()));
    assert_eq!(kraken["requirements"][0]["action_type"], "verification");

    // Every call is in the audit trail, without PII.
    let trail = events(&app, de["id"].as_str().unwrap()).await;
    let calls: Vec<&Value> = trail
        .iter()
        .filter(|e| e["type"] == "provider_call")
        .collect();
    assert!(calls.len() >= 2, "consent and create: {trail:?}");
    for call in &calls {
        assert_eq!(call["provider"], "carbn");
        assert!(call["http_status"].is_u64() && call["latency_ms"].is_number());
        assert_eq!(call["outcome"], "ok");
    }
    assert!(trail.iter().any(|e| e["type"] == "status_changed"
        && e["to"] == "under_review"
        && e["source"] == "api"));
    let text = serde_json::to_string(&trail).unwrap();
    assert!(!text.contains("de.user@example.com") && !text.contains("C01X00T47"));
}

#[tokio::test]
async fn explicit_providers_override_routing() {
    let app = spawn_app_routed().await;
    let mut user = complete_user("DE", "both+approve@example.com");
    user["providers"] = json!(["kraken", "killb"]);
    let created = app.create_user(&user).await;
    assert_eq!(created["links"].as_array().unwrap().len(), 2);
    assert_eq!(link(&created, "kraken")["status"], "approved");
    assert_eq!(link(&created, "killb")["status"], "approved");
    let by_provider: Value = app
        .get("/v1/users?provider=killb")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_provider["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn missing_provider_fields_are_refused_per_provider() {
    let app = spawn_app_routed().await;
    let mut user = minimal_user();
    user["providers"] = json!(["kraken", "carbn"]);
    let problem = assert_problem(
        app.post_user(&user).await,
        422,
        "provider_requirements_unmet",
    )
    .await;
    let errors = problem["errors"].as_array().unwrap();
    let kraken: Vec<&str> = errors
        .iter()
        .filter(|e| e["message"].as_str().unwrap().contains("kraken"))
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "phone",
        "address.line1",
        "nationalities",
        "employment",
        "terms.version",
    ] {
        assert!(kraken.contains(&field), "{field} missing from {kraken:?}");
    }
    assert!(errors
        .iter()
        .any(|e| e["field"] == "identity_document"
            && e["message"].as_str().unwrap().contains("carbn")));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_provider_outage_keeps_the_user_pending_with_the_error() {
    let app = spawn_app_routed().await;
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(&json!({"provider": "carbn", "status": 503, "error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let response = app
        .post_user(&complete_user("DE", "down@example.com"))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let carbn = link(&created, "carbn");
    assert_eq!(carbn["status"], "pending_submission");
    assert_eq!(carbn["last_error"]["code"], "provider_unavailable");
    assert_eq!(carbn["provider_user_id"], Value::Null);
    assert_eq!(created["status"], "pending_submission");
}

#[tokio::test]
async fn a_refused_submission_is_marked_failed() {
    let app = spawn_app_routed().await;
    app.client
        .post(app.sim("/_sim/faults"))
        .json(&json!({"provider": "kraken", "status": 400, "error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    let created = app
        .create_user(&complete_user("US", "refused@example.com"))
        .await;
    let kraken = link(&created, "kraken");
    assert_eq!(kraken["status"], "submission_failed");
    assert_eq!(kraken["last_error"]["code"], "provider_rejected");
}

#[tokio::test]
async fn patches_send_only_changed_fields_and_refuse_what_a_provider_cannot_change() {
    let app = spawn_app_routed().await;
    let created = app
        .create_user(&complete_user("US", "patch@example.com"))
        .await;
    let id = created["id"].as_str().unwrap();
    app.client
        .delete(app.sim("/_sim/requests"))
        .send()
        .await
        .unwrap();

    let response = app
        .patch_user(id, &json!({"phone": "+14155550111", "metadata": {"x": 1}}))
        .await;
    assert_eq!(response.status(), 200);
    let requests = sim_requests(&app, "kraken").await;
    let patches: Vec<&Value> = requests.iter().filter(|r| r["method"] == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{requests:?}");
    let body: Value = serde_json::from_str(patches[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"phone": "+14155550111"}),
        "only the changed field goes out"
    );

    let problem = assert_problem(
        app.patch_user(id, &json!({"email": "new@example.com"}))
            .await,
        422,
        "field_not_updatable",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "email");
    assert!(problem["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("kraken"));
    let fetched: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["email"], "patch@example.com", "nothing changed");

    let trail = events(&app, id).await;
    assert!(trail.iter().any(|e| e["type"] == "provider_update"
        && e["provider"] == "kraken"
        && e["fields"] == json!(["phone"])
        && e["outcome"] == "ok"));
}

#[tokio::test]
async fn sync_reads_a_status_changed_behind_the_gateways_back() {
    // The sync must be the only reader of the provider's status: no poller, and no webhooks
    // (KillB notifies every create, and that delivery's re-read may come after the change
    // below and record it as `source: "webhook"` first).
    let db = TestDatabase::create().await;
    let routing = configured_routing();
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.workers.reconcile_interval_secs = 0;
    })
    .await;
    let off = app
        .client
        .put(app.sim("/_sim/webhook-targets"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success());
    let created = app
        .create_user(&complete_user("CO", "sync@example.com"))
        .await;
    let id = created["id"].as_str().unwrap();
    let provider_id = link(&created, "killb")["provider_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(link(&created, "killb")["status"], "under_review");
    let changed = app
        .client
        .post(app.sim(&format!("/_sim/killb/users/{provider_id}/status")))
        .json(&json!({"status": "approved", "webhook": false}))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success());

    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/sync")))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let synced: Value = response.json().await.unwrap();
    assert_eq!(link(&synced, "killb")["status"], "approved");
    assert_eq!(synced["status"], "approved");
    let trail = events(&app, id).await;
    assert!(
        trail.iter().any(|e| e["type"] == "status_changed"
            && e["from"] == "under_review"
            && e["to"] == "approved"
            && e["source"] == "api"),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn a_user_can_be_linked_to_one_more_provider_once() {
    let app = spawn_app_routed().await;
    let created = app
        .create_user(&complete_user("DE", "more+approve@example.com"))
        .await;
    let id = created["id"].as_str().unwrap();
    let url = app.url(&format!("/v1/users/{id}/providers"));
    let response = app
        .client
        .post(&url)
        .bearer_auth(DEV_KEY)
        .json(&json!({"provider": "killb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let linked: Value = response.json().await.unwrap();
    assert_eq!(link(&linked, "killb")["status"], "approved");
    let again = app
        .client
        .post(&url)
        .bearer_auth(DEV_KEY)
        .json(&json!({"provider": "killb"}))
        .send()
        .await
        .unwrap();
    assert_problem(again, 409, "link_already_exists").await;
    let bad = app
        .client
        .post(&url)
        .bearer_auth(DEV_KEY)
        .json(&json!({"provider": "paypal"}))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 422, "validation_failed").await;
}

#[tokio::test]
async fn providers_and_requirements_are_listed() {
    let app = spawn_app_routed().await;
    let providers: Value = app.get("/v1/providers").await.json().await.unwrap();
    let data = providers["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for p in data {
        assert_eq!(p["enabled"], true, "{p}");
        assert_eq!(p["simulated"], true);
        assert!(p["required_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("phone")));
    }
    let killb = data.iter().find(|p| p["id"] == "killb").unwrap();
    assert!(killb["routing_countries"]
        .as_array()
        .unwrap()
        .contains(&json!("CO")));
    assert_eq!(
        data.iter().find(|p| p["id"] == "kraken").unwrap()["default"],
        true
    );

    let mut user = complete_user("DE", "req+incomplete@example.com");
    user["employment"] = Value::Null;
    let created = app.create_user(&user).await;
    let id = created["id"].as_str().unwrap();
    let reqs: Value = app
        .get(&format!("/v1/users/{id}/requirements"))
        .await
        .json()
        .await
        .unwrap();
    let entries = reqs["data"].as_array().unwrap();
    let carbn = entries.iter().find(|e| e["provider"] == "carbn").unwrap();
    assert_eq!(carbn["linked"], true);
    assert_eq!(carbn["status"], "action_required");
    assert!(
        !carbn["provider_requirements"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{carbn}"
    );
    let kraken = entries.iter().find(|e| e["provider"] == "kraken").unwrap();
    assert_eq!(kraken["linked"], false);
    assert!(kraken["missing_fields"]
        .as_array()
        .unwrap()
        .contains(&json!("employment")));
}

#[tokio::test]
async fn naming_a_disabled_provider_is_refused() {
    let db = TestDatabase::create().await;
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let routing = onboarding_gateway::settings::Settings::load_from_dir(&config_dir, "test")
        .unwrap()
        .routing;
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.providers.set("killb", "enabled", false);
    })
    .await;
    let mut user = complete_user("CO", "off@example.com");
    user["providers"] = json!(["killb"]);
    let problem = assert_problem(app.post_user(&user).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "providers[0]");
    // Routing skips it too: CO falls through to the default provider.
    let created = app
        .create_user(&complete_user("CO", "routed@example.com"))
        .await;
    assert_eq!(created["links"][0]["provider"], "kraken");
}
