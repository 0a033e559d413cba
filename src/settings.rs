//! Layered configuration: `config/default.toml`, `config/{GATEWAY_ENV}.toml`, the file named by
//! `GATEWAY_CONFIG_FILE` or `--config`, `GATEWAY__SECTION__KEY` variables, then `DATABASE_URL`.
//!
//! Secrets are [`SecretString`]s: they never print in `Debug` output or logs. Every error names
//! the key that is wrong, in one line, so a bad deployment fails at start-up and says why.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::provider::ProviderId;

/// SHA-256 of the development API key named in the README; refused in production.
pub const DEV_API_KEY_SHA256: &str =
    "e4f960b5e8cb941a425d3d274be6e08610c61678dcc0a7c1521be5af5b3d7828";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub simulator: SimulatorSettings,
    #[serde(default)]
    pub providers: ProviderSections,
    #[serde(default)]
    pub outbound: OutboundSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub routing: RoutingSettings,
    #[serde(default)]
    pub workers: WorkerSettings,
    #[serde(default)]
    pub reconciliation: ReconciliationSettings,
    #[serde(default)]
    pub notifications: NotificationSettings,
    #[serde(default)]
    pub documents: DocumentSettings,
    pub verification: VerificationSettings,
    pub encryption: EncryptionSettings,
    /// The deployment environment (`GATEWAY_ENV`), not read from files.
    #[serde(skip)]
    pub environment: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(default = "default_client_request_timeout")]
    pub client_request_timeout_secs: u64,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Connections each worker thread serves at once; more wait to be accepted.
    #[serde(default = "default_max_connections_per_worker")]
    pub max_connections_per_worker: usize,
    /// API requests (`/v1/…`) worked on at once in this process; one more gets `503
    /// overloaded` with `Retry-After` (0: no limit).
    #[serde(default = "default_max_requests_in_flight")]
    pub max_requests_in_flight: usize,
    /// Seconds an idle keep-alive connection is kept open (0 turns keep-alive off).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Seconds a request body may take to arrive once the head is read (then 408).
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// Seconds given to a client to acknowledge the connection's shutdown before it is dropped.
    #[serde(default = "default_client_disconnect_timeout")]
    pub client_disconnect_timeout_secs: u64,
}

fn default_client_request_timeout() -> u64 {
    10
}
fn default_keep_alive() -> u64 {
    5
}
fn default_body_read_timeout() -> u64 {
    30
}
fn default_client_disconnect_timeout() -> u64 {
    2
}
fn default_shutdown_timeout() -> u64 {
    15
}
fn default_max_connections_per_worker() -> usize {
    512
}
fn default_max_requests_in_flight() -> usize {
    512
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout_secs: u64,
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout_secs: u64,
}

fn default_max_connections() -> u32 {
    20
}
fn default_acquire_timeout() -> u64 {
    3
}
fn default_startup_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(default)]
    pub api_keys: Vec<ApiKeySettings>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Scope {
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "ops")]
    Ops,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::Ops => "ops",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub name: String,
    /// Lowercase hex SHA-256 of the key; the key itself is never configured.
    pub key_sha256: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    #[serde(default)]
    pub enabled: bool,
}

/// The `[providers.<id>]` sections as configured, each read by its provider
/// (`providers::<id>::settings`) when the gateway starts: settings stay plain data, and a
/// provider's keys are defined in its own folder. `Debug` shows the section names only (the
/// sections hold credentials).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ProviderSections(BTreeMap<String, config::Value>);

impl std::fmt::Debug for ProviderSections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ProviderSections {
    /// The configured section names, known providers or not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The section `[providers.<name>]`, if configured.
    pub fn get(&self, name: &str) -> Option<&config::Value> {
        self.0.get(name)
    }

    /// Sets `key` in `[providers.<name>]`, creating the section (tests and tools).
    pub fn set(&mut self, name: &str, key: &str, value: impl Into<config::Value>) {
        let section = self.0.entry(name.to_owned()).or_insert_with(|| {
            config::Value::new(None, config::ValueKind::Table(Default::default()))
        });
        let mut table = section.clone().into_table().unwrap_or_default();
        table.insert(key.to_owned(), value.into());
        *section = config::Value::new(None, config::ValueKind::Table(table));
    }

