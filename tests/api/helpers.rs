//! Spawning the gateway for a test: a fresh database, port 0, and a client.

use std::sync::Once;

use onboarding_gateway::app::Application;
use onboarding_gateway::auth::{sha256_hex, Scope};
use onboarding_gateway::settings::{ApiKeySettings, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

pub const DEV_KEY: &str = "dev_sk_onboarding_gateway_local";
pub const READ_KEY: &str = "test_sk_read_only";
pub const OPS_KEY: &str = "test_sk_ops_only";

static INIT: Once = Once::new();

/// The server the tests create their databases on (the admin connection).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The server URL `admin` with its database path replaced by `name`.
pub fn database_on(admin: &str, name: &str) -> String {
    let admin = admin.to_owned();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base.as_str(),
    };
    format!("{server}/{name}{query}")
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The admin connection it was created through (and is dropped through).
    admin: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        Self::create_on(&admin_url()).await
    }

    /// A fresh database on the server of the admin URL `admin_url`.
    pub async fn create_on(admin_url: &str) -> Self {
        let name = format!("gw_test_{}", Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(admin_url).await.expect(
            "tests need Postgres: run scripts/test.sh, or set DATABASE_URL to a server URL",
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create the test database (the role needs CREATEDB)");
        admin.close().await;
        let url = database_on(admin_url, &name);
        Self {
            name,
            url,
            admin: admin_url.to_owned(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Dropping needs async I/O; do it on a short-lived runtime of its own.
        let (name, admin_url) = (self.name.clone(), self.admin.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    /// The in-process provider simulators' base URL.
    pub sim_url: String,
    pub client: reqwest::Client,
    pub pool: sqlx::PgPool,
    /// The app's keyring (same keys), to open what it sealed.
    pub keyring: onboarding_gateway::crypto::Keyring,
    /// Held so the database lives as long as the app, and is dropped after it.
    _db: TestDatabase,
}

pub fn test_settings(database_url: &str) -> Settings {
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from_dir(&config_dir, "test").expect("test settings");
    settings.database.url = SecretString::from(database_url.to_owned());
    settings.database.max_connections = 10;
    settings.server.port = 0;
    // The API tests exercise the gateway's own resource; they route nowhere unless a test
    // restores the configured routing (see `spawn_app_routed`).
    settings.routing = Default::default();
    settings.auth.api_keys.push(ApiKeySettings {
        name: "reader".into(),
        key_sha256: sha256_hex(READ_KEY.as_bytes()),
        scopes: vec![Scope::UsersRead],
    });
    settings.auth.api_keys.push(ApiKeySettings {
        name: "ops".into(),
        key_sha256: sha256_hex(OPS_KEY.as_bytes()),
        scopes: vec![Scope::Ops],
    });
    settings
}

pub fn init() {
    INIT.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::create().await;
    spawn_app_with(db, |_| {}).await
}

/// The routing `config/default.toml` configures (the test settings route nowhere).
pub fn configured_routing() -> onboarding_gateway::settings::RoutingSettings {
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    Settings::load_from_dir(&config_dir, "test")
        .expect("settings")
        .routing
}

/// An app that routes as `config/default.toml` says (the provider tests).
pub async fn spawn_app_routed() -> TestApp {
    let db = TestDatabase::create().await;
    let routing = configured_routing();
    spawn_app_with(db, move |s| s.routing = routing).await
}

pub async fn spawn_app_with(db: TestDatabase, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init();
    let mut settings = test_settings(&db.url);
    adjust(&mut settings);
    let keyring = onboarding_gateway::crypto::Keyring::from_settings(&settings.encryption)
        .expect("test keys are valid");
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let sim_url = app.simulator_url().unwrap_or_default().to_owned();
    let pool = app.pool().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        sim_url,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        pool,
        keyring,
        _db: db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn sim(&self, path: &str) -> String {
        format!("{}{}", self.sim_url, path)
    }

    pub async fn post_user(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/users"))
            .bearer_auth(DEV_KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_user(&self, body: &Value) -> Value {
        let response = self.post_user(body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "create failed: {json}");
        json
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(DEV_KEY)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(DEV_KEY)
            .send()
            .await
            .unwrap()
    }

    /// The URL of this app's own database (to start a second instance on it).
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// Sets a simulator fault (`{provider, status, error_rate, …}`, see `sim/faults.rs`).
    pub async fn set_fault(&self, fault: Value) {
        let response = self
            .client
            .post(self.sim("/_sim/faults"))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "fault not set: {fault}");
    }

    pub async fn patch_user(&self, id: &str, patch: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/v1/users/{id}")))
            .bearer_auth(DEV_KEY)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// The country the configured routing sends to each provider.
pub fn country_for(provider: &str) -> &'static str {
    match provider {
        "kraken" => "US",
        "killb" => "CO",
        "carbn" => "DE",
        other => panic!("no such provider {other}"),
    }
}

/// A complete user who satisfies every provider's requirements, living in `country`.
pub fn complete_user(country: &str, email: &str) -> Value {
    let mut user = sample_user();
    user["email"] = json!(email);
    user["address"]["country"] = json!(country);
    user["address"]["region"] = json!("BOG");
    user["identity_document"]["issuing_country"] = json!(country);
    user
}

/// The JSON answer to a `GET` of `url` with the development key (a gateway's routes; the
/// simulators' control routes ignore the key).
pub async fn get_json(url: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A complete, valid canonical user (the OpenAPI document's example) with a unique external_id.
pub fn sample_user() -> Value {
    json!({
        "external_id": format!("crm-{}", Uuid::new_v4().simple()),
        "type": "individual",
        "email": "jane.doe@example.com",
        "phone": "+4915112345678",
        "name": { "first": "Jane", "middle": "Q", "last": "Doe" },
        "date_of_birth": "1990-01-15",
        "birth_place": { "city": "Berlin", "country": "DE" },
        "nationalities": ["DE"],
        "citizenship": "DE",
        "address": { "line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
                     "region": "BE", "postal_code": "10115", "country": "DE" },
        "identity_document": { "type": "passport", "number": "C01X00T47", "issuing_country": "DE",
                               "issued_on": "2019-05-01", "expires_on": "2029-04-30" },
        "tax_ids": [ { "type": "steuer_id", "number": "12345678901", "issuing_country": "DE" } ],
        "employment": { "status": "employed", "industry": "computers_and_it",
                        "occupation": "Software Engineer", "employer_name": "Acme GmbH" },
        "financial_profile": { "source_of_funds": "employment", "total_assets_usd": "10k_100k",
                               "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k" },
        "language": "de",
        "terms": { "version": 3, "accepted_at": "2026-11-01T09:30:00Z" },
        "metadata": { "any": "caller-owned JSON, stored and returned, never sent to providers" }
    })
}

/// Only the fields every user must have.
pub fn minimal_user() -> Value {
    json!({
        "external_id": format!("crm-{}", Uuid::new_v4().simple()),
        "type": "individual",
        "email": "min@example.com",
        "name": { "first": "Min", "last": "Imal" },
        "date_of_birth": "1985-06-30",
        "address": { "country": "US" }
    })
}

/// Asserts a problem document with this status and code, returning it.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(content_type, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    assert_eq!(body["type"], format!("/problems/{code}"));
    assert!(body["errors"].is_array());
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "request_id matches the x-request-id header"
    );
    body
}

/// The (field, code) pairs of a problem's `errors`.
pub fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A log writer that keeps everything written, for the tests that own the global subscriber
/// (`tests/log_audit.rs`, `tests/tracing.rs`).
#[allow(dead_code)] // the `api` binary includes this file too, without using it
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The user's audit trail (the first page, oldest first).
pub async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/v1/users/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

/// The user's link at `provider`, from a user resource.
pub fn link<'a>(user: &'a Value, provider: &str) -> &'a Value {
    user["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} link in {user}"))
}

/// The bytes of a gzip stream, unpacked.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}
