//! Faithful provider simulators: one actix-web server that serves Kraken Embed, KillB and
//! Carbn Connect on their real paths, so a gateway configured with `base_url = <sim address>`
//! for all three providers works unchanged.
//!
//! | Provider | Routes (real paths) |
//! |---|---|
//! | Kraken Embed | `POST /b2b/users`, `GET`/`PATCH /b2b/users/{iiban}`, `POST /b2b/verifications/{iiban}` (multipart) |
//! | KillB | `POST /api/v2/auth/login`, `POST /api/v2/auth/refresh`, `POST`/`GET /api/v2/users` (list/search, `type` required, `externalId` filter), `GET`/`PATCH`/`DELETE /api/v2/users/{id}`, `POST /api/v2/users/person/document` (multipart), `POST /api/v2/compliance/access-token` |
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
//! # Verification
//!
//! Multipart bodies are read by a strict parser over the raw bytes (`multipart.rs`): a wrong or
//! missing boundary, a part without a `form-data` name or a missing closing delimiter is the
//! provider's 400. Files are recognised by content (JPEG, PNG, PDF). Uploads and hosted steps
//! never move a status at once; the change comes after `review_delay`, with the provider's
//! signed webhook.
//!
//! | Provider | Request | Answer | What it moves |
//! |---|---|---|---|
//! | Kraken | `POST /b2b/verifications/{iiban}`, signed with `API-Sign` over the raw request-target and the **raw multipart bytes** (a re-encoded form fails); parts `type` (`identity_document`, `residence_document`, `tax_id_document`, `selfie`, `watchlists`), `metadata` (a JSON string: per-type model with required fields, enums, alpha-2 countries, RFC 3339 `verified_at`; unknown fields refused), files `front` (+ `back`), `document`, `selfie`, optional `verifier_response` | 200 `{"error":[],"result":{"verification_id":"ver_<20 base32>"}}`; 400 `{"error":["EGeneral:Invalid arguments:<part or metadata.path> <problem>", …]}` (invented strings); 404 `ENexus:User not found`; a passport with `back` is refused unless `kraken::Config::accept_passport_back` | Removes the matching `verification` action (`identity_document`→`identity`, `residence_document`→`residence`, `selfie`→`selfie`, `tax_id_document`→`tax_id`, each `Cleared` watchlist section→`sanctions_check`/`pep_check`/`negative_news_check`). When no `verification`/`provide_details` action is left, `{"action_type":"wait","wait_reason_code":"sim_review"}` replaces them; after `review_delay` the actions clear and `user.verified` is sent. A `PATCH` removes the `provide_details` actions of the fields it sets. |
//! | KillB | `POST /api/v2/users/person/document` (bearer), parts `userId` (UUID), `documentType` (the upload enum: IDs, `PROVE_OF_ADDRESS_*`, `SOURCE_OF_FUNDS_*`, `KYC_REPORT`), `frontDocument`, `backDocument?` | 201, no body; 400 `INVALID.INPUT` (class-validator messages); 400 `API_USER.0001` (unknown user); 400 `USER.0002` "Invalid document" (not JPEG/PNG/PDF, or outside 100 KiB–10 MiB: `killb::Config::{min,max}_document_bytes`) | Once ID images (`PASSPORT` front; two-sided `DRIVER_LICENSE`, `NUIP`, `INE`, `IFE`, `DNI`, `DUI`, `CHINESE_ID`, `BOLIVIAN_ID`, `CE` front and back), a `PROVE_OF_ADDRESS_*` and the hosted liveness step are in: `ACTIVE` at `L2` after `review_delay`, with `USER`/`UPDATE`. `note` says what L2 still needs. |
//! | KillB | `POST /api/v2/compliance/access-token` `{"id", "idType"?: "userId"\|"accountId", "levelName"?, "ttlInSecs"?}` | 201 `{"token":"_act-<uuid>"}`; 400 `API_USER.0001` for an unknown id (any `accountId`: the simulator has no accounts); 400 `INVALID.INPUT` | nothing |
//! | KillB | `complianceUrl` = `<public base>/_sim/killb/users/{id}/verify` | an HTML page with a button that posts to `…/liveness` | the liveness step |
//! | Carbn | `POST /onboarding/api/v1/users/session` `{"email", "currency" (three capitals), "redirect_url" (absolute URI)}` | 200 `{"onboarding_url": "<public base>/_sim/carbn/checkout?session=<JWT>", "user_id"}`; 400 Carbn envelope, `code` `4000` (invented) | The same email answers its existing user's id; a new email creates a user (`under_review`, as the checkout would). The JWT has header `{"alg":"ES384","kid":"kms","typ":"JWT"}`, payload `sub` (user id), `iat`, `exp` (`carbn::Config::session_ttl`, 1800 s), `jti`; its signature is 96 random bytes. |
//! | Carbn | the checkout page, then `POST /_sim/carbn/sessions/complete` | — | `under_review` now (`USER_STATUS_UPDATE`), then after `review_delay` the outcome (`USER_STATUS_UPDATE`): `active`; `incomplete` with `requirements` in `carbn::Config::requirements_shape` (`null`, `["proof_of_address"]`, or Bridge-like `[{"name":"base","status":"incomplete","requirements":{"complete":[…],"pending":[],"missing":{"all_of":["proof_of_address"]},"issues":[]}}]`); `rejected` with `rejection_reasons` `[{"developer_reason","reason","created_at"}]`. |
//! | Carbn | any document-upload-like path under `/onboarding/api/v1` (a segment with `document`, `upload`, `file`, `image`) | 404 Carbn envelope, `code` `4040` | nothing (Carbn takes documents only through its hosted session) |
//!
//! The hosted pages use [`SimConfig::public_base_url`] (the listen address unless set; the
//! old `https://kyc.sim.killb.local/…` and `https://checkout.sim.carbn.local/…` only without
//! one). They are plain HTML with no external assets.
//!
//! # Control endpoints (`/_sim/…`, not part of any provider)
//!
//! | Method, path | Body / query | Effect |
//! |---|---|---|
//! | `POST /_sim/{provider}/users/{id}/status` | `{"status": "approved", "webhook": true, "provider_status": <raw JSON>?}` | Set a status behind the gateway's back and emit the provider's webhook. `status` takes the sim names (`pending`, `under_review`, `incomplete`, `approved`, `rejected`, `suspended`, `closed`) or provider-native ones (`ACTIVE`, `SUSPENDED`, `paused`, `offboarded`, `disabled`, …). `provider_status` overrides what the provider reports (e.g. an unknown value). |
//! | `GET /_sim/{provider}/users` | — | Dump the users: `[{id, sim_status, active, external_id, user (provider view), profile, verification}]` (`verification`: the provider's record: Kraken actions and accepted verification ids, KillB documents received and liveness, Carbn session outcome; never file bytes). |
//! | `POST /_sim/kraken/users/{iiban}/actions` | a raw Kraken action, or an array of them, each with `action_type`, e.g. `{"action_type":"verification","verification_type":"residence","reasons":["sim"]}`, `{"action_type":"provide_details","details_type":{"type":"phone"}}` | Adds them to a user in state `ok` (the status follows: any `verification` → pending, other non-`wait` → incomplete); answers the Kraken user view. 400 bad body, 404 unknown user, 409 closed/disabled. No webhook. |
//! | `GET /_sim/killb/users/{id}/verify` | — | The hosted compliance page (`complianceUrl`): what L2 has, and a liveness button. |
//! | `POST /_sim/killb/users/{id}/liveness` | none (any body) | The person completed the hosted liveness step: `{id, liveness: true, missing_for_l2, user}` (a page for a browser's form post). L2 follows after `review_delay` once the documents are in too. |
//! | `POST /_sim/killb/users/{id}/level` | `{"level": "L0"…"L4", "webhook": true}` | Reports that `accessLevel` (until the status moves) and sends `USER`/`UPDATE`. |
//! | `GET /_sim/carbn/checkout?session=<JWT>` | — | The hosted onboarding page (`onboarding_url`): a completion form with an outcome choice. 404 unknown session, 410 expired. |
//! | `POST /_sim/carbn/sessions/complete` | `{"user_id": "…", "outcome": "active"\|"incomplete"\|"rejected"}` (`outcome` defaults to `active`; JSON, or the page's form) | The person finished the hosted flow: `under_review` now, the outcome after `review_delay`, each with `USER_STATUS_UPDATE`; answers `{user_id, outcome, user}`. 400 bad body, 404 unknown user, 409 already `active`/`paused`/`offboarded`. |
//! | `POST /_sim/faults` | [`FaultSpec`] `{provider, path?, method?, latency_ms, error_rate, status, retry_after_secs, timeout, drop_connection, after_handling, count}` | Inject faults into that provider's matching requests (first matching fault wins; `count` requests, or until cleared). Faults apply before the provider acts on the request (it never happened), or with `after_handling` once it has (the effect happened, the answer is lost). |
//! | `GET`/`DELETE /_sim/faults` | — | List / clear faults. |
//! | `GET /_sim/requests?provider=` | — | Recorded provider requests: `method`, `path` (raw request-target), `headers`, raw `body`. |
//! | `DELETE /_sim/requests` | — | Clear the record. |
//! | `GET`/`DELETE /_sim/webhooks` | — | Webhook deliveries made (target, event, headers, body, attempts). |
//! | `PUT /_sim/webhook-targets` | `{kraken?, killb?, carbn?}` (any subset of the provider ids) | Change where webhooks go. |
//! | `POST /_sim/killb/expire-tokens` | — | Expire every KillB access token now (KillB's own control route). |
//!
//! # Development credentials
//!
//! [`SimConfig::development`] uses each provider's `DEV_*` constants (`sim::<id>::DEV_…`);
//! the gateway's development config points at them, and [`SimConfig::gateway_settings`] writes
//! a provider's gateway section for them.
//!
//! # Layout
//!
//! Everything specific to a provider is in `src/sim/<id>.rs` (its routes, auth, validation,
//! rendering, error envelopes, webhooks, `Config` and `State`), behind the `SimProvider`
//! trait (`provider.rs`). The modules, the dispatch `simulator(id)`, the per-provider fields
//! of [`SimConfig`] and of the simulator's state are generated from `crate::with_providers!`; the
//! shared files (`state`, `faults`, `control`, `webhooks`, `validate`) name no provider.

