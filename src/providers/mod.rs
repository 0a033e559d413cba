//! Provider integrations: one folder per provider, each keeping that provider's quirks.
//!
//! So far only the pure cryptography lives here (request signing and webhook signatures),
//! shared by the connectors and by the simulators in [`crate::sim`].

/// Kraken Embed: `API-Sign` request signing, nonces, `X-Signature` webhooks.
pub mod kraken;

/// KillB: `x-signature-sha256` webhooks (both the documented and the SDK scheme).
pub mod killb;

/// Carbn Connect: `X-Webhook-Signature` RSA webhooks.
pub mod carbn;
