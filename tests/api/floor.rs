//! The benchmark's floor (`src/bin/floor.rs`) does the gateway's work and answers its bytes:
//! otherwise the ratios `scripts/bench.sh` reports would compare different work.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::{events, sample_user, spawn_app, TestApp, DEV_KEY};

/// The floor binary on the test app's database and simulators, killed on drop.
struct Floor {
    child: Child,
    base: String,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_floor(app: &TestApp) -> Floor {
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_floor"))
        .args(["--port", "0", "--sim", &app.sim_url])
        .env_clear()
        .env("GATEWAY_ENV", "test")
        .env("GATEWAY_CONFIG_DIR", &config_dir)
        .env("DATABASE_URL", app.database_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the floor binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    // The first line is the port; what follows (its warnings and errors) goes to the test's
    // output, read to the end so the floor never blocks on a full pipe.
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = port_tx.send(lines.next());
        for line in lines.map_while(Result::ok) {
            eprintln!("floor: {line}");
        }
    });
    let line = port_rx
        .await
        .unwrap()
        .expect("the floor prints its port")
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("floor listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    Floor {
        base: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// Status, content type and body bytes of a GET with the development key.
async fn get_bytes(app: &TestApp, url: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .client
        .get(url)
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn carbn_user() -> Value {
    // No email tag: Carbn answers `under_review` and sends no webhook, so nothing changes the
    // user between the two reads.
    // A unique email too: Carbn hands back an existing account with the same email, name and
    // birth date.
    let mut user = sample_user();
    user["email"] = json!(format!(
        "{}@example.com",
        user["external_id"].as_str().unwrap()
    ));
    user["providers"] = json!(["carbn"]);
    user
}

#[tokio::test]
async fn the_floor_answers_the_gateways_bytes_for_the_same_user_and_page() {
    let app = spawn_app().await;
    let floor = start_floor(&app).await;
    let user = app.create_user(&carbn_user()).await;
    let id = user["id"].as_str().unwrap();

    let path = format!("/v1/users/{id}");
    let gateway = get_bytes(&app, &app.url(&path)).await;
    let floor_get = get_bytes(&app, &format!("{}{path}", floor.base)).await;
    assert_eq!(gateway.0, 200, "{}", String::from_utf8_lossy(&gateway.2));
    assert_eq!(floor_get, gateway, "GET /v1/users/{{id}}: the same bytes");

    let page = "/v1/users?provider=carbn&limit=50";
    let gateway = get_bytes(&app, &app.url(page)).await;
    let floor_page = get_bytes(&app, &format!("{}{page}", floor.base)).await;
    assert_eq!(gateway.0, 200);
    assert_eq!(
        floor_page, gateway,
        "GET /v1/users?provider=…: the same bytes"
    );

    let unauthenticated = app
        .client
        .get(format!("{}{path}", floor.base))
        .bearer_auth("not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401, "the floor checks the key");
}

#[tokio::test]
async fn a_floor_create_commits_what_a_gateway_create_commits() {
    let app = spawn_app().await;
    let floor = start_floor(&app).await;
    let by_gateway = app.create_user(&carbn_user()).await;
    let response = app
        .client
        .post(format!("{}/v1/users", floor.base))
        .bearer_auth(DEV_KEY)
        .json(&carbn_user())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let by_floor: Value = response.json().await.unwrap();
    let floor_id = by_floor["id"].as_str().unwrap();
    let gateway_id = by_gateway["id"].as_str().unwrap();

    // The same rows: one submission job that succeeded, and the audit trail's types.
    for id in [floor_id, gateway_id] {
        let jobs: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT kind, state, attempts, last_error FROM jobs WHERE payload->>'user_id' = $1",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let settled: Vec<_> = jobs
            .iter()
            .map(|(k, s, a, _)| (k.as_str(), s.as_str(), *a))
            .collect();
        assert_eq!(settled, [("submit_link", "succeeded", 1)], "{id}: {jobs:?}");
    }

    let types = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        types(events(&app, floor_id).await),
        types(events(&app, gateway_id).await)
    );
    // The floor's answer is the user as the gateway then shows it.
    let shown: Value = app
        .get(&format!("/v1/users/{floor_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_floor, shown);
    assert_eq!(
        by_floor["status"], by_gateway["status"],
        "{by_floor}\n{by_gateway}"
    );
    assert_eq!(by_floor["links"][0]["status"], "under_review", "{by_floor}");
    assert!(by_floor["links"][0]["provider_user_id"].is_string());
}
