//! Reconciliation: passes that re-read links from their providers (`POST
//! /v1/reconciliation/runs`, and the poller), the drift report (`GET /v1/reconciliation`), and
//! one pass at a time across gateways sharing a database.

use std::net::TcpListener;
use std::time::Duration;

use onboarding_gateway::app::Application;
use onboarding_gateway::settings::Settings;
use onboarding_gateway::sim::{self, SimConfig};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::*;

/// A routed gateway whose poller is off (passes run through the API only).
async fn spawn_reconciling_app(interval_secs: u64) -> TestApp {
    let db = TestDatabase::create().await;
    let routing = configured_routing();
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.workers.reconcile_interval_secs = interval_secs;
    })
    .await;
    // Polling only: a webhook's re-fetch would change links behind these tests' backs.
    let off = app
        .client
        .put(app.sim("/_sim/webhook-targets"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success());
    app
}

/// A complete user living in Colombia: routed to KillB.
fn killb_user(email: &str) -> Value {
    let mut user = sample_user();
    user["email"] = json!(email);
    user["address"]["country"] = json!("CO");
    user["address"]["region"] = json!("BOG");
    user["identity_document"]["issuing_country"] = json!("CO");
    user
}

fn killb_link(user: &Value) -> &Value {
    user["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["provider"] == "killb")
        .unwrap_or_else(|| panic!("no killb link in {user}"))
}

/// Creates a KillB user and returns (gateway id, KillB id).
async fn create_killb_user(app: &TestApp, email: &str) -> (String, String) {
    let created = app.create_user(&killb_user(email)).await;
    let link = killb_link(&created);
    (
        created["id"].as_str().unwrap().to_owned(),
        link["provider_user_id"].as_str().unwrap().to_owned(),
    )
}

/// Changes a KillB user's status at the simulator without telling the gateway.
async fn change_behind_the_back(sim_url: &str, killb_id: &str, change: Value) {
    let mut body = change;
    body["webhook"] = json!(false);
    let response = reqwest::Client::new()
        .post(format!("{sim_url}/_sim/killb/users/{killb_id}/status"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn run_pass(app: &TestApp) -> Value {
    let response = app
        .client
        .post(app.url("/v1/reconciliation/runs"))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn report(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/v1/reconciliation"))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The rows of one report kind about this user.
fn rows_for<'a>(report: &'a Value, kind: &str, user_id: &str) -> Vec<&'a Value> {
    report[kind]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} in {report}"))
        .iter()
        .filter(|r| r["user_id"] == user_id)
        .collect()
}

async fn user(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/users/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn age_last_sync(pool: &sqlx::PgPool, user_id: &str, secs: i64) {
    sqlx::query(
        "UPDATE provider_links SET last_synced_at = now() - make_interval(secs => $2)
          WHERE user_id = $1",
    )
    .bind(Uuid::parse_str(user_id).unwrap())
    .bind(secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pass_picks_up_a_status_changed_behind_the_gateways_back() {
    let app = spawn_reconciling_app(0).await;
    let (id, killb_id) = create_killb_user(&app, "drifting@example.com").await;
    change_behind_the_back(&app.sim_url, &killb_id, json!({"status": "approved"})).await;

    let run = run_pass(&app).await;
    assert_eq!(run["trigger"], "api");
    assert!(run["checked"].as_u64().unwrap() >= 1, "{run}");
    assert!(run["finished_at"].is_string() && run["duration_ms"].is_u64());
    assert_eq!(
        run["status_changed"],
        json!([{"user_id": id, "provider": "killb", "from": "under_review", "to": "approved"}]),
        "{run}"
    );
    assert_eq!(run["status_changed_count"], 1);
    assert_eq!(run["drift"], 0);
    assert_eq!(run["errors"], 0);

    let now = user(&app, &id).await;
    assert_eq!(killb_link(&now)["status"], "approved");
    assert_eq!(now["status"], "approved");
    assert!(events(&app, &id)
        .await
        .iter()
        .any(|e| e["type"] == "status_changed"
            && e["from"] == "under_review"
            && e["to"] == "approved"
            && e["source"] == "poll"));

    // Nothing changed since: the next pass reports no change, and the run is the last one.
    let again = run_pass(&app).await;
    assert_eq!(again["status_changed"], json!([]));
    let report = report(&app).await;
    assert_eq!(report["last_run"]["id"], again["id"]);
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reconciliation_runs WHERE trigger = 'api' AND finished_at IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(runs, 2);
}

#[tokio::test]
async fn a_provider_reversing_a_final_decision_is_reported_as_drift() {
    let app = spawn_reconciling_app(0).await;
    let (id, killb_id) = create_killb_user(&app, "reversal+reject@example.com").await;
    assert_eq!(killb_link(&user(&app, &id).await)["status"], "rejected");
    change_behind_the_back(&app.sim_url, &killb_id, json!({"status": "approved"})).await;
    // A final link is re-read once it is stale (not synced within the window).
    age_last_sync(&app.pool, &id, 3_600).await;

    let run = run_pass(&app).await;
    assert_eq!(
        run["status_changed"],
        json!([]),
        "a final decision sticks: {run}"
    );
    assert_eq!(run["drift"], 1, "{run}");

    let report = report(&app).await;
    let drift = rows_for(&report, "status_drift", &id);
    assert_eq!(drift.len(), 1, "{report}");
    assert_eq!(drift[0]["provider"], "killb");
    assert_eq!(drift[0]["status"], "rejected");
    assert_eq!(drift[0]["provider_mapped_status"], "approved");
    assert_eq!(drift[0]["provider_status"], "ACTIVE");
    assert_eq!(drift[0]["provider_user_id"], killb_id.as_str());
    assert!(report["status_drift"]["count"].as_i64().unwrap() >= 1);
    assert_eq!(killb_link(&user(&app, &id).await)["status"], "rejected");
    // Ids, statuses and timestamps only: nothing of the user's profile.
    let text = report.to_string();
    assert!(!text.contains("reversal") && !text.contains("C01X00T47"));

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
        metrics.contains("gateway_reconciliation_drift{kind=\"status_drift\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unknown_provider_status_is_listed_for_review() {
    let app = spawn_reconciling_app(0).await;
    let (id, killb_id) = create_killb_user(&app, "unknown@example.com").await;
    change_behind_the_back(
        &app.sim_url,
        &killb_id,
        json!({"provider_status": "UNDER_AUDIT_V3"}),
    )
    .await;

    let run = run_pass(&app).await;
    assert_eq!(run["status_changed"], json!([]));
    assert_eq!(run["errors"], 0);
    let report = report(&app).await;
    let flagged = rows_for(&report, "needs_review", &id);
    assert_eq!(flagged.len(), 1, "{report}");
    assert_eq!(flagged[0]["reason"], "unknown_provider_status");
    assert_eq!(flagged[0]["provider_status"], "UNDER_AUDIT_V3");
    assert_eq!(
        flagged[0]["status"], "under_review",
        "the last status is kept"
    );
    assert_eq!(flagged[0]["provider_mapped_status"], Value::Null);
    assert!(
        rows_for(&report, "status_drift", &id).is_empty(),
        "an unknown status is for review, not drift"
    );
}

#[tokio::test]
async fn an_account_gone_at_the_provider_is_reported_missing() {
    let app = spawn_reconciling_app(0).await;
    let (id, _) = create_killb_user(&app, "vanished@example.com").await;
    // The provider no longer knows the account we recorded.
    sqlx::query("UPDATE provider_links SET provider_user_id = $2 WHERE user_id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .bind(Uuid::new_v4().to_string())
        .execute(&app.pool)
        .await
        .unwrap();

    let run = run_pass(&app).await;
    assert_eq!(run["missing"], 1, "{run}");
    assert_eq!(run["errors"], 0);
    let link = user(&app, &id).await;
    let link = killb_link(&link);
    assert_eq!(link["last_error"]["code"], "missing_at_provider");
    assert_eq!(
        link["status"], "under_review",
        "the status is left as it was"
    );

    let report = report(&app).await;
    let missing = rows_for(&report, "missing_at_provider", &id);
    assert_eq!(missing.len(), 1, "{report}");
    assert_eq!(missing[0]["reason"], "missing_at_provider");
    assert!(
        rows_for(&report, "needs_review", &id).is_empty(),
        "each link shows under one kind"
    );

    // Noticed once: a second pass does not repeat the event.
    run_pass(&app).await;
    let noticed = events(&app, &id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "link_missing_at_provider")
        .count();
    assert_eq!(noticed, 1);
}

#[tokio::test]
async fn a_link_not_synced_within_the_window_is_stale_until_a_pass_reads_it() {
    let app = spawn_reconciling_app(0).await;

    let (id, _) = create_killb_user(&app, "stale@example.com").await;
    assert!(rows_for(&report(&app).await, "stale", &id).is_empty());
    age_last_sync(&app.pool, &id, 3_600).await;

    let before = report(&app).await;
    let stale = rows_for(&before, "stale", &id);
    assert_eq!(stale.len(), 1, "{before}");
    let synced = OffsetDateTime::parse(
        stale[0]["last_synced_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(OffsetDateTime::now_utc() - synced > time::Duration::minutes(59));
    assert_eq!(before["stale_after_secs"], 900);

    run_pass(&app).await;
    let after = report(&app).await;
    assert!(rows_for(&after, "stale", &id).is_empty(), "{after}");
    assert_eq!(after["stale"]["count"], 0);
}

#[tokio::test]
async fn reconciliation_needs_the_ops_scope() {
    let app = spawn_reconciling_app(0).await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/reconciliation"),
        (reqwest::Method::POST, "/v1/reconciliation/runs"),
    ] {
        let forbidden = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(READ_KEY)
            .send()
            .await
            .unwrap();
        assert_problem(forbidden, 403, "forbidden").await;
        let anonymous = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_problem(anonymous, 401, "unauthorized").await;
    }
    let wrong_method = app
        .client
        .delete(app.url("/v1/reconciliation/runs"))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let bad_limit = app
        .client
        .get(app.url("/v1/reconciliation?limit=1000"))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(bad_limit, 422, "validation_failed").await;
    let nothing_yet = report(&app).await;
    assert_eq!(nothing_yet["last_run"], Value::Null);
    assert_eq!(nothing_yet["failed_jobs"]["count"], 0);
}

#[tokio::test]
async fn the_poller_picks_up_a_change_on_its_own() {
    let app = spawn_reconciling_app(1).await;
    let (id, killb_id) = create_killb_user(&app, "polled@example.com").await;
    change_behind_the_back(&app.sim_url, &killb_id, json!({"status": "suspended"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if killb_link(&user(&app, &id).await)["status"] == "suspended" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller did not pick up the change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(events(&app, &id)
        .await
        .iter()
        .any(|e| e["type"] == "status_changed" && e["to"] == "suspended" && e["source"] == "poll"));
    let polls: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reconciliation_runs WHERE trigger = 'poll'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(polls >= 1);
}

/// Gateway settings pointing every provider at a standalone simulator, polling every second.
fn shared_sim_settings(db_url: &str, sim_url: &str) -> Settings {
    let mut s = test_settings(db_url);
    s.routing = configured_routing();
    s.simulator.enabled = false;
    for (provider, key, value) in [
        ("kraken", "base_url", sim_url),
        ("kraken", "api_key", sim::kraken::DEV_API_KEY),
        ("kraken", "api_secret", sim::kraken::DEV_API_SECRET_B64),
        ("killb", "base_url", sim_url),
        ("killb", "email", sim::killb::DEV_EMAIL),
        ("killb", "password", sim::killb::DEV_PASSWORD),
        ("carbn", "base_url", sim_url),
        ("carbn", "api_key", sim::carbn::DEV_API_KEY),
    ] {
        s.providers.set(provider, key, value);
    }
    s.workers.reconcile_interval_secs = 1;
    s.reconciliation.concurrency = 2;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_database_never_reconcile_at_the_same_time() {
    init();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sim = sim::spawn(SimConfig::development(), listener)
        .await
        .unwrap();
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let app = Application::build(shared_sim_settings(&db.url, sim.base_url()))
            .await
            .expect("gateway starts");
        addresses.push(format!("http://127.0.0.1:{}", app.port()));
        tokio::spawn(app.run_until_stopped());
    }
    let client = reqwest::Client::new();
    for i in 0..6 {
        let response = client
            .post(format!("{}/v1/users", addresses[i % 2]))
            .bearer_auth(DEV_KEY)
            .json(&killb_user(&format!("pair{i}@example.com")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let all_created: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Slow provider reads: each pass takes a while, so overlapping passes would show.
    let fault = client
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({"provider": "killb", "latency_ms": 150, "error_rate": 0.0}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());

    // Both pollers tick about every second; an API run on each joins in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let api_runs = futures_util::future::join_all(addresses.iter().map(|a| {
        client
            .post(format!("{a}/v1/reconciliation/runs"))
            .bearer_auth(OPS_KEY)
            .send()
    }))
    .await;
    for response in api_runs {
        assert_eq!(response.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let runs: Vec<(OffsetDateTime, Option<OffsetDateTime>, String, Option<i64>)> = sqlx::query_as(
        "SELECT started_at, finished_at, trigger, (summary->>'checked')::bigint
           FROM reconciliation_runs ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(runs.len() >= 4, "passes ran: {runs:?}");
    assert!(
        runs.iter().any(|r| r.2 == "poll") && runs.iter().filter(|r| r.2 == "api").count() == 2
    );
    for pair in runs.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        let finished = previous
            .1
            .unwrap_or_else(|| panic!("a pass that never finished was followed: {runs:?}"));
        assert!(
            next.0 >= finished,
            "passes overlapped: {previous:?} and {next:?}"
        );
    }
    let instances: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT instance) FROM reconciliation_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(instances, 2, "both gateways ran passes, one at a time");
    for run in runs.iter().filter(|r| r.1.is_some() && r.0 > all_created) {
        assert_eq!(run.3, Some(6), "each later pass read every link: {runs:?}");
    }
}

#[tokio::test]
async fn a_run_waits_for_a_pass_running_elsewhere() {
    let app = spawn_reconciling_app(0).await;
    create_killb_user(&app, "waiting@example.com").await;
    // Another instance's pass, as far as the database can tell: its lock is held.
    let mut other = app.pool.acquire().await.unwrap().detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(onboarding_gateway::store::reconciliation::PASS_LOCK_KEY)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(locked);
    let started = tokio::time::Instant::now();
    let run = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/v1/reconciliation/runs");
        async move { client.post(url).bearer_auth(OPS_KEY).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !run.is_finished(),
        "the run waits while another pass holds the lock"
    );
    // The other instance dies: its session ends and the lock goes with it.
    sqlx::Connection::close(other).await.unwrap();
    let response = run.await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checked"], 1);
}