    /// Removes `key` from `[providers.<name>]` (tests and tools).
    pub fn unset(&mut self, name: &str, key: &str) {
        if let Some(section) = self.0.get_mut(name) {
            let mut table = section.clone().into_table().unwrap_or_default();
            table.remove(key);
            *section = config::Value::new(None, config::ValueKind::Table(table));
        }
    }

    /// Sets every key of `section` (JSON, e.g. a simulator's development section) in
    /// `[providers.<name>]`.
    pub fn lay_over(&mut self, name: &str, section: serde_json::Map<String, serde_json::Value>) {
        for (key, value) in section {
            self.set(name, &key, config_value(value));
        }
    }

    /// A key of a section as text, if set (tests and diagnostics).
    pub fn text(&self, name: &str, key: &str) -> Option<String> {
        let table = self.get(name)?.clone().into_table().ok()?;
        table.get(key)?.clone().into_string().ok()
    }

    /// Removes a section.
    pub fn remove(&mut self, name: &str) -> Option<config::Value> {
        self.0.remove(name)
    }
}

/// A JSON value as a configuration value.
pub fn config_value(json: serde_json::Value) -> config::Value {
    use serde_json::Value;
    let kind = match json {
        Value::Null => config::ValueKind::Nil,
        Value::Bool(b) => config::ValueKind::Boolean(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => config::ValueKind::I64(i),
            None => config::ValueKind::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => config::ValueKind::String(s),
        Value::Array(items) => {
            config::ValueKind::Array(items.into_iter().map(config_value).collect())
        }
        Value::Object(map) => {
            config::ValueKind::Table(map.into_iter().map(|(k, v)| (k, config_value(v))).collect())
        }
    };
    config::Value::new(None, kind)
}

/// Per-API-key request limits (token bucket per key and instance); 0 disables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    #[serde(default = "default_rate_per_second")]
    pub per_key_per_second: u32,
    #[serde(default = "default_rate_burst")]
    pub burst: u32,
    /// Webhook deliveries per second per provider and peer address (0 = unlimited).
    #[serde(default = "default_webhook_rate_per_second")]
    pub webhook_per_second: u32,
    #[serde(default = "default_webhook_burst")]
    pub webhook_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_key_per_second: default_rate_per_second(),
            burst: default_rate_burst(),
            webhook_per_second: default_webhook_rate_per_second(),
            webhook_burst: default_webhook_burst(),
        }
    }
}

fn default_webhook_rate_per_second() -> u32 {
    50
}
fn default_webhook_burst() -> u32 {
    200
}

fn default_rate_per_second() -> u32 {
    200
}
fn default_rate_burst() -> u32 {
    400
}

/// Timeouts for calls to providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The whole exchange, from connecting to the last byte of the answer.
    #[serde(default = "default_request_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: default_connect_timeout_ms(),
            timeout_ms: default_request_timeout_ms(),
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    pub default_provider: Option<ProviderId>,
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub countries: Vec<String>,
    pub provider: ProviderId,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval_secs: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Jobs run at once by this instance.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How often an idle worker looks for due jobs.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// First retry delay; doubles per attempt (with jitter) up to `retry_max_secs`.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// How long a claimed job is reserved; a worker that dies releases it when this expires.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            reconcile_interval_secs: default_reconcile_interval(),
            max_attempts: default_max_attempts(),
            concurrency: default_concurrency(),
            poll_interval_ms: default_poll_interval_ms(),
            retry_base_ms: default_retry_base_ms(),
            retry_max_secs: default_retry_max_secs(),
            lease_secs: default_lease_secs(),
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_poll_interval_ms() -> u64 {
    500
}
fn default_retry_base_ms() -> u64 {
    1_000
}
fn default_retry_max_secs() -> u64 {
    300
}
fn default_lease_secs() -> u64 {
    60
}

fn default_reconcile_interval() -> u64 {
    300
}
fn default_max_attempts() -> u32 {
    8
}