// Handlers return early with a ready `HttpResponse` in `Err`; the size does not matter here.
#![allow(clippy::result_large_err)]

mod control;
mod faults;
mod multipart;
mod page;
mod provider;
mod state;
mod validate;
mod webhooks;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service as _;
use actix_web::{web, App, HttpServer};
use serde_json::{Map, Value};

pub use state::{FaultSpec, RecordedRequest, SimState, SimStatus, SimUser, WebhookDelivery};

use crate::domain::provider::ProviderId;
use provider::SimProvider;

/// Generates, from the provider list, the per-provider modules (`src/sim/<module>.rs`), the
/// dispatch from a [`ProviderId`] to its [`SimProvider`], and the per-provider fields of
/// [`SimConfig`] and [`ProviderStates`].
macro_rules! simulators {
    ($( $module:ident $variant:ident $id:literal $name:literal ),+ $(,)?) => {
        $( pub mod $module; )+

        /// The simulator of provider `id`.
        pub(crate) fn simulator(id: ProviderId) -> &'static dyn SimProvider {
            match id {
                $( ProviderId::$variant => &$module::Simulator ),+
            }
        }

        /// Simulator configuration.
        #[derive(Debug, Clone)]
        pub struct SimConfig {
            $(
                #[doc = concat!($name, ": the credentials it accepts and signs with, its variants.")]
                pub $module: $module::Config,
            )+
            /// Where webhooks go (none: not sent, still logged).
            pub webhook_targets: WebhookTargets,
            /// How long `+review` users (and updated `incomplete` users) stay under review.
            pub review_delay: Duration,
            /// The simulator's own address as a browser reaches it (`http://host:port`), for
            /// the hosted pages its providers link to (`complianceUrl`, `onboarding_url`);
            /// [`spawn`] sets it to the listen address when unset.
            pub public_base_url: Option<String>,
            /// Keep every request and webhook delivery for `GET /_sim/requests` and
            /// `/_sim/webhooks` (on by default; the benchmark turns it off so a long run does
            /// not grow the simulator).
            pub record: bool,
        }

        impl SimConfig {
            /// Fixed, documented development credentials (each provider's `DEV_*` constants and
            /// documented default variants, e.g. 1-hour KillB tokens and its HMAC webhook
            /// scheme), no webhook targets, 5 s review delay, requests and webhooks recorded.
            pub fn development() -> Self {
                Self {
                    $( $module: $module::Config::development(), )+
                    webhook_targets: WebhookTargets::default(),
                    review_delay: Duration::from_secs(5),
                    public_base_url: None,
                    record: true,
                }
            }
        }

        /// What each provider keeps for itself (nonces, tokens, consents, signers).
        pub(crate) struct ProviderStates {
            $( pub(crate) $module: $module::State, )+
        }

        impl ProviderStates {
            fn new(config: &SimConfig) -> std::io::Result<Self> {
                Ok(Self {
                    $( $module: $module::State::new(&config.$module)?, )+
                })
            }
        }
    };
}

