//! Personal data at rest and erasure: a dump of the database reveals no PII, keys rotate in the
//! background, and `DELETE /v1/users/{id}` erases the person here and at the providers.

use std::time::Duration;

use onboarding_gateway::crypto::Keyring;
use onboarding_gateway::settings::EncryptionSettings;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// A user who satisfies every provider, with personal data no other test uses, so finding any
/// of it in the database can only mean it was stored in the clear.
fn distinctive_user(country: &str, tag: &str) -> (Value, Vec<String>) {
    let unique = &Uuid::new_v4().simple().to_string()[..8];
    let email = format!("zebulon.{unique}+{tag}@example.com");
    let document = format!("X9K{}", unique.to_uppercase());
    let tax_id = format!(
        "9876{}",
        &unique
            .bytes()
            .map(|b| (b % 10).to_string())
            .collect::<String>()
    );
    let mut user = sample_user();
    user["email"] = json!(email);
    user["phone"] = json!("+4915199988877");
    user["name"] = json!({ "first": "Zebulon", "last": "Quixotic" });
    user["address"]["line1"] = json!("Geheimweg 42");
    user["address"]["country"] = json!(country);
    user["address"]["region"] = json!("BOG");
    user["identity_document"]["number"] = json!(document);
    user["identity_document"]["issuing_country"] = json!(country);
    user["tax_ids"][0]["number"] = json!(tax_id);
    let needles = vec![
        email,
        document,
        tax_id,
        "4915199988877".to_owned(),
        "Zebulon".to_owned(),
        "Quixotic".to_owned(),
        "Geheimweg".to_owned(),
    ];
    (user, needles)
}

/// Every row of every table as Postgres prints it (bytea as `\x` hex): what a dump holds.
async fn dump(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "users"), "{tables:?}");
    let mut text = String::new();
    for table in tables {
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM public.\"{table}\" t"
        )))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        text.push_str(&rows);
        text.push('\n');
    }
    text
}

fn assert_absent(dump: &str, needles: &[String]) {
    for needle in needles {
        assert!(
            !dump.contains(needle.as_str()),
            "`{needle}` is stored in the clear"
        );
        let hex = hex::encode(needle.as_bytes());
        assert!(
            !dump.contains(&hex),
            "`{needle}` is stored in the clear in a bytea column"
        );
        let lower = needle.to_lowercase();
        assert!(
            !dump.to_lowercase().contains(&lower),
            "`{needle}` (any case) is stored"
        );
    }
}