/// Reconciliation passes (the poller's interval is `workers.reconcile_interval_secs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationSettings {
    /// A submitted link not synced for this long is `stale`, and a pass refreshes it even when
    /// its status is final (so a provider that reverses a final decision shows as drift).
    #[serde(default = "default_stale_after")]
    pub stale_after_secs: u64,
    /// Links read from the database per page of a pass.
    #[serde(default = "default_reconcile_batch")]
    pub batch_size: u32,
    /// Provider reads in flight at once during a pass.
    #[serde(default = "default_reconcile_concurrency")]
    pub concurrency: usize,
}

impl Default for ReconciliationSettings {
    fn default() -> Self {
        Self {
            stale_after_secs: default_stale_after(),
            batch_size: default_reconcile_batch(),
            concurrency: default_reconcile_concurrency(),
        }
    }
}

fn default_stale_after() -> u64 {
    900
}
fn default_reconcile_batch() -> u32 {
    200
}
fn default_reconcile_concurrency() -> usize {
    8
}

/// Hosted verification sessions (`POST /v1/users/{id}/verification-sessions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationSettings {
    /// A stored session whose provider gave no expiry is handed out again for this long (one
    /// with an expiry, while it has more than a minute left).
    #[serde(default = "default_session_reuse")]
    pub session_reuse_secs: u64,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        Self {
            session_reuse_secs: default_session_reuse(),
        }
    }
}

fn default_session_reuse() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    #[serde(default)]
    pub subscribers: Vec<SubscriberSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberSettings {
    pub url: String,
    pub secret: SecretString,
    pub events: Vec<String>,
}

/// Document uploads (`POST /v1/users/{id}/documents`) and their submission to providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSettings {
    /// Largest file accepted, in bytes; reading stops at one byte more (413).
    #[serde(default = "default_document_max_bytes")]
    pub max_bytes: u64,
    /// Uploads read and stored at once by this instance: each holds its file in memory.
    #[serde(default = "default_max_concurrent_uploads")]
    pub max_concurrent_uploads: usize,
    /// How long an upload waits for a free slot before `503 overloaded` (its body unread).
    #[serde(default = "default_upload_slot_wait")]
    pub upload_slot_wait_secs: u64,
    /// How long a two-sided document's front waits for its back at a provider that takes both
    /// sides in one call; then the front is sent alone (0: never wait).
    #[serde(default = "default_back_side_wait")]
    pub back_side_wait_secs: u64,
    /// Document submissions in flight at once in this instance: each holds its files (both
    /// sides) and the provider's request body in memory, so this bounds that memory as
    /// `max_concurrent_uploads` bounds the uploads'. A job waits for a slot.
    #[serde(default = "default_max_concurrent_sends")]
    pub max_concurrent_sends: usize,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_bytes: default_document_max_bytes(),
            max_concurrent_uploads: default_max_concurrent_uploads(),
            upload_slot_wait_secs: default_upload_slot_wait(),
            back_side_wait_secs: default_back_side_wait(),
            max_concurrent_sends: default_max_concurrent_sends(),
        }
    }
}

/// The largest `documents.max_bytes` allowed: a file is held in memory while it is stored.
pub const MAX_DOCUMENT_BYTES: u64 = 100 * 1024 * 1024;

fn default_document_max_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_max_concurrent_uploads() -> usize {
    4
}
fn default_max_concurrent_sends() -> usize {
    2
}
fn default_upload_slot_wait() -> u64 {
    10
}
fn default_back_side_wait() -> u64 {
    900
}

/// Encryption of personal data at rest (see `crate::crypto`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSettings {
    /// The key new values are sealed under; older keys stay in `keys` until rotation is done.
    pub current_key_id: String,
    /// Key id → base64 of 32 random bytes (`openssl rand -base64 32`).
    pub keys: BTreeMap<String, SecretString>,
    /// HMAC key for lookups of sealed values (base64 of 32 bytes). Changing it orphans every
    /// stored lookup hash, so it does not rotate with the data keys.
    pub lookup_key: SecretString,
    /// How often the background pass re-seals rows still under an older key (0 turns it off).
    #[serde(default = "default_rotation_interval")]
    pub rotation_interval_secs: u64,
    /// Rows re-sealed per transaction.
    #[serde(default = "default_rotation_batch")]
    pub rotation_batch_size: u32,
}

