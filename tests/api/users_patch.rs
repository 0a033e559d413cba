use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn merge_patch_semantics() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();

    let response = app
        .patch_user(
            id,
            &json!({
                "phone": "+49 151 1234 5679",
                "address": { "city": "Potsdam", "region": null },
                "name": { "middle": null },
                "nationalities": ["DE", "at"],
                "metadata": { "any": null, "tier": "gold" }
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["phone"], "+4915112345679");
    assert_eq!(patched["address"]["city"], "Potsdam");
    assert_eq!(
        patched["address"]["line1"], created["address"]["line1"],
        "siblings kept"
    );
    assert_eq!(patched["address"]["region"], Value::Null, "null clears");
    assert_eq!(patched["name"]["middle"], Value::Null);
    assert_eq!(patched["name"]["first"], "Jane");
    assert_eq!(
        patched["nationalities"],
        json!(["DE", "AT"]),
        "arrays replace"
    );
    assert_eq!(patched["metadata"], json!({ "tier": "gold" }));
    assert_eq!(patched["created_at"], created["created_at"]);
    assert_ne!(patched["updated_at"], created["updated_at"]);

    let fetched: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, patched);

    let trail = events(&app, id).await;
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[1]["type"], "user_updated");
    let fields: Vec<&str> = trail[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for field in [
        "address.city",
        "address.region",
        "name.middle",
        "nationalities",
        "phone",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
}

#[tokio::test]
async fn a_patch_that_changes_nothing_is_a_no_op() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .patch_user(
            id,
            &json!({ "address": { "country": "de" }, "language": "DE" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let same: Value = response.json().await.unwrap();
    assert_eq!(same["updated_at"], created["updated_at"]);
    assert_eq!(events(&app, id).await.len(), 1, "no update event");
}

#[tokio::test]
async fn a_patch_cannot_break_the_rules() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let problem = assert_problem(
        app.patch_user(
            id,
            &json!({ "email": null, "address": { "country": "ZZ" }, "id": "x" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let errors = field_errors(&problem);
    assert!(
        errors.contains(&("email".into(), "required".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("address.country".into(), "invalid_country".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("id".into(), "unknown_field".into())),
        "{errors:?}"
    );
    let fetched: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created, "nothing changed");
}

#[tokio::test]
async fn patching_to_a_taken_external_id_is_409() {
    let app = spawn_app().await;
    let first = app.create_user(&sample_user()).await;
    let second = app.create_user(&sample_user()).await;
    let problem = assert_problem(
        app.patch_user(
            second["id"].as_str().unwrap(),
            &json!({ "external_id": first["external_id"] }),
        )
        .await,
        409,
        "user_already_exists",
    )
    .await;
    assert_eq!(problem["existing_user_id"], first["id"]);
}

#[tokio::test]
async fn patch_accepts_json_and_merge_patch_content_types_only() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let url = app.url(&format!("/v1/users/{}", created["id"].as_str().unwrap()));
    let ok = app
        .client
        .patch(&url)
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"language":"en"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = app
        .client
        .patch(&url)
        .bearer_auth(DEV_KEY)
        .header("content-type", "text/plain")
        .body(r#"{"language":"en"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(refused, 415, "unsupported_media_type").await;
    assert_problem(
        app.patch_user(
            &uuid::Uuid::now_v7().to_string(),
            &json!({"language": "en"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

/// Found by the chaos run (`scripts/chaos.sh`): a patch committed while the user's first
/// submission was at the provider (carrying the profile as it was before the patch) saw a link
/// with no provider account yet, queued no update for it, and so never reached that provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_made_while_the_first_submission_is_in_flight_reaches_the_provider() {
    let app = spawn_app().await;
    // Kraken holds the create's submission long enough to patch while it is there.
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(
            &json!({"provider": "kraken", "method": "POST", "path": "/b2b/users",
                      "latency_ms": 1500, "count": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 201);
    let mut body = sample_user();
    body["providers"] = json!(["kraken"]);
    let create = {
        let (client, url) = (app.client.clone(), app.url("/v1/users"));
        tokio::spawn(async move {
            let answer = client
                .post(url)
                .bearer_auth(DEV_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            (answer.status(), answer.json::<Value>().await.unwrap())
        })
    };
    // Once Kraken has the create (its body built from the profile before the patch), patch.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let requests = get_json(&app.sim("/_sim/requests?provider=kraken")).await;
        let arrived = requests
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "POST" && r["path"] == "/b2b/users");
        if arrived {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the create never reached Kraken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The user was persisted before its submission left.
    let listed: Value = app.get("/v1/users?limit=1").await.json().await.unwrap();
    let user_id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let patched = app
        .patch_user(&user_id, &json!({"address": {"city": "Potsdam"}}))
        .await;
    assert_eq!(patched.status(), 200);
    let (status, created) = create.await.unwrap();
    assert_eq!(status, 201, "{created}");

    // The update follows the submission: Kraken ends with the patched city.
    loop {
        let accounts = get_json(&app.sim("/_sim/kraken/users")).await;
        let profile = accounts[0]["profile"].to_string();
        if profile.contains("Potsdam") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Kraken never got the patch: {profile}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
