//! Provider integrations: one folder per provider, each keeping that provider's quirks (its
//! settings section, client, wire types and conversions, signing, webhooks, requirements)
//! behind the [`provider::Provider`] trait. The folders are declared, and looked up by id, from
//! the one provider list (`crate::with_providers!`); the [`connector::Connector`] trait is what
//! the use-cases call.

/// The `Connector` trait and the types connectors exchange with the use-cases.
pub mod connector;
/// The unified provider error: kind, provider code, HTTP status, retry decision.
pub mod error;
/// Outbound HTTP: timeouts, call recording, transport error classification.
pub mod http;
/// Complete `multipart/form-data` bodies, built once so that their exact bytes can be signed.
pub mod multipart;
/// What every provider must say: the `Provider` trait and its object-safe `ProviderModule`.
pub mod provider;
/// The configured providers and their connectors (simulated in local runs).
pub mod registry;
/// The canonical fields a user lacks for a provider.
pub mod requirements;
/// Which providers a new user goes to.
pub mod routing;
/// Inbound webhooks, provider-neutral: the verifier trait and the facts read from a delivery.
pub mod webhook;

use crate::domain::provider::ProviderId;

/// Declares one module per listed provider (`src/providers/<module>/`) and [`module`], the
/// exhaustive lookup of each provider's `Provider` implementation (`<module>::<Variant>`).
macro_rules! provider_modules {
    ($( $module:ident $variant:ident $id:tt $name:tt ),+ $(,)?) => {
        $(
            #[doc = concat!($name, ": its settings, client, transformers and webhooks.")]
            pub mod $module;
        )+

        /// The provider with this id.
        pub fn module(id: ProviderId) -> &'static dyn provider::ProviderModule {
            match id {
                $( ProviderId::$variant => &$module::$variant ),+
            }
        }
    };
}

crate::with_providers!(provider_modules);

/// Every provider, in list order.
pub fn modules() -> impl Iterator<Item = &'static dyn provider::ProviderModule> {
    ProviderId::ALL.iter().map(|id| module(*id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_provider_has_its_module() {
        for id in ProviderId::ALL {
            assert_eq!(module(*id).id(), *id);
            assert!(!module(*id).required_fields().is_empty());
            assert!(!module(*id).webhook_signature().headers.is_empty());
        }
        assert_eq!(modules().count(), ProviderId::ALL.len());
    }
}
