//! `POST /v1/webhooks/{provider}` against the real gateway and the in-process simulators: the
//! simulators send real signed webhooks when a status changes behind the gateway's back
//! (`POST /_sim/{provider}/users/{id}/status`); forged, duplicate and unknown-user deliveries
//! are built here with the providers' signing functions and the development secrets.

use std::time::{Duration, Instant};

use onboarding_gateway::providers::carbn::webhook as carbn;
use onboarding_gateway::providers::killb::webhook::{self as killb, SignatureScheme};
use onboarding_gateway::providers::kraken::webhook as kraken;
use onboarding_gateway::settings::Settings;
use onboarding_gateway::sim::{carbn as carbn_sim, killb as killb_sim, kraken as kraken_sim};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// How long a test waits for a simulator webhook to be applied.
const WAIT: Duration = Duration::from_secs(15);

async fn user(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/v1/users/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn webhook_status_changes<'a>(trail: &'a [Value], to: &str) -> Vec<&'a Value> {
    trail
        .iter()
        .filter(|e| e["type"] == "status_changed" && e["source"] == "webhook" && e["to"] == to)
        .collect()
}

/// Polls until `done` holds for the user (bounded by [`WAIT`]); returns the last user seen.
async fn wait_for_user(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = user(app, id).await;
        if done(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `count` stored webhook events of `provider_user_id` are no longer `received`
/// (i.e. handled), bounded by [`WAIT`].
async fn wait_for_handled_events(
    app: &TestApp,
    provider: &str,
    provider_user_id: &str,
    count: i64,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let handled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_events
              WHERE provider = $1 AND provider_user_id = $2 AND outcome <> 'received'",
        )
        .bind(provider)
        .bind(provider_user_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if handled >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {count} handled {provider} webhooks (have {handled})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Changes a status at the simulator (and, with `webhook`, lets it send its signed webhook).
async fn sim_set_status(
    app: &TestApp,
    provider: &str,
    provider_user_id: &str,
    status: &str,
    webhook: bool,
) {
    let path = format!(
        "/_sim/{provider}/users/{}/status",
        provider_user_id.replace(' ', "%20")
    );
    let response = app
        .client
        .post(app.sim(&path))
        .json(&json!({ "status": status, "webhook": webhook }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Creates a user routed to `provider` and returns (gateway id, provider user id).
async fn onboard(app: &TestApp, provider: &str) -> (String, String) {
    let email = format!("{provider}.{}@example.com", Uuid::new_v4().simple());
    let created = app
        .create_user(&complete_user(country_for(provider), &email))
        .await;
    let link = link(&created, provider);
    let provider_user_id = link["provider_user_id"].as_str().unwrap().to_owned();
    // KillB notifies every create: let that delivery land before the test goes on.
    wait_for_sim_deliveries(app).await;
    (created["id"].as_str().unwrap().to_owned(), provider_user_id)
}

/// Polls until every webhook the simulator sent so far was answered with a 2xx (bounded).
async fn wait_for_sim_deliveries(app: &TestApp) {
    let deadline = Instant::now() + WAIT;
    loop {
        let deliveries: Vec<Value> = app
            .client
            .get(app.sim("/_sim/webhooks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if deliveries.iter().all(|d| d["delivered"] == true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the simulator's webhooks: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_webhook(
    app: &TestApp,
    provider: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/webhooks/{provider}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

/// A refused delivery: provider, headers, body, and what is wrong with it.
type Forgery<'a> = (&'a str, Vec<(&'a str, String)>, &'a [u8], &'a str);

fn now() -> i64 {
    onboarding_gateway::providers::webhook::unix_now()
}

fn kraken_event(iiban: &str, event_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_type": "user.verified", "iiban": iiban, "id": event_id,
        "timestamp": "2026-11-22T10:30:00.000000000Z",
    }))
    .unwrap()
}

fn kraken_headers(body: &[u8], t: i64) -> Vec<(&'static str, String)> {
    vec![
        (
            kraken::SIGNATURE_HEADER,
            kraken::signature_header(kraken_sim::DEV_WEBHOOK_SECRET_B64, t, body).unwrap(),
        ),
        (kraken::EVENT_HEADER, "user.verified".into()),
    ]
}

fn killb_event(user_id: &str, event_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id, "event": "USER", "action": "UPDATE",
        "data": { "id": user_id, "status": "ACTIVE" },
        "createdAt": "2026-11-22T10:30:00.000Z", "updatedAt": "2026-11-22T10:30:00.000Z",
        "attempts": 0,
    }))
    .unwrap()
}

fn killb_headers(
    scheme: SignatureScheme,
    secret: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![(killb::SIGNATURE_HEADER, killb::sign(scheme, secret, body))]
}

fn carbn_event(user_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "status": "active", "user_id": user_id })).unwrap()
}

fn carbn_headers(event_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (carbn::EVENT_ID_HEADER, event_id.to_owned()),
        (
            carbn::SIGNATURE_HEADER,
            carbn::sign(carbn_sim::DEV_WEBHOOK_PRIVATE_KEY_PEM, body).unwrap(),
        ),
    ]
}

async fn stored_events(
    app: &TestApp,
    provider: &str,
    event_id: &str,
) -> Vec<(String, bool, Option<String>)> {
    sqlx::query_as::<_, (String, bool, Option<String>)>(
        "SELECT outcome, processed_at IS NOT NULL, error FROM webhook_events
          WHERE provider = $1 AND provider_event_id = $2",
    )
    .bind(provider)
    .bind(event_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn spawn_routed_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create().await;
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let routing = Settings::load_from_dir(&config_dir, "test")
        .expect("settings")
        .routing;
    spawn_app_with(db, move |s| {
        s.routing = routing;
        adjust(s);
    })
    .await
}

async fn ack(response: reqwest::Response, status: u16) -> String {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    body["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_status_changed_at_each_provider_arrives_by_signed_webhook() {
    let app = spawn_app_routed().await;
    for provider in ["kraken", "killb", "carbn"] {
        let (id, provider_user_id) = onboard(&app, provider).await;
        let before = user(&app, &id).await;
        assert_ne!(link(&before, provider)["status"], "approved");

        sim_set_status(&app, provider, &provider_user_id, "approved", true).await;

        // The user's summary follows in the same transaction (GET reads user and links in
        // two statements, so wait for both).
        wait_for_user(&app, &id, &format!("{provider} approval"), |u| {
            link(u, provider)["status"] == "approved" && u["status"] == "approved"
        })
        .await;
        let trail = events(&app, &id).await;
        let changes = webhook_status_changes(&trail, "approved");
        assert_eq!(changes.len(), 1, "{provider}: {trail:?}");
        assert_eq!(changes[0]["provider"], provider);
        assert_eq!(changes[0]["category"], "status_change");
        let received: Vec<&Value> = trail
            .iter()
            .filter(|e| e["type"] == "webhook_received")
            .collect();
        assert!(!received.is_empty(), "{provider}: {trail:?}");
        assert_eq!(received[0]["category"], "webhook");
        assert_eq!(received[0]["provider"], provider);
        assert!(received[0]["provider_event_id"].is_string(), "{trail:?}");
        // The status was re-read from the provider, not taken from the payload.
        assert!(
            trail
                .iter()
                .any(|e| e["type"] == "provider_call" && e["operation"] == "get_user"),
            "{provider}: {trail:?}"
        );
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_events
              WHERE provider = $1 AND outcome = 'applied' AND processed_at IS NOT NULL
                AND signature_valid AND user_id = $2::uuid",
        )
        .bind(provider)
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert!(applied >= 1, "{provider}");
    }
}

#[tokio::test]
async fn forged_missing_and_expired_signatures_are_refused_and_nothing_is_applied() {
    let app = spawn_app_routed().await;
    let (killb_id, killb_user) = onboard(&app, "killb").await;
    let (_, iiban) = onboard(&app, "kraken").await;
    let (carbn_id, carbn_user) = onboard(&app, "carbn").await;
    // The providers changed their minds, but say so only through the deliveries below.
    sim_set_status(&app, "killb", &killb_user, "approved", false).await;
    sim_set_status(&app, "carbn", &carbn_user, "approved", false).await;

    let forged_id = format!("forged-{}", Uuid::new_v4());
    let killb_body = killb_event(&killb_user, &forged_id);
    let kraken_body = kraken_event(&iiban, &forged_id);
    let carbn_body = carbn_event(&carbn_user);
    let cases: Vec<Forgery> = vec![
        // KillB: another secret, a tampered body, the wrong scheme, garbage, nothing.
        (
            "killb",
            killb_headers(SignatureScheme::HmacSha256, "not-the-secret", &killb_body),
            &killb_body,
            "forged",
        ),
        (
            "killb",
            killb_headers(
                SignatureScheme::HmacSha256,
                killb_sim::DEV_WEBHOOK_SECRET,
                b"{}",
            ),
            &killb_body,
            "other body",
        ),
        (
            "killb",
            killb_headers(
                SignatureScheme::Sha256Concat,
                killb_sim::DEV_WEBHOOK_SECRET,
                &killb_body,
            ),
            &killb_body,
            "SDK scheme while HMAC is configured",
        ),
        (
            "killb",
            vec![(killb::SIGNATURE_HEADER, "zz".into())],
            &killb_body,
            "garbage",
        ),
        ("killb", vec![], &killb_body, "missing"),
        // Kraken: another secret, outside the 300 s tolerance either way (by a minute, so a slow
        // machine cannot bring the request back inside), nothing.
        (
            "kraken",
            vec![(
                kraken::SIGNATURE_HEADER,
                kraken::signature_header("b3RoZXI=", now(), &kraken_body).unwrap(),
            )],
            &kraken_body,
            "forged",
        ),
        (
            "kraken",
            kraken_headers(&kraken_body, now() - 360),
            &kraken_body,
            "expired",
        ),
        (
            "kraken",
            kraken_headers(&kraken_body, now() + 360),
            &kraken_body,
            "from the future",
        ),
        ("kraken", vec![], &kraken_body, "missing"),
        // Carbn: a signature of another body, garbage, nothing.
        (
            "carbn",
            carbn_headers(&forged_id, b"{\"status\":\"active\"}"),
            &carbn_body,
            "other body",
        ),
        (
            "carbn",
            vec![
                (carbn::EVENT_ID_HEADER, forged_id.clone()),
                (carbn::SIGNATURE_HEADER, "bm9wZQ==".into()),
            ],
            &carbn_body,
            "garbage",
        ),
        (
            "carbn",
            vec![(carbn::EVENT_ID_HEADER, forged_id.clone())],
            &carbn_body,
            "missing",
        ),
        // No such provider.
        (
            "stripe",
            killb_headers(
                SignatureScheme::HmacSha256,
                killb_sim::DEV_WEBHOOK_SECRET,
                &killb_body,
            ),
            &killb_body,
            "unknown provider",
        ),
    ];
    for (provider, headers, body, what) in cases {
        let response = post_webhook(&app, provider, &headers, body).await;
        let problem = assert_problem(response, 401, "invalid_signature").await;
        assert!(problem["detail"].is_string(), "{provider} {what}");
    }

    // Nothing stored, nothing applied.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events WHERE provider_event_id = $1 OR provider_user_id = $2",
    )
    .bind(&forged_id)
    .bind(&carbn_user)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(
        link(&user(&app, &killb_id).await, "killb")["status"],
        "under_review"
    );
    assert_eq!(
        link(&user(&app, &carbn_id).await, "carbn")["status"],
        "under_review"
    );

    // Each refusal is counted.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (provider, result) in [
        ("killb", "invalid"),
        ("killb", "missing"),
        ("kraken", "expired"),
        ("carbn", "invalid"),
        ("unknown", "unknown_provider"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("gateway_webhook_verifications_total{")
                    && l.contains(&format!("provider=\"{provider}\""))
                    && l.contains(&format!("result=\"{result}\""))),
            "{provider} {result}:\n{metrics}"
        );
    }

    // The genuine article is accepted.
    let good_id = Uuid::new_v4().to_string();
    let good = killb_event(&killb_user, &good_id);
    let response = post_webhook(
        &app,
        "killb",
        &killb_headers(
            SignatureScheme::HmacSha256,
            killb_sim::DEV_WEBHOOK_SECRET,
            &good,
        ),
        &good,
    )
    .await;
    assert_eq!(ack(response, 200).await, "applied");
    assert_eq!(
        link(&user(&app, &killb_id).await, "killb")["status"],
        "approved"
    );
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_applied_once() {
    let app = spawn_app_routed().await;
    for provider in ["killb", "kraken", "carbn"] {
        let (id, provider_user_id) = onboard(&app, provider).await;
        sim_set_status(&app, provider, &provider_user_id, "approved", false).await;
        let event_id = Uuid::new_v4().to_string();
        let (body, headers) = match provider {
            "killb" => {
                let body = killb_event(&provider_user_id, &event_id);
                let headers = killb_headers(
                    SignatureScheme::HmacSha256,
                    killb_sim::DEV_WEBHOOK_SECRET,
                    &body,
                );
                (body, headers)
            }
            "kraken" => {
                let body = kraken_event(&provider_user_id, &event_id);
                let headers = kraken_headers(&body, now());
                (body, headers)
            }
            _ => {
                let body = carbn_event(&provider_user_id);
                let headers = carbn_headers(&event_id, &body);
                (body, headers)
            }
        };

        let first = post_webhook(&app, provider, &headers, &body).await;
        assert_eq!(ack(first, 200).await, "applied", "{provider}");
        let after_first = events(&app, &id).await;
        assert_eq!(
            webhook_status_changes(&after_first, "approved").len(),
            1,
            "{provider}"
        );

        let second = post_webhook(&app, provider, &headers, &body).await;
        assert_eq!(ack(second, 200).await, "duplicate", "{provider}");
        // Nothing else happened: not even a provider call.
        assert_eq!(
            events(&app, &id).await.len(),
            after_first.len(),
            "{provider}"
        );
        assert_eq!(
            stored_events(&app, provider, &event_id).await,
            vec![("applied".to_owned(), true, None)],
            "{provider}"
        );
    }
}

