//! Builds and runs the gateway: the keyring and the provider registry (once, from the plain
//! settings), the built-in simulators, the database pool and migrations, the HTTP server and
//! the background workers.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use serde_json::Value;
use sqlx::PgPool;

use crate::api::{self, AppState};
use crate::auth::ApiKeyRegistry;
use crate::domain::provider::ProviderId;
use crate::onboarding::Services;
use crate::providers::registry::ProviderRegistry;
use crate::settings::{config_value, ProviderSections, Settings};
use crate::workers::reconciler::Reconciler;
use crate::workers::Workers;

/// A bound, not yet running gateway. Binding first lets tests ask for port 0.
pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    /// The in-process provider simulators, when `simulator.enabled`.
    simulator: Option<crate::sim::SimHandle>,
    workers: Workers,
    /// The reconciliation poller (`None` when `workers.reconcile_interval_secs` is 0).
    reconciler: Option<Reconciler>,
    /// Re-seals data under older keys; aborted at shutdown (each batch is one transaction).
    resealer: Option<tokio::task::JoinHandle<()>>,
    shutdown_grace: Duration,
}

pub struct CrashHandle {
    server: actix_web::dev::ServerHandle,
    workers: tokio::task::AbortHandle,
    reconciler: Option<tokio::task::AbortHandle>,
    resealer: Option<tokio::task::AbortHandle>,
}

impl CrashHandle {
    pub async fn crash(self) {
        self.workers.abort();
        if let Some(reconciler) = &self.reconciler {
            reconciler.abort();
        }
        if let Some(resealer) = &self.resealer {
            resealer.abort();
        }
        self.server.stop(false).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("notification cursors: {0}")]
    Notifications(String),
    #[error("provider simulators: {0}")]
    Simulator(std::io::Error),
    #[error("outbound HTTP client: {0}")]
    HttpClient(String),
    #[error("encryption: {0}")]
    Encryption(String),
    #[error("configuration error: {0}")]
    Config(String),
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let keyring = Arc::new(
            crate::crypto::Keyring::for_environment(&settings.encryption, settings.is_production())
                .map_err(|e| StartupError::Config(e.0))?,
        );
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let (simulator, simulator_sections) = if settings.simulator.enabled {
            let (handle, sections) = start_simulator(port, &settings.providers).await?;
            (Some(handle), sections)
        } else {
            (None, BTreeMap::new())
        };
        let providers = match ProviderRegistry::build(
            &settings.providers,
            &settings.outbound,
            &simulator_sections,
        ) {
            Ok(registry) => Arc::new(registry),
            Err(reason) => {
                if let Some(simulator) = &simulator {
                    simulator.stop().await;
                }
                return Err(StartupError::Config(reason));
            }
        };
        tracing::info!(
            ?providers,
            simulated = simulator.is_some(),
            "providers configured"
        );
        let pool = crate::store::pool(&settings.database)?;
        crate::store::wait_and_migrate(
            &pool,
            Duration::from_secs(settings.database.startup_timeout_secs),
        )
        .await?;
        // A stored value under a key that is no longer configured would fail on every read of
        // it: refuse to start instead, naming the key.
        let in_use = crate::store::sealed_key_ids(&pool)
            .await
            .map_err(|e| StartupError::Encryption(e.to_string()))?;
        if let Some(missing) = in_use.iter().find(|id| !keyring.has_key(id)) {
            return Err(StartupError::Encryption(format!(
                "stored data is sealed under key `{missing}`, which encryption.keys lacks; \
                 restore it (keep old keys until gateway_encryption_stale_rows is 0)"
            )));
        }
        let services = build_services(&settings, pool.clone(), providers, keyring)?;
        // Before anything is served: events from here on reach every subscriber.
        crate::onboarding::notify::init_cursors(&services)
            .await
            .map_err(|e| StartupError::Notifications(e.to_string()))?;
        let workers = Workers::start(
            services.clone(),
            settings.workers.clone(),
            services.instance.to_string(),
        );
        let reconciler = Reconciler::start(
            services.clone(),
            settings.reconciliation.clone(),
            settings.workers.reconcile_interval_secs,
        );
        let resealer = crate::workers::resealer::start(
            pool.clone(),
            services.keyring.clone(),
            settings.encryption.rotation_interval_secs,
            settings.encryption.rotation_batch_size,
        );
        let shutdown_grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
        let server = serve(listener, pool.clone(), services, Arc::new(settings))?;
        Ok(Self {
            port,
            server,
            pool,
            simulator,
            workers,
            reconciler,
            resealer,
            shutdown_grace,
        })
    }

    /// The simulators' base URL, when they run in-process.
    pub fn simulator_url(&self) -> Option<&str> {
        self.simulator.as_ref().map(|s| s.base_url())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests and stops the workers
    /// (no new job is taken; the ones in flight finish or are released by their lease).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(resealer) = &self.resealer {
            resealer.abort();
        }
        let reconciler = async {
            if let Some(reconciler) = self.reconciler {
                reconciler.shutdown(self.shutdown_grace).await;
            }
        };
        tokio::join!(self.workers.shutdown(self.shutdown_grace), reconciler);
        if let Some(simulator) = &self.simulator {
            simulator.stop().await;
        }
        result
    }

    /// A handle that stops this instance at once, as a crash would: no draining, and jobs in
    /// flight are dropped with their leases held (for crash-recovery tests).
    pub fn crash_handle(&self) -> CrashHandle {
        CrashHandle {
            server: self.server.handle(),
            workers: self.workers.abort_handle(),
            reconciler: self.reconciler.as_ref().map(Reconciler::abort_handle),
            resealer: self.resealer.as_ref().map(|r| r.abort_handle()),
        }
    }
}

