//! Next actions (`GET /v1/users/{id}/requirements` `actions[]`) and rejections (`rejection` on
//! a link) for users at each provider, through the built-in simulators: the states their magic
//! e-mail tags and the `/_sim/{provider}/users/{id}/status` control endpoint reach, and provider
//! values no mapping knows (flagged for review, shown as `contact_support`).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// A user every provider takes, routed by country to `provider`, with the simulator's `tag`.
fn user_at(provider: &str, tag: &str) -> Value {
    let mut user = sample_user();
    let country = country_for(provider);
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!("+{tag}")
    };
    user["email"] = json!(format!("next.{}{tag}@example.com", Uuid::new_v4().simple()));
    user["address"]["country"] = json!(country);
    user["address"]["region"] = json!("BOG");
    user["identity_document"]["issuing_country"] = json!(country);
    user["providers"] = json!([provider]);
    user
}

/// An app whose simulators send no webhooks: every change below is read by an explicit sync.
async fn quiet_app() -> TestApp {
    let app = spawn_app_routed().await;
    let off = app
        .client
        .put(app.sim("/_sim/webhook-targets"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success());
    app
}

/// Creates the user and answers (gateway id, provider user id, the created user).
async fn onboard(app: &TestApp, provider: &str, tag: &str) -> (String, String, Value) {
    let created = app.create_user(&user_at(provider, tag)).await;
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

/// The requirements entry of `provider`.
async fn requirements(app: &TestApp, id: &str, provider: &str) -> Value {
    let response = app.get(&format!("/v1/users/{id}/requirements")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == provider)
        .cloned()
        .unwrap_or_else(|| panic!("no {provider} entry in {body}"))
}

/// The provider's own actions (without the gateway's `missing_fields` one).
async fn actions(app: &TestApp, id: &str, provider: &str) -> Vec<Value> {
    requirements(app, id, provider).await["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] != "missing_fields")
        .cloned()
        .collect()
}

fn codes(actions: &[Value]) -> Vec<(String, String)> {
    actions
        .iter()
        .map(|a| {
            (
                a["code"].as_str().unwrap().to_owned(),
                a["next_action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(code: &str, next: &str) -> (String, String) {
    (code.to_owned(), next.to_owned())
}

async fn sim_status(app: &TestApp, provider: &str, provider_user_id: &str, body: Value) {
    let path = format!(
        "/_sim/{provider}/users/{}/status",
        provider_user_id.replace(' ', "%20")
    );
    let response = app
        .client
        .post(app.sim(&path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn sync(app: &TestApp, id: &str) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/sync")))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn kraken_actions_follow_its_required_actions() {
    let app = quiet_app().await;
    // A new user: an identity verification with a 30-day deadline (not blocking before it).
    let (id, _, created) = onboard(&app, "kraken", "").await;
    assert_eq!(link(&created, "kraken")["rejection"], Value::Null);
    let got = actions(&app, &id, "kraken").await;
    assert_eq!(
        codes(&got),
        vec![pair("verification:identity", "upload_document")]
    );
    assert_eq!(
        got[0]["document_types"],
        json!([
            "passport",
            "national_id",
            "drivers_license",
            "residence_permit"
        ])
    );
    assert_eq!(got[0]["blocking"], false, "{got:?}");
    assert!(got[0].get("unrecognised").is_none());

    let (id, _, _) = onboard(&app, "kraken", "incomplete").await;
    let got = actions(&app, &id, "kraken").await;
    assert_eq!(
        codes(&got),
        vec![pair("provide_details:residence", "update_field")]
    );
    assert_eq!(got[0]["fields"], json!(["address"]));

    let (id, _, _) = onboard(&app, "kraken", "review").await;
    assert_eq!(
        codes(&actions(&app, &id, "kraken").await),
        vec![pair("wait:manual_review", "wait")]
    );

    let (id, _, _) = onboard(&app, "kraken", "approve").await;
    assert!(actions(&app, &id, "kraken").await.is_empty());

    let (id, _, created) = onboard(&app, "kraken", "suspend").await;
    assert_eq!(
        codes(&actions(&app, &id, "kraken").await),
        vec![pair("state:disabled", "contact_support")]
    );
    assert_eq!(
        link(&created, "kraken")["rejection"]["code"],
        "account_suspended"
    );

    // Closed (Kraken's rejection): its reasons explain it to the developer.
    let (id, _, created) = onboard(&app, "kraken", "reject").await;
    assert_eq!(link(&created, "kraken")["status"], "closed");
    assert_eq!(
        link(&created, "kraken")["rejection"],
        json!({"code": "verification_failed", "user_message": null,
               "developer_message": "verification_failed", "retryable": false})
    );
    assert_eq!(
        codes(&actions(&app, &id, "kraken").await),
        vec![pair("state:closed", "contact_support")]
    );
    let user: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        link(&user, "kraken")["rejection"]["code"],
        "verification_failed"
    );
}

#[tokio::test]
async fn killb_actions_follow_its_status_and_access_level() {
    let app = quiet_app().await;
    // PENDING at L1: wait, plus what L2 needs (documents and the hosted liveness step).
    let (id, provider_user_id, created) = onboard(&app, "killb", "").await;
    assert_eq!(link(&created, "killb")["rejection"], Value::Null);
    let got = actions(&app, &id, "killb").await;
    assert_eq!(
        codes(&got),
        vec![
            pair("status:PENDING", "wait"),
            pair("access_level:L2", "upload_document"),
            pair("access_level:L2", "upload_document"),
            pair("access_level:L2", "open_link"),
        ]
    );
    assert_eq!(
        got[1]["document_types"],
        json!([
            "passport",
            "national_id",
            "drivers_license",
            "residence_permit"
        ])
    );
    assert_eq!(got[2]["document_types"], json!(["proof_of_address"]));
    // `complianceUrl`: the simulator's own hosted page.
    assert_eq!(
        got[3]["url"],
        json!(app.sim(&format!("/_sim/killb/users/{provider_user_id}/verify")))
    );
    assert!(got.iter().all(|a| a["blocking"] == true));

    let (id, _, _) = onboard(&app, "killb", "approve").await;
    assert!(actions(&app, &id, "killb").await.is_empty());

    let (id, _, _) = onboard(&app, "killb", "suspend").await;
    assert_eq!(
        codes(&actions(&app, &id, "killb").await),
        vec![pair("status:SUSPENDED", "contact_support")]
    );

    let (id, _, created) = onboard(&app, "killb", "reject").await;
    assert_eq!(
        link(&created, "killb")["rejection"],
        json!({"code": "rejected", "user_message": null,
               "developer_message": "KYC verification failed.", "retryable": false})
    );
    assert_eq!(
        codes(&actions(&app, &id, "killb").await),
        vec![pair("status:REJECTED", "contact_support")]
    );

    // Deactivated behind the gateway's back.
    let (id, provider_user_id, _) = onboard(&app, "killb", "approve").await;
    sim_status(
        &app,
        "killb",
        &provider_user_id,
        json!({"status": "closed", "webhook": false}),
    )
    .await;
    sync(&app, &id).await;
    assert_eq!(
        codes(&actions(&app, &id, "killb").await),
        vec![pair("active:false", "contact_support")]
    );
}

#[tokio::test]
async fn carbn_actions_follow_its_status_and_requirements() {
    let app = quiet_app().await;
    let (id, _, created) = onboard(&app, "carbn", "").await;
    assert_eq!(link(&created, "carbn")["rejection"], Value::Null);
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        vec![pair("status:under_review", "wait")]
    );

    // `incomplete` with `requirements: ["proof_of_address"]`: the hosted flow takes it.
    let (id, _, _) = onboard(&app, "carbn", "incomplete").await;
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        vec![pair("proof_of_address", "open_link")]
    );

    let (id, _, _) = onboard(&app, "carbn", "approve").await;
    assert!(actions(&app, &id, "carbn").await.is_empty());

    let (id, provider_user_id, _) = onboard(&app, "carbn", "suspend").await;
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        vec![pair("status:paused", "contact_support")]
    );
    sim_status(
        &app,
        "carbn",
        &provider_user_id,
        json!({"status": "closed", "webhook": false}),
    )
    .await;
    sync(&app, &id).await;
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        vec![pair("status:offboarded", "contact_support")]
    );

    // Rejected: `reason` is for the person, `developer_reason` for the integrator.
    let (id, _, created) = onboard(&app, "carbn", "reject").await;
    assert_eq!(
        link(&created, "carbn")["rejection"],
        json!({"code": "rejected",
               "user_message": "Cannot validate ID -- upload a clear photo of the full ID",
               "developer_message": "Simulated rejection: the document image is blurry.",
               "retryable": false})
    );
    // The rejection reasons are kept in the raw requirements but are not next actions.
    let entry = requirements(&app, &id, "carbn").await;
    assert_eq!(entry["provider_requirements"].as_array().unwrap().len(), 1);
    assert_eq!(
        codes(&actions(&app, &id, "carbn").await),
        vec![pair("status:rejected", "contact_support")]
    );
    let listed: Value = app
        .get("/v1/users?provider=carbn&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let rejected = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == json!(id))
        .unwrap();
    assert_eq!(link(rejected, "carbn")["rejection"]["code"], "rejected");
}

#[tokio::test]
async fn unknown_provider_values_are_flagged_and_shown_as_contact_support() {
    let app = quiet_app().await;
    let (id, iiban, _) = onboard(&app, "kraken", "approve").await;
    sim_status(
        &app,
        "kraken",
        &iiban,
        json!({"webhook": false, "provider_status": {"state": "ok", "required_actions": [
            {"action_type": "verification", "verification_type": "dna_sample",
             "reasons": ["initial_onboarding"]},
            {"action_type": "wait", "wait_reason_code": "manual_review"}]}}),
    )
    .await;
    let synced = sync(&app, &id).await;
    // The status itself is known (a verification is outstanding); the value is not.
    assert_eq!(link(&synced, "kraken")["status"], "action_required");
    let got = actions(&app, &id, "kraken").await;
    assert_eq!(
        codes(&got),
        vec![
            pair("verification:dna_sample", "contact_support"),
            pair("wait:manual_review", "wait")
        ]
    );
    assert_eq!(got[0]["unrecognised"], true);
    assert_eq!(got[0]["blocking"], true);
    // Kept raw as well.
    assert_eq!(
        requirements(&app, &id, "kraken").await["provider_requirements"][0]["verification_type"],
        "dna_sample"
    );
    let flagged = |trail: &[Value]| -> Vec<Value> {
        trail
            .iter()
            .filter(|e| e["type"] == "provider_requirement_unrecognized")
            .cloned()
            .collect()
    };
    let found = flagged(&events(&app, &id).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["provider"], "kraken");
    assert_eq!(found[0]["code"], "verification:dna_sample");
    assert_eq!(found[0]["source"], "api");
    assert_eq!(found[0]["flagged_for_review"], true);
    // Flagged for ops, as an unknown status is.
    let needs_review: bool = sqlx::query_scalar(
        "SELECT needs_review FROM provider_links WHERE user_id = $1 AND provider = 'kraken'",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(needs_review);
    let report: Value = app
        .client
        .get(app.url("/v1/reconciliation"))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        report["needs_review"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["user_id"] == json!(id)
                && r["provider"] == "kraken"
                && r["reason"] == "unknown_provider_requirement"),
        "{report}"
    );
    // Seen again on the next read: still shown, not announced twice.
    sync(&app, &id).await;
    assert_eq!(flagged(&events(&app, &id).await).len(), 1);

    // An unknown KillB status is flagged as an unknown status and shown the same way.
    let (id, provider_user_id, _) = onboard(&app, "killb", "").await;
    sim_status(
        &app,
        "killb",
        &provider_user_id,
        json!({"webhook": false, "provider_status": "FROZEN"}),
    )
    .await;
    sync(&app, &id).await;
    let got = actions(&app, &id, "killb").await;
    assert_eq!(codes(&got), vec![pair("status:FROZEN", "contact_support")]);
    assert_eq!(got[0]["unrecognised"], true);
    let trail = events(&app, &id).await;
    assert!(trail
        .iter()
        .any(|e| e["type"] == "provider_status_unrecognized"));
    assert_eq!(flagged(&trail)[0]["code"], "status:FROZEN");
}

#[tokio::test]
async fn the_gateways_own_missing_fields_are_one_update_field_action() {
    let app = quiet_app().await;
    // Linked at Kraken only; KillB (enabled, not linked) needs fields this user lacks.
    let mut user = user_at("kraken", "approve");
    user["address"].as_object_mut().unwrap().remove("region");
    let created = app.create_user(&user).await;
    let id = created["id"].as_str().unwrap();
    let response: Value = app
        .get(&format!("/v1/users/{id}/requirements"))
        .await
        .json()
        .await
        .unwrap();
    let entries = response["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{response}");
    for entry in entries {
        let missing = entry["missing_fields"].as_array().unwrap();
        let gateway: Vec<&Value> = entry["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["code"] == "missing_fields")
            .collect();
        if missing.is_empty() {
            assert!(gateway.is_empty(), "{entry}");
        } else {
            assert_eq!(gateway.len(), 1, "{entry}");
            assert_eq!(gateway[0]["next_action"], "update_field");
            assert_eq!(&gateway[0]["fields"], &entry["missing_fields"]);
        }
    }
    let killb = entries.iter().find(|e| e["provider"] == "killb").unwrap();
    assert_eq!(killb["linked"], false);
    assert!(killb["missing_fields"]
        .as_array()
        .unwrap()
        .contains(&json!("address.region")));
    assert_eq!(killb["actions"].as_array().unwrap().len(), 1);
}