fn default_rotation_interval() -> u64 {
    60
}
fn default_rotation_batch() -> u32 {
    100
}

/// A configuration problem, rendered as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Where configuration comes from; [`ConfigSources::from_env`] reads the process's own.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    pub config_dir: PathBuf,
    pub environment: String,
    pub extra_file: Option<PathBuf>,
    /// `GATEWAY__…` variables and `DATABASE_URL`, as (name, value) pairs.
    pub env_vars: Vec<(String, String)>,
}

impl ConfigSources {
    /// Reads `GATEWAY_ENV` (default `development`), `GATEWAY_CONFIG_DIR` (default `config`),
    /// `GATEWAY_CONFIG_FILE` or `--config PATH` from `args`, and the environment.
    pub fn from_env(args: &[String]) -> Result<Self, ConfigError> {
        let mut extra_file = std::env::var_os("GATEWAY_CONFIG_FILE").map(PathBuf::from);
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--config" {
                let path = iter.next().ok_or_else(|| {
                    ConfigError("--config needs a path: --config PATH".to_owned())
                })?;
                extra_file = Some(PathBuf::from(path));
            } else if let Some(path) = arg.strip_prefix("--config=") {
                extra_file = Some(PathBuf::from(path));
            }
        }
        Ok(Self {
            config_dir: std::env::var_os("GATEWAY_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("config")),
            environment: std::env::var("GATEWAY_ENV").unwrap_or_else(|_| "development".into()),
            extra_file,
            env_vars: std::env::vars().collect(),
        })
    }
}

