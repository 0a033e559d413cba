//! Documents: `POST /v1/users/{id}/documents` (multipart) and its reads. Bad input is a 4xx
//! naming the part with nothing stored; the file is sealed at rest (a dump finds no byte of it),
//! re-sealed on rotation and erased with the user; and each linked provider that takes it gets
//! it through a durable job, after the link's own submission (the provider served by wiremock).

use std::time::Duration;

use onboarding_gateway::crypto::Keyring;
use onboarding_gateway::settings::{EncryptionSettings, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

const BOUNDARY: &str = "gw-test-boundary-7d1e";

/// One part of a multipart body, written exactly as given.
struct Part {
    name: String,
    content_type: Option<String>,
    file_name: Option<String>,
    body: Vec<u8>,
}

fn text(name: &str, value: &str) -> Part {
    Part {
        name: name.to_owned(),
        content_type: None,
        file_name: None,
        body: value.as_bytes().to_vec(),
    }
}

fn file(bytes: Vec<u8>, content_type: Option<&str>) -> Part {
    Part {
        name: "file".to_owned(),
        content_type: content_type.map(str::to_owned),
        file_name: Some("scan-of-jane.bin".to_owned()),
        body: bytes,
    }
}

fn multipart_body(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(name) = &part.file_name {
            disposition.push_str(&format!("; filename=\"{name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = &part.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// Bytes no other test or fixture contains, so finding them anywhere means a leak.
fn marker() -> Vec<u8> {
    format!(
        "ZQXJ-DOC-{}-SECRET",
        &Uuid::new_v4().simple().to_string()[..12]
    )
    .into_bytes()
}

/// A JPEG (by its magic bytes) of `len` bytes filled with `marker`.
fn jpeg(len: usize, marker: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    while bytes.len() < len {
        bytes.extend_from_slice(marker);
    }
    bytes.truncate(len);
    bytes
}

fn pdf(len: usize, marker: &[u8]) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    while bytes.len() < len {
        bytes.extend_from_slice(marker);
    }
    bytes.truncate(len);
    bytes
}

fn attestation() -> String {
    json!({"verifier": "example_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z", "reference": "chk_123"})
        .to_string()
}

async fn send_upload(
    app: &TestApp,
    user_id: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/users/{user_id}/documents")))
        .bearer_auth(DEV_KEY)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn upload(app: &TestApp, user_id: &str, parts: &[Part]) -> reqwest::Response {
    send_upload(
        app,
        user_id,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart_body(BOUNDARY, parts),
        None,
    )
    .await
}

async fn upload_ok(app: &TestApp, user_id: &str, parts: &[Part]) -> Value {
    let response = upload(app, user_id, parts).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// Rows in the three document tables.
async fn stored(app: &TestApp) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM document_files),
                (SELECT count(*) FROM document_submissions)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn new_user(app: &TestApp) -> String {
    app.create_user(&sample_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What is sent, the status and problem code, and the part named with its code.
type Case = (
    &'static str,
    Vec<Part>,
    u16,
    &'static str,
    &'static str,
    &'static str,
);

/// What erasure leaves of a document: attestation, its key id, digest, type, size, erased.
type ErasedRow = (
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    String,
    i64,
    bool,
);

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_part_and_nothing_is_stored() {
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| s.documents.max_bytes = 4096).await;
    let id = new_user(&app).await;
    let m = marker();
    let ok_file = || file(jpeg(2000, &m), Some("image/jpeg"));
    let cases: Vec<Case> = vec![
        (
            "missing type",
            vec![ok_file()],
            422,
            "validation_failed",
            "type",
            "required",
        ),
        (
            "missing file",
            vec![text("type", "passport")],
            422,
            "validation_failed",
            "file",
            "required",
        ),
        (
            "unknown type",
            vec![text("type", "visa"), ok_file()],
            422,
            "validation_failed",
            "type",
            "invalid_value",
        ),
        (
            "unknown side",
            vec![text("type", "passport"), text("side", "left"), ok_file()],
            422,
            "validation_failed",
            "side",
            "invalid_value",
        ),
        (
            "side on a selfie",
            vec![text("type", "selfie"), text("side", "front"), ok_file()],
            422,
            "validation_failed",
            "side",
            "not_allowed",
        ),
        (
            "side on a proof of address",
            vec![
                text("side", "back"),
                text("type", "proof_of_address"),
                ok_file(),
            ],
            422,
            "validation_failed",
            "side",
            "not_allowed",
        ),
        (
            "empty file",
            vec![
                text("type", "passport"),
                file(Vec::new(), Some("image/jpeg")),
            ],
            422,
            "validation_failed",
            "file",
            "empty_file",
        ),
        (
            "over the limit",
            vec![
                text("type", "passport"),
                file(jpeg(4097, &m), Some("image/jpeg")),
            ],
            413,
            "payload_too_large",
            "file",
            "too_large",
        ),
        (
            "a polyglot: PDF bytes declared as JPEG",
            vec![
                text("type", "passport"),
                file(pdf(2000, &m), Some("image/jpeg")),
            ],
            422,
            "validation_failed",
            "file",
            "content_type_mismatch",
        ),
        (
            "unknown content",
            vec![
                text("type", "passport"),
                file(b"GIF89a-not-accepted".to_vec(), None),
            ],
            422,
            "validation_failed",
            "file",
            "unsupported_file_type",
        ),
        (
            "a duplicate part",
            vec![text("type", "passport"), text("type", "selfie"), ok_file()],
            422,
            "validation_failed",
            "type",
            "duplicate_part",
        ),
        (
            "an unknown part",
            vec![
                text("type", "passport"),
                text("filename", "jane.jpg"),
                ok_file(),
            ],
            422,
            "validation_failed",
            "filename",
            "unknown_field",
        ),
        (
            "malformed verification JSON",
            vec![
                text("type", "passport"),
                text("verification", "{\"verifier\":"),
                ok_file(),
            ],
            422,
            "validation_failed",
            "verification",
            "malformed_json",
        ),
        (
            "verification without verified_at",
            vec![
                text("type", "passport"),
                text("verification", "{\"verifier\":\"v\"}"),
                ok_file(),
            ],
            422,
            "validation_failed",
            "verification.verified_at",
            "required",
        ),
        (
            "verification with an unknown member",
            vec![
                text("type", "passport"),
                text(
                    "verification",
                    "{\"verifier\":\"v\",\"verified_at\":\"2026-11-01T09:30:00Z\",\"score\":1}",
                ),
                ok_file(),
            ],
            422,
            "validation_failed",
            "verification.score",
            "unknown_field",
        ),
    ];
    for (what, parts, status, code, field, field_code) in cases {
        let problem = assert_problem(upload(&app, &id, &parts).await, status, code).await;
        assert!(
            field_errors(&problem).contains(&(field.to_owned(), field_code.to_owned())),
            "{what}: {problem}"
        );
    }
    // The file's bytes and its name never come back in an error.
    let problem = assert_problem(
        upload(
            &app,
            &id,
            &[
                text("type", "passport"),
                file(pdf(2000, &m), Some("image/png")),
            ],
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let text_of = problem.to_string();
    assert!(
        !text_of.contains("ZQXJ") && !text_of.contains("scan-of-jane"),
        "{problem}"
    );

    // Several bad parts at once: all reported.
    let problem = assert_problem(
        upload(
            &app,
            &id,
            &[
                text("type", "selfie"),
                text("side", "front"),
                file(Vec::new(), None),
            ],
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        vec![
            ("side".to_owned(), "not_allowed".to_owned()),
            ("file".to_owned(), "empty_file".to_owned())
        ]
    );

    // Not multipart, a wrong boundary, no boundary, a truncated body: 4xx, never 5xx.
    let parts = [text("type", "passport"), ok_file()];
    let response = send_upload(&app, &id, "application/json", b"{}".to_vec(), None).await;
    assert_problem(response, 415, "unsupported_media_type").await;
    let response = send_upload(
        &app,
        &id,
        "multipart/mixed; boundary=x",
        multipart_body("x", &parts),
        None,
    )
    .await;
    assert_problem(response, 415, "unsupported_media_type").await;
    let response = send_upload(
        &app,
        &id,
        "multipart/form-data; boundary=another-boundary",
        multipart_body(BOUNDARY, &parts),
        None,
    )
    .await;
    assert_problem(response, 400, "malformed_request").await;
    let response = send_upload(
        &app,
        &id,
        "multipart/form-data",
        multipart_body(BOUNDARY, &parts),
        None,
    )
    .await;
    assert_problem(response, 400, "malformed_request").await;
    let mut truncated = multipart_body(BOUNDARY, &parts);
    truncated.truncate(truncated.len() - 30);
    let response = send_upload(
        &app,
        &id,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        truncated,
        None,
    )
    .await;
    assert_problem(response, 400, "malformed_request").await;
    // A body announcing far more than any valid upload is refused before it is read.
    let response = send_upload(
        &app,
        &id,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        vec![b'x'; 200 * 1024],
        None,
    )
    .await;
    let problem = assert_problem(response, 413, "payload_too_large").await;
    assert_eq!(problem["errors"][0]["field"], "file");

    // Unknown and erased users; the scope.
    let response = upload(&app, &Uuid::now_v7().to_string(), &parts).await;
    assert_problem(response, 404, "not_found").await;
    let response = upload(&app, "not-a-uuid", &parts).await;
    assert_problem(response, 404, "not_found").await;
    let erased = new_user(&app).await;
    assert_eq!(
        app.delete(&format!("/v1/users/{erased}")).await.status(),
        200
    );
    let response = upload(&app, &erased, &parts).await;
    assert_problem(response, 410, "user_erased").await;
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/documents")))
        .bearer_auth(READ_KEY)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(BOUNDARY, &parts))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;

    assert_eq!(stored(&app).await, (0, 0, 0), "nothing was stored");
    assert!(
        !events(&app, &id)
            .await
            .iter()
            .any(|e| e["type"] == "document_uploaded"),
        "no event either"
    );
}

#[tokio::test]
async fn an_upload_answers_the_resource_and_lists_show_metadata_only() {
    let app = spawn_app().await;
    let id = new_user(&app).await;
    let m = marker();
    let front = jpeg(3000, &m);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&front));
    // Parts in any order; the side of an identity document defaults to its front.
    let body = upload_ok(
        &app,
        &id,
        &[
            file(front.clone(), Some("image/jpeg")),
            text("type", "national_id"),
        ],
    )
    .await;
    assert_eq!(body["type"], "national_id");
    assert_eq!(body["side"], "front");
    assert_eq!(body["content_type"], "image/jpeg");
    assert_eq!(body["size"], 3000);
    assert_eq!(body["sha256"], sha);
    assert_eq!(body["user_id"], json!(id));
    assert!(body["created_at"].is_string());
    // The user has no provider links: no submissions, and the answer says so.
    assert_eq!(body["submissions"], json!([]));
    let first = body["id"].as_str().unwrap().to_owned();

    // Declared type application/octet-stream says nothing; the bytes decide.
    let selfie = upload_ok(
        &app,
        &id,
        &[
            text("type", "selfie"),
            file(pdf(1500, &m), Some("application/octet-stream")),
            text("verification", &attestation()),
        ],
    )
    .await;
    assert_eq!(selfie["side"], Value::Null);
    assert_eq!(selfie["content_type"], "application/pdf");

    let list: Value = app
        .get(&format!("/v1/users/{id}/documents"))
        .await
        .json()
        .await
        .unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    assert_eq!(data[0]["id"], selfie["id"], "newest first");
    assert_eq!(data[1], body, "the list shows what the upload answered");
    assert_eq!(list["next_cursor"], Value::Null);
    let text_of = list.to_string();
    assert!(!text_of.contains("ZQXJ") && !text_of.contains("example_kyc_vendor"));

    let page: Value = app
        .get(&format!("/v1/users/{id}/documents?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get(&format!("/v1/users/{id}/documents?limit=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["data"][0]["id"], json!(first));
    assert_eq!(next["next_cursor"], Value::Null);

    let one: Value = app
        .get(&format!("/v1/users/{id}/documents/{first}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, body);
    let response = app
        .get(&format!("/v1/users/{id}/documents/{}", Uuid::now_v7()))
        .await;
    assert_problem(response, 404, "not_found").await;
    // Another user's document is not found under this one.
    let other = new_user(&app).await;
    let response = app
        .get(&format!("/v1/users/{other}/documents/{first}"))
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .get(&format!("/v1/users/{}/documents", Uuid::now_v7()))
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app.get(&format!("/v1/users/{id}/documents?limit=0")).await;
    assert_problem(response, 422, "validation_failed").await;
    // Reading needs users:read only; a method the resource lacks is a 405.
    let response = app
        .client
        .get(app.url(&format!("/v1/users/{id}/documents")))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .delete(app.url(&format!("/v1/users/{id}/documents/{first}")))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;

    // The audit trail: what was uploaded, never bytes, numbers or names.
    let events = events(&app, &id).await;
    let uploaded: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "document_uploaded")
        .collect();
    assert_eq!(uploaded.len(), 2, "{events:?}");
    assert_eq!(uploaded[0]["document_id"], json!(first));
    assert_eq!(uploaded[0]["document_type"], "national_id");
    assert_eq!(uploaded[0]["side"], "front");
    assert_eq!(uploaded[0]["size"], 3000);
    assert_eq!(uploaded[0]["content_type"], "image/jpeg");
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains("ZQXJ") && !trail.contains("scan-of-jane") && !trail.contains(&sha));
    // An upload changes no status.
    let user: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["status"], "pending_submission");
}

#[tokio::test]
async fn a_retried_upload_replays_and_another_document_under_the_key_is_refused() {
    let app = spawn_app().await;
    let id = new_user(&app).await;
    let m = marker();
    let parts = [
        text("type", "passport"),
        file(jpeg(2500, &m), Some("image/jpeg")),
    ];
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let key = Uuid::new_v4().to_string();
    let first = send_upload(
        &app,
        &id,
        &content_type,
        multipart_body(BOUNDARY, &parts),
        Some(&key),
    )
    .await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    // The same parts under another boundary are the same request.
    let again = send_upload(
        &app,
        &id,
        "multipart/form-data; boundary=other-boundary-1",
        multipart_body("other-boundary-1", &parts),
        Some(&key),
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    // Another file under the same key is refused, and nothing more is stored.
    let other = [
        text("type", "passport"),
        file(jpeg(2501, &m), Some("image/jpeg")),
    ];
    let response = send_upload(
        &app,
        &id,
        &content_type,
        multipart_body(BOUNDARY, &other),
        Some(&key),
    )
    .await;
    assert_problem(response, 409, "idempotency_key_reused").await;
    assert_eq!(stored(&app).await.0, 1);
    // The stored answer belongs to the user: erasure removes it.
    let answers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resource_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(answers, 1);
    assert_eq!(app.delete(&format!("/v1/users/{id}")).await.status(), 200);
    let answers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resource_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(answers, 0);
}

/// Every row of every table as Postgres prints it (bytea as `\x` hex).
async fn dump(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "document_files"), "{tables:?}");
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

/// `pg_dump --data-only` of the app's database, when `pg_dump` is installed.
fn pg_dump(app: &TestApp) -> Option<String> {
    let output = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg("--dbname")
        .arg(app.database_url())
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn assert_hidden(dump: &str, needles: &[&[u8]]) {
    for needle in needles {
        let plain = String::from_utf8_lossy(needle);
        assert!(!dump.contains(&*plain), "`{plain}` is stored in the clear");
        assert!(
            !dump.contains(&hex::encode(needle)),
            "`{plain}` is stored in the clear in a bytea column"
        );
    }
}

#[tokio::test]
async fn files_and_attestations_are_sealed_at_rest() {
    let app = spawn_app().await;
    let id = new_user(&app).await;
    let m = marker();
    let reference = format!("chk-{}", Uuid::new_v4().simple());
    let verification = json!({"verifier": "zebulon_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z", "reference": reference}).to_string();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(50_000, &m), Some("application/pdf")),
            text("verification", &verification),
        ],
    )
    .await;
    let document_id = Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();

    // Each sealed column has its key id beside it; the bytes are not the file.
    let (file, key_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT file, file_key_id FROM document_files WHERE document_id = $1")
            .bind(document_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(key_id, "dev-1");
    assert_eq!(file.len(), 50_000 + 12 + 16, "nonce ‖ ciphertext ‖ tag");
    let (sealed, attestation_key): (Option<Vec<u8>>, Option<String>) =
        sqlx::query_as("SELECT verification, verification_key_id FROM documents WHERE id = $1")
            .bind(document_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(sealed.is_some());
    assert_eq!(attestation_key.as_deref(), Some("dev-1"));
    // It opens with the keyring, bound to its row.
    let opened = onboarding_gateway::store::documents::open(&app.pool, &app.keyring, document_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&opened.file[..], &pdf(50_000, &m)[..]);
    assert_eq!(
        opened.verification.unwrap().reference.as_deref(),
        Some(reference.as_str())
    );

    let needles: Vec<&[u8]> = vec![&m, reference.as_bytes(), b"zebulon_kyc_vendor"];
    assert_hidden(&dump(&app).await, &needles);
    if let Some(dumped) = pg_dump(&app) {
        assert!(
            dumped.contains(&document_id.to_string()),
            "the dump has the rows"
        );
        assert_hidden(&dumped, &needles);
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
        rotation_batch_size: 100,
    }
}

const K2: &str = "c2Vjb25kLWRhdGEta2V5LWZvci1yb3RhdGlvbi10ZXM=";

#[tokio::test]
async fn files_and_attestations_are_resealed_when_the_key_rotates() {
    let app = spawn_app().await;
    let id = new_user(&app).await;
    let m = marker();
    let mut ids = Vec::new();
    // More files than one batch re-seals, so the pass takes several.
    for i in 0..6 {
        let mut parts = vec![text("type", "passport"), file(jpeg(1000 + i, &m), None)];
        if i % 2 == 0 {
            parts.push(text("verification", &attestation()));
        }
        ids.push(
            Uuid::parse_str(upload_ok(&app, &id, &parts).await["id"].as_str().unwrap()).unwrap(),
        );
    }
    let dev = onboarding_gateway::crypto::DEV_DATA_KEY;
    let rotated =
        Keyring::from_settings(&keyring_settings("k2", &[("dev-1", dev), ("k2", K2)])).unwrap();
    let report = onboarding_gateway::workers::resealer::reseal_all(&app.pool, &rotated, 100)
        .await
        .unwrap();
    assert_eq!(report.document_files_moved, 6, "{report:?}");
    assert_eq!(report.documents_moved, 3, "{report:?}");
    assert_eq!(
        (report.document_files_stale, report.documents_stale),
        (0, 0)
    );
    assert_eq!(
        onboarding_gateway::store::sealed_key_ids(&app.pool)
            .await
            .unwrap(),
        vec!["k2".to_owned()]
    );
    // The old key can go: every file opens under k2 alone, bytes intact.
    let k2_only = Keyring::from_settings(&keyring_settings("k2", &[("k2", K2)])).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let opened = onboarding_gateway::store::documents::open(&app.pool, &k2_only, *id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&opened.file[..], &jpeg(1000 + i, &m)[..]);
        assert_eq!(opened.verification.is_some(), i % 2 == 0);
    }
    // The gauge covers the new tables.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_encryption_stale_rows{table=\"document_files\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn erasure_deletes_the_files_and_every_sealed_copy() {
    let app = spawn_app().await;
    let id = new_user(&app).await;
    let m = marker();
    let key = Uuid::new_v4().to_string();
    let response = send_upload(
        &app,
        &id,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart_body(
            BOUNDARY,
            &[
                text("type", "drivers_license"),
                text("side", "back"),
                file(jpeg(5000, &m), Some("image/jpeg")),
                text("verification", &attestation()),
            ],
        ),
        Some(&key),
    )
    .await;
    assert_eq!(response.status(), 201);
    upload_ok(
        &app,
        &id,
        &[text("type", "selfie"), file(jpeg(800, &m), None)],
    )
    .await;
    assert_eq!(stored(&app).await, (2, 2, 0));

    let receipt: Value = app
        .delete(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["documents_erased"], 2, "{receipt}");
    assert_eq!(
        receipt["document_follow_up"],
        json!([]),
        "no provider holds any"
    );
    // Files and sealed attestations are gone; the metadata without PII stays.
    assert_eq!(stored(&app).await, (2, 0, 0));
    let left: Vec<ErasedRow> = sqlx::query_as(
        "SELECT verification, verification_key_id, sha256, type, size, erased_at IS NOT NULL
           FROM documents ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        vec![
            (None, None, None, "drivers_license".to_owned(), 5000, true),
            (None, None, None, "selfie".to_owned(), 800, true)
        ]
    );
    let response = app.get(&format!("/v1/users/{id}/documents")).await;
    assert_problem(response, 410, "user_erased").await;
    // A repeat answers the same receipt.
    let again: Value = app
        .delete(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, receipt);
    let erased = events(&app, &id)
        .await
        .into_iter()
        .find(|e| e["type"] == "user_erased")
        .unwrap();
    assert_eq!(erased["documents_erased"], 2);
    assert_hidden(&dump(&app).await, &[&m, b"example_kyc_vendor", b"chk_123"]);
    if let Some(dumped) = pg_dump(&app) {
        assert_hidden(&dumped, &[&m, b"example_kyc_vendor", b"chk_123"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Submission to providers: KillB served by wiremock (its documented upload route,
// https://docs.killb.com/api-reference/user/add-person-user-document), so each call the gateway
// makes, and when, is visible.

const KILLB_USER_ID: &str = "5b0f6a8e-3d7c-4e21-9a4b-8f2d1c6e7a90";
const KILLB_DOCUMENT: &str = "/api/v2/users/person/document";
/// Over KillB's 100 KB minimum.
const KILLB_SIZE: usize = 120 * 1024;

fn killb_account() -> Value {
    json!({
        "id": KILLB_USER_ID, "status": "PENDING", "type": "PERSON",
        "customerId": "9c1b6a57-0a3e-4a8e-8c1f-2f6f0d1e2a3b",
        "data": {"firstName": "Jane", "lastName": "Doe"}, "externalId": "crm-x",
        "complianceUrl": "https://kyc.example.com/session/abc", "accessLevel": "L1",
        "active": true, "createdAt": "2026-12-01T10:00:00.000Z", "updatedAt": "2026-12-01T10:00:00.000Z"
    })
}

/// Login and the user's account at KillB (create and read).
async fn mount_killb_account(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/api/v2/auth/login"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"accessToken": "tok", "expiresIn": 3_600_000, "refreshToken": "r"}),
        ))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/users"))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_account()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2/users/[0-9a-f-]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_account()))
        .mount(server)
        .await;
}

async fn mount_killb_documents(server: &MockServer, status: u16) {
    let response = match status {
        201 => ResponseTemplate::new(201),
        _ => ResponseTemplate::new(status).set_body_json(
            json!({"errorCode": "USER.0002", "message": ["Invalid document"], "statusCode": status.to_string()}),
        ),
    };
    Mock::given(method("POST"))
        .and(path(KILLB_DOCUMENT))
        .respond_with(response)
        .mount(server)
        .await;
}

/// A gateway whose KillB is `server`, with fast retries.
async fn killb_app(server: &MockServer, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create().await;
    let uri = server.uri();
    spawn_app_with(db, move |s| {
        s.providers.set("killb", "base_url", uri.as_str());
        s.providers.set("killb", "email", "ops@gateway.example");
        s.providers.set("killb", "password", "S3cure-Passw0rd!");
        s.workers.poll_interval_ms = 50;
        s.workers.retry_base_ms = 50;
        s.workers.retry_max_secs = 1;
        s.workers.max_attempts = 50;
        s.workers.reconcile_interval_secs = 0;
        adjust(s);
    })
    .await
}

fn killb_user() -> Value {
    let mut user = sample_user();
    user["address"]["country"] = json!("CO");
    user["providers"] = json!(["killb"]);
    user
}

async fn document_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == KILLB_DOCUMENT)
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn submission<'a>(document: &'a Value, provider: &str) -> &'a Value {
    document["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} submission in {document}"))
}

/// Polls the document until its submission at `provider` is no longer pending.
async fn settled(app: &TestApp, user_id: &str, document_id: &str, provider: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = app
            .get(&format!("/v1/users/{user_id}/documents/{document_id}"))
            .await
            .json()
            .await
            .unwrap();
        if submission(&last, provider)["status"] != "pending" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still pending: {last}");
}

#[tokio::test]
async fn a_document_for_a_link_still_being_submitted_goes_after_the_link() {
    let server = MockServer::start().await;
    // KillB is down: the link stays pending and its job retries.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let app = killb_app(&server, |_| {}).await;
    let user = app.create_user(&killb_user()).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["links"][0]["status"], "pending_submission");
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    assert_eq!(submission(&body, "killb")["status"], "pending", "{body}");
    let document_id = body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        document_requests(&server).await.is_empty(),
        "nothing sent before the account exists"
    );

    // KillB is back: the link's retry creates the account, then the document follows.
    server.reset().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    let done = settled(&app, &id, &document_id, "killb").await;
    let killb = submission(&done, "killb");
    assert_eq!(killb["status"], "submitted", "{done}");
    assert!(killb["submitted_at"].is_string());
    assert_eq!(killb["last_error"], Value::Null);
    let requests = server.received_requests().await.unwrap();
    let created = requests
        .iter()
        .position(|r| r.method.as_str() == "POST" && r.url.path() == "/api/v2/users")
        .expect("the account was created");
    let sent = requests
        .iter()
        .position(|r| r.url.path() == KILLB_DOCUMENT)
        .expect("the document was sent");
    assert!(
        created < sent,
        "the document went after the link's submission"
    );
    assert_eq!(document_requests(&server).await.len(), 1, "sent once");
    assert!(
        contains(&requests[sent].body, &m),
        "the file's bytes went to the provider"
    );
    assert!(
        contains(&requests[sent].body, KILLB_USER_ID.as_bytes()),
        "to the link's account"
    );

    // The upload changed no status; the trail says what happened, with the provider's call.
    let user: Value = app
        .get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        user["links"][0]["status"], "under_review",
        "KillB's own word: PENDING"
    );
    let events = events(&app, &id).await;
    let submitted: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "document_submitted")
        .collect();
    assert_eq!(submitted.len(), 1, "{events:?}");
    assert_eq!(submitted[0]["document_id"], json!(document_id));
    assert_eq!(submitted[0]["provider"], "killb");
    assert_eq!(submitted[0]["outcome"], "submitted");
    assert!(
        events.iter().any(|e| e["type"] == "provider_call"
            && e["provider"] == "killb"
            && e["http_status"] == 201
            && e["operation"]
                .as_str()
                .is_some_and(|o| o.contains("document"))),
        "{events:?}"
    );
    assert!(!serde_json::to_string(&events).unwrap().contains("ZQXJ"));
}

#[tokio::test]
async fn a_provider_linked_later_receives_the_documents_already_uploaded() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    let app = killb_app(&server, |_| {}).await;
    // No link yet (the test routing sends the user nowhere).
    let mut user = killb_user();
    user.as_object_mut().unwrap().remove("providers");
    let id = app.create_user(&user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let proof = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    let selfie = upload_ok(
        &app,
        &id,
        &[text("type", "selfie"), file(jpeg(KILLB_SIZE, &m), None)],
    )
    .await;
    let small = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(50 * 1024, &m), None),
        ],
    )
    .await;
    for d in [&proof, &selfie, &small] {
        assert_eq!(d["submissions"], json!([]));
    }

    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/providers")))
        .bearer_auth(DEV_KEY)
        .json(&json!({"provider": "killb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let done = settled(&app, &id, proof["id"].as_str().unwrap(), "killb").await;
    assert_eq!(submission(&done, "killb")["status"], "submitted", "{done}");
    // KillB takes no selfie upload (its liveness step is hosted), and refuses files under 100 KB.
    let selfie: Value = app
        .get(&format!(
            "/v1/users/{id}/documents/{}",
            selfie["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    let at_killb = submission(&selfie, "killb");
    assert_eq!(at_killb["status"], "not_supported", "{selfie}");
    assert_eq!(at_killb["last_error"]["code"], "not_supported_by_provider");
    assert!(at_killb["last_error"]["message"].as_str().unwrap().len() > 10);
    let small: Value = app
        .get(&format!(
            "/v1/users/{id}/documents/{}",
            small["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(submission(&small, "killb")["status"], "rejected", "{small}");
    assert_eq!(
        submission(&small, "killb")["last_error"]["code"],
        "min_size"
    );
    let requests = document_requests(&server).await;
    assert_eq!(requests.len(), 1, "only the document KillB takes was sent");
    // The next-action mapping's view: what KillB holds.
    let types = onboarding_gateway::store::documents::submitted_types(
        &app.pool,
        Uuid::parse_str(&id).unwrap(),
        onboarding_gateway::domain::provider::ProviderId::Killb,
    )
    .await
    .unwrap();
    assert_eq!(
        types,
        vec![onboarding_gateway::domain::verification::DocumentType::ProofOfAddress]
    );
}

#[tokio::test]
async fn a_front_waits_for_its_back_and_both_go_in_one_call() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    let app = killb_app(&server, |s| s.documents.back_side_wait_secs = 60).await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (front_marker, back_marker) = (marker(), marker());
    let front = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "front"),
            file(jpeg(KILLB_SIZE, &front_marker), None),
        ],
    )
    .await;
    assert_eq!(
        submission(&front, "killb")["status"],
        "pending",
        "held for its back"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(document_requests(&server).await.is_empty());
    let back = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "back"),
            file(jpeg(KILLB_SIZE, &back_marker), None),
        ],
    )
    .await;
    // Sent inline, in one call with both sides.
    assert_eq!(submission(&back, "killb")["status"], "submitted", "{back}");
    let front = settled(&app, &id, front["id"].as_str().unwrap(), "killb").await;
    assert_eq!(submission(&front, "killb")["status"], "submitted");
    assert_eq!(
        submission(&front, "killb")["provider_document_id"],
        submission(&back, "killb")["provider_document_id"]
    );
    let requests = document_requests(&server).await;
    assert_eq!(requests.len(), 1, "one call");
    assert!(
        contains(&requests[0].body, &front_marker) && contains(&requests[0].body, &back_marker)
    );
    let events = events(&app, &id).await;
    let submitted: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "document_submitted")
        .collect();
    assert_eq!(submitted.len(), 2, "{events:?}");
    assert!(submitted.iter().all(|e| e["sent_with"].is_string()));
}

#[tokio::test]
async fn a_front_goes_alone_after_the_wait_and_a_late_back_goes_with_it() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    let app = killb_app(&server, |s| s.documents.back_side_wait_secs = 1).await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (front_marker, back_marker) = (marker(), marker());
    let front = upload_ok(
        &app,
        &id,
        &[
            text("type", "drivers_license"),
            file(jpeg(KILLB_SIZE, &front_marker), None),
        ],
    )
    .await;
    assert_eq!(submission(&front, "killb")["status"], "pending");
    let front = settled(&app, &id, front["id"].as_str().unwrap(), "killb").await;
    assert_eq!(
        submission(&front, "killb")["status"],
        "submitted",
        "{front}"
    );
    let requests = document_requests(&server).await;
    assert_eq!(requests.len(), 1);
    assert!(contains(&requests[0].body, &front_marker));
    assert!(!contains(&requests[0].body, &back_marker));

    // The back arrives later: it goes with its front, so KillB gets both sides together.
    let back = upload_ok(
        &app,
        &id,
        &[
            text("type", "drivers_license"),
            text("side", "back"),
            file(jpeg(KILLB_SIZE, &back_marker), None),
        ],
    )
    .await;
    assert_eq!(submission(&back, "killb")["status"], "submitted", "{back}");
    let requests = document_requests(&server).await;
    assert_eq!(requests.len(), 2);
    assert!(
        contains(&requests[1].body, &front_marker) && contains(&requests[1].body, &back_marker)
    );
}

