//! Abuse limits, tested as a hostile client would hit them: JSON nesting depth and array
//! length (422 naming the path, never a 5xx), clients that send their head or body slowly
//! (408 or a closed connection), idle keep-alive connections, and webhook floods (429).

use std::time::{Duration, Instant};

use onboarding_gateway::api::body::{MAX_JSON_DEPTH, MAX_JSON_ITEMS};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn post_raw(app: &TestApp, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/v1/users"))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection or `limit` passes; what arrived, and whether
/// the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&answer).into(), true),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&answer).into(), false),
        }
    }
}

#[tokio::test]
async fn nesting_ten_thousand_deep_is_a_422_naming_the_path() {
    let app = spawn_app().await;
    let depth = 10_000;
    // Closed objects inside metadata, unclosed arrays, and arrays at the top level.
    let closed = format!(
        r#"{{"external_id":"x","metadata":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let problem = assert_problem(post_raw(&app, closed).await, 422, "validation_failed").await;
    let want = format!("metadata{}", ".a".repeat(MAX_JSON_DEPTH - 1));
    assert_eq!(field_errors(&problem), vec![(want, "too_deep".to_owned())]);

    let unclosed = format!(r#"{{"metadata":{}"#, "[".repeat(depth));
    let problem = assert_problem(post_raw(&app, unclosed).await, 422, "validation_failed").await;
    let want = format!("metadata{}", "[0]".repeat(MAX_JSON_DEPTH - 1));
    assert_eq!(field_errors(&problem), vec![(want, "too_deep".to_owned())]);

    let top = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let problem = assert_problem(post_raw(&app, top).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["code"], "too_deep");

    // PATCH (merge patch) bodies too.
    let user = app.create_user(&sample_user()).await;
    let id = user["id"].as_str().unwrap();
    let patch = format!(
        r#"{{"metadata":{}null{}}}"#,
        r#"{"k":"#.repeat(depth),
        "}".repeat(depth)
    );
    let response = app
        .client
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(DEV_KEY)
        .header("content-type", "application/merge-patch+json")
        .body(patch)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["code"], "too_deep");

    // The server is fine afterwards.
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn long_arrays_are_a_422_naming_the_path() {
    let app = spawn_app().await;
    let mut user = sample_user();
    user["metadata"] = json!({ "list": vec![0; MAX_JSON_ITEMS + 1] });
    let problem = assert_problem(
        post_raw(&app, user.to_string()).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        vec![("metadata.list".to_owned(), "too_many_items".to_owned())]
    );
    // A 1 MiB body of tiny items never becomes a 500k-element array.
    let items = vec!["0"; 400_000].join(",");
    let body = format!(r#"{{"nationalities":[{items}]}}"#);
    let problem = assert_problem(post_raw(&app, body).await, 422, "validation_failed").await;
    assert_eq!(
        field_errors(&problem),
        vec![("nationalities".to_owned(), "too_many_items".to_owned())]
    );
}

#[tokio::test]
async fn a_client_sending_its_head_slowly_is_cut_off() {
    let app = spawn_app_with(TestDatabase::create().await, |s| {
        s.server.client_request_timeout_secs = 1;
    })
    .await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    // Slowloris: a partial head, then one more header line now and then.
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    trickle.await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed && (answer.is_empty() || answer.starts_with("HTTP/1.1 408")),
        "expected 408 or a closed connection, got {answer:?} (closed: {closed})"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_client_sending_its_body_slowly_gets_408() {
    let app = spawn_app_with(TestDatabase::create().await, |s| {
        s.server.body_read_timeout_secs = 1;
    })
    .await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEV_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"external_id\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(closed, "the connection is closed after a 408");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with(TestDatabase::create().await, |s| {
        s.server.keep_alive_secs = 1;
    })
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection is closed after keep_alive_secs");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn webhook_floods_are_rate_limited_per_provider_and_peer() {
    let app = spawn_app_with(TestDatabase::create().await, |s| {
        s.rate_limit.webhook_per_second = 1;
        s.rate_limit.webhook_burst = 3;
    })
    .await;
    let post = |provider: &str| {
        app.client
            .post(app.url(&format!("/v1/webhooks/{provider}")))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    // Unsigned deliveries are refused, and still count against the bucket.
    for _ in 0..3 {
        assert_problem(post("kraken").await.unwrap(), 401, "invalid_signature").await;
    }
    let limited = post("kraken").await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "rate_limited").await;
    // Another provider has its own bucket.
    assert_problem(post("killb").await.unwrap(), 401, "invalid_signature").await;
    // API requests are not affected.
    assert_eq!(app.get("/v1/providers").await.status(), 200);
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_problem(post("kraken").await.unwrap(), 401, "invalid_signature").await;

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
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_webhook_verifications_total{")
                && l.contains("provider=\"kraken\"")
                && l.contains("result=\"rate_limited\"")),
        "{metrics}"
    );
}

/// Found by schemathesis: a `%00` in a list filter reached Postgres (which refuses NUL in
/// text) and answered 500. NUL is now refused at the edge, in query strings and JSON bodies.
#[tokio::test]
async fn nul_characters_are_a_422_not_a_500() {
    let app = spawn_app().await;
    for query in [
        "/v1/users?email=a%00b",
        "/v1/users?external_id=%00",
        "/v1/jobs?kind=x%00",
    ] {
        let response = app
            .client
            .get(app.url(query))
            .bearer_auth(DEV_KEY)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["code"], "invalid_format", "{query}");
    }
    let mut user = sample_user();
    user["external_id"] = json!("crm\u{0}1");
    user["metadata"] = json!({"note": "a\u{0}b"});
    let problem = assert_problem(
        post_raw(&app, user.to_string()).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&problem),
        vec![("external_id".to_owned(), "invalid_format".to_owned())]
    );
}

