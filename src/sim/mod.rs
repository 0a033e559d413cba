//! Faithful provider simulators: one actix-web server that serves Kraken Embed, KillB and
//! Carbn Connect on their real paths, so a gateway configured with `base_url = <sim address>`
//! for all three providers works unchanged.
//!
//! | Provider | Routes (real paths) |
//! |---|---|
//! | Kraken Embed | `POST /b2b/users`, `GET`/`PATCH /b2b/users/{iiban}` |
//! | KillB | `POST /api/v2/auth/login`, `POST /api/v2/auth/refresh`, `POST`/`GET /api/v2/users` (list/search, `type` required, `externalId` filter), `GET`/`PATCH`/`DELETE /api/v2/users/{id}` |
//! | Carbn Connect | `POST /onboarding/api/v1/tnc`, `POST /onboarding/api/v1/users`, `GET /onboarding/api/v1/users/all`, `POST /onboarding/api/v1/users/session`, `GET`/`PUT /onboarding/api/v1/users/{id}` |
//!
//! Each provider checks its own auth (Kraken `API-Key`/`API-Nonce`/`API-Sign` over the raw
//! request-target and body with per-key strictly increasing nonces; KillB login + expiring bearer
//! tokens; Carbn `x-api-key`), validates bodies and answers in its own envelope and vocabulary.
//!
//! # Magic values
//!
//! The status a new user gets is chosen by a tag in the **local part of the email**
//! (`jane+approve@example.com`; Kraken `email`, KillB `data.email`, Carbn `email_address`;
//! case-insensitive, any `+`-separated segment):
//!
//! | Tag | Sim status | Kraken `status` | KillB | Carbn `status` | Webhook at create |
//! |---|---|---|---|---|---|
//! | (none) | `pending` | `ok` + `verification`(`identity`, `initial_onboarding`) action | `PENDING`, `L1` | `under_review` | KillB `USER`/`CREATE` only |
//! | `+approve` | `approved` | `ok`, no actions | `ACTIVE`, `L2` | `active` | Kraken `user.verified`; Carbn `active` |
//! | `+reject` | `rejected` | `closed`, reasons `["verification_failed"]` | `REJECTED`, `L0` | `rejected` + `rejection_reasons` | Kraken `user.closed`; Carbn `rejected` |
//! | `+review` | `under_review`, then `approved` after `review_delay` | `ok` + `wait` action, then `ok` | `PENDING`, `L1`, then `ACTIVE` | `under_review`, then `active` | on approval: Kraken `user.verified`, KillB `UPDATE`, Carbn `active` |
//! | `+incomplete` | `incomplete` | `ok` + `provide_details`(`residence`) action | `PENDING`, `L0` | `incomplete` + `requirements: ["proof_of_address"]` | Carbn `incomplete` |
//! | `+suspend` | `suspended` | `disabled`, reasons `["account_suspended"]` | `SUSPENDED` | `paused` | Kraken `user.disabled`; Carbn `paused` |
//!
//! KillB always sends `USER`/`CREATE` on create (with the user as `data`), `USER`/`UPDATE` on
//! every PATCH and status change, and `USER`/`DELETE` on delete or close. Further rules:
//! - An update (Kraken `PATCH`, KillB `PATCH`, Carbn `PUT`) of an `incomplete` user moves it to
//!   `under_review` and approves it after `review_delay` (the missing details were "provided").
//!   A KillB `PATCH` that changes `document` of an approved user re-verifies it the same way.
//! - Other statuses move only through `POST /_sim/{provider}/users/{id}/status`.
//! - `closed`: Kraken `closed` (`user.closed`), KillB `active: false` (status kept), Carbn
//!   `offboarded`.
//!
//! # Control endpoints (`/_sim/…`, not part of any provider)
//!
//! | Method, path | Body / query | Effect |
//! |---|---|---|
//! | `POST /_sim/{provider}/users/{id}/status` | `{"status": "approved", "webhook": true, "provider_status": <raw JSON>?}` | Set a status behind the gateway's back and emit the provider's webhook. `status` takes the sim names (`pending`, `under_review`, `incomplete`, `approved`, `rejected`, `suspended`, `closed`) or provider-native ones (`ACTIVE`, `SUSPENDED`, `paused`, `offboarded`, `disabled`, …). `provider_status` overrides what the provider reports (e.g. an unknown value). |
//! | `GET /_sim/{provider}/users` | — | Dump the users: `[{id, sim_status, user (provider view), profile}]`. |
//! | `POST /_sim/faults` | [`FaultSpec`] `{provider, path?, method?, latency_ms, error_rate, status, retry_after_secs, timeout, drop_connection, count}` | Inject faults into that provider's matching requests (first matching fault wins; `count` requests, or until cleared). |
//! | `GET`/`DELETE /_sim/faults` | — | List / clear faults. |
//! | `GET /_sim/requests?provider=` | — | Recorded provider requests: `method`, `path` (raw request-target), `headers`, raw `body`. |
//! | `DELETE /_sim/requests` | — | Clear the record. |
//! | `GET`/`DELETE /_sim/webhooks` | — | Webhook deliveries made (target, event, headers, body, attempts). |
//! | `PUT /_sim/webhook-targets` | `{kraken?, killb?, carbn?}` | Change where webhooks go. |
//! | `POST /_sim/killb/expire-tokens` | — | Expire every KillB access token now. |
//!
//! # Development credentials
//!
//! [`SimConfig::development`] uses the `DEV_*` constants below; the gateway's development
//! config points at them.

