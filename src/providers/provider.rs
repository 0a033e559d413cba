//! What every provider must say. Each provider folder implements [`Provider`] once, for a unit
//! struct named like its [`ProviderId`] variant (`kraken::Kraken`); the items have no defaults,
//! so a provider that lacks one does not compile. The rest of the gateway sees providers only
//! through the object-safe [`ProviderModule`] that every [`Provider`] is, looked up by id with
//! [`super::module`].

use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::connector::Connector;
use super::http::{HttpTimeouts, ProviderHttp};
use super::webhook::{Headers, Verified, WebhookEvent, WebhookVerifier};
use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;
use crate::domain::verification::{
    DocumentContentType, DocumentSide, DocumentType, NextAction, Rejection,
};
use crate::domain::FieldError;

/// How a provider authenticates its webhooks, as the OpenAPI document describes it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSignature {
    /// The request headers that carry the signature and the facts read from them:
    /// `(name, description)`.
    pub headers: &'static [(&'static str, &'static str)],
    /// How the signature is computed and checked (one sentence, Markdown).
    pub scheme: &'static str,
}

/// A link's stored state, as a provider's next-action and rejection mappings read it.
#[derive(Debug, Clone, Copy)]
pub struct LinkFacts<'a> {
    pub status: LinkStatus,
    /// The provider's raw status value, when it sent one.
    pub provider_status: Option<&'a str>,
    /// The outstanding requirements as the provider reported them.
    pub requirements: &'a [Value],
    /// Provider-specific facts kept with the link.
    pub link_data: &'a Map<String, Value>,
    /// The document types already submitted (status `submitted`) to this provider for the user.
    pub submitted_documents: &'a [DocumentType],
    pub now: OffsetDateTime,
}

/// A document as a provider's policy sees it (never its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentFacts {
    pub document_type: DocumentType,
    pub side: Option<DocumentSide>,
    pub content_type: DocumentContentType,
    /// Bytes.
    pub size: u64,
    /// Whether the upload carries a `verification` attestation.
    pub has_verification: bool,
}

/// Whether and how a provider takes a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentPolicy {
    /// It is sent. With `pairs_sides`, a two-sided document's front waits for its back and
    /// both go in one call.
    Accept { pairs_sides: bool },
    /// The provider takes no such document: the submission is `not_supported`, with this reason.
    NotSupported(String),
    /// The provider would refuse this file: the upload is `422`, naming the provider and `rule`.
    Refuse { rule: &'static str, message: String },
}

/// A provider integration: its settings section, requirements, connector and webhooks.
pub trait Provider: Sync + 'static {
    /// The `[providers.<id>]` configuration section.
    type Settings: serde::de::DeserializeOwned;

    /// Which provider this is.
    const ID: ProviderId;

    /// The canonical JSON paths it requires beyond the base set every user has, checked before
    /// anything is stored or sent (`422 provider_requirements_unmet`).
    fn required_fields() -> &'static [&'static str];

    /// Values present in `user` that the provider cannot take, as field errors with code
    /// `not_supported_by_provider` (empty when it takes everything the canonical model allows).
    fn unsupported_values(user: &CanonicalUser) -> Vec<FieldError>;

    /// How its webhooks are signed.
    fn webhook_signature() -> WebhookSignature;

    /// Whether the section enables it.
    fn enabled(settings: &Self::Settings) -> bool;

    /// The section's base URL.
    fn base_url(settings: &Self::Settings) -> &str;

    /// Whether the section carries the provider's API credentials. A section without them is
    /// pointed at the built-in simulator when the simulators run.
    fn has_credentials(settings: &Self::Settings) -> bool;

    /// Builds the connector, or says which key is missing or invalid.
    fn connector(
        settings: &Self::Settings,
        http: ProviderHttp,
    ) -> Result<Arc<dyn Connector>, String>;

    /// Builds the verifier of its webhooks, or says why its webhooks must be refused.
    fn webhook_verifier(settings: &Self::Settings) -> Result<Arc<dyn WebhookVerifier>, String>;

    /// Reads the few facts the gateway needs from a verified delivery. Never fails: what cannot
    /// be read is `None`, and an event without id falls back to the digest of its body.
    fn parse_webhook(header: &Headers<'_>, body: &[u8], verified: Verified) -> WebhookEvent;

    /// What the provider asks of the user next, from the link's stored state: every provider
    /// value maps onto one canonical action, and a value the mapping does not know becomes
    /// [`NextAction::unrecognised`] (never dropped).
    fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction>;

    /// Why the provider rejected the user, for a link it rejected (`None` otherwise).
    fn rejection(link: &LinkFacts<'_>) -> Option<Rejection>;

    /// Whether and how the provider takes a document, checked before the upload is stored.
    fn document_policy(document: &DocumentFacts) -> DocumentPolicy;
}

/// Whether a provider can be used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderState {
    Enabled,
    Disabled,
    Unconfigured(String),
}

/// One provider as configured.
pub struct ProviderEntry {
    pub id: ProviderId,
    pub state: ProviderState,
    /// The base URL's host (never credentials or paths).
    pub host: Option<String>,
    /// True when the provider is served by the built-in simulator.
    pub simulated: bool,
    pub connector: Option<Arc<dyn Connector>>,
    /// Verifies the provider's inbound webhooks; `Err` says why its webhooks are refused
    /// (provider not enabled, no or invalid secret).
    pub webhook: Result<Arc<dyn WebhookVerifier>, String>,
}

