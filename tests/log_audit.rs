//! Runs a full flow with tracing at debug level (ours and every dependency's) and asserts that
//! no PII, key or secret reaches a log line. Its own test binary: it owns the global subscriber.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use helpers::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_pii_or_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .json()
        .with_current_span(true)
        .init();

    let app = spawn_app().await;
    let mut user = sample_user();
    user["email"] = json!("pii.audit.person@example.org");
    user["phone"] = json!("+4915199887766");
    user["name"] = json!({"first": "Auditfirstname", "last": "Auditlastname"});
    user["identity_document"]["number"] = json!("AUDITDOC9911");
    user["tax_ids"][0]["number"] = json!("98765432109");
    user["address"]["line1"] = json!("Auditstrasse 77");
    let created = app.create_user(&user).await;
    let id = created["id"].as_str().unwrap();

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
    ] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
    }
}