// Handlers return early with a ready `HttpResponse` in `Err`; the size does not matter here.
#![allow(clippy::result_large_err)]

mod carbn;
mod control;
mod faults;
mod gateway_shim;
pub mod keys;
mod killb;
mod kraken;
mod state;
mod validate;
mod webhooks;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};

pub use faults::{FaultSpec, RecordedRequest};
pub use state::{SimState, SimStatus, SimUser};
pub use webhooks::WebhookDelivery;

use crate::providers::killb::webhook::SignatureScheme;

/// Kraken dev API key.
pub const DEV_KRAKEN_API_KEY: &str = "kraken-sim-dev-api-key";
/// Kraken dev API secret (base64, as Kraken issues it).
pub const DEV_KRAKEN_API_SECRET_B64: &str =
    "a3Jha2VuLXNpbS1hcGktc2VjcmV0OmRldmVsb3BtZW50LW9ubHk7bmV2ZXItdXNlLWluLXByb2R1Y3Rpb24hIQ==";
/// Kraken dev webhook secret (base64, as returned at webhook registration).
pub const DEV_KRAKEN_WEBHOOK_SECRET_B64: &str = "a3Jha2VuLXNpbS13ZWJob29rLXNlY3JldDpkZXYtb25seQ==";
/// KillB dev login email.
pub const DEV_KILLB_EMAIL: &str = "gateway-dev@sim.killb.local";
/// KillB dev login password.
pub const DEV_KILLB_PASSWORD: &str = "Sim-Passw0rd!dev";
/// KillB dev webhook secret (UTF-8, chosen by the integrator).
pub const DEV_KILLB_WEBHOOK_SECRET: &str = "killb-sim-webhook-secret-dev-only-0123456789";
/// Carbn dev API key (exactly 32 alphanumerics).
pub const DEV_CARBN_API_KEY: &str = "SimCarbnDevApiKey0123456789abcde";
/// Carbn dev webhook public key (PEM SPKI) that verifies the simulator's signatures.
pub const DEV_CARBN_WEBHOOK_PUBLIC_KEY_PEM: &str = keys::CARBN_WEBHOOK_PUBLIC_KEY_PEM;

/// Kraken credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct KrakenSimCredentials {
    /// `API-Key` value.
    pub api_key: String,
    /// Base64 API secret used to verify `API-Sign`.
    pub api_secret_b64: String,
    /// Base64 webhook secret used to sign `X-Signature`.
    pub webhook_secret_b64: String,
}

/// KillB credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct KillbSimCredentials {
    /// Login email.
    pub email: String,
    /// Login password.
    pub password: String,
    /// Webhook secret (UTF-8).
    pub webhook_secret: String,
    /// Access-token lifetime (`expiresIn`, reported in milliseconds).
    pub token_ttl: Duration,
    /// Which of KillB's two disputed signature schemes deliveries use.
    pub webhook_scheme: SignatureScheme,
}

