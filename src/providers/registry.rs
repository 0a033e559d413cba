//! The configured providers: one connector per enabled provider with credentials, and for the
//! others the reason they cannot be used. With `simulator.enabled`, a provider without
//! credentials is pointed at the built-in simulators (`sim/`) with their development
//! credentials, so a local run needs no provider accounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::carbn::CarbnConnector;
use super::connector::Connector;
use super::http::{HttpTimeouts, ProviderHttp};
use super::killb::KillbConnector;
use super::kraken::KrakenConnector;
use super::webhook::WebhookVerifier;
use crate::domain::provider::ProviderId;
use crate::settings::{CarbnSettings, KillbSettings, KrakenSettings, Settings};

/// Whether a provider can be used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderState {
    Enabled,
    Disabled,
    Unconfigured(String),
}

pub struct ProviderEntry {
    pub id: ProviderId,
    pub state: ProviderState,
    /// The base URL's host (never credentials or paths).
    pub host: Option<String>,
    /// True when the provider is served by the built-in simulator.
    pub simulated: bool,
    pub connector: Option<Arc<dyn Connector>>,
    /// Verifies the provider's inbound webhooks, built from the effective credentials; `Err`
    /// says why its webhooks are refused (provider not enabled, no or invalid secret).
    pub webhook: Result<Arc<WebhookVerifier>, String>,
}

pub struct ProviderRegistry {
    entries: BTreeMap<ProviderId, ProviderEntry>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let states: Vec<_> = self
            .entries
            .values()
            .map(|e| (e.id.as_str(), e.state.clone()))
            .collect();
        f.debug_struct("ProviderRegistry")
            .field("providers", &states)
            .finish()
    }
}

fn missing(value: &Option<SecretString>) -> bool {
    value.is_none()
}

impl ProviderRegistry {
    /// Builds the connectors. `simulator_url` is the base URL of the running simulators, when
    /// `simulator.enabled`.
    pub fn from_settings(settings: &Settings, simulator_url: Option<&str>) -> Self {
        let timeouts = HttpTimeouts {
            connect: Duration::from_millis(settings.outbound.connect_timeout_ms),
            total: Duration::from_millis(settings.outbound.timeout_ms),
        };
        let mut entries = BTreeMap::new();

        let kraken = settings.providers.kraken.clone().map(|mut s| {
            let simulated = simulator_url.is_some() && missing(&s.api_key);
            if let (true, Some(url)) = (simulated, simulator_url) {
                s = KrakenSettings {
                    base_url: url.to_owned(),
                    api_key: Some(crate::sim::DEV_KRAKEN_API_KEY.to_owned().into()),
                    api_secret: Some(crate::sim::DEV_KRAKEN_API_SECRET_B64.to_owned().into()),
                    webhook_secret: Some(
                        crate::sim::DEV_KRAKEN_WEBHOOK_SECRET_B64.to_owned().into(),
                    ),
                    ..s
                };
            }
            (s, simulated)
        });
        let kraken_webhook = kraken.as_ref().map(|(s, _)| match &s.webhook_secret {
            Some(secret) => WebhookVerifier::kraken(secret),
            None => Err("no providers.kraken.webhook_secret".to_owned()),
        });
        entries.insert(
            ProviderId::Kraken,
            with_webhook(
                build(
                    ProviderId::Kraken,
                    kraken,
                    timeouts,
                    |s| s.enabled,
                    |s| &s.base_url,
                    |s, http| {
                        KrakenConnector::new(s, http).map(|c| Arc::new(c) as Arc<dyn Connector>)
                    },
                ),
                kraken_webhook,
            ),
        );

        let killb = settings.providers.killb.clone().map(|mut s| {
            let simulated = simulator_url.is_some() && missing(&s.email);
            if let (true, Some(url)) = (simulated, simulator_url) {
                s = KillbSettings {
                    base_url: url.to_owned(),
                    email: Some(crate::sim::DEV_KILLB_EMAIL.to_owned().into()),
                    password: Some(crate::sim::DEV_KILLB_PASSWORD.to_owned().into()),
                    webhook_secret: Some(crate::sim::DEV_KILLB_WEBHOOK_SECRET.to_owned().into()),
                    ..s
                };
            }
            (s, simulated)
        });
        let killb_webhook = killb.as_ref().map(|(s, _)| match &s.webhook_secret {
            Some(secret) => WebhookVerifier::killb(secret, s.webhook_signature_scheme),
            None => Err("no providers.killb.webhook_secret".to_owned()),
        });
        entries.insert(
            ProviderId::Killb,
            with_webhook(
                build(
                    ProviderId::Killb,
                    killb,
                    timeouts,
                    |s| s.enabled,
                    |s| &s.base_url,
                    |s, http| {
                        KillbConnector::new(s, http).map(|c| Arc::new(c) as Arc<dyn Connector>)
                    },
                ),
                killb_webhook,
            ),
        );

        let carbn = settings.providers.carbn.clone().map(|mut s| {
            let simulated = simulator_url.is_some() && missing(&s.api_key);
            if let (true, Some(url)) = (simulated, simulator_url) {
                s = CarbnSettings {
                    base_url: url.to_owned(),
                    api_key: Some(crate::sim::DEV_CARBN_API_KEY.to_owned().into()),
                    webhook_public_key: Some(
                        crate::sim::DEV_CARBN_WEBHOOK_PUBLIC_KEY_PEM.to_owned(),
                    ),
                    ..s
                };
            }
            (s, simulated)
        });
        let carbn_webhook = carbn.as_ref().map(|(s, _)| match &s.webhook_public_key {
            Some(pem) => WebhookVerifier::carbn(pem),
            None => Err("no providers.carbn.webhook_public_key".to_owned()),
        });
        entries.insert(
            ProviderId::Carbn,
            with_webhook(
                build(
                    ProviderId::Carbn,
                    carbn,
                    timeouts,
                    |s| s.enabled,
                    |s| &s.base_url,
                    |s, http| {
                        CarbnConnector::new(s, http).map(|c| Arc::new(c) as Arc<dyn Connector>)
                    },
                ),
                carbn_webhook,
            ),
        );
        Self { entries }
    }

