//! Carbn Connect (`api.carbnconnect.com/onboarding/api/v1`). See `shared/providers/carbn.md`.

/// `X-Webhook-Signature` RSA (PKCS#1 v1.5, SHA-256) webhook signatures.
pub mod webhook;
