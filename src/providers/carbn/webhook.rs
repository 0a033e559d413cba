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
use sha2::Sha256;

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
pub struct WebhookVerifier {
    key: VerifyingKey<Sha256>,
}

impl WebhookVerifier {
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

/// One-shot [`WebhookVerifier::verify`].
pub fn verify(public_key_pem: &str, body: &[u8], signature_b64: &str) -> Result<(), WebhookError> {
    WebhookVerifier::from_public_key_pem(public_key_pem)?.verify(body, signature_b64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::keys::{CARBN_WEBHOOK_PRIVATE_KEY_PEM, CARBN_WEBHOOK_PUBLIC_KEY_PEM};

    const BODY: &[u8] = br#"{"status":"active","user_id":"0b6f8a4e-4f1c-4a51-9d59-4a1f2f8f0a01"}"#;

    /// `openssl dgst -sha256 -sign <sim private key> body | base64`: an independent reference.
    const OPENSSL_SIGNATURE: &str = "QmZruM1rGpwzBAr1Ouy+1PVtG0Qx4PJTVYqzxizGzMaWiT0E6jQNtWXNdZW65+09mwNLaZD/PHCvWdjkDOBs3vPqyDgqVDKz0L0UOR25aBySiFjHMacCf3dPtZWve2doqlXxIKiGbtzy+er067lsvOzLVt/F9/lWS7zowJ8Qirc+NzlS/LX1/lYNRGXZ3g/dcNXXe0s5+55oePRhKfeW7NFfIWsiBYMU+CmXjvxDuZpiQI2LRze1JECSnvnIbM0S9LDm1UO7HrF1tgnbg7WPf3iega2G3PLTUoQaz5zeisEdJbloJLkUKKnCUGrUFh1C6WX3dIUNfKIydICO+Ixl1w==";

    /// A second, unrelated RSA-2048 public key.
    const OTHER_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtAqaQ653psCFzIa7zNEn
P75thp6fz6UW8K5JsajAzz8BI+DX/Y6sQikUxLrOZM9r4ia/7t9yZ4FdyAohDvQk
ufv4wNZKkArt3AM9zxREJyvjUMIxoP8OyPXqP/Vz8As/kUauJ2pvsH8d2S3qrIA/
fLqWVEIlVk1U8kJuCinxPSnX7bIZuW3Hr9oq1Xu/WJj3sZszF2XmtXWHpoAxBbkW
Gd/+oH+UhB6bC8X3lTRd8kDjob/MXOPKYqIdcLzdaS9Mue81eWCM5/37cEYlnuQI
pAWkB3itr/RihF4ip6s9ALenuv7A5gzNrg6t4yCulwVZikVylAazDE+B65nDZrVj
CwIDAQAB
-----END PUBLIC KEY-----";

    #[test]
    fn matches_openssl_sha256_with_rsa() {
        assert_eq!(
            sign(CARBN_WEBHOOK_PRIVATE_KEY_PEM, BODY).unwrap(),
            OPENSSL_SIGNATURE
        );
        verify(CARBN_WEBHOOK_PUBLIC_KEY_PEM, BODY, OPENSSL_SIGNATURE).unwrap();
    }

    #[test]
    fn round_trips() {
        let signer = WebhookSigner::from_private_key_pem(CARBN_WEBHOOK_PRIVATE_KEY_PEM).unwrap();
        let verifier = WebhookVerifier::from_public_key_pem(CARBN_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
        let body = br#"{"status":"rejected","user_id":"x"}"#;
        let sig = signer.sign(body).unwrap();
        verifier.verify(body, &sig).unwrap();
    }

    #[test]
    fn tampered_body_fails() {
        let mut body = BODY.to_vec();
        body[12] = b'X';
        assert_eq!(
            verify(CARBN_WEBHOOK_PUBLIC_KEY_PEM, &body, OPENSSL_SIGNATURE),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn wrong_key_fails() {
        assert_eq!(
            verify(OTHER_PUBLIC_KEY_PEM, BODY, OPENSSL_SIGNATURE),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn garbage_inputs_are_errors() {
        assert_eq!(
            verify(CARBN_WEBHOOK_PUBLIC_KEY_PEM, BODY, "not base64 !!"),
            Err(WebhookError::MalformedSignature)
        );
        assert_eq!(
            verify(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                BODY,
                OPENSSL_SIGNATURE
            )
            .unwrap_err(),
            WebhookError::InvalidPublicKey
        );
        assert_eq!(
            sign("not a key", BODY).unwrap_err(),
            WebhookError::InvalidPrivateKey
        );
    }
}