    /// A registry from ready-made connectors (tests).
    pub fn from_connectors(connectors: Vec<Arc<dyn Connector>>) -> Self {
        let mut entries = BTreeMap::new();
        for id in ProviderId::ALL {
            entries.insert(
                *id,
                ProviderEntry {
                    id: *id,
                    state: ProviderState::Unconfigured("not configured".into()),
                    host: None,
                    simulated: false,
                    connector: None,
                    webhook: Err("not configured".into()),
                },
            );
        }
        for connector in connectors {
            let id = connector.id();
            entries.insert(
                id,
                ProviderEntry {
                    id,
                    state: ProviderState::Enabled,
                    host: None,
                    simulated: false,
                    connector: Some(connector),
                    webhook: Err("no webhook credentials".into()),
                },
            );
        }
        Self { entries }
    }

    pub fn entries(&self) -> impl Iterator<Item = &ProviderEntry> {
        self.entries.values()
    }

    pub fn connector(&self, id: ProviderId) -> Option<&Arc<dyn Connector>> {
        self.entries.get(&id).and_then(|e| e.connector.as_ref())
    }

    /// The verifier of a provider's webhooks, or why its webhooks are refused.
    pub fn webhook_verifier(&self, id: ProviderId) -> Result<&WebhookVerifier, &str> {
        match self.entries.get(&id).map(|e| &e.webhook) {
            Some(Ok(verifier)) => Ok(verifier),
            Some(Err(reason)) => Err(reason),
            None => Err("not configured"),
        }
    }

    /// Sets a provider's webhook verifier (tests with ready-made connectors).
    pub fn set_webhook_verifier(&mut self, id: ProviderId, verifier: WebhookVerifier) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.webhook = Ok(Arc::new(verifier));
        }
    }

    pub fn is_available(&self, id: ProviderId) -> bool {
        self.unavailable_reason(id).is_none()
    }

    /// Why a provider cannot be used, or `None` when it can.
    pub fn unavailable_reason(&self, id: ProviderId) -> Option<String> {
        match self.entries.get(&id).map(|e| &e.state) {
            Some(ProviderState::Enabled) => None,
            Some(ProviderState::Disabled) => Some("it is disabled in the configuration".into()),
            Some(ProviderState::Unconfigured(reason)) => {
                Some(format!("it is not configured ({reason})"))
            }
            None => Some("it is not configured".into()),
        }
    }
}

fn build<S>(
    id: ProviderId,
    section: Option<(S, bool)>,
    timeouts: HttpTimeouts,
    enabled: impl Fn(&S) -> bool,
    base_url: impl Fn(&S) -> &String,
    connect: impl Fn(&S, ProviderHttp) -> Result<Arc<dyn Connector>, String>,
) -> ProviderEntry {
    let Some((settings, simulated)) = section else {
        return ProviderEntry {
            id,
            state: ProviderState::Unconfigured(format!("no [providers.{}] section", id.as_str())),
            host: None,
            simulated: false,
            connector: None,
            webhook: Err("not configured".into()),
        };
    };
    let disabled = |host| ProviderEntry {
        id,
        state: ProviderState::Disabled,
        host,
        simulated,
        connector: None,
        webhook: Err("disabled".into()),
    };
    let http = match ProviderHttp::new(id, base_url(&settings), timeouts) {
        Ok(http) => http,
        Err(reason) => {
            return ProviderEntry {
                id,
                state: ProviderState::Unconfigured(reason),
                host: None,
                simulated,
                connector: None,
                webhook: Err("not configured".into()),
            }
        }
    };
    let host = Some(http.host());
    if !enabled(&settings) {
        return disabled(host);
    }
    match connect(&settings, http) {
        Ok(connector) => ProviderEntry {
            id,
            state: ProviderState::Enabled,
            host,
            simulated,
            connector: Some(connector),
            webhook: Err("not configured".into()),
        },
        Err(reason) => {
            tracing::warn!(provider = id.as_str(), %reason, "provider not configured");
            ProviderEntry {
                id,
                state: ProviderState::Unconfigured(reason),
                host,
                simulated,
                connector: None,
                webhook: Err("not configured".into()),
            }
        }
    }
}

/// Attaches the webhook verifier to an enabled provider's entry. A disabled or unconfigured
/// provider's webhooks are refused; so are those of an enabled provider without (valid)
/// webhook credentials, which is worth a warning at start-up.
fn with_webhook(
    mut entry: ProviderEntry,
    verifier: Option<Result<WebhookVerifier, String>>,
) -> ProviderEntry {
    if entry.state != ProviderState::Enabled {
        entry.webhook = Err(format!("provider {} is not enabled", entry.id.as_str()));
        return entry;
    }
    entry.webhook = match verifier {
        Some(Ok(verifier)) => Ok(Arc::new(verifier)),
        Some(Err(reason)) => {
            tracing::warn!(provider = entry.id.as_str(), %reason, "webhooks from this provider will be refused");
            Err(reason)
        }
        None => Err("not configured".into()),
    };
    entry
}
