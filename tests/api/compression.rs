//! Compression where it pays (`src/api/compression.rs`): a large answer is gzipped for a client
//! that takes gzip, a small one goes as it is, and neither changes for a client that takes none.

use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, VARY};
use serde_json::Value;

use crate::helpers::{gunzip, sample_user, spawn_app, DEV_KEY};
use onboarding_gateway::api::compression::MIN_COMPRESSED_BYTES;

#[tokio::test]
async fn large_answers_are_gzipped_for_a_client_that_takes_gzip() {
    let app = spawn_app().await;
    let plain = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(
        plain.headers()[VARY],
        "accept-encoding",
        "a cache must key on it"
    );
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() as u64 > MIN_COMPRESSED_BYTES);

    let packed = app
        .client
        .get(app.url("/openapi.json"))
        .header(ACCEPT_ENCODING, "br;q=1.0, gzip;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(packed.status(), 200);
    assert_eq!(packed.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(packed.headers()[VARY], "accept-encoding");
    let packed = packed.bytes().await.unwrap();
    assert!(
        packed.len() < plain.len() / 3,
        "{} of {}",
        packed.len(),
        plain.len()
    );
    assert_eq!(gunzip(&packed), plain.to_vec());
}

#[tokio::test]
async fn small_answers_go_as_they_are_with_no_vary() {
    let app = spawn_app().await;
    let user = app.create_user(&sample_user()).await;
    let id = user["id"].as_str().unwrap();
    for path in [format!("/v1/users/{id}"), "/v1/users/not-a-uuid".to_owned()] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(DEV_KEY)
            .header(ACCEPT_ENCODING, "gzip, deflate")
            .send()
            .await
            .unwrap();
        assert!(response.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        assert!(
            response.headers().get(VARY).is_none(),
            "{path}: the same bytes for all"
        );
        let body = response.bytes().await.unwrap();
        assert!(
            (body.len() as u64) < MIN_COMPRESSED_BYTES,
            "{path}: {} bytes",
            body.len()
        );
        serde_json::from_slice::<Value>(&body).expect("plain JSON");
    }
}

#[tokio::test]
async fn a_client_that_refuses_gzip_gets_identity() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .header(ACCEPT_ENCODING, "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get(CONTENT_ENCODING).is_none());
    serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).expect("plain JSON");
}