crate::with_providers!(simulators);

impl SimConfig {
    /// The gateway's `[providers.<id>]` section that points a gateway at this simulator
    /// (`base_url`) with the credentials it accepts, in the gateway's config keys.
    pub fn gateway_settings(&self, id: ProviderId, base_url: &str) -> Map<String, Value> {
        simulator(id).gateway_settings(self, base_url)
    }

    /// Adapts the simulated provider to the choice a gateway's `[providers.<id>]` section makes
    /// among the provider's documented variants (e.g. how it signs webhooks); other keys are
    /// ignored.
    pub fn follow_gateway_settings(&mut self, id: ProviderId, section: &Map<String, Value>) {
        simulator(id).follow_gateway_settings(self, section);
    }
}

/// Full URLs the simulator POSTs signed status webhooks to, by provider.
///
/// JSON: `{"<id>": "<url>" | null, …}` with any subset of the provider ids (unknown keys are
/// ignored); it serializes every provider, `null` where there is no target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookTargets(BTreeMap<ProviderId, String>);

impl WebhookTargets {
    /// `{base}/v1/webhooks/{id}` for every provider.
    pub fn gateway(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self(
            ProviderId::ALL
                .iter()
                .map(|&id| (id, format!("{base}/v1/webhooks/{id}")))
                .collect(),
        )
    }