#[tokio::test]
async fn a_document_is_retried_through_an_outage_then_sent() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    Mock::given(method("POST"))
        .and(path(KILLB_DOCUMENT))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_killb_documents(&server, 201).await;
    let app = killb_app(&server, |_| {}).await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    let killb = submission(&body, "killb");
    assert_eq!(killb["status"], "pending", "{body}");
    assert_eq!(killb["last_error"]["code"], "provider_unavailable");
    let done = settled(&app, &id, body["id"].as_str().unwrap(), "killb").await;
    assert_eq!(submission(&done, "killb")["status"], "submitted");
    assert_eq!(submission(&done, "killb")["last_error"], Value::Null);
    assert_eq!(document_requests(&server).await.len(), 4);
}

#[tokio::test]
async fn exhausted_attempts_fail_the_job_for_ops_to_re_drive() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 503).await;
    let app = killb_app(&server, |s| s.workers.max_attempts = 2).await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    let document_id = body["id"].as_str().unwrap().to_owned();
    let mut failed = Value::Null;
    for _ in 0..100 {
        let page: Value = app
            .client
            .get(app.url("/v1/jobs?state=failed&kind=submit_document"))
            .bearer_auth(OPS_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(job) = page["data"].as_array().unwrap().first() {
            failed = job.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        failed["kind"], "submit_document",
        "the job failed: {failed}"
    );
    assert_eq!(failed["payload"]["document_id"], json!(document_id));
    assert!(failed["last_error"]
        .as_str()
        .unwrap()
        .contains("provider_unavailable"));
    let pending: Value = app
        .get(&format!("/v1/users/{id}/documents/{document_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(submission(&pending, "killb")["status"], "pending");
    assert_eq!(
        submission(&pending, "killb")["last_error"]["code"],
        "provider_unavailable"
    );

    // KillB is fixed; ops re-drive the job and the document goes.
    server.reset().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    let response = app
        .client
        .post(app.url(&format!(
            "/v1/jobs/{}/retry",
            failed["id"].as_str().unwrap()
        )))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let done = settled(&app, &id, &document_id, "killb").await;
    assert_eq!(submission(&done, "killb")["status"], "submitted");
}

#[tokio::test]
async fn a_refused_document_is_rejected_and_subscribers_are_told() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 400).await;
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let hooks_url = format!("{}/hooks", hooks.uri());
    let app = killb_app(&server, move |s| {
        s.notifications
            .subscribers
            .push(onboarding_gateway::settings::SubscriberSettings {
                url: hooks_url,
                secret: SecretString::from("whsec_documents"),
                events: vec!["document.rejected".into()],
            })
    })
    .await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();

    // A file KillB's rules refuse is a 422 naming KillB and the rule, and nothing is stored.
    let before = stored(&app).await;
    let problem = assert_problem(
        upload(
            &app,
            &id,
            &[
                text("type", "proof_of_address"),
                file(pdf(50 * 1024, &m), None),
            ],
        )
        .await,
        422,
        "document_refused_by_provider",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "file");
    assert_eq!(problem["errors"][0]["code"], "min_size");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("killb"),
        "{problem}"
    );
    assert_eq!(stored(&app).await, before);

    // One KillB takes by its rules but refuses when it sees it.
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    let killb = submission(&body, "killb");
    assert_eq!(killb["status"], "rejected", "{body}");
    assert_eq!(killb["last_error"]["code"], "provider_rejected");
    let document_id = body["id"].as_str().unwrap();
    let mut notified = None;
    for _ in 0..100 {
        notified = hooks
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .find(|n| n["type"] == "document.rejected");
        if notified.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notified = notified.expect("a document.rejected notification");
    assert_eq!(notified["data"]["user_id"], json!(id));
    assert_eq!(notified["data"]["provider"], "killb");
    assert_eq!(notified["data"]["status"], "rejected");
    assert_eq!(notified["data"]["document_id"], json!(document_id));
    assert_eq!(notified["data"]["document_type"], "proof_of_address");
    assert!(!notified.to_string().contains("ZQXJ"));
    // No retry of a refusal.
    assert_eq!(document_requests(&server).await.len(), 1);
}

#[tokio::test]
async fn erasure_lists_the_providers_holding_documents() {
    let server = MockServer::start().await;
    mount_killb_account(&server).await;
    mount_killb_documents(&server, 201).await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = killb_app(&server, |_| {}).await;
    let id = app.create_user(&killb_user()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "proof_of_address"),
            file(pdf(KILLB_SIZE, &m), None),
        ],
    )
    .await;
    assert_eq!(submission(&body, "killb")["status"], "submitted", "{body}");
    let receipt: Value = app
        .delete(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["documents_erased"], 1);
    let follow_up = &receipt["document_follow_up"];
    assert_eq!(follow_up.as_array().unwrap().len(), 1, "{receipt}");
    assert_eq!(follow_up[0]["provider"], "killb");
    assert_eq!(follow_up[0]["provider_user_id"], KILLB_USER_ID);
    assert_eq!(follow_up[0]["documents"][0]["id"], body["id"]);
    assert_eq!(follow_up[0]["documents"][0]["type"], "proof_of_address");
    assert_eq!(stored(&app).await.1, 0, "the file is gone");
    assert_hidden(&dump(&app).await, &[&m]);
}