/// Carbn credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct CarbnSimCredentials {
    /// `x-api-key` value (32 alphanumerics).
    pub api_key: String,
    /// PKCS#8 PEM private key that signs webhooks.
    pub webhook_private_key_pem: String,
    /// The matching SPKI PEM public key (what the gateway verifies with).
    pub webhook_public_key_pem: String,
}

/// Full URLs the simulator POSTs signed status webhooks to.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct WebhookTargets {
    /// e.g. `http://127.0.0.1:8080/v1/webhooks/kraken`.
    pub kraken: Option<String>,
    /// e.g. `http://127.0.0.1:8080/v1/webhooks/killb`.
    pub killb: Option<String>,
    /// e.g. `http://127.0.0.1:8080/v1/webhooks/carbn`.
    pub carbn: Option<String>,
}

impl WebhookTargets {
    /// `{base}/v1/webhooks/{provider}` for all three providers.
    pub fn gateway(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            kraken: Some(format!("{base}/v1/webhooks/kraken")),
            killb: Some(format!("{base}/v1/webhooks/killb")),
            carbn: Some(format!("{base}/v1/webhooks/carbn")),
        }
    }
}

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Kraken credentials.
    pub kraken: KrakenSimCredentials,
    /// KillB credentials.
    pub killb: KillbSimCredentials,
    /// Carbn credentials.
    pub carbn: CarbnSimCredentials,
    /// Where webhooks go (none: not sent, still logged).
    pub webhook_targets: WebhookTargets,
    /// How long `+review` users (and updated `incomplete` users) stay under review.
    pub review_delay: Duration,
    /// Keep every request and webhook delivery for `GET /_sim/requests` and `/_sim/webhooks`
    /// (on by default; the benchmark turns it off so a long run does not grow the simulator).
    pub record: bool,
}

impl SimConfig {
    /// Fixed, documented development credentials (the `DEV_*` constants), no webhook targets,
    /// 1-hour KillB tokens, documented HMAC KillB webhook scheme, 5 s review delay, requests and
    /// webhooks recorded.
    pub fn development() -> Self {
        Self {
            kraken: KrakenSimCredentials {
                api_key: DEV_KRAKEN_API_KEY.into(),
                api_secret_b64: DEV_KRAKEN_API_SECRET_B64.into(),
                webhook_secret_b64: DEV_KRAKEN_WEBHOOK_SECRET_B64.into(),
            },
            killb: KillbSimCredentials {
                email: DEV_KILLB_EMAIL.into(),
                password: DEV_KILLB_PASSWORD.into(),
                webhook_secret: DEV_KILLB_WEBHOOK_SECRET.into(),
                token_ttl: Duration::from_secs(3600),
                webhook_scheme: SignatureScheme::HmacSha256,
            },
            carbn: CarbnSimCredentials {
                api_key: DEV_CARBN_API_KEY.into(),
                webhook_private_key_pem: keys::CARBN_WEBHOOK_PRIVATE_KEY_PEM.into(),
                webhook_public_key_pem: keys::CARBN_WEBHOOK_PUBLIC_KEY_PEM.into(),
            },
            webhook_targets: WebhookTargets::default(),
            review_delay: Duration::from_secs(5),
            record: true,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    base_url: String,
    state: Arc<SimState>,
    server: actix_web::dev::ServerHandle,
}

impl SimHandle {
    /// `http://<ip>:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The shared state (users, faults, recorded requests, webhook deliveries).
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops the server (in-flight requests get one second).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// Starts the simulator on `listener` (bind port 0 in tests) and returns at once.
///
/// Must be called inside a Tokio runtime; background work (delayed reviews, webhook
/// deliveries) runs on that runtime.
pub async fn spawn(config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let state = Arc::new(SimState::new(config, tokio::runtime::Handle::current())?);
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .configure(routes)
    })
    .on_connect(faults::remember_connection)
    .workers(2)
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(SimHandle {
        base_url: format!("http://{addr}"),
        state,
        server: handle,
    })
}

fn routes(cfg: &mut web::ServiceConfig) {
    control::routes(cfg);
    kraken::routes(cfg);
    killb::routes(cfg);
    carbn::routes(cfg);
    cfg.default_service(web::to(faults::not_found));
}