#[tokio::test]
async fn beyond_the_requests_in_flight_limit_a_request_is_refused_at_once_with_503() {
    let db = TestDatabase::create().await;
    let app = spawn_app_with(db, |s| s.server.max_requests_in_flight = 1).await;
    // No webhooks: KillB's `USER`/`CREATE` delivery is a `/v1/` request too, and could take the
    // one slot just before a request this test expects to be admitted.
    let off = app
        .client
        .put(app.sim("/_sim/webhook-targets"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success());
    for provider in ["kraken", "killb", "carbn"] {
        let fault = app
            .client
            .post(app.sim("/_sim/faults"))
            .json(&json!({"provider": provider, "latency_ms": 1500, "error_rate": 0.0}))
            .send()
            .await
            .unwrap();
        assert!(fault.status().is_success());
    }
    // One create waits on the slow provider: the one request this gateway takes at a time.
    let mut body = sample_user();
    body["providers"] = json!(["killb"]);
    let slow = {
        let app_url = app.url("/v1/users");
        let client = app.client.clone();
        tokio::spawn(async move {
            client
                .post(app_url)
                .bearer_auth(DEV_KEY)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait (asking the simulator, not the API, whose one slot is taken) until the create is at
    // the provider: from then on it holds the slot for 1.5 s at least.
    for _ in 0..250 {
        let seen: Vec<serde_json::Value> = app
            .client
            .get(app.sim("/_sim/requests?provider=killb"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = app.get("/v1/users?limit=1").await;
    // Refused while the admitted request is still in flight: not queued behind it.
    assert!(!slow.is_finished());
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.headers().contains_key("x-request-id"));
    assert_problem(refused, 503, "overloaded").await;
    // (The registry is shared by every app in this test binary: values are checked where only
    // this test can have made them.)
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gateway_http_requests_in_flight "),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_http_requests_in_flight_limit "));
    // Health, metrics and docs answer whatever the load.
    assert_eq!(app.get("/health/live").await.status(), 200);

    assert_eq!(slow.await.unwrap(), 201, "the admitted request completes");
    let created: serde_json::Value = app.get("/v1/users?limit=1").await.json().await.unwrap();
    assert_eq!(
        created["data"][0]["links"][0]["provider"], "killb",
        "{created}"
    );
    let admitted = app.get("/v1/users?limit=1").await;
    assert_eq!(admitted.status(), 200, "the slot is free again");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gateway_http_requests_shed_total "),
        "{metrics}"
    );
}