#[tokio::test]
async fn kraken_without_an_attestation_is_not_supported_with_the_reason() {
    // Kraken through the simulator: the policy decides before any call.
    let app = spawn_app().await;
    let mut user = sample_user();
    user["address"]["country"] = json!("US");
    user["providers"] = json!(["kraken"]);
    let id = app.create_user(&user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[text("type", "passport"), file(jpeg(4000, &m), None)],
    )
    .await;
    let kraken = submission(&body, "kraken");
    assert_eq!(kraken["status"], "not_supported", "{body}");
    assert_eq!(kraken["last_error"]["code"], "not_supported_by_provider");
    assert!(
        kraken["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("verification"),
        "the reason names what is missing: {body}"
    );
    let events = events(&app, &id).await;
    assert!(events
        .iter()
        .any(|e| e["type"] == "document_submitted" && e["outcome"] == "not_supported"));
}

#[tokio::test]
async fn uploads_beyond_the_slots_wait_then_get_503_and_nothing_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| {
        s.documents.max_concurrent_uploads = 1;
        s.documents.upload_slot_wait_secs = 1;
    })
    .await;
    let id = new_user(&app).await;
    let m = marker();
    let parts = [text("type", "passport"), file(jpeg(3000, &m), None)];
    let body = multipart_body(BOUNDARY, &parts);
    // A slow upload holds the only slot: its head and the start of its body, then a pause.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/users/{id}/documents HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {DEV_KEY}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    let response = upload(&app, &id, &parts).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503, "overloaded").await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited for a slot first"
    );
    assert_eq!(stored(&app).await.0, 0);

    // The slow upload finishes and is stored; the slot is free again.
    slow.write_all(&body[100..]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = slow.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    upload_ok(&app, &id, &parts).await;
    assert_eq!(stored(&app).await.0, 2);
}

