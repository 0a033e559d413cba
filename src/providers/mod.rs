//! Provider integrations: one folder per provider, each keeping that provider's quirks (its
//! client, wire types and conversions, signing, webhooks). The [`connector::Connector`] trait
//! is what the use-cases see.

/// The `Connector` trait and the types connectors exchange with the use-cases.
pub mod connector;
/// The unified provider error: kind, provider code, HTTP status, retry decision.
pub mod error;
/// Outbound HTTP: timeouts, call recording, transport error classification.
pub mod http;
/// The configured providers and their connectors (simulated in local runs).
pub mod registry;
/// Each provider's required canonical fields.
pub mod requirements;
/// Which providers a new user goes to.
pub mod routing;
/// Inbound webhooks: a verifier per provider, and a tolerant reading of deliveries.
pub mod webhook;

/// Kraken Embed: `API-Sign` request signing, nonces, `X-Signature` webhooks.
pub mod kraken;

/// KillB: `x-signature-sha256` webhooks (both the documented and the SDK scheme).
pub mod killb;

/// Carbn Connect: `X-Webhook-Signature` RSA webhooks.
pub mod carbn;
