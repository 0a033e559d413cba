//! `GET /metrics` carries every series the README's "Operating" section tells ops to watch,
//! with the labels it promises; and every response says how much of its time the gateway
//! spent waiting on providers (`Server-Timing`).

use serde_json::{json, Value};

use crate::helpers::*;

async fn metrics(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the first sample of `name` whose labels include every `key="value"` pair.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn german_user(email: &str) -> Value {
    let mut user = sample_user();
    user["email"] = json!(email);
    user
}

/// `Server-Timing: gateway;dur=…, provider;dur=…` as (gateway ms, provider ms).
fn server_timing(response: &reqwest::Response) -> (f64, f64) {
    let value = response
        .headers()
        .get("server-timing")
        .expect("a Server-Timing header")
        .to_str()
        .unwrap()
        .to_owned();
    let dur = |name: &str| -> f64 {
        value
            .split(',')
            .map(str::trim)
            .find_map(|m| m.strip_prefix(&format!("{name};dur=")))
            .unwrap_or_else(|| panic!("no {name} in Server-Timing: {value}"))
            .parse()
            .unwrap()
    };
    (dur("gateway"), dur("provider"))
}

#[tokio::test]
async fn metrics_cover_requests_provider_calls_jobs_replays_and_the_pool() {
    let app = spawn_app_routed().await;
    // A create (DE routes to Carbn), replayed once with the same Idempotency-Key.
    let user = german_user("metrics+approve@example.com");
    let send = || {
        app.client
            .post(app.url("/v1/users"))
            .bearer_auth(DEV_KEY)
            .header("idempotency-key", "metrics-replay-1")
            .json(&user)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let id = first.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.get(&format!("/v1/users/{id}")).await.status(), 200);

    let text = metrics(&app).await;
    let http = "gateway_http_request_duration_seconds_count";
    assert!(
        sample(
            &text,
            http,
            &[
                ("method", "POST"),
                ("route", "/v1/users"),
                ("status", "201")
            ]
        )
        .is_some_and(|n| n >= 2.0),
        "requests by route template and status:\n{text}"
    );
    assert!(
        sample(
            &text,
            http,
            &[
                ("method", "GET"),
                ("route", "/v1/users/{id}"),
                ("status", "200")
            ]
        )
        .is_some(),
        "the route template, never the raw path"
    );
    assert!(!text.contains(&id), "no raw path or id in a label");
    assert!(
        text.contains("gateway_http_request_duration_seconds_bucket{"),
        "a histogram"
    );
    for operation in ["accept_terms", "create_user"] {
        assert!(
            sample(
                &text,
                "gateway_provider_call_duration_seconds_count",
                &[
                    ("provider", "carbn"),
                    ("operation", operation),
                    ("outcome", "ok")
                ]
            )
            .is_some_and(|n| n >= 1.0),
            "provider calls by provider, operation and outcome ({operation}):\n{text}"
        );
    }
    assert!(sample(&text, "gateway_idempotent_replays_total", &[]).is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "gateway_db_pool_connections", &[]).is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "gateway_db_pool_idle_connections", &[]).is_some());
    assert_eq!(
        sample(&text, "gateway_db_pool_max_connections", &[]),
        Some(10.0),
        "the configured pool size, to read saturation against"
    );
    for kind in ["submit_link", "update_link", "notify", "erase_link"] {
        assert!(
            sample(&text, "gateway_job_queue_depth", &[("kind", kind)]).is_some(),
            "queue depth of {kind}, present even while empty:\n{text}"
        );
        assert!(
            sample(&text, "gateway_job_oldest_age_seconds", &[("kind", kind)])
                .is_some_and(|age| age >= 0.0),
            "oldest age of {kind}"
        );
    }
}

