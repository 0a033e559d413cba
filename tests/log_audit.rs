//! Runs a full flow (creates at all three simulated providers, a patch, reads, their signed
//! webhooks, an erasure, bad input) with tracing at debug level (ours and every dependency's) and asserts that
//! no PII, key or secret reaches a log line. Its own test binary: it owns the global subscriber.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use serde_json::json;

use helpers::*;

#[tokio::test]
async fn no_pii_or_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The gateway's own JSON lines (`telemetry::json_layer`), as in production.
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("debug"))
        .with(onboarding_gateway::telemetry::json_layer(move || {
            writer.clone()
        }))
        .init();

    let app = spawn_app_routed().await;
    let mut user = sample_user();
    user["email"] = json!("pii.audit.person@example.org");
    user["phone"] = json!("+4915199887766");
    user["name"] = json!({"first": "Auditfirstname", "last": "Auditlastname"});
    user["identity_document"]["number"] = json!("AUDITDOC9911");
    user["tax_ids"][0]["number"] = json!("98765432109");
    user["address"]["line1"] = json!("Auditstrasse 77");
    let created = app.create_user(&user).await; // DE: Carbn (API key)
    let id = created["id"].as_str().unwrap();
    // The same person at KillB (bearer login; its webhooks carry the whole user) and Kraken
    // (HMAC-signed requests).
    let mut at_killb = user.clone();
    at_killb["external_id"] = json!(format!("crm-audit-{}", uuid::Uuid::new_v4().simple()));
    at_killb["email"] = json!("pii.audit.person+approve@example.org");
    at_killb["address"]["country"] = json!("CO");
    let killb_user = app.create_user(&at_killb).await;
    let mut at_kraken = user.clone();
    at_kraken["external_id"] = json!(format!("crm-audit-{}", uuid::Uuid::new_v4().simple()));
    at_kraken["address"]["country"] = json!("US");
    app.create_user(&at_kraken).await;
    // Wait for the simulators' signed webhooks to be received and applied.
    let mut webhooks = 0_i64;
    for _ in 0..150 {
        webhooks =
            sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE provider = 'killb'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if webhooks > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(webhooks > 0, "the KillB simulator's webhook was received");
    // Erasure, with its provider call.
    let killb_id = killb_user["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/users/{killb_id}")).await.status(),
        200
    );

    assert_eq!(
        app.patch_user(
            id,
            &json!({"phone": "+4915100001111", "address": {"line1": "Patchweg 5"}})
        )
        .await
        .status(),
        200
    );
    assert_eq!(app.get(&format!("/v1/users/{id}")).await.status(), 200);
    assert_eq!(
        app.get("/v1/users?email=pii.audit.person%40example.org")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/v1/users/{id}/events")).await.status(),
        200
    );
    // Invalid input that echoes PII-like values must not log them either.
    let mut bad = user.clone();
    bad["email"] = json!("broken-pii-email@@example.org");
    bad["external_id"] = json!("crm-audit-dupe");
    assert_eq!(app.post_user(&bad).await.status(), 422);
    let broken = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json")
        .body(r#"{"email": "truncated-pii@example.org", "#)
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let unauthorized = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth("sk_live_leaked_key_value")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request completed"),
        "the capture works (requests are logged)"
    );
    for secret in [
        "pii.audit.person",
        "broken-pii-email",
        "truncated-pii",
        "4915199887766",
        "4915100001111",
        "Auditfirstname",
        "Auditlastname",
        "AUDITDOC9911",
        "98765432109",
        "Auditstrasse",
        "Patchweg",
        DEV_KEY,
        "sk_live_leaked_key_value",
        "1990-01-15",
        // Provider credentials, webhook secrets, KillB tokens and the encryption keys.
        onboarding_gateway::sim::kraken::DEV_API_KEY,
        onboarding_gateway::sim::kraken::DEV_API_SECRET_B64,
        onboarding_gateway::sim::kraken::DEV_WEBHOOK_SECRET_B64,
        onboarding_gateway::sim::killb::DEV_EMAIL,
        onboarding_gateway::sim::killb::DEV_PASSWORD,
        onboarding_gateway::sim::killb::DEV_WEBHOOK_SECRET,
        onboarding_gateway::sim::carbn::DEV_API_KEY,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", // every KillB token starts so
        onboarding_gateway::crypto::DEV_DATA_KEY,
        onboarding_gateway::crypto::DEV_LOOKUP_KEY,
    ] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
    }
}
