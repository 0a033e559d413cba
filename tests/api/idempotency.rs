use serde_json::{json, Value};

use crate::helpers::*;

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_answer() {
    let app = spawn_app().await;
    let body = sample_user();
    let first = post_with_key(&app, "key-1", &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let second = post_with_key(&app, "key-1", &body).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// A create that committed its user and then could not answer (the database went away before
/// its answer was stored, so the key was released): the client's retry with the same key and
/// body meets its own user under the external_id's constraint and gets it (201), not
/// `409 user_already_exists`; another key, or the same key with another body, still gets 409.
#[tokio::test]
async fn a_retry_of_a_create_that_committed_but_never_answered_gets_its_user() {
    let app = spawn_app().await;
    let body = sample_user();
    let first: Value = post_with_key(&app, "lost-answer", &body)
        .await
        .json()
        .await
        .unwrap();
    // The state such a failure leaves: the user is there, its idempotent answer is not.
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&app.pool)
        .await
        .unwrap();

    let retry = post_with_key(&app, "lost-answer", &body).await;
    assert_eq!(retry.status(), 201);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(retry["external_id"], first["external_id"]);

    let other_key = post_with_key(&app, "another-key", &body).await;
    let problem = assert_problem(other_key, 409, "user_already_exists").await;
    assert_eq!(problem["existing_user_id"], first["id"]);
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut changed = body.clone();
    changed["language"] = json!("en");
    let other_body = post_with_key(&app, "lost-answer", &changed).await;
    assert_problem(other_body, 409, "user_already_exists").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_409() {
    let app = spawn_app().await;
    assert_eq!(
        post_with_key(&app, "key-2", &sample_user()).await.status(),
        201
    );
    assert_problem(
        post_with_key(&app, "key-2", &sample_user()).await,
        409,
        "idempotency_key_reused",
    )
    .await;
}

#[tokio::test]
async fn validation_failures_are_replayed_too() {
    let app = spawn_app().await;
    let mut body = sample_user();
    body["email"] = json!("nope");
    let first = assert_problem(
        post_with_key(&app, "key-3", &body).await,
        422,
        "validation_failed",
    )
    .await;
    let replay = post_with_key(&app, "key-3", &body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let second = assert_problem_body(replay, 422).await;
    assert_eq!(first["errors"], second["errors"]);
}

async fn assert_problem_body(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_user() {
    let app = spawn_app().await;
    let body = sample_user();
    let responses = futures_util::future::join_all(
        (0..10).map(|_| post_with_key(&app, "key-concurrent", &body)),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        match response.status().as_u16() {
            201 => {
                let user: Value = response.json().await.unwrap();
                ids.insert(user["id"].as_str().unwrap().to_owned());
            }
            409 => {
                assert_problem(response, 409, "idempotency_request_in_progress").await;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 is the same user");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // Once finished, a retry replays.
    let replay = post_with_key(&app, "key-concurrent", &body).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn keys_are_scoped_to_the_endpoint_and_validated() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let patch = app
        .client
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json")
        .header("idempotency-key", "shared-key")
        .body(r#"{"language":"fr"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    let replay = app
        .client
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json")
        .header("idempotency-key", "shared-key")
        .body(r#"{ "language" : "fr" }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.headers()["idempotent-replayed"],
        "true",
        "whitespace does not matter"
    );
    assert_problem(
        post_with_key(&app, "shared-key", &sample_user()).await,
        409,
        "idempotency_key_reused",
    )
    .await;
    let problem = assert_problem(
        post_with_key(&app, &"k".repeat(300), &sample_user()).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
}

/// Found by the chaos run (`scripts/chaos.sh`): a create whose user committed but whose answer
/// was never stored (the process was killed, or the database restarted, in between) left the
/// key claimed; the retry took the abandoned claim over, ran the create again and answered
/// `409 user_already_exists` — a careful client was refused its own user. The user row now
/// carries the creating request's fingerprint, so the retry knows the user as its own.
#[tokio::test]
async fn a_retry_after_a_lost_create_answer_gets_the_user_the_first_attempt_created() {
    let app = spawn_app().await;
    let body = sample_user();
    let first = post_with_key(&app, "key-lost-answer", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // What a kill -9 between the create's commit and the storing of its answer leaves: the
    // claim without an answer, older than the abandonment horizon.
    sqlx::query(
        "UPDATE idempotency_keys
            SET response_status = NULL, response_headers = NULL, response_body = NULL,
                response_key_id = NULL, completed_at = NULL,
                created_at = now() - interval '2 minutes'
          WHERE idempotency_key = 'key-lost-answer'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let retry = post_with_key(&app, "key-lost-answer", &body).await;
    let status = retry.status();
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(status, 201, "the retry's answer: {retry}");
    assert_eq!(retry["id"], first["id"]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // The recovered answer is stored: the next retry replays it.
    let again = post_with_key(&app, "key-lost-answer", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
}
