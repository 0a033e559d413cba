//! Kraken Embed (`nexus.kraken.com/b2b`). See `shared/providers/kraken.md`.

/// `API-Sign` HMAC-SHA512 request signing and the per-key [`signing::NonceSource`].
pub mod signing;

/// `X-Signature: t=…,v1=…` webhook signatures (HMAC-SHA256 over `"t.body"`).
pub mod webhook;
