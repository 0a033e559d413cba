//! A user reaches `approved` at every provider through the gateway alone, against the built-in
//! simulators: created and routed by country, told what the provider wants next
//! (`GET /v1/users/{id}/requirements`), documents uploaded (`POST /v1/users/{id}/documents`),
//! the provider's hosted flow opened (`POST /v1/users/{id}/verification-sessions`), and the
//! approval arriving by the provider's signed webhook. The only other call is the simulator's
//! control endpoint that plays the person finishing a hosted page.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::*;

/// How long a step may take: the simulators review for 5 s, webhooks follow within
/// milliseconds; the rest is headroom for a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

const BOUNDARY: &str = "verification-e2e-boundary-5c2a";

/// A user every provider takes, living in the country the default routing sends to
/// `provider`, with a unique e-mail (no simulator tag: each provider's default state).
fn user_for(provider: &str) -> Value {
    complete_user(
        country_for(provider),
        &format!("e2e.{}@example.com", Uuid::new_v4().simple()),
    )
}

/// Creates the user (routed by its country) and checks where it went: (id, provider user id,
/// the created user).
async fn create_routed(app: &TestApp, provider: &str) -> (String, String, Value) {
    let created = app.create_user(&user_for(provider)).await;
    let links = created["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "routed to one provider: {created}");
    let provider_user_id = link(&created, provider)["provider_user_id"]
        .as_str()
        .unwrap_or_else(|| panic!("not submitted: {created}"))
        .to_owned();
    (
        created["id"].as_str().unwrap().to_owned(),
        provider_user_id,
        created,
    )
}

async fn user(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/v1/users/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls the user until its `provider` link satisfies `done` (bounded by [`WAIT`]).
async fn wait_for_link(
    app: &TestApp,
    id: &str,
    provider: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = user(app, id).await;
        if done(link(&current, provider)) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `actions[]` the requirements show for `provider`.
async fn actions(app: &TestApp, id: &str, provider: &str) -> Vec<Value> {
    let response = app.get(&format!("/v1/users/{id}/requirements")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let entry = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} requirements in {body}"));
    entry["actions"].as_array().unwrap().clone()
}

fn codes(actions: &[Value]) -> Vec<(&str, &str)> {
    actions
        .iter()
        .map(|a| {
            (
                a["code"].as_str().unwrap(),
                a["next_action"].as_str().unwrap(),
            )
        })
        .collect()
}

fn of_type<'a>(trail: &'a [Value], kind: &str) -> Vec<&'a Value> {
    trail.iter().filter(|e| e["type"] == kind).collect()
}

/// The `status_changed` events that moved `provider`'s link, as (source, to).
fn status_changes<'a>(trail: &'a [Value], provider: &str) -> Vec<(&'a str, &'a str)> {
    of_type(trail, "status_changed")
        .into_iter()
        .filter(|e| e["provider"] == provider)
        .map(|e| (e["source"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect()
}

/// Signed, verified webhooks of this type the gateway applied for the user.
async fn applied_webhooks(app: &TestApp, provider: &str, id: &str, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events
          WHERE provider = $1 AND user_id = $2::uuid AND event_type = $3
            AND signature_valid AND outcome = 'applied'",
    )
    .bind(provider)
    .bind(id)
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

// ---- documents ----

/// A multipart part: a text field, or a file with its name and type.
struct Part<'a> {
    name: &'a str,
    file: Option<(&'a str, &'a str)>,
    body: Vec<u8>,
}

fn field<'a>(name: &'a str, value: &str) -> Part<'a> {
    Part {
        name,
        file: None,
        body: value.as_bytes().to_vec(),
    }
}

fn file<'a>(file_name: &'a str, content_type: &'a str, body: Vec<u8>) -> Part<'a> {
    Part {
        name: "file",
        file: Some((file_name, content_type)),
        body,
    }
}

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.file {
            Some((file_name, content_type)) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: {content_type}\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
        }
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Bytes found nowhere else, repeated through each file, so finding them means a leak.
fn marker() -> Vec<u8> {
    format!("E2E-FILE-{}-BYTES", Uuid::new_v4().simple()).into_bytes()
}