impl ProviderEntry {
    /// A provider that cannot be used, with the reason.
    pub fn unconfigured(id: ProviderId, reason: String) -> Self {
        Self {
            id,
            state: ProviderState::Unconfigured(reason),
            host: None,
            simulated: false,
            connector: None,
            webhook: Err(format!("provider {id} is not enabled")),
        }
    }
}

/// What building a provider's entry needs besides its section.
pub struct BuildContext<'a> {
    pub timeouts: HttpTimeouts,
    /// With the simulators on: the section that points this provider at its simulator (its
    /// base URL and development credentials), laid over a section that has no credentials.
    pub simulator: Option<&'a config::Value>,
}

/// A provider as the rest of the gateway sees it (object-safe; every [`Provider`] is one).
pub trait ProviderModule: Sync {
    fn id(&self) -> ProviderId;
    /// See [`Provider::required_fields`].
    fn required_fields(&self) -> &'static [&'static str];
    /// See [`Provider::unsupported_values`].
    fn unsupported_values(&self, user: &CanonicalUser) -> Vec<FieldError>;
    /// See [`Provider::webhook_signature`].
    fn webhook_signature(&self) -> WebhookSignature;
    /// See [`Provider::parse_webhook`].
    fn parse_webhook(&self, header: &Headers<'_>, body: &[u8], verified: Verified) -> WebhookEvent;
    /// See [`Provider::next_actions`].
    fn next_actions(&self, link: &LinkFacts<'_>) -> Vec<NextAction>;
    /// See [`Provider::rejection`].
    fn rejection(&self, link: &LinkFacts<'_>) -> Option<Rejection>;
    /// See [`Provider::document_policy`].
    fn document_policy(&self, document: &DocumentFacts) -> DocumentPolicy;
    /// Builds the provider's entry from its `[providers.<id>]` section (`None`: absent). A
    /// section that does not parse is an error naming the key; missing credentials leave the
    /// provider unconfigured, with the reason.
    fn entry(
        &self,
        section: Option<&config::Value>,
        context: &BuildContext<'_>,
    ) -> Result<ProviderEntry, String>;
}

impl<P: Provider> ProviderModule for P {
    fn id(&self) -> ProviderId {
        P::ID
    }

    fn required_fields(&self) -> &'static [&'static str] {
        P::required_fields()
    }

    fn unsupported_values(&self, user: &CanonicalUser) -> Vec<FieldError> {
        P::unsupported_values(user)
    }

    fn webhook_signature(&self) -> WebhookSignature {
        P::webhook_signature()
    }

    fn parse_webhook(&self, header: &Headers<'_>, body: &[u8], verified: Verified) -> WebhookEvent {
        P::parse_webhook(header, body, verified)
    }

    fn next_actions(&self, link: &LinkFacts<'_>) -> Vec<NextAction> {
        P::next_actions(link)
    }

    fn rejection(&self, link: &LinkFacts<'_>) -> Option<Rejection> {
        P::rejection(link)
    }

    fn document_policy(&self, document: &DocumentFacts) -> DocumentPolicy {
        P::document_policy(document)
    }

    fn entry(
        &self,
        section: Option<&config::Value>,
        context: &BuildContext<'_>,
    ) -> Result<ProviderEntry, String> {
        let id = P::ID;
        let Some(section) = section else {
            return Ok(ProviderEntry::unconfigured(
                id,
                format!("no [providers.{id}] section"),
            ));
        };
        let parse = |value: config::Value| {
            value
                .try_deserialize::<P::Settings>()
                .map_err(|e| format!("providers.{id}: {e}"))
        };
        let configured = parse(section.clone())?;
        let (settings, simulated) = match context.simulator {
            Some(simulator) if !P::has_credentials(&configured) => {
                (parse(overlay(section, simulator))?, true)
            }
            _ => (configured, false),
        };
        let http = match ProviderHttp::new(id, P::base_url(&settings), context.timeouts) {
            Ok(http) => http,
            Err(reason) => {
                return Ok(ProviderEntry {
                    simulated,
                    ..ProviderEntry::unconfigured(id, reason)
                })
            }
        };
        let host = Some(http.host());
        if !P::enabled(&settings) {
            return Ok(ProviderEntry {
                id,
                state: ProviderState::Disabled,
                host,
                simulated,
                connector: None,
                webhook: Err(format!("provider {id} is not enabled")),
            });
        }
        let connector = match P::connector(&settings, http) {
            Ok(connector) => connector,
            Err(reason) => {
                tracing::warn!(provider = id.as_str(), %reason, "provider not configured");
                return Ok(ProviderEntry {
                    host,
                    simulated,
                    ..ProviderEntry::unconfigured(id, reason)
                });
            }
        };
        // An enabled provider without (valid) webhook credentials is worth a warning: its
        // deliveries will be refused.
        let webhook = P::webhook_verifier(&settings).inspect_err(|reason| {
            tracing::warn!(provider = id.as_str(), %reason, "webhooks from this provider will be refused");
        });
        Ok(ProviderEntry {
            id,
            state: ProviderState::Enabled,
            host,
            simulated,
            connector: Some(connector),
            webhook,
        })
    }
}

/// `base` with every key of `top` set over it (both tables; `top` wins).
fn overlay(base: &config::Value, top: &config::Value) -> config::Value {
    let mut table = base.clone().into_table().unwrap_or_default();
    if let Ok(top) = top.clone().into_table() {
        table.extend(top);
    }
    config::Value::new(None, config::ValueKind::Table(table))
}