    /// Where provider `id`'s webhooks go, if anywhere (e.g. `http://127.0.0.1:8080/v1/webhooks/kraken`).
    pub fn get(&self, id: ProviderId) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    /// Sends provider `id`'s webhooks to `url` (`None`: not sent, still logged).
    pub fn set(&mut self, id: ProviderId, url: Option<String>) {
        match url {
            Some(url) => self.0.insert(id, url),
            None => self.0.remove(&id),
        };
    }
}

impl serde::Serialize for WebhookTargets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(ProviderId::ALL.len()))?;
        for &id in ProviderId::ALL {
            map.serialize_entry(id.as_str(), &self.get(id))?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for WebhookTargets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Option<String>>::deserialize(deserializer)?;
        let mut targets = Self::default();
        for (key, url) in raw {
            if let Some(id) = ProviderId::from_wire(&key) {
                targets.set(id, url);
            }
        }
        Ok(targets)
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
pub async fn spawn(mut config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    config.public_base_url = Some(match config.public_base_url.take() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => listen_url(addr),
    });
    let state = Arc::new(SimState::new(config, tokio::runtime::Handle::current())?);
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(|req, service| {
                let answer = service.call(req);
                async move { Ok(faults::after_handling(answer.await?).await) }
            })
            .app_data(data.clone())
            // Room for two 10 MB document sides and their multipart framing.
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
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

/// `http://<ip>:<port>` of a listen address; an unspecified address (`0.0.0.0`, `::`) is
/// reached through loopback.
fn listen_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

fn routes(cfg: &mut web::ServiceConfig) {
    // Providers first: their own `/_sim/<id>/…` routes must precede the `/_sim` scope.
    for &id in ProviderId::ALL {
        simulator(id).routes(cfg);
    }
    control::routes(cfg);
    cfg.default_service(web::to(faults::not_found));
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9999";

    #[test]
    fn every_gateway_section_points_at_the_simulator() {
        let config = SimConfig::development();
        for &id in ProviderId::ALL {
            let section = config.gateway_settings(id, BASE);
            assert_eq!(section.get("base_url"), Some(&Value::from(BASE)), "{id}");
            assert!(!section.contains_key("enabled"), "{id}");
            assert!(section.len() > 1, "{id}: credentials missing");
        }
    }

    #[test]
    fn following_a_section_of_this_simulator_changes_nothing() {
        for &id in ProviderId::ALL {
            let mut config = SimConfig::development();
            let section = config.gateway_settings(id, BASE);
            config.follow_gateway_settings(id, &section);
            assert_eq!(config.gateway_settings(id, BASE), section, "{id}");
            config.follow_gateway_settings(id, &Map::new());
            assert_eq!(config.gateway_settings(id, BASE), section, "{id}");
        }
    }

    #[test]
    fn gateway_webhook_targets_cover_every_provider() {
        let targets = WebhookTargets::gateway("http://gw:8080/");
        for &id in ProviderId::ALL {
            assert_eq!(
                targets.get(id),
                Some(format!("http://gw:8080/v1/webhooks/{id}").as_str())
            );
        }
    }

    #[test]
    fn webhook_targets_json_is_keyed_by_provider_id() {
        let all = WebhookTargets::gateway(BASE);
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json.as_object().unwrap().len(), ProviderId::ALL.len());
        for &id in ProviderId::ALL {
            assert_eq!(json[id.as_str()], Value::from(all.get(id).unwrap()));
        }
        assert_eq!(serde_json::from_value::<WebhookTargets>(json).unwrap(), all);

        // Any subset; null and unknown keys mean no target.
        let first = ProviderId::ALL[0];
        let mut subset = Map::new();
        subset.insert(first.as_str().into(), Value::from("http://x/hook"));
        if let Some(second) = ProviderId::ALL.get(1) {
            subset.insert(second.as_str().into(), Value::Null);
        }
        subset.insert("nobody".into(), Value::from("http://y/hook"));
        let targets: WebhookTargets = serde_json::from_value(Value::Object(subset)).unwrap();
        for &id in ProviderId::ALL {
            let expected = (id == first).then_some("http://x/hook");
            assert_eq!(targets.get(id), expected, "{id}");
        }
        let json = serde_json::to_value(&targets).unwrap();
        assert_eq!(json.as_object().unwrap().len(), ProviderId::ALL.len());
        assert!(ProviderId::ALL[1..]
            .iter()
            .all(|id| json[id.as_str()].is_null()));
        assert_eq!(
            serde_json::from_value::<WebhookTargets>(serde_json::json!({})).unwrap(),
            WebhookTargets::default()
        );
    }
}
