//! Carbn Connect webhook signatures
//! (https://docs.carbn.xyz/documentation/developer-platform/monitoring/webhook-verification).
//!
//! `X-Webhook-Signature` is a base64 RSA signature over the raw request body, verified with the
//! per-webhook PEM SPKI public key returned at registration. Hash and padding are not documented
//! publicly; the sender is Java 17 (`User-Agent: Java/17.0.14`), so `SHA256withRSA`
//! (RSASSA-PKCS1-v1_5 with SHA-256) is used [I].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::Sha256;

use crate::providers::webhook::{
    body_digest, bounded, header_text, text, Headers, Verified, VerifyFailure, WebhookEvent,
    WebhookVerifier,
};

/// Header carrying the base64 signature.
pub const SIGNATURE_HEADER: &str = "X-Webhook-Signature";
/// Header carrying the delivery id (recommended for deduplication).
pub const EVENT_ID_HEADER: &str = "X-Webhook-Event-Id";
/// Header carrying the webhook configuration id (selects the public key).
pub const WEBHOOK_ID_HEADER: &str = "X-Webhook-Id";

/// Why a signature could not be produced or was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The public key is not a PEM SPKI RSA key (`-----BEGIN PUBLIC KEY-----`).
    #[error("invalid RSA public key PEM")]
    InvalidPublicKey,
    /// The private key is not a PEM PKCS#8 RSA key (`-----BEGIN PRIVATE KEY-----`).
    #[error("invalid RSA private key PEM")]
    InvalidPrivateKey,
    /// The header is not base64, or not a signature of the key's size.
    #[error("malformed X-Webhook-Signature header")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("signature mismatch")]
    Mismatch,
    /// Signing failed (should not happen with a valid key).
    #[error("signing failed")]
    SigningFailed,
}

/// Verifies deliveries with one webhook's public key; parse once, verify many.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    key: VerifyingKey<Sha256>,
}

impl SignatureVerifier {
    /// From a PEM SPKI public key, as Carbn returns it at webhook registration.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, WebhookError> {
        let key = RsaPublicKey::from_public_key_pem(pem.trim())
            .map_err(|_| WebhookError::InvalidPublicKey)?;
        Ok(Self {
            key: VerifyingKey::new(key),
        })
    }

    /// Checks the base64 `X-Webhook-Signature` value against the raw body.
    pub fn verify(&self, body: &[u8], signature_b64: &str) -> Result<(), WebhookError> {
        let bytes = STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| WebhookError::MalformedSignature)?;
        let signature =
            Signature::try_from(bytes.as_slice()).map_err(|_| WebhookError::MalformedSignature)?;
        self.key
            .verify(body, &signature)
            .map_err(|_| WebhookError::Mismatch)
    }
}

/// Signs deliveries (simulator side) with a PKCS#8 private key.
#[derive(Debug, Clone)]
pub struct WebhookSigner {
    key: SigningKey<Sha256>,
}

impl WebhookSigner {
    /// From a PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_private_key_pem(pem: &str) -> Result<Self, WebhookError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| WebhookError::InvalidPrivateKey)?;
        Ok(Self {
            key: SigningKey::new(key),
        })
    }

    /// The base64 `X-Webhook-Signature` value for `body` (deterministic: PKCS#1 v1.5).
    pub fn sign(&self, body: &[u8]) -> Result<String, WebhookError> {
        let signature = self
            .key
            .try_sign(body)
            .map_err(|_| WebhookError::SigningFailed)?;
        Ok(STANDARD.encode(signature.to_bytes()))
    }
}

/// One-shot [`WebhookSigner::sign`].
pub fn sign(private_key_pem: &str, body: &[u8]) -> Result<String, WebhookError> {
    WebhookSigner::from_private_key_pem(private_key_pem)?.sign(body)
}

/// One-shot [`SignatureVerifier::verify`].
pub fn verify(public_key_pem: &str, body: &[u8], signature_b64: &str) -> Result<(), WebhookError> {
    SignatureVerifier::from_public_key_pem(public_key_pem)?.verify(body, signature_b64)
}

impl WebhookVerifier for SignatureVerifier {
    fn verify(&self, header: &Headers<'_>, body: &[u8], _now: i64) -> Result<Verified, VerifyFailure> {
        let value = header(SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
        SignatureVerifier::verify(self, body, value)
            .map(|()| Verified::default())
            .map_err(|_| VerifyFailure::Invalid)
    }
}

/// Reads a verified delivery: event id from `X-Webhook-Event-Id`; the user from `user_id`.
/// Carbn payloads carry no event type; transaction categories carry a `txn_id` and are stored
/// only.
pub fn parse_event(header: &Headers<'_>, body: &[u8], _verified: Verified) -> WebhookEvent {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let provider_user_id = text(json.get("user_id"));
    let is_transaction = json.get("txn_id").is_some();
    let event_type = Some(if is_transaction {
        "TRANSACTION_STATUS".to_owned()
    } else {
        "USER_STATUS_UPDATE".to_owned()
    });
    let event_id = header_text(header, EVENT_ID_HEADER)
        .map(bounded)
        .unwrap_or_else(|| body_digest(body));
    WebhookEvent {
        event_id,
        event_type,
        concerns_status: !is_transaction && provider_user_id.is_some(),
        provider_user_id,
    }
}
