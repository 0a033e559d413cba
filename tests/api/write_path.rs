//! The create's write path: a create's first provider answer is recorded in one statement that
//! only writes when the link is as the create left it (`store::links::record_first_answer`); otherwise
//! nothing is written and the answer is recorded under the user's link locks.

use onboarding_gateway::domain::{LinkStatus, ProviderId};
use onboarding_gateway::store::links::{self, LinkUpdate};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

async fn counts(app: &TestApp, user_id: Uuid) -> (i64, String, String) {
    // Status changes only: the simulator's webhook may add a sync's `provider_call` any time.
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_events WHERE user_id = $1 AND type = 'status_changed'",
    )
    .bind(user_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let user_status: String = sqlx::query_scalar("SELECT status FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let link: String = sqlx::query_scalar(
        "SELECT status || '/' || coalesce(provider_user_id, '-') FROM provider_links
          WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (events, user_status, link)
}

#[tokio::test]
async fn a_create_records_its_answer_once_and_settles_its_job_in_the_same_write() {
    let app = spawn_app_routed().await;
    let mut body = sample_user();
    body["providers"] = json!(["killb"]);
    let user = app.create_user(&body).await;
    let id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(user["links"].as_array().unwrap().len(), 1, "{user}");
    let link = &user["links"][0];
    assert!(link["provider_user_id"].is_string(), "{user}");
    // The summary status is the link's; the trail is created → call → status change, in order.
    assert_eq!(user["status"], link["status"]);
    let types: Vec<String> =
        sqlx::query_scalar("SELECT type FROM user_events WHERE user_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    // (The simulator's webhook may add a sync's events after these.)
    let position = |t: &str| types.iter().position(|x| x == t);
    assert_eq!(types[0], "user_created");
    assert!(
        position("provider_call") < position("status_changed")
            && position("status_changed").is_some(),
        "{types:?}"
    );
    let jobs: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT state, attempts, locked_by FROM jobs WHERE queue_key LIKE 'link:' || $1 || ':%'",
    )
    .bind(id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(jobs, vec![("succeeded".to_owned(), 1, None)]);
}

#[tokio::test]
async fn the_one_statement_record_writes_nothing_when_the_link_is_not_as_created() {
    let app = spawn_app_routed().await;
    let mut body = sample_user();
    body["providers"] = json!(["killb"]);
    let user = app.create_user(&body).await;
    let id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let provider: ProviderId = user["links"][0]["provider"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let job_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, queue_key, payload, state, attempts)
         VALUES ($1, 'submit_link', 'test', '{}', 'running', 1)",
    )
    .bind(job_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let before = counts(&app, id).await;
    // The link was submitted already: a second "first answer" must not land.
    let update = LinkUpdate {
        provider_user_id: Some("someone-else".into()),
        status: Some(LinkStatus::Rejected),
        ..LinkUpdate::default()
    };
    let events = [(
        "status_changed",
        json!({"provider": provider, "to": "rejected"}),
    )];
    let settle = || {
        links::record_first_answer(
            &app.pool,
            id,
            provider,
            &update,
            &events,
            LinkStatus::Rejected,
            Some(job_id),
        )
    };
    let written = settle().await.unwrap();
    assert!(written.is_none());
    assert_eq!(
        counts(&app, id).await,
        before,
        "no event, status or link change"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "running", "the job is not settled either");

    // A fresh pending link, the user's only one, is written with everything in one go.
    sqlx::query(
        "UPDATE provider_links SET status = 'pending_submission', provider_user_id = NULL
          WHERE user_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let written = settle().await.unwrap().expect("written");
    assert_eq!(written.status, LinkStatus::Rejected);
    let (events_after, user_status, link) = counts(&app, id).await;
    assert_eq!(events_after, before.0 + 1);
    assert_eq!(user_status, "rejected");
    assert_eq!(link, "rejected/someone-else");
}

#[tokio::test]
async fn a_create_at_two_providers_records_both_answers_under_the_locks() {
    let app = spawn_app_routed().await;
    let mut body = sample_user();
    body["providers"] = json!(["kraken", "killb"]);
    let user = app.create_user(&body).await;
    let id: Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let links = user["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{user}");
    assert!(
        links.iter().all(|l| l["provider_user_id"].is_string()),
        "{user}"
    );
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM jobs WHERE queue_key LIKE 'link:' || $1 || ':%'")
            .bind(id.to_string())
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(states, vec!["succeeded", "succeeded"]);
    // Two `status_changed` events, one per link, and a summary that matches the links.
    let changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_events WHERE user_id = $1 AND type = 'status_changed'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(changes, 2);
    let fetched: serde_json::Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["status"], user["status"]);
}

#[tokio::test]
async fn a_create_answers_with_the_user_exactly_as_a_read_then_shows_it() {
    let app = spawn_app_routed().await;
    // No webhooks: a webhook's re-fetch would change the link between the create and the read.
    let off = app
        .client
        .put(app.sim("/_sim/webhook-targets"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success());
    for provider in ["kraken", "killb", "carbn"] {
        let mut body = sample_user();
        body["providers"] = json!([provider]);
        let created = app.create_user(&body).await;
        assert_eq!(created["links"].as_array().unwrap().len(), 1, "{created}");
        let id = created["id"].as_str().unwrap();
        let read: serde_json::Value = app
            .get(&format!("/v1/users/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(created, read, "{provider}");
    }
}