/// A file of `len` bytes: `magic`, then `marker` over and over.
fn scan(magic: &[u8], len: usize, marker: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    while bytes.len() < len {
        bytes.extend_from_slice(marker);
    }
    bytes.truncate(len);
    bytes
}

/// A 150 KiB JPEG (KillB takes 100 KiB–10 MiB).
fn jpeg(marker: &[u8]) -> Vec<u8> {
    scan(&[0xFF, 0xD8, 0xFF, 0xE0], 150 * 1024, marker)
}

/// A 120 KiB PDF.
fn pdf(marker: &[u8]) -> Vec<u8> {
    scan(b"%PDF-1.7\n", 120 * 1024, marker)
}

/// An attestation of a check the partner already ran (what Kraken requires).
fn attestation() -> String {
    json!({"verifier": "example_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z",
           "reference": "chk_e2e_1"})
    .to_string()
}

/// Uploads a document: the 201 resource.
async fn upload(app: &TestApp, id: &str, parts: &[Part<'_>]) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/documents")))
        .bearer_auth(DEV_KEY)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(parts))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

fn submission<'a>(document: &'a Value, provider: &str) -> &'a Value {
    document["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} submission in {document}"))
}

/// Polls the document until its `provider` submission is no longer `pending`.
async fn settled(app: &TestApp, id: &str, document_id: &str, provider: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = app
            .get(&format!("/v1/users/{id}/documents/{document_id}"))
            .await;
        assert_eq!(response.status(), 200);
        let document: Value = response.json().await.unwrap();
        if submission(&document, provider)["status"] != "pending" {
            return submission(&document, provider).clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the {provider} submission: {document}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- hosted sessions and the simulator ----

/// Opens a hosted session: the 201 answer.
async fn session(app: &TestApp, id: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/verification-sessions")))
        .bearer_auth(DEV_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{answer}");
    answer
}

/// The hosted page a browser opens at the session's URL (served by the simulator).
async fn open_page(app: &TestApp, url: &str) -> String {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    response.text().await.unwrap()
}

/// The person finishing a hosted page: a simulator control call.
async fn sim_post(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.sim(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// What the simulated provider itself holds for a user (`GET /_sim/{provider}/users`).
async fn sim_user(app: &TestApp, provider: &str, provider_user_id: &str) -> Value {
    let users: Vec<Value> = app
        .client
        .get(app.sim(&format!("/_sim/{provider}/users")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    users
        .into_iter()
        .find(|u| u["id"] == provider_user_id)
        .unwrap_or_else(|| panic!("the {provider} simulator has no user {provider_user_id}"))
}

/// The `exp` of the JWT in the URL's `session` parameter (read unverified, as the gateway does).
fn session_expiry(url: &str) -> OffsetDateTime {
    let parsed = url::Url::parse(url).unwrap();
    let token = parsed
        .query_pairs()
        .find(|(k, _)| k == "session")
        .unwrap_or_else(|| panic!("no session parameter in {url}"))
        .1
        .into_owned();
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    OffsetDateTime::from_unix_timestamp(claims["exp"].as_i64().expect("exp")).unwrap()
}

fn assert_hidden(trail: &[Value], secrets: &[&[u8]]) {
    let text = serde_json::to_string(trail).unwrap();
    for secret in secrets {
        let secret = String::from_utf8_lossy(secret);
        assert!(
            !text.contains(secret.as_ref()),
            "the events show {secret}: {text}"
        );
    }
}

// ---- the walks ----

#[tokio::test]
async fn kraken_approves_an_attested_identity_verification() {
    let app = spawn_app_routed().await;
    // US routes to Kraken, which creates every user with an identity verification action.
    let (id, _, created) = create_routed(&app, "kraken").await;
    assert_eq!(link(&created, "kraken")["status"], "action_required");
    assert_eq!(created["status"], "action_required");
    let next = actions(&app, &id, "kraken").await;
    assert_eq!(
        codes(&next),
        [("verification:identity", "upload_document")],
        "{next:?}"
    );
    assert!(
        next[0]["document_types"]
            .as_array()
            .unwrap()
            .contains(&json!("passport")),
        "{next:?}"
    );

    // The passport front, with the check the partner already ran.
    let m = marker();
    let document = upload(
        &app,
        &id,
        &[
            field("type", "passport"),
            field("side", "front"),
            file("passport.jpg", "image/jpeg", jpeg(&m)),
            field("verification", &attestation()),
        ],
    )
    .await;
    let document_id = document["id"].as_str().unwrap();
    let kraken = settled(&app, &id, document_id, "kraken").await;
    assert_eq!(kraken["status"], "submitted", "{kraken}");
    assert!(
        kraken["provider_document_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("ver_")),
        "{kraken}"
    );
    assert_eq!(kraken["last_error"], Value::Null);

    // Kraken reviews (a `wait` action), then verifies the user and says so by webhook.
    wait_for_link(&app, &id, "kraken", "Kraken's review", |l| {
        l["status"] == "under_review"
    })
    .await;
    let waiting = actions(&app, &id, "kraken").await;
    assert_eq!(
        codes(&waiting),
        [("wait:sim_review", "wait")],
        "{waiting:?}"
    );
    let approved = wait_for_link(&app, &id, "kraken", "Kraken's approval", |l| {
        l["status"] == "approved"
    })
    .await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(link(&approved, "kraken")["rejection"], Value::Null);
    assert!(
        actions(&app, &id, "kraken")
            .await
            .iter()
            .all(|a| a["blocking"] == false),
        "nothing blocks an approved user"
    );
    let trail = events(&app, &id).await;
    assert_eq!(
        status_changes(&trail, "kraken"),
        [
            ("api", "action_required"),
            ("api", "under_review"),
            ("webhook", "approved")
        ],
        "{trail:#?}"
    );
    assert_eq!(
        applied_webhooks(&app, "kraken", &id, "user.verified").await,
        1
    );
    assert_hidden(&trail, &[&m]);
}

#[tokio::test]
async fn kraken_takes_no_document_without_an_attestation() {
    let app = spawn_app_routed().await;
    let (id, _, _) = create_routed(&app, "kraken").await;
    let document = upload(
        &app,
        &id,
        &[
            field("type", "passport"),
            file("passport.jpg", "image/jpeg", jpeg(&marker())),
        ],
    )
    .await;
    // Decided before any call: the answer already says so.
    let kraken = submission(&document, "kraken");
    assert_eq!(kraken["status"], "not_supported", "{document}");
    assert_eq!(kraken["provider_document_id"], Value::Null);
    assert_eq!(kraken["last_error"]["code"], "not_supported_by_provider");
    let message = kraken["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("partner-attested") && message.contains("verification"),
        "the reason says what is missing: {message}"
    );
    // Nothing reached Kraken, and the user still has the same thing to do.
    let after = user(&app, &id).await;
    assert_eq!(link(&after, "kraken")["status"], "action_required");
    assert_eq!(
        codes(&actions(&app, &id, "kraken").await),
        [("verification:identity", "upload_document")]
    );
    let trail = events(&app, &id).await;
    let submitted = of_type(&trail, "document_submitted");
    assert_eq!(submitted.len(), 1, "{trail:#?}");
    assert_eq!(submitted[0]["outcome"], "not_supported");
}

#[tokio::test]
async fn killb_approves_after_documents_and_its_hosted_liveness_step() {
    let app = spawn_app_routed().await;
    // CO routes to KillB: PENDING at L1, under review, L2 still to reach.
    let (id, killb_id, created) = create_routed(&app, "killb").await;
    assert_eq!(link(&created, "killb")["status"], "under_review");
    let next = actions(&app, &id, "killb").await;
    assert_eq!(
        codes(&next),
        [
            ("status:PENDING", "wait"),
            ("access_level:L2", "upload_document"),
            ("access_level:L2", "upload_document"),
            ("access_level:L2", "open_link"),
        ],
        "{next:?}"
    );
    assert_eq!(next[2]["document_types"], json!(["proof_of_address"]));

    // The passport and a proof of address (KillB wants at least 100 KiB each).
    let (passport_marker, bill_marker) = (marker(), marker());
    let passport = upload(
        &app,
        &id,
        &[
            field("type", "passport"),
            file("passport.jpg", "image/jpeg", jpeg(&passport_marker)),
        ],
    )
    .await;
    let bill = upload(
        &app,
        &id,
        &[
            field("type", "proof_of_address"),
            file("utility-bill.pdf", "application/pdf", pdf(&bill_marker)),
        ],
    )
    .await;
    for document in [&passport, &bill] {
        let killb = settled(&app, &id, document["id"].as_str().unwrap(), "killb").await;
        assert_eq!(killb["status"], "submitted", "{killb}");
        assert!(killb["submitted_at"].is_string());
    }
    assert_eq!(
        sim_user(&app, "killb", &killb_id).await["verification"]["liveness_at"],
        Value::Null,
        "KillB has the documents, not the liveness step"
    );

    // Documents alone do not reach L2: the status stays what KillB says, and only the hosted
    // step is left to do.
    let synced = app
        .client
        .post(app.url(&format!("/v1/users/{id}/sync")))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), 200);
    let synced: Value = synced.json().await.unwrap();
    assert_eq!(link(&synced, "killb")["status"], "under_review", "{synced}");
    let next = actions(&app, &id, "killb").await;
    assert_eq!(
        codes(&next),
        [("status:PENDING", "wait"), ("access_level:L2", "open_link")],
        "{next:?}"
    );

    // The hosted liveness step: the session is KillB's complianceUrl, a page of the simulator.
    let opened = session(&app, &id, json!({"provider": "killb"})).await;
    let url = app.sim(&format!("/_sim/killb/users/{killb_id}/verify"));
    assert_eq!(
        opened,
        json!({"provider": "killb", "url": url, "expires_at": null, "reused": false})
    );
    assert_eq!(next[1]["url"], json!(url));
    let page = open_page(&app, &url).await;
    assert!(page.contains("liveness"), "{page}");
    let done = sim_post(
        &app,
        &format!("/_sim/killb/users/{killb_id}/liveness"),
        json!({}),
    )
    .await;
    assert_eq!(done["missing_for_l2"], json!([]), "{done}");

    let approved = wait_for_link(&app, &id, "killb", "KillB's approval", |l| {
        l["status"] == "approved"
    })
    .await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(link(&approved, "killb")["provider_status"], "ACTIVE");
    assert!(
        actions(&app, &id, "killb")
            .await
            .iter()
            .all(|a| a["blocking"] == false),
        "nothing blocks an approved user"
    );
    let trail = events(&app, &id).await;
    assert_eq!(
        status_changes(&trail, "killb"),
        [("api", "under_review"), ("webhook", "approved")],
        "{trail:#?}"
    );
    assert!(applied_webhooks(&app, "killb", &id, "USER/UPDATE").await >= 1);

    // The audit trail tells the story without the files or the session's URL.
    let uploaded = of_type(&trail, "document_uploaded");
    assert_eq!(uploaded.len(), 2, "{trail:#?}");
    let submitted = of_type(&trail, "document_submitted");
    assert_eq!(submitted.len(), 2, "{trail:#?}");
    assert!(submitted
        .iter()
        .all(|e| e["provider"] == "killb" && e["outcome"] == "submitted"));
    let sessions = of_type(&trail, "verification_session_created");
    assert_eq!(sessions.len(), 1, "{trail:#?}");
    assert_eq!(sessions[0]["provider"], "killb");
    assert_eq!(sessions[0]["reused"], false);
    assert_hidden(
        &trail,
        &[&passport_marker, &bill_marker, url.as_bytes(), b"/verify"],
    );
}

#[tokio::test]
async fn carbn_approves_after_its_hosted_session() {
    let app = spawn_app_routed().await;
    // DE routes to Carbn: under review until the person goes through Carbn's hosted flow.
    let (id, carbn_id, created) = create_routed(&app, "carbn").await;
    assert_eq!(link(&created, "carbn")["status"], "under_review");

    let redirect = "https://app.example.com/onboarding/done";
    let body = json!({"provider": "carbn", "redirect_url": redirect});
    let first = session(&app, &id, body.clone()).await;
    assert_eq!(first["provider"], "carbn");
    assert_eq!(first["reused"], false);
    let url = first["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&app.sim("/_sim/carbn/checkout?session=")),
        "{url}"
    );
    let expires_at =
        OffsetDateTime::parse(first["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(expires_at, session_expiry(&url));
    assert!(expires_at > OffsetDateTime::now_utc());
    // Asked again while it is valid: the same session.
    let again = session(&app, &id, body).await;
    assert_eq!(again["reused"], true);
    assert_eq!(again["url"], json!(url));
    assert_eq!(again["expires_at"], first["expires_at"]);

    open_page(&app, &url).await;
    let done = sim_post(
        &app,
        "/_sim/carbn/sessions/complete",
        json!({"user_id": carbn_id}),
    )
    .await;
    assert_eq!(done["outcome"], "active");

    let approved = wait_for_link(&app, &id, "carbn", "Carbn's approval", |l| {
        l["status"] == "approved"
    })
    .await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(link(&approved, "carbn")["provider_status"], "active");
    assert!(actions(&app, &id, "carbn")
        .await
        .iter()
        .all(|a| a["blocking"] == false));
    let trail = events(&app, &id).await;
    assert_eq!(
        status_changes(&trail, "carbn").last(),
        Some(&("webhook", "approved")),
        "{trail:#?}"
    );
    let sessions = of_type(&trail, "verification_session_created");
    assert_eq!(
        sessions
            .iter()
            .map(|e| (
                e["provider"].as_str().unwrap(),
                e["reused"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("carbn", false), ("carbn", true)]
    );
    let token = url.split("session=").nth(1).unwrap();
    assert_hidden(&trail, &[url.as_bytes(), token.as_bytes(), b"checkout"]);
}

#[tokio::test]
async fn carbn_rejects_with_its_reasons_for_the_person_and_the_developer() {
    let app = spawn_app_routed().await;
    let (id, carbn_id, _) = create_routed(&app, "carbn").await;
    session(
        &app,
        &id,
        json!({"provider": "carbn", "redirect_url": "http://localhost:3000/done"}),
    )
    .await;
    sim_post(
        &app,
        "/_sim/carbn/sessions/complete",
        json!({"user_id": carbn_id, "outcome": "rejected"}),
    )
    .await;

    let rejected = wait_for_link(&app, &id, "carbn", "Carbn's rejection", |l| {
        l["status"] == "rejected"
    })
    .await;
    assert_eq!(rejected["status"], "rejected");
    let reasons = sim_user(&app, "carbn", &carbn_id).await["user"]["rejection_reasons"].clone();
    let reason = &reasons[0];
    assert!(reason["reason"].is_string(), "{reasons}");
    assert_eq!(
        link(&rejected, "carbn")["rejection"],
        json!({"code": "rejected", "user_message": reason["reason"],
               "developer_message": reason["developer_reason"], "retryable": false})
    );
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        [("status:rejected", "contact_support")]
    );
}