#[tokio::test]
async fn an_attested_passport_reaches_the_kraken_simulator_with_its_verification_id() {
    // End to end through the built-in simulator: Kraken's signed multipart verification.
    let app = spawn_app().await;
    let mut user = sample_user();
    user["address"]["country"] = json!("US");
    user["providers"] = json!(["kraken"]);
    let id = app.create_user(&user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let body = upload_ok(
        &app,
        &id,
        &[
            text("type", "passport"),
            file(jpeg(4000, &m), Some("image/jpeg")),
            text("verification", &attestation()),
        ],
    )
    .await;
    let document_id = body["id"].as_str().unwrap().to_owned();
    let done = settled(&app, &id, &document_id, "kraken").await;
    let kraken = submission(&done, "kraken");
    assert_eq!(kraken["status"], "submitted", "{done}");
    assert!(
        kraken["provider_document_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("ver_")),
        "{done}"
    );
    assert!(kraken["submitted_at"].is_string());
    // The link's status moves only on Kraken's own word, not on the upload: the gateway reads
    // the account again after the accepted verification, and Kraken now says `wait`.
    let mut trail = events(&app, &id).await;
    for _ in 0..100 {
        if trail
            .iter()
            .any(|e| e["type"] == "status_changed" && e["to"] == "under_review")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        trail = events(&app, &id).await;
    }
    let changes: Vec<(&str, &str)> = trail
        .iter()
        .filter(|e| e["type"] == "status_changed")
        .map(|e| (e["source"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .take(2)
        .collect();
    assert_eq!(
        changes,
        [("api", "action_required"), ("api", "under_review")],
        "{trail:#?}"
    );
    // Oldest first: the submission, then the read, then the change it found.
    let submitted = trail
        .iter()
        .position(|e| e["type"] == "document_submitted")
        .unwrap();
    let reread = submitted
        + trail[submitted..]
            .iter()
            .position(|e| e["type"] == "provider_call" && e["operation"] == "get_user")
            .expect("a read after the submission");
    let review = trail
        .iter()
        .position(|e| e["type"] == "status_changed" && e["to"] == "under_review")
        .unwrap();
    assert!(reread < review, "{trail:#?}");
}

#[tokio::test]
async fn one_attestation_covers_both_sides_sent_to_kraken_in_one_verification() {
    // The attestation comes with the front only; the back goes with it in one call, so Kraken
    // (which takes only attested verifications) takes the back too.
    let app = spawn_app().await;
    let mut user = sample_user();
    user["address"]["country"] = json!("US");
    user["identity_document"] = json!({"type": "national_id", "number": "X1234567", "issuing_country": "US",
               "expires_on": "2031-01-31"});
    user["providers"] = json!(["kraken"]);
    let id = app.create_user(&user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let front = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "front"),
            file(jpeg(4000, &m), None),
            text("verification", &attestation()),
        ],
    )
    .await;
    assert_eq!(submission(&front, "kraken")["status"], "pending", "{front}");
    let back = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "back"),
            file(jpeg(4000, &m), None),
        ],
    )
    .await;
    let back_id = back["id"].as_str().unwrap().to_owned();
    let back_done = submission(&settled(&app, &id, &back_id, "kraken").await, "kraken").clone();
    assert_eq!(back_done["status"], "submitted", "{back_done}");
    let front_id = front["id"].as_str().unwrap().to_owned();
    let front_done = submission(&settled(&app, &id, &front_id, "kraken").await, "kraken").clone();
    assert_eq!(front_done["status"], "submitted", "{front_done}");
    assert!(
        front_done["provider_document_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("ver_")),
        "{front_done}"
    );
    assert_eq!(
        front_done["provider_document_id"], back_done["provider_document_id"],
        "one verification for both sides"
    );
    // Kraken received one identity verification with both files.
    let recorded: Vec<Value> = app
        .client
        .get(app.sim("/_sim/requests?provider=kraken"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verifications: Vec<&Value> = recorded
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .starts_with("/b2b/verifications/")
        })
        .collect();
    assert_eq!(verifications.len(), 1, "{verifications:?}");
    let body = verifications[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("name=\"front\"") && body.contains("name=\"back\""),
        "{body}"
    );

    // Without any attestation the back is still not taken.
    let other = upload_ok(
        &app,
        &id,
        &[
            text("type", "drivers_license"),
            text("side", "front"),
            file(jpeg(4000, &m), None),
        ],
    )
    .await;
    assert_eq!(submission(&other, "kraken")["status"], "not_supported");
    let other_back = upload_ok(
        &app,
        &id,
        &[
            text("type", "drivers_license"),
            text("side", "back"),
            file(jpeg(4000, &m), None),
        ],
    )
    .await;
    let kraken = submission(&other_back, "kraken");
    assert_eq!(kraken["status"], "not_supported", "{other_back}");
    assert_eq!(kraken["last_error"]["code"], "not_supported_by_provider");
}

#[tokio::test]
async fn a_provider_linked_later_takes_a_back_covered_by_its_fronts_attestation() {
    // Both sides uploaded while the user is at Carbn only (which takes no documents); Kraken,
    // linked afterwards, gets them as one attested verification.
    let app = spawn_app().await;
    let mut user = sample_user();
    user["identity_document"] = json!({"type": "national_id", "number": "X1234567", "issuing_country": "DE",
               "expires_on": "2031-01-31"});
    user["providers"] = json!(["carbn"]);
    let id = app.create_user(&user).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = marker();
    let front = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "front"),
            file(jpeg(4000, &m), None),
            text("verification", &attestation()),
        ],
    )
    .await;
    let back = upload_ok(
        &app,
        &id,
        &[
            text("type", "national_id"),
            text("side", "back"),
            file(jpeg(4000, &m), None),
        ],
    )
    .await;
    assert_eq!(submission(&back, "carbn")["status"], "not_supported");
    let response = app
        .client
        .post(app.url(&format!("/v1/users/{id}/providers")))
        .bearer_auth(DEV_KEY)
        .json(&json!({"provider": "kraken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let mut ids = Vec::new();
    for document in [&front, &back] {
        let document_id = document["id"].as_str().unwrap();
        let done = settled(&app, &id, document_id, "kraken").await;
        let kraken = submission(&done, "kraken");
        assert_eq!(kraken["status"], "submitted", "{done}");
        ids.push(kraken["provider_document_id"].clone());
    }
    assert!(ids[0].as_str().is_some_and(|v| v.starts_with("ver_")));
    assert_eq!(ids[0], ids[1], "one verification for both sides");
}
