//! The configured providers: one connector per enabled provider with credentials, and for the
//! others the reason they cannot be used. With the simulators on, a provider whose section has
//! no credentials is pointed at its simulator with the development credentials that `app`
//! passes in, so a local run needs no provider accounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::connector::Connector;
use super::http::HttpTimeouts;
pub use super::provider::ProviderState;
use super::provider::{BuildContext, ProviderEntry};
use super::webhook::WebhookVerifier;
use crate::domain::provider::ProviderId;
use crate::settings::{OutboundSettings, ProviderSections};

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

impl ProviderRegistry {
    /// Builds every listed provider from its `[providers.<id>]` section. `simulator` holds, when
    /// the simulators run, the section that points each provider at its simulator. A section
    /// naming no known provider, or one that does not parse, is an error naming the key.
    pub fn build(
        sections: &ProviderSections,
        outbound: &OutboundSettings,
        simulator: &BTreeMap<ProviderId, config::Value>,
    ) -> Result<Self, String> {
        if let Some(unknown) = sections
            .names()
            .find(|name| name.parse::<ProviderId>().is_err())
        {
            return Err(format!(
                "providers.{unknown}: no such provider (known: {})",
                ProviderId::allowed()
            ));
        }
        let timeouts = HttpTimeouts {
            connect: Duration::from_millis(outbound.connect_timeout_ms),
            total: Duration::from_millis(outbound.timeout_ms),
        };
        let mut entries = BTreeMap::new();
        for module in super::modules() {
            let id = module.id();
            let context = BuildContext {
                timeouts,
                simulator: simulator.get(&id),
            };
            entries.insert(id, module.entry(sections.get(id.as_str()), &context)?);
        }
        Ok(Self { entries })
    }

    /// A registry from ready-made connectors (tests).
    pub fn from_connectors(connectors: Vec<Arc<dyn Connector>>) -> Self {
        let mut entries: BTreeMap<ProviderId, ProviderEntry> = ProviderId::ALL
            .iter()
            .map(|id| {
                (
                    *id,
                    ProviderEntry::unconfigured(*id, "not configured".into()),
                )
            })
            .collect();
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
    pub fn webhook_verifier(&self, id: ProviderId) -> Result<&dyn WebhookVerifier, &str> {
        match self.entries.get(&id).map(|e| &e.webhook) {
            Some(Ok(verifier)) => Ok(verifier.as_ref()),
            Some(Err(reason)) => Err(reason),
            None => Err("not configured"),
        }
    }

    /// Sets a provider's webhook verifier (tests with ready-made connectors).
    pub fn set_webhook_verifier(&mut self, id: ProviderId, verifier: Arc<dyn WebhookVerifier>) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.webhook = Ok(verifier);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kraken_with(on_unknown_outcome: &str) -> Result<ProviderRegistry, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut sections = ProviderSections::default();
        sections.set("kraken", "base_url", "https://nexus.kraken.com");
        sections.set("kraken", "api_key", "key");
        sections.set("kraken", "api_secret", "c2VjcmV0");
        sections.set("kraken", "on_unknown_outcome", on_unknown_outcome);
        ProviderRegistry::build(&sections, &OutboundSettings::default(), &BTreeMap::new())
    }

    #[test]
    fn kraken_on_unknown_outcome_takes_retry_or_review_and_names_the_key_otherwise() {
        use crate::providers::connector::AfterUnknownOutcome;
        for (value, expected) in [
            ("retry", AfterUnknownOutcome::Resend),
            ("review", AfterUnknownOutcome::Review),
        ] {
            let registry = kraken_with(value).unwrap();
            let connector = registry.connector(ProviderId::Kraken).unwrap();
            assert_eq!(connector.after_unknown_outcome(), expected, "{value}");
        }
        let error = kraken_with("sometimes").expect_err("refused");
        for part in ["providers.kraken", "on_unknown_outcome", "retry", "review"] {
            assert!(error.contains(part), "{part} in {error}");
        }
    }
}