/// The use-cases' shared parts, built once from the settings (the gateway's, and the benchmark
/// floor's in `src/bin/floor.rs`, which must do the same work with the same parts).
pub fn build_services(
    settings: &Settings,
    pool: PgPool,
    providers: Arc<ProviderRegistry>,
    keyring: Arc<crate::crypto::Keyring>,
) -> Result<Services, StartupError> {
    Ok(Services {
        pool,
        providers,
        routing: Arc::new(settings.routing.clone()),
        workers: Arc::new(settings.workers.clone()),
        instance: Arc::from(crate::workers::instance_name()),
        subscribers: Arc::new(settings.notifications.subscribers.clone()),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.outbound.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.outbound.timeout_ms))
            .build()
            .map_err(|e| StartupError::HttpClient(e.to_string()))?,
        keyring,
        documents: Arc::new(settings.documents.clone()),
        document_sends: Arc::new(tokio::sync::Semaphore::new(
            settings.documents.max_concurrent_sends,
        )),
    })
}

/// Per provider, the settings section that points the gateway at simulators serving at
/// `base_url` with `config`'s credentials.
pub fn simulator_sections(
    config: &crate::sim::SimConfig,
    base_url: &str,
) -> BTreeMap<ProviderId, config::Value> {
    ProviderId::ALL
        .iter()
        .map(|id| {
            let section = config.gateway_settings(*id, base_url);
            (*id, config_value(Value::Object(section)))
        })
        .collect()
}

/// Starts the simulators on a free loopback port, sending their webhooks to this gateway and
/// following the choices the gateway's provider sections make (e.g. a webhook signature
/// scheme). Returns them with, per provider, the section that points the gateway at its
/// simulator (base URL and development credentials).
async fn start_simulator(
    gateway_port: u16,
    sections: &ProviderSections,
) -> Result<(crate::sim::SimHandle, BTreeMap<ProviderId, config::Value>), StartupError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(StartupError::Simulator)?;
    let mut config = crate::sim::SimConfig::development();
    for id in ProviderId::ALL {
        let section = sections.get(id.as_str()).and_then(|s| {
            s.clone()
                .try_deserialize::<serde_json::Map<String, Value>>()
                .ok()
        });
        if let Some(section) = section {
            config.follow_gateway_settings(*id, &section);
        }
    }
    config.webhook_targets =
        crate::sim::WebhookTargets::gateway(&format!("http://127.0.0.1:{gateway_port}"));
    let handle = crate::sim::spawn(config.clone(), listener)
        .await
        .map_err(StartupError::Simulator)?;
    tracing::info!(url = handle.base_url(), "provider simulators listening");
    let gateway_sections = simulator_sections(&config, handle.base_url());
    Ok((handle, gateway_sections))
}

fn serve(
    listener: TcpListener,
    pool: PgPool,
    services: Services,
    settings: Arc<Settings>,
) -> Result<Server, StartupError> {
    let state = web::Data::new(AppState {
        api_keys: ApiKeyRegistry::new(&settings.auth.api_keys),
        rate_limiter: Arc::new(api::rate_limit::RateLimiter::new(
            settings.rate_limit.per_key_per_second,
            settings.rate_limit.burst,
        )),
        webhook_rate_limiter: Arc::new(api::rate_limit::RateLimiter::new(
            settings.rate_limit.webhook_per_second,
            settings.rate_limit.webhook_burst,
        )),
        services,
        readiness: Arc::new(
            crate::store::ReadinessProbe::new(&settings.database)
                .map_err(StartupError::Database)?,
        ),
        pool,
        admission: api::admission::Admission::new(settings.server.max_requests_in_flight),
        uploads: Arc::new(tokio::sync::Semaphore::new(
            settings.documents.max_concurrent_uploads,
        )),
        settings: settings.clone(),
    });
    // Touch the recorder so /metrics has a registry from the first request on.
    let _ = crate::telemetry::metrics();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(api::compression::middleware))
            // Inside the request-id middleware, so a refusal has an id, a log line and metrics.
            .wrap(from_fn(api::admission::middleware))
            .wrap(from_fn(api::request_id::middleware))
            .configure(api::routes)
    })
    .client_request_timeout(Duration::from_secs(
        settings.server.client_request_timeout_secs,
    ))
    .client_disconnect_timeout(Duration::from_secs(
        settings.server.client_disconnect_timeout_secs,
    ))
    .keep_alive(match settings.server.keep_alive_secs {
        0 => actix_web::http::KeepAlive::Disabled,
        secs => actix_web::http::KeepAlive::Timeout(Duration::from_secs(secs)),
    })
    // Bounded connections per worker: under overload, further clients wait in the kernel's
    // accept queue instead of each costing buffers here (memory stays bounded).
    .max_connections(settings.server.max_connections_per_worker)
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    .listen(listener)
    .map_err(|source| StartupError::Bind {
        address: "listener".into(),
        source,
    })?
    .run();
    Ok(server)
}