#[tokio::test]
async fn a_job_out_of_attempts_is_counted_as_a_failure() {
    let db = TestDatabase::create().await;
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let routing = onboarding_gateway::settings::Settings::load_from_dir(&config_dir, "test")
        .unwrap()
        .routing;
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.workers.max_attempts = 1;
    })
    .await;
    let fault = app
        .client
        .post(app.sim("/_sim/faults"))
        .json(&json!({"provider": "carbn", "status": 503, "error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    app.create_user(&german_user("exhausted@example.com")).await;

    let text = metrics(&app).await;
    assert!(
        sample(
            &text,
            "gateway_job_failures_total",
            &[("kind", "submit_link"), ("reason", "exhausted")]
        )
        .is_some_and(|n| n >= 1.0),
        "job failures by kind and reason:\n{text}"
    );
    assert!(
        sample(
            &text,
            "gateway_provider_call_duration_seconds_count",
            &[("provider", "carbn"), ("outcome", "unavailable")]
        )
        .is_some_and(|n| n >= 1.0),
        "a failed provider call is counted with its outcome:\n{text}"
    );
}

#[tokio::test]
async fn server_timing_splits_the_gateways_time_from_the_providers() {
    let app = spawn_app_routed().await;
    let response = app
        .post_user(&german_user("timing+approve@example.com"))
        .await;
    assert_eq!(response.status(), 201);
    let (gateway, provider) = server_timing(&response);
    assert!(provider > 0.0, "a routed create waits on Carbn");
    assert!(gateway >= provider, "provider time is part of the total");
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let read = app.get(&format!("/v1/users/{id}")).await;
    assert_eq!(read.status(), 200);
    let (gateway, provider) = server_timing(&read);
    assert_eq!(provider, 0.0, "a read calls no provider");
    assert!(gateway > 0.0);

    // Errors carry it too (a problem document made by the gateway alone).
    let missing = app.get("/v1/users/not-a-uuid").await;
    assert!(missing.status().is_client_error());
    assert_eq!(server_timing(&missing).1, 0.0);
}

/// Every kind's queue-depth gauge, `erase_link` included, reads the jobs waiting and drops to 0
/// once its queue drains (it never keeps its last non-zero depth).
#[tokio::test]
async fn every_kinds_queue_depth_drops_to_zero_when_its_queue_drains() {
    use onboarding_gateway::store::jobs::{self, JobKind};

    let app = spawn_app().await;
    // One waiting job of each kind, due far in the future so no worker takes it.
    for kind in JobKind::ALL {
        sqlx::query(
            "INSERT INTO jobs (id, kind, queue_key, payload, run_at)
             VALUES ($1, $2, $3, '{}', now() + interval '1 day')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(kind.as_str())
        .bind(format!("depth-test:{kind}"))
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let gauges = |depths: &[jobs::QueueDepth]| {
        // A recorder of this test's own, so other tests' workers cannot move the gauges.
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            onboarding_gateway::workers::record_queue_depths(depths)
        });
        handle.render()
    };

    let waiting = gauges(&jobs::depth_by_kind(&app.pool).await.unwrap());
    for kind in JobKind::ALL {
        assert_eq!(
            sample(
                &waiting,
                "gateway_job_queue_depth",
                &[("kind", kind.as_str())]
            ),
            Some(1.0),
            "one {kind} job waiting:\n{waiting}"
        );
    }

    sqlx::query("UPDATE jobs SET state = 'succeeded'")
        .execute(&app.pool)
        .await
        .unwrap();
    let drained = gauges(&jobs::depth_by_kind(&app.pool).await.unwrap());
    for kind in JobKind::ALL {
        assert_eq!(
            sample(
                &drained,
                "gateway_job_queue_depth",
                &[("kind", kind.as_str())]
            ),
            Some(0.0),
            "the {kind} queue drained:\n{drained}"
        );
        assert_eq!(
            sample(
                &drained,
                "gateway_job_oldest_age_seconds",
                &[("kind", kind.as_str())]
            ),
            Some(0.0),
            "no {kind} job waiting, no age"
        );
    }
}