/// Waits until a webhook from `provider` is stored (matched to its user or not yet: one that
/// overtakes the create's own answer is kept unmatched for reconciliation).
async fn wait_for_webhook(app: &TestApp, provider: &str) -> bool {
    for _ in 0..150 {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE provider = $1")
                .bind(provider)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if count > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Creates with an `Idempotency-Key`, so the stored answer (which shows the user) exists too.
async fn create_with_idempotency_key(app: &TestApp, user: &Value) -> Value {
    let response = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_database_dump_reveals_no_personal_data() {
    let app = spawn_app_routed().await;
    let mut needles = Vec::new();
    let mut ids = Vec::new();
    for (country, tag) in [("DE", "carbn"), ("CO", "approve"), ("US", "kraken")] {
        let (user, mut personal) = distinctive_user(country, tag);
        // With an Idempotency-Key, so the stored answer (which shows the user) is covered too.
        let body = create_with_idempotency_key(&app, &user).await;
        assert!(body["id"].is_string(), "{body}");
        ids.push((body["id"].as_str().unwrap().to_owned(), personal[1].clone()));
        needles.append(&mut personal);
    }
    // A patch re-seals the profile; the old and new values must both stay hidden.
    let response = app
        .patch_user(&ids[0].0, &json!({"address": {"line1": "Verborgenstr. 7"}}))
        .await;
    assert_eq!(response.status(), 200);
    needles.push("Verborgenstr".to_owned());
    // KillB's webhooks carry the whole user: wait until one is stored.
    assert!(
        wait_for_webhook(&app, "killb").await,
        "the KillB sim sent no webhook"
    );

    let text = dump(&app).await;
    assert_absent(&text, &needles);
    // The dump itself works: the plain columns are there.
    assert!(text.contains(&ids[0].0));
    // And the API still shows the person (opened with the key).
    for (id, document) in &ids {
        let user: Value = app
            .get(&format!("/v1/users/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(user["identity_document"]["number"], json!(document));
    }
    // The e-mail filter works through the keyed hash, case-insensitively.
    let email = needles[0].to_uppercase();
    let page: Value = app
        .get(&format!("/v1/users?email={}", urlencode(&email)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["data"][0]["id"], json!(ids[0].0));
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn erasure_removes_the_person_here_and_tells_the_providers() {
    let app = spawn_app_routed().await;
    let (mut user, needles) = distinctive_user("CO", "approve");
    user["providers"] = json!(["killb", "kraken"]);
    let created = create_with_idempotency_key(&app, &user).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let killb_id = link(&created, "killb")["provider_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kraken_id = link(&created, "kraken")["provider_user_id"].clone();
    assert!(kraken_id.is_string(), "{created}");
    assert!(
        wait_for_webhook(&app, "killb").await,
        "the KillB sim sent no webhook"
    );

    // Scope and existence first.
    let response = app
        .client
        .delete(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
    let response = app.delete(&format!("/v1/users/{}", Uuid::now_v7())).await;
    assert_problem(response, 404, "not_found").await;

    let response = app.delete(&format!("/v1/users/{id}")).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["id"], json!(id));
    assert_eq!(receipt["erased"], json!(true));
    assert_eq!(link(&receipt, "killb")["erasure"], "deleted", "{receipt}");
    assert_eq!(link(&receipt, "killb")["provider_user_id"], json!(killb_id));
    assert_eq!(link(&receipt, "kraken")["erasure"], "manual_follow_up");

    // Idempotent: the same receipt.
    let again: Value = app
        .delete(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, receipt);

    // KillB deactivated the account.
    let sim_users: Vec<Value> = app
        .client
        .get(app.sim("/_sim/killb/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at_killb = sim_users
        .iter()
        .find(|u| u["id"] == json!(killb_id))
        .unwrap();
    assert_eq!(at_killb["active"], json!(false));

    // Reads answer 410, lists leave the user out, the audit trail stays.
    let response = app.get(&format!("/v1/users/{id}")).await;
    let problem = assert_problem(response, 410, "user_erased").await;
    assert!(problem["erased_at"].is_string(), "{problem}");
    let response = app.patch_user(&id, &json!({"language": "en"})).await;
    assert_problem(response, 410, "user_erased").await;
    let page: Value = app
        .get(&format!(
            "/v1/users?external_id={}",
            user["external_id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"], json!([]));
    let events: Value = app
        .get(&format!("/v1/users/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"user_erased"), "{types:?}");
    assert!(types.contains(&"provider_erased"), "{types:?}");

    // Kraken has no deletion API: listed for a person to follow up.
    let report: Value = app.get("/v1/reconciliation").await.json().await.unwrap();
    let follow_up = &report["erasure_follow_up"];
    assert_eq!(follow_up["count"], json!(1), "{report}");
    assert_eq!(follow_up["data"][0]["provider"], "kraken");
    assert_eq!(follow_up["data"][0]["provider_user_id"], kraken_id);
    assert_eq!(follow_up["data"][0]["reason"], "erasure_not_supported");

    // Nothing personal is left anywhere: not even sealed.
    let row: (Option<Vec<u8>>, Option<Vec<u8>>, Option<Value>) =
        sqlx::query_as("SELECT pii, email_hash, profile FROM users WHERE id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(row, (None, None, None));
    let answers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resource_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(answers, 0, "stored answers showing the user are gone");
    {
        let bodies: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_events WHERE provider = 'killb'
               AND (user_id = $1 OR provider_user_id = $2) AND octet_length(raw_body) > 0",
        )
        .bind(Uuid::parse_str(&id).unwrap())
        .bind(&killb_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(bodies, 0, "webhook bodies are gone");
    }
    assert_absent(&dump(&app).await, &needles);
}

#[tokio::test]
async fn erasure_at_a_provider_survives_its_outage() {
    let app = spawn_app_routed().await;
    let (user, _) = distinctive_user("CO", "approve");
    let created = app.create_user(&user).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(&json!({"provider": "killb", "status": 503, "error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());

    let receipt = erasure_receipt(&app, &id).await;
    assert_eq!(link(&receipt, "killb")["erasure"], "pending", "{receipt}");

    // The provider comes back; the job's retry finishes the erasure.
    app.client
        .delete(app.sim("/_sim/faults"))
        .send()
        .await
        .unwrap();
    let mut erasure = Value::Null;
    for _ in 0..100 {
        let receipt = erasure_receipt(&app, &id).await;
        erasure = link(&receipt, "killb")["erasure"].clone();
        if erasure == "deleted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(erasure, "deleted");
}

/// The answer to `DELETE /v1/users/{id}`, which must be a receipt: any other answer is printed.
async fn erasure_receipt(app: &TestApp, id: &str) -> Value {
    let response = app.delete(&format!("/v1/users/{id}")).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(
        status, 200,
        "DELETE /v1/users/{id} answered {status}: {body}"
    );
    let receipt: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(receipt["links"].is_array(), "not a receipt: {body}");
    receipt
}

/// Repeated DELETEs while the `erase_link` job records the provider's answer: every one is a
/// receipt. (The job used to write its call events, which share-lock the user row, before it
/// locked the link; a repeat DELETE locks the links and then the user, so the two deadlocked
/// and Postgres aborted the DELETE, which answered 500 without `links`.)
#[tokio::test]
async fn repeated_erasures_while_the_provider_job_finishes_are_all_receipts() {
    let app = spawn_app_routed().await;
    for _ in 0..3 {
        let (user, _) = distinctive_user("CO", "approve");
        let created = app.create_user(&user).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let fault = app
            .client
            .post(app.sim("/_sim/faults"))
            .json(&json!({"provider": "killb", "status": 503, "error_rate": 1.0}))
            .send()
            .await
            .unwrap();
        assert!(fault.status().is_success());
        let receipt = erasure_receipt(&app, &id).await;
        assert_eq!(link(&receipt, "killb")["erasure"], "pending", "{receipt}");
        app.client
            .delete(app.sim("/_sim/faults"))
            .send()
            .await
            .unwrap();
        // Four callers repeat the DELETE until the worker's retry has deleted the account,
        // paced well under the key's rate limit (200/s): unpaced, four callers outran it once
        // the request path got faster, and the 429 was not a receipt (a CI finding).
        let callers = (0..4).map(|_| {
            let (app, id) = (&app, id.clone());
            async move {
                for _ in 0..400 {
                    let receipt = erasure_receipt(app, &id).await;
                    if link(&receipt, "killb")["erasure"] == "deleted" {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                panic!("the erasure at KillB never finished");
            }
        });
        futures_util::future::join_all(callers).await;
    }
}

fn keyring_settings(current: &str, keys: &[(&str, &str)]) -> EncryptionSettings {
    EncryptionSettings {
        current_key_id: current.into(),
        keys: keys
            .iter()
            .map(|(id, key)| ((*id).to_owned(), SecretString::from((*key).to_owned())))
            .collect(),
        lookup_key: SecretString::from(onboarding_gateway::crypto::DEV_LOOKUP_KEY.to_owned()),
        rotation_interval_secs: 0,
        rotation_batch_size: 2,
    }
}

const K2: &str = "c2Vjb25kLWRhdGEta2V5LWZvci1yb3RhdGlvbi10ZXM=";
const K3: &str = "dGhpcmQtZGF0YS1rZXktbmV2ZXItdXNlZC1mb3ItYW4=";

#[tokio::test]
async fn keys_rotate_in_the_background_and_the_old_key_can_then_go() {
    let app = spawn_app_routed().await;
    let mut documents = Vec::new();
    for country in ["DE", "US", "CO"] {
        let (user, needles) = distinctive_user(country, "approve");
        let body = create_with_idempotency_key(&app, &user).await;
        documents.push((
            Uuid::parse_str(body["id"].as_str().unwrap()).unwrap(),
            needles[1].clone(),
        ));
    }
    // A row from before encryption: plaintext profile and e-mail.
    let legacy_id = Uuid::now_v7();
    let (legacy, legacy_needles) = distinctive_user("DE", "legacy");
    let legacy_profile = {
        let mut p = legacy.clone();
        p.as_object_mut().unwrap().remove("providers");
        p
    };
    sqlx::query(
        "INSERT INTO users (id, external_id, email, status, profile)
         VALUES ($1, $2, $3, 'pending_submission', $4)",
    )
    .bind(legacy_id)
    .bind(legacy["external_id"].as_str().unwrap())
    .bind(legacy["email"].as_str().unwrap())
    .bind(&legacy_profile)
    .execute(&app.pool)
    .await
    .unwrap();

    // Rotate: k2 becomes current, dev-1 stays until everything moved.
    let dev = onboarding_gateway::crypto::DEV_DATA_KEY;
    let rotated =
        Keyring::from_settings(&keyring_settings("k2", &[("dev-1", dev), ("k2", K2)])).unwrap();
    let report = onboarding_gateway::workers::resealer::reseal_all(&app.pool, &rotated, 2)
        .await
        .unwrap();
    assert_eq!(report.users_moved, 4, "{report:?}");
    assert!(report.idempotency_keys_moved >= 3, "{report:?}");
    assert_eq!(
        (
            report.users_stale,
            report.webhook_events_stale,
            report.idempotency_keys_stale
        ),
        (0, 0, 0)
    );
    let keys: Vec<String> = onboarding_gateway::store::sealed_key_ids(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, vec!["k2".to_owned()]);
    assert_absent(&dump(&app).await, &legacy_needles);

    // The old key can go: everything opens with k2 alone.
    let k2_only = Keyring::from_settings(&keyring_settings("k2", &[("k2", K2)])).unwrap();
    for (id, document) in documents
        .iter()
        .chain([&(legacy_id, legacy_needles[1].clone())])
    {
        let row = onboarding_gateway::store::users::get(&app.pool, &k2_only, *id)
            .await
            .unwrap()
            .unwrap();
        let profile = serde_json::to_value(row.profile.unwrap()).unwrap();
        assert_eq!(profile["identity_document"]["number"], json!(document));
    }
    // The legacy row is found by the e-mail filter now (through the hash).
    let filter = onboarding_gateway::store::users::UserFilter {
        email: Some(legacy["email"].as_str().unwrap().to_owned()),
        ..Default::default()
    };
    let found = onboarding_gateway::store::users::list(&app.pool, &k2_only, &filter, None, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, legacy_id);

    // A gateway configured without the key its data is sealed under refuses to start.
    let mut settings = test_settings(app.database_url());
    settings.encryption = keyring_settings("k3", &[("k3", K3)]);
    let error = match onboarding_gateway::app::Application::build(settings).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("started without the key its data is sealed under"),
    };
    assert!(error.contains("`k2`"), "{error}");
}

#[tokio::test]
async fn an_account_created_while_the_user_is_erased_is_deleted_too() {
    let app = spawn_app_routed().await;
    // KillB takes 1.5 s to create: the erasure lands while the create is in flight.
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(
            &json!({"provider": "killb", "path": "/api/v2/users", "method": "POST",
                      "latency_ms": 1500, "count": 1}),
        )
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let (user, _) = distinctive_user("CO", "approve");
    let external_id = user["external_id"].as_str().unwrap().to_owned();
    let create = {
        let client = app.client.clone();
        let url = app.url("/v1/users");
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(DEV_KEY)
                .json(&user)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let mut id = None;
    for _ in 0..100 {
        id = sqlx::query_scalar::<_, Uuid>("SELECT id FROM users WHERE external_id = $1")
            .bind(&external_id)
            .fetch_optional(&app.pool)
            .await
            .unwrap();
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = id.expect("the user is persisted before the provider answers");
    let receipt: Value = app
        .delete(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        link(&receipt, "killb")["erasure"],
        "not_submitted",
        "{receipt}"
    );
    // The create's answer reads the user back: erased by then.
    assert_eq!(create.await.unwrap(), 410);

    // The account the in-flight create made is deleted by a job.
    let mut last = Value::Null;
    for _ in 0..100 {
        last = app
            .delete(&format!("/v1/users/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if link(&last, "killb")["erasure"] == "deleted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(link(&last, "killb")["erasure"], "deleted", "{last}");
    assert!(link(&last, "killb")["provider_user_id"].is_string());
}
