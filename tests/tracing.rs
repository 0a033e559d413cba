//! Tracing joins each provider call to the API request that made it: the `provider_call` span
//! carries the request id with provider and operation, its line the HTTP status and latency. Its own test
//! binary: it owns the global subscriber (JSON, as in production).

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use serde_json::{json, Value};

use helpers::*;

#[tokio::test]
async fn provider_calls_are_spans_joined_to_their_request_by_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The gateway's own JSON lines (`telemetry::json_layer`), as in production.
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(onboarding_gateway::telemetry::json_layer(move || {
            writer.clone()
        }))
        .init();

    let app = spawn_app_routed().await;
    let mut user = sample_user();
    user["email"] = json!("traced+approve@example.com");
    let response = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .header("x-request-id", "trace-join-0001")
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "provider call")
        .filter(|l| l["span"]["request_id"] == "trace-join-0001")
        .collect();
    let operations: Vec<&str> = calls
        .iter()
        .map(|l| l["span"]["operation"].as_str().unwrap_or_default())
        .collect();
    assert!(
        operations.contains(&"accept_terms") && operations.contains(&"create_user"),
        "each Carbn call of the create is joined by the request id: {operations:?}\n{logs}"
    );
    for call in calls {
        let span = &call["span"];
        assert_eq!(span["name"], "provider_call");
        assert_eq!(span["provider"], "carbn");
        let fields = &call["fields"];
        assert!(
            fields["http_status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
            "{call}"
        );
        assert!(
            fields["latency_ms"]
                .as_str()
                .and_then(|ms| ms.parse::<f64>().ok())
                .is_some(),
            "{call}"
        );
        assert_eq!(call["fields"]["outcome"], "ok");
    }
    // The request's own completion line carries the same id, route template and status.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "request completed"
                && l["span"]["request_id"] == "trace-join-0001"
                && l["fields"]["route"] == "/v1/users"),
        "{logs}"
    );
}
