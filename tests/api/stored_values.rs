//! Values read from the store are decoded into their domain types at the store boundary: a
//! stored value the code does not know is an error naming the row, never a silent default.

use onboarding_gateway::store::{self, StoreError};
use uuid::Uuid;

use crate::helpers::*;

fn corrupt_message<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Corrupt(message)) => message,
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_job_kind_is_an_error_naming_the_job() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, queue_key, payload, state)
         VALUES ($1, 'foo', 'stored-values', '{}', 'failed')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let message = corrupt_message(store::jobs::get(&app.pool, id).await);
    assert_eq!(message, format!("jobs {id}: unknown kind \"foo\""));
    let listed = app
        .client
        .get(app.url("/v1/jobs?state=failed"))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 500, "not listed under a made-up kind");
}

/// A user (created through the API, routed nowhere) with one link written directly.
async fn user_with_link(app: &TestApp) -> Uuid {
    let created = app.create_user(&sample_user()).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    sqlx::query(
        "INSERT INTO provider_links (user_id, provider, status, provider_user_id)
         VALUES ($1, 'kraken', 'approved', 'AA00 TEST')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

async fn set_link_column(app: &TestApp, id: Uuid, column: &str, value: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE provider_links SET {column} = $2 WHERE user_id = $1"
    )))
    .bind(id)
    .bind(value)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unknown_link_status_is_an_error_naming_the_link() {
    let app = spawn_app().await;
    let id = user_with_link(&app).await;
    assert!(store::links::for_users(&app.pool, &[id]).await.is_ok());
    set_link_column(&app, id, "status", "foo").await;
    let message = corrupt_message(store::links::for_users(&app.pool, &[id]).await);
    assert_eq!(
        message,
        format!("provider_links (user {id}, provider kraken): unknown status \"foo\"")
    );
    // The user and its links read in one statement: the same error, not `pending_submission`.
    let read = store::users::get_with_links(&app.pool, &app.keyring, id).await;
    assert_eq!(
        corrupt_message(read),
        format!("provider_links (user {id}, provider kraken): unknown status \"foo\"")
    );
    assert_eq!(app.get(&format!("/v1/users/{id}")).await.status(), 500);
}

#[tokio::test]
async fn an_unknown_link_provider_is_an_error_naming_the_link() {
    let app = spawn_app().await;
    let id = user_with_link(&app).await;
    set_link_column(&app, id, "provider", "stripe").await;
    let message = corrupt_message(store::links::for_users(&app.pool, &[id]).await);
    assert_eq!(
        message,
        format!("provider_links (user {id}, provider stripe): unknown provider \"stripe\"")
    );
}

#[tokio::test]
async fn an_unknown_erasure_state_is_an_error_naming_the_link() {
    let app = spawn_app().await;
    let id = user_with_link(&app).await;
    // The column's CHECK keeps such values out; a newer version could have widened it.
    sqlx::query("ALTER TABLE provider_links DROP CONSTRAINT provider_links_erasure_check")
        .execute(&app.pool)
        .await
        .unwrap();
    set_link_column(&app, id, "erasure", "shredded").await;
    let message = corrupt_message(store::links::for_users(&app.pool, &[id]).await);
    assert_eq!(
        message,
        format!("provider_links (user {id}, provider kraken): unknown erasure state \"shredded\"")
    );
}

#[tokio::test]
async fn an_unknown_user_status_is_an_error_naming_the_user() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE users SET status = 'foo' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let message = corrupt_message(store::users::get(&app.pool, &app.keyring, id).await);
    assert_eq!(message, format!("users {id}: unknown status \"foo\""));
    assert_eq!(app.get(&format!("/v1/users/{id}")).await.status(), 500);
}
