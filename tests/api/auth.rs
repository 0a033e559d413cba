use crate::helpers::*;

#[tokio::test]
async fn missing_or_unknown_keys_are_401() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/users")).send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
    let response = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth("sk_wrong")
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
    let response = app
        .client
        .get(app.url("/v1/users"))
        .basic_auth("user", Some(DEV_KEY))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = spawn_app().await;
    let read = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(READ_KEY)
        .json(&sample_user())
        .send()
        .await
        .unwrap();
    let problem = assert_problem(write, 403, "forbidden").await;
    assert!(problem["detail"].as_str().unwrap().contains("users:write"));
    let ops_reading = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(ops_reading, 403, "forbidden").await;
}

#[tokio::test]
async fn auth_is_checked_before_the_body_is_read() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/users"))
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn health_docs_and_metrics_need_no_key() {
    let app = spawn_app().await;
    for path in [
        "/health/live",
        "/health/ready",
        "/openapi.json",
        "/metrics",
        "/docs/",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| {
        s.rate_limit.per_key_per_second = 1;
        s.rate_limit.burst = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/users").await.status(), 200);
    }
    let limited = app.get("/v1/users").await;
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_problem(limited, 429, "rate_limited").await;
    // Another key has its own budget; health checks are never limited.
    let other = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