#[tokio::test]
async fn an_event_for_an_unknown_provider_user_is_accepted_and_kept() {
    let app = spawn_app_routed().await;
    let stranger = Uuid::new_v4().to_string();
    let event_id = Uuid::new_v4().to_string();

    let body = killb_event(&stranger, &event_id);
    let headers = killb_headers(
        SignatureScheme::HmacSha256,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    let response = post_webhook(&app, "killb", &headers, &body).await;
    assert_eq!(ack(response, 202).await, "unknown_user");

    let body = kraken_event("ZZ99 UNKN OWNU SER1", &event_id);
    let response = post_webhook(&app, "kraken", &kraken_headers(&body, now()), &body).await;
    assert_eq!(ack(response, 202).await, "unknown_user");

    let body = carbn_event(&stranger);
    let response = post_webhook(&app, "carbn", &carbn_headers(&event_id, &body), &body).await;
    assert_eq!(ack(response, 202).await, "unknown_user");

    // Kept (raw, unprocessed) so reconciliation can match it later.
    for provider in ["killb", "kraken", "carbn"] {
        let stored = stored_events(&app, provider, &event_id).await;
        assert_eq!(stored.len(), 1, "{provider}");
        assert_eq!(stored[0].0, "unknown_user");
        assert!(!stored[0].1, "left unprocessed");
    }
    let (id, sealed): (uuid::Uuid, Vec<u8>) = sqlx::query_as(
        "SELECT id, raw_body FROM webhook_events WHERE provider = 'carbn' AND provider_event_id = $1",
    )
    .bind(&event_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        !sealed
            .windows(stranger.len())
            .any(|w| w == stranger.as_bytes()),
        "the body is sealed at rest"
    );
    let raw = onboarding_gateway::store::webhooks::raw_body(&app.pool, &app.keyring, id)
        .await
        .unwrap();
    assert_eq!(raw, Some(body), "the raw bytes are stored as received");

    // A Kraken test event names no user: stored, acknowledged, nothing else.
    let body = br#"{"event_type":"webhook.test","message":"This is a test webhook event to verify your endpoint configuration."}"#;
    let response = post_webhook(&app, "kraken", &kraken_headers(body, now()), body).await;
    assert_eq!(ack(response, 200).await, "ignored");
}

#[tokio::test]
async fn a_final_decision_is_never_overwritten_by_a_later_signal() {
    let app = spawn_app_routed().await;
    let (id, carbn_user) = onboard(&app, "carbn").await;

    sim_set_status(&app, "carbn", &carbn_user, "rejected", true).await;
    wait_for_user(&app, &id, "rejection", |u| {
        link(u, "carbn")["status"] == "rejected"
    })
    .await;
    wait_for_handled_events(&app, "carbn", &carbn_user, 1).await;

    // The provider now says approved, by webhook and when asked: the rejection stands.
    sim_set_status(&app, "carbn", &carbn_user, "approved", true).await;
    wait_for_handled_events(&app, "carbn", &carbn_user, 2).await;
    let after = user(&app, &id).await;
    assert_eq!(link(&after, "carbn")["status"], "rejected", "{after}");
    assert_eq!(after["status"], "rejected");
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/sync")))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let synced: Value = response.json().await.unwrap();
    assert_eq!(link(&synced, "carbn")["status"], "rejected", "{synced}");
    let trail = events(&app, &id).await;
    assert!(
        webhook_status_changes(&trail, "approved").is_empty(),
        "{trail:?}"
    );
    assert_eq!(
        webhook_status_changes(&trail, "rejected").len(),
        1,
        "{trail:?}"
    );
}

#[tokio::test]
async fn a_stale_provider_state_never_overwrites_a_newer_one() {
    let app = spawn_app_routed().await;
    let (id, killb_user) = onboard(&app, "killb").await;
    // KillB stamps its user with `updatedAt`; the link remembers the newest stamp applied.
    let observed: Option<time::OffsetDateTime> = sqlx::query_scalar(
        "SELECT provider_observed_at FROM provider_links WHERE user_id = $1::uuid AND provider = 'killb'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(observed.is_some(), "the create's updatedAt is kept");

    // Pretend a newer state was already applied: the one fetched for the webhook is older.
    sqlx::query(
        "UPDATE provider_links SET provider_observed_at = now() + interval '1 hour'
          WHERE user_id = $1::uuid AND provider = 'killb'",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let event_id = Uuid::new_v4().to_string();
    sim_set_status(&app, "killb", &killb_user, "approved", false).await;
    let body = killb_event(&killb_user, &event_id);
    let headers = killb_headers(
        SignatureScheme::HmacSha256,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    let response = post_webhook(&app, "killb", &headers, &body).await;
    assert_eq!(ack(response, 200).await, "applied");

    let after = user(&app, &id).await;
    assert_eq!(link(&after, "killb")["status"], "under_review", "{after}");
    let trail = events(&app, &id).await;
    let ignored: Vec<&Value> = trail
        .iter()
        .filter(|e| e["type"] == "status_signal_ignored")
        .collect();
    assert_eq!(ignored.len(), 1, "{trail:?}");
    assert_eq!(ignored[0]["reason"], "stale");
    assert_eq!(ignored[0]["source"], "webhook");
    assert_eq!(ignored[0]["provider"], "killb");
    assert!(webhook_status_changes(&trail, "approved").is_empty());

    // Without the newer stamp, the same state applies.
    sqlx::query(
        "UPDATE provider_links SET provider_observed_at = NULL
          WHERE user_id = $1::uuid AND provider = 'killb'",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let event_id = Uuid::new_v4().to_string();
    let body = killb_event(&killb_user, &event_id);
    let headers = killb_headers(
        SignatureScheme::HmacSha256,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    let response = post_webhook(&app, "killb", &headers, &body).await;
    assert_eq!(ack(response, 200).await, "applied");
    assert_eq!(link(&user(&app, &id).await, "killb")["status"], "approved");
}

#[tokio::test]
async fn the_killb_sdk_signature_scheme_is_a_configuration_switch() {
    let app = spawn_routed_with(|s| {
        s.providers
            .set("killb", "webhook_signature_scheme", "sha256_concat");
    })
    .await;
    let (id, killb_user) = onboard(&app, "killb").await;

    // The simulator signs like the SDK too; its webhook is accepted end to end.
    sim_set_status(&app, "killb", &killb_user, "suspended", true).await;
    wait_for_user(&app, &id, "suspension", |u| {
        link(u, "killb")["status"] == "suspended"
    })
    .await;
    assert_eq!(
        webhook_status_changes(&events(&app, &id).await, "suspended").len(),
        1
    );

    // The documented HMAC scheme is now refused; the SDK scheme accepted.
    sim_set_status(&app, "killb", &killb_user, "approved", false).await;
    let body = killb_event(&killb_user, &Uuid::new_v4().to_string());
    let hmac = killb_headers(
        SignatureScheme::HmacSha256,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    assert_problem(
        post_webhook(&app, "killb", &hmac, &body).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(link(&user(&app, &id).await, "killb")["status"], "suspended");
    let sdk = killb_headers(
        SignatureScheme::Sha256Concat,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    assert_eq!(
        ack(post_webhook(&app, "killb", &sdk, &body).await, 200).await,
        "applied"
    );
    assert_eq!(link(&user(&app, &id).await, "killb")["status"], "approved");
}

#[tokio::test]
async fn a_provider_outage_during_the_refetch_still_acknowledges_and_keeps_the_event() {
    let app = spawn_app_routed().await;
    let (id, killb_user) = onboard(&app, "killb").await;
    sim_set_status(&app, "killb", &killb_user, "approved", false).await;
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(&json!({ "provider": "killb", "method": "GET", "path": "/api/v2/users/", "status": 503 }))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());

    let event_id = Uuid::new_v4().to_string();
    let body = killb_event(&killb_user, &event_id);
    let headers = killb_headers(
        SignatureScheme::HmacSha256,
        killb_sim::DEV_WEBHOOK_SECRET,
        &body,
    );
    let response = post_webhook(&app, "killb", &headers, &body).await;
    assert_eq!(ack(response, 202).await, "stored");
    let stored = stored_events(&app, "killb", &event_id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "stored");
    assert!(!stored[0].1, "left unprocessed for reconciliation");
    assert!(
        stored[0]
            .2
            .as_deref()
            .unwrap()
            .contains("provider_unavailable"),
        "{stored:?}"
    );
    let after = user(&app, &id).await;
    assert_eq!(link(&after, "killb")["status"], "under_review");
    assert!(link(&after, "killb")["last_error"].is_object(), "{after}");
}

#[tokio::test]
async fn a_provider_without_webhook_credentials_refuses_its_webhooks() {
    // Real (non-simulated) Kraken credentials without a webhook secret.
    let app = spawn_routed_with(|s| {
        s.providers
            .set("kraken", "api_key", kraken_sim::DEV_API_KEY);
        s.providers
            .set("kraken", "api_secret", kraken_sim::DEV_API_SECRET_B64);
        s.providers.unset("kraken", "webhook_secret");
    })
    .await;
    let body = kraken_event("AA00 TEST EXAM PLE1", "EV-1");
    let response = post_webhook(&app, "kraken", &kraken_headers(&body, now()), &body).await;
    assert_problem(response, 401, "invalid_signature").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn oversize_bodies_and_other_methods_are_refused() {
    let app = spawn_app().await;
    let big = vec![b' '; 1024 * 1024 + 1];
    let response = post_webhook(&app, "killb", &[], &big).await;
    assert_problem(response, 413, "payload_too_large").await;
    let response = app
        .client
        .get(app.url("/v1/webhooks/killb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}

/// A stored `unknown_user` delivery whose account a link names by now (it only came before its
/// link's answer was recorded) is not tried again for a waiting link: asking the provider about
/// such accounts crowded out the one a flagged link waited for (the chaos run: 10 orphans).
#[tokio::test]
async fn deliveries_naming_a_linked_account_are_not_retried_for_waiting_links() {
    let app = spawn_app_routed().await;
    let mut body = sample_user();
    body["providers"] = json!(["kraken"]);
    let user = app.create_user(&body).await;
    let linked = user["links"][0]["provider_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (event, account) in [
        ("evt-linked", linked.as_str()),
        ("evt-orphan", "AA99 ORPH AN00 0001"),
    ] {
        sqlx::query(
            "INSERT INTO webhook_events (id, provider, provider_event_id, provider_user_id,
                                         signature_valid, raw_body, outcome)
             VALUES ($1, 'kraken', $2, $3, true, '\\x7b7d', 'unknown_user')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(event)
        .bind(account)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let unmatched =
        onboarding_gateway::store::webhooks::unmatched_accounts(&app.pool, "kraken", 100)
            .await
            .unwrap();
    let accounts: Vec<&str> = unmatched.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(accounts, ["AA99 ORPH AN00 0001"], "linked: {linked}");
}