impl Settings {
    /// Loads and checks the configuration from the given sources.
    pub fn load(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let environment = sources.environment.trim().to_ascii_lowercase();
        if environment.is_empty()
            || !environment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError(
                "GATEWAY_ENV: must be a name like development, test or production".into(),
            ));
        }
        let default_file = sources.config_dir.join("default.toml");
        if !default_file.is_file() {
            return Err(ConfigError(format!(
                "{} not found (run from the repository root or set GATEWAY_CONFIG_DIR)",
                default_file.display()
            )));
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from(default_file))
            .add_source(config::File::from(sources.config_dir.join(&environment)).required(false));
        if let Some(extra) = &sources.extra_file {
            if !extra.is_file() {
                return Err(ConfigError(format!(
                    "GATEWAY_CONFIG_FILE/--config: {} does not exist",
                    extra.display()
                )));
            }
            builder = builder.add_source(config::File::from(extra.as_path()));
        }
        let gateway_vars: config::Map<String, String> = sources
            .env_vars
            .iter()
            .filter(|(k, _)| k.starts_with("GATEWAY__"))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("GATEWAY")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(gateway_vars)),
        );
        if let Some((_, url)) = sources.env_vars.iter().find(|(k, _)| k == "DATABASE_URL") {
            if !url.is_empty() {
                builder = builder
                    .set_override("database.url", url.as_str())
                    .map_err(|e| ConfigError(format!("DATABASE_URL: {e}")))?;
            }
        }
        let layered = builder
            .build()
            .map_err(|e| ConfigError(one_line(&e.to_string())))?;
        let mut table =
            config::Source::collect(&layered).map_err(|e| ConfigError(one_line(&e.to_string())))?;
        resolve_file_keys(&mut table, "")?;
        let raw = config::Config::builder()
            .add_source(ResolvedTable(table))
            .build()
            .map_err(|e| ConfigError(one_line(&e.to_string())))?;
        let mut settings: Settings = raw
            .try_deserialize()
            .map_err(|e| ConfigError(one_line(&e.to_string())))?;
        settings.environment = environment;
        settings.check()?;
        Ok(settings)
    }

    /// Loads from `config_dir` with no files or variables beyond it: for tests and tools.
    pub fn load_from_dir(config_dir: &Path, environment: &str) -> Result<Self, ConfigError> {
        Self::load(&ConfigSources {
            config_dir: config_dir.to_path_buf(),
            environment: environment.to_owned(),
            extra_file: None,
            env_vars: Vec::new(),
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    /// Cross-field rules that serde cannot express.
    fn check(&mut self) -> Result<(), ConfigError> {
        let url = self.database.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError(
                "database.url: must be a postgres:// URL".to_owned(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections: must be at least 1".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, key) in self.auth.api_keys.iter_mut().enumerate() {
            let path = format!("auth.api_keys[{i}]");
            if key.name.trim().is_empty() {
                return Err(ConfigError(format!("{path}.name: must not be empty")));
            }
            if !names.insert(key.name.clone()) {
                return Err(ConfigError(format!(
                    "{path}.name: `{}` is used twice",
                    key.name
                )));
            }
            key.key_sha256 = key.key_sha256.trim().to_ascii_lowercase();
            if key.key_sha256.len() != 64 || !key.key_sha256.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(ConfigError(format!(
                    "{path}.key_sha256: must be the 64-character hex SHA-256 of the key"
                )));
            }
            if key.scopes.is_empty() {
                return Err(ConfigError(format!(
                    "{path}.scopes: must name at least one scope"
                )));
            }
        }
        if self.is_production() {
            // The development key is public (it is in the README): never accept it in production.
            self.auth
                .api_keys
                .retain(|key| key.key_sha256 != DEV_API_KEY_SHA256);
            if self.simulator.enabled {
                return Err(ConfigError(
                    "simulator.enabled: the simulators cannot run with GATEWAY_ENV=production"
                        .into(),
                ));
            }
        }
        for (i, rule) in self.routing.rules.iter_mut().enumerate() {
            if rule.countries.is_empty() {
                return Err(ConfigError(format!(
                    "routing.rules[{i}].countries: must list at least one country"
                )));
            }
            for (j, country) in rule.countries.iter_mut().enumerate() {
                let upper = country.trim().to_ascii_uppercase();
                if rust_iso3166::from_alpha2(&upper).is_none() {
                    return Err(ConfigError(format!(
                        "routing.rules[{i}].countries[{j}]: `{country}` is not an ISO 3166-1 alpha-2 code"
                    )));
                }
                *country = upper;
            }
        }
        for (i, sub) in self.notifications.subscribers.iter().enumerate() {
            if !(sub.url.starts_with("http://") || sub.url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "notifications.subscribers[{i}].url: must be an http(s) URL"
                )));
            }
        }
        if self.outbound.connect_timeout_ms == 0 || self.outbound.timeout_ms == 0 {
            return Err(ConfigError(
                "outbound.timeout_ms and outbound.connect_timeout_ms: must be positive".into(),
            ));
        }
        if self.workers.concurrency == 0 || self.workers.lease_secs == 0 {
            return Err(ConfigError(
                "workers.concurrency and workers.lease_secs: must be at least 1".into(),
            ));
        }
        if self.reconciliation.batch_size == 0 || self.reconciliation.concurrency == 0 {
            return Err(ConfigError(
                "reconciliation.batch_size and reconciliation.concurrency: must be at least 1"
                    .into(),
            ));
        }
        if self.documents.max_bytes == 0 || self.documents.max_bytes > MAX_DOCUMENT_BYTES {
            return Err(ConfigError(format!(
                "documents.max_bytes: must be from 1 to {MAX_DOCUMENT_BYTES}"
            )));
        }
        if self.documents.max_concurrent_uploads == 0 {
            return Err(ConfigError(
                "documents.max_concurrent_uploads: must be at least 1".into(),
            ));
        }
        if self.documents.max_concurrent_sends == 0 {
            return Err(ConfigError(
                "documents.max_concurrent_sends: must be at least 1".into(),
            ));
        }
        if self.workers.max_attempts == 0 {
            return Err(ConfigError(
                "workers.max_attempts: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The configuration after `…_file` keys were replaced by their files' contents.
#[derive(Debug, Clone)]
struct ResolvedTable(config::Map<String, config::Value>);

impl config::Source for ResolvedTable {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// Replaces every `KEY_file = "PATH"` with `KEY = <contents of PATH>` (trailing newline
/// removed), at any depth, so each secret can come from a mounted container secret
/// (`GATEWAY__PROVIDERS__KRAKEN__API_SECRET_FILE=/run/secrets/kraken`). Setting both `KEY` and
/// `KEY_file` is an error, as is a file that cannot be read; errors name the key, never the
/// contents.
fn resolve_file_keys(
    table: &mut config::Map<String, config::Value>,
    prefix: &str,
) -> Result<(), ConfigError> {
    let file_keys: Vec<String> = table
        .keys()
        .filter(|k| k.ends_with("_file") && k.len() > "_file".len())
        .cloned()
        .collect();
    for file_key in file_keys {
        let path = format!("{prefix}{file_key}");
        let base = file_key.trim_end_matches("_file").to_owned();
        let value = table.remove(&file_key).expect("key listed above");
        let file = match value.kind {
            config::ValueKind::String(file) => file,
            _ => return Err(ConfigError(format!("{path}: must be a file path"))),
        };
        if table
            .get(&base)
            .is_some_and(|v| !matches!(v.kind, config::ValueKind::Nil))
        {
            return Err(ConfigError(format!(
                "{path}: set either {prefix}{base} or {path}, not both"
            )));
        }
        let contents = std::fs::read_to_string(&file)
            .map_err(|e| ConfigError(format!("{path}: cannot read {file}: {}", e.kind())))?;
        let contents = contents.trim_end_matches(['\n', '\r']).to_owned();
        table.insert(
            base,
            config::Value::new(None, config::ValueKind::String(contents)),
        );
    }
    for (key, value) in table.iter_mut() {
        match &mut value.kind {
            config::ValueKind::Table(inner) => {
                resolve_file_keys(inner, &format!("{prefix}{key}."))?
            }
            config::ValueKind::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let config::ValueKind::Table(inner) = &mut item.kind {
                        resolve_file_keys(inner, &format!("{prefix}{key}[{i}]."))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The config crate's messages can span lines; keep the start-up error to one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sources(env_vars: &[(&str, &str)]) -> ConfigSources {
        ConfigSources {
            config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            environment: "development".into(),
            extra_file: None,
            env_vars: env_vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn defaults_load_with_the_dev_key() {
        let settings = Settings::load(&sources(&[])).unwrap();
        assert_eq!(settings.server.port, 8080);
        assert!(settings.simulator.enabled);
        assert_eq!(settings.auth.api_keys[0].key_sha256, DEV_API_KEY_SHA256);
        assert_eq!(settings.routing.default_provider, Some(ProviderId::Kraken));
        assert_eq!(settings.routing.rules.len(), 2);
    }

    #[test]
    fn env_vars_override_files_and_database_url_wins() {
        let settings = Settings::load(&sources(&[
            ("GATEWAY__SERVER__PORT", "9090"),
            ("GATEWAY__DATABASE__URL", "postgres://a@b/c"),
            ("DATABASE_URL", "postgres://x@y/z"),
            ("GATEWAY__PROVIDERS__KRAKEN__API_SECRET", "c2VjcmV0"),
        ]))
        .unwrap();
        assert_eq!(settings.server.port, 9090);
        assert_eq!(settings.database.url.expose_secret(), "postgres://x@y/z");
        assert_eq!(
            settings.providers.text("kraken", "api_secret").as_deref(),
            Some("c2VjcmV0")
        );
    }

    #[test]
    fn secrets_never_appear_in_debug() {
        let settings = Settings::load(&sources(&[
            ("DATABASE_URL", "postgres://user:hunter2@db/gateway"),
            ("GATEWAY__PROVIDERS__KRAKEN__API_SECRET", "s3cr3t-kraken"),
        ]))
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"));
        assert!(!debug.contains("s3cr3t-kraken"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Settings::load(&sources(&[("GATEWAY__SERVER__PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("server.port"), "{err}");
        assert!(!err.to_string().contains('\n'));

        let err = Settings::load(&sources(&[(
            "GATEWAY__ROUTING__DEFAULT_PROVIDER",
            "paypal",
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("default_provider"), "{err}");
    }

    #[test]
    fn document_slots_must_exist() {
        for key in [
            "GATEWAY__DOCUMENTS__MAX_CONCURRENT_UPLOADS",
            "GATEWAY__DOCUMENTS__MAX_CONCURRENT_SENDS",
        ] {
            let err = Settings::load(&sources(&[(key, "0")])).unwrap_err();
            let name = key
                .trim_start_matches("GATEWAY__DOCUMENTS__")
                .to_ascii_lowercase();
            assert!(err.to_string().contains(&name), "{err}");
        }
        let settings = Settings::load(&sources(&[])).unwrap();
        assert_eq!(settings.documents.max_concurrent_sends, 2);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = Settings::load(&sources(&[("GATEWAY__SERVER__PROT", "1")])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    const PROD_KEY: &str = "cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI=";
    const PROD_LOOKUP: &str = "cHJvZHVjdGlvbi1sb29rdXAtZm9yLXRlc3RzLW9ubHk=";

    pub(crate) fn production(extra: &[(&str, &str)]) -> ConfigSources {
        let mut vars = vec![
            ("GATEWAY__ENCRYPTION__CURRENT_KEY_ID", "p1"),
            ("GATEWAY__ENCRYPTION__KEYS__DEV-1", PROD_KEY),
            ("GATEWAY__ENCRYPTION__LOOKUP_KEY", PROD_LOOKUP),
        ];
        vars.extend_from_slice(extra);
        let mut src = sources(&vars);
        src.environment = "production".into();
        src
    }

    #[test]
    fn production_drops_the_dev_api_key_and_refuses_the_simulators() {
        let settings = Settings::load(&production(&[(
            "GATEWAY__ENCRYPTION__CURRENT_KEY_ID",
            "dev-1",
        )]))
        .unwrap();
        assert!(settings.auth.api_keys.is_empty());
        assert!(!settings.simulator.enabled);

        let err = Settings::load(&production(&[
            ("GATEWAY__ENCRYPTION__CURRENT_KEY_ID", "dev-1"),
            ("GATEWAY__SIMULATOR__ENABLED", "true"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("simulator.enabled"), "{err}");
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("gw-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("kraken_secret");
        std::fs::write(&secret, "c2VjcmV0LWZyb20tZmlsZQ==\n").unwrap();
        let key = dir.join("key2");
        std::fs::write(&key, PROD_KEY).unwrap();
        let secret_path = secret.to_str().unwrap();
        let key_path = key.to_str().unwrap();

        let settings = Settings::load(&sources(&[
            ("GATEWAY__PROVIDERS__KRAKEN__API_SECRET_FILE", secret_path),
            ("GATEWAY__ENCRYPTION__KEYS__K2_FILE", key_path),
            ("GATEWAY__ENCRYPTION__CURRENT_KEY_ID", "k2"),
        ]))
        .unwrap();
        assert_eq!(
            settings.providers.text("kraken", "api_secret").as_deref(),
            Some("c2VjcmV0LWZyb20tZmlsZQ==")
        );
        assert_eq!(
            settings.encryption.keys["k2"].expose_secret(),
            PROD_KEY,
            "a `_file` key inside a map names the map entry"
        );

        let err = Settings::load(&sources(&[
            ("GATEWAY__PROVIDERS__KRAKEN__API_SECRET_FILE", secret_path),
            ("GATEWAY__PROVIDERS__KRAKEN__API_SECRET", "aW5saW5l"),
        ]))
        .unwrap_err();
        assert!(err.0.contains("providers.kraken.api_secret_file"), "{err}");
        assert!(err.0.contains("not both"), "{err}");

        let missing = dir.join("missing");
        let err = Settings::load(&sources(&[(
            "GATEWAY__PROVIDERS__CARBN__API_KEY_FILE",
            missing.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(err.0.contains("providers.carbn.api_key_file"), "{err}");
        assert!(
            err.0.contains("NotFound") || err.0.contains("not found"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_extra_file_layers_on_top() {
        let dir = std::env::temp_dir().join(format!("gw-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("extra.toml");
        std::fs::write(&file, "[server]\nport = 7070\n").unwrap();
        let mut src = sources(&[]);
        src.extra_file = Some(file);
        assert_eq!(Settings::load(&src).unwrap().server.port, 7070);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
