use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn create_then_get_returns_the_normalised_user() {
    let app = spawn_app().await;
    let mut body = sample_user();
    body["phone"] = json!("+49 (151) 123-456.78");
    body["address"]["country"] = json!("de");
    body["nationalities"] = json!(["de"]);
    body["language"] = json!("DE");
    let response = app.post_user(&body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("x-request-id"));
    let created: Value = response.json().await.unwrap();

    let id = created["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(created["external_id"], body["external_id"]);
    assert_eq!(created["phone"], "+4915112345678");
    assert_eq!(created["address"]["country"], "DE");
    assert_eq!(created["nationalities"], json!(["DE"]));
    assert_eq!(created["language"], "de");
    assert_eq!(created["status"], "pending_submission");
    assert_eq!(created["links"], json!([]));
    assert_eq!(created["metadata"], body["metadata"]);
    assert_eq!(created["terms"]["accepted_at"], "2026-11-01T09:30:00Z");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn a_minimal_user_is_accepted_and_optional_fields_are_null() {
    let app = spawn_app().await;
    let created = app.create_user(&minimal_user()).await;
    assert_eq!(created["phone"], Value::Null);
    assert_eq!(created["identity_document"], Value::Null);
    assert_eq!(created["metadata"], json!({}));
}

#[tokio::test]
async fn the_creation_is_in_the_audit_trail() {
    let app = spawn_app().await;
    let created = app.create_user(&sample_user()).await;
    let id = created["id"].as_str().unwrap();
    let events: Value = app
        .get(&format!("/v1/users/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let data = events["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["type"], "user_created");
    assert!(data[0]["id"].is_string() && data[0]["at"].is_string());
    assert_eq!(events["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_duplicate_external_id_is_409_naming_the_existing_user() {
    let app = spawn_app().await;
    let body = sample_user();
    let created = app.create_user(&body).await;
    let mut again = minimal_user();
    again["external_id"] = body["external_id"].clone();
    let problem = assert_problem(app.post_user(&again).await, 409, "user_already_exists").await;
    assert_eq!(problem["existing_user_id"], created["id"]);
}

#[tokio::test]
async fn concurrent_creates_of_one_external_id_make_exactly_one_user() {
    let app = spawn_app().await;
    let body = sample_user();
    let responses = futures_util::future::join_all((0..12).map(|_| app.post_user(&body))).await;
    let mut created = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            409 => {
                assert_problem(response, 409, "user_already_exists").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 1);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE external_id = $1")
        .bind(body["external_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn every_invalid_field_is_reported_with_its_path() {
    let app = spawn_app().await;
    let mut body = sample_user();
    body["email"] = json!("not-an-email");
    body["phone"] = json!("12345");
    body["address"]["country"] = json!("XX");
    body["nationalities"] = json!(["DE", "ZZ"]);
    body["language"] = json!("xx");
    body["date_of_birth"] = json!("1990-02-30");
    body["identity_document"]["type"] = json!("library_card");
    body["tax_ids"][0]["number"] = json!(42);
    body["employment"]["status"] = json!("astronaut");
    body["nickname"] = json!("JD");
    let problem = assert_problem(app.post_user(&body).await, 422, "validation_failed").await;
    let errors = field_errors(&problem);
    for (field, code) in [
        ("email", "invalid_email"),
        ("phone", "invalid_phone"),
        ("address.country", "invalid_country"),
        ("nationalities[1]", "invalid_country"),
        ("language", "invalid_language"),
        ("date_of_birth", "invalid_date"),
        ("identity_document.type", "invalid_value"),
        ("tax_ids[0].number", "invalid_type"),
        ("employment.status", "invalid_value"),
        ("nickname", "unknown_field"),
    ] {
        assert!(
            errors.contains(&(field.to_owned(), code.to_owned())),
            "missing ({field}, {code}) in {errors:?}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing is written for an invalid request");
}

#[tokio::test]
async fn required_fields_are_named_when_missing() {
    let app = spawn_app().await;
    let problem = assert_problem(app.post_user(&json!({})).await, 422, "validation_failed").await;
    let fields: Vec<String> = field_errors(&problem).into_iter().map(|(f, _)| f).collect();
    for field in [
        "external_id",
        "type",
        "email",
        "name.first",
        "name.last",
        "date_of_birth",
        "address.country",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} missing in {fields:?}"
        );
    }
}

#[tokio::test]
async fn minors_and_future_birth_dates_are_refused() {
    let app = spawn_app().await;
    let today = time::OffsetDateTime::now_utc().date();
    let seventeen = today.replace_year(today.year() - 17).unwrap_or(today);
    for (dob, code) in [
        (seventeen.to_string(), "underage"),
        ("2999-01-01".to_owned(), "date_not_in_past"),
        ("15/01/1990".to_owned(), "invalid_date"),
    ] {
        let mut body = minimal_user();
        body["date_of_birth"] = json!(dob);
        let problem = assert_problem(app.post_user(&body).await, 422, "validation_failed").await;
        assert!(
            field_errors(&problem).contains(&("date_of_birth".into(), code.into())),
            "{dob}: {problem}"
        );
    }
}

#[tokio::test]
async fn wrong_types_and_oversized_fields_are_422() {
    let app = spawn_app().await;
    let mut body = minimal_user();
    body["name"]["first"] = json!("x".repeat(101));
    body["type"] = json!(1);
    body["metadata"] = json!("not an object");
    let problem = assert_problem(app.post_user(&body).await, 422, "validation_failed").await;
    let errors = field_errors(&problem);
    assert!(
        errors.contains(&("name.first".into(), "too_long".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("type".into(), "invalid_type".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("metadata".into(), "invalid_type".into())),
        "{errors:?}"
    );
}

#[tokio::test]
async fn unknown_users_are_404() {
    let app = spawn_app().await;
    assert_problem(
        app.get(&format!("/v1/users/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(app.get("/v1/users/not-a-uuid").await, 404, "not_found").await;
    assert_problem(
        app.get(&format!("/v1/users/{}/events", uuid::Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok());
}
