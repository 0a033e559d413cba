//! Hostile and malformed input is always a 4xx problem document, never a 5xx.

use crate::helpers::*;

async fn raw_post(app: &TestApp, content_type: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/users")).bearer_auth(DEV_KEY);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test]
async fn broken_json_is_400() {
    let app = spawn_app().await;
    for body in [
        &b"{"[..],
        b"{\"external_id\": }",
        b"not json",
        b"",
        b"[1,2,3]",
        b"\"string\"",
        b"null",
        b"\xff\xfe\x00",
    ] {
        let response = raw_post(&app, Some("application/json"), body.to_vec()).await;
        assert_problem(response, 400, "malformed_request").await;
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_4xx() {
    let app = spawn_app().await;
    let mut body = String::from("{\"metadata\":");
    body.push_str(&"[".repeat(50_000));
    let response = raw_post(&app, Some("application/json"), body.into_bytes()).await;
    // The depth limit (tests/api/limits.rs) is reached before the missing brackets.
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn huge_bodies_are_413() {
    let app = spawn_app().await;
    let mut user = sample_user();
    user["metadata"] = serde_json::json!({ "blob": "x".repeat(2 * 1024 * 1024) });
    let response = raw_post(
        &app,
        Some("application/json"),
        user.to_string().into_bytes(),
    )
    .await;
    assert_problem(response, 413, "payload_too_large").await;

    // A chunked upload without Content-Length is cut off too (raw HTTP, as a hostile client).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEV_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..40 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may close early once it has answered
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn wrong_content_types_are_415() {
    let app = spawn_app().await;
    let body = sample_user().to_string().into_bytes();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/merge-patch+json"),
    ] {
        let response = raw_post(&app, ct, body.clone()).await;
        assert_problem(response, 415, "unsupported_media_type").await;
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_unknown_methods_405() {
    let app = spawn_app().await;
    assert_problem(app.get("/v2/users").await, 404, "not_found").await;
    assert_problem(app.get("/v1/users/a/b/c").await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_problem(response, 405, "method_not_allowed").await;
    let response = app
        .client
        .put(app.url(&format!("/v1/users/{}", uuid::Uuid::now_v7())))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
    let response = app
        .client
        .post(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn bad_query_strings_are_4xx() {
    let app = spawn_app().await;
    for query in [
        "?limit=%ZZ",
        "?limit=-1",
        "?limit=99999999999999999999999",
        "?email",
    ] {
        let response = app.get(&format!("/v1/users{query}")).await;
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{query}: {status}");
    }
}
