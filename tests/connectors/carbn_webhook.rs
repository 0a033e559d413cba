//! Carbn's webhook signatures (RSASSA-PKCS1-v1_5 with SHA-256), checked against an
//! independent reference (openssl) with the simulator's key pair, and the verifier the
//! gateway builds from `webhook_public_key`.

use onboarding_gateway::providers::carbn::webhook::{
    sign, verify, SignatureVerifier, WebhookError, WebhookSigner,
};
use onboarding_gateway::sim::carbn::{DEV_WEBHOOK_PRIVATE_KEY_PEM, DEV_WEBHOOK_PUBLIC_KEY_PEM};

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
        sign(DEV_WEBHOOK_PRIVATE_KEY_PEM, BODY).unwrap(),
        OPENSSL_SIGNATURE
    );
    verify(DEV_WEBHOOK_PUBLIC_KEY_PEM, BODY, OPENSSL_SIGNATURE).unwrap();
}

#[test]
fn round_trips() {
    let signer = WebhookSigner::from_private_key_pem(DEV_WEBHOOK_PRIVATE_KEY_PEM).unwrap();
    let verifier = SignatureVerifier::from_public_key_pem(DEV_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
    let body = br#"{"status":"rejected","user_id":"x"}"#;
    let sig = signer.sign(body).unwrap();
    verifier.verify(body, &sig).unwrap();
}

#[test]
fn tampered_body_fails() {
    let mut body = BODY.to_vec();
    body[12] = b'X';
    assert_eq!(
        verify(DEV_WEBHOOK_PUBLIC_KEY_PEM, &body, OPENSSL_SIGNATURE),
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
        verify(DEV_WEBHOOK_PUBLIC_KEY_PEM, BODY, "not base64 !!"),
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

#[test]
fn the_gateway_verifies_deliveries_and_reads_the_event_id_header() {
    use onboarding_gateway::domain::provider::ProviderId;
    use onboarding_gateway::providers::module;
    use onboarding_gateway::providers::webhook::{Verified, VerifyFailure, WebhookVerifier};

    let verifier = SignatureVerifier::from_public_key_pem(DEV_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
    let body = br#"{"status":"active","user_id":"u-9"}"#;
    let sig = sign(DEV_WEBHOOK_PRIVATE_KEY_PEM, body).unwrap();
    let pairs = [
        ("X-Webhook-Signature", sig.as_str()),
        ("X-Webhook-Event-Id", "e-1"),
    ];
    let header = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    WebhookVerifier::verify(&verifier, &header, body, 0).unwrap();
    let tampered = br#"{"status":"active","user_id":"u-8"}"#;
    assert_eq!(
        WebhookVerifier::verify(&verifier, &header, tampered, 0).unwrap_err(),
        VerifyFailure::Invalid
    );
    assert_eq!(
        WebhookVerifier::verify(&verifier, &|_: &str| None, body, 0).unwrap_err(),
        VerifyFailure::Missing
    );
    let event = module(ProviderId::Carbn).parse_webhook(&header, body, Verified::default());
    assert_eq!(event.event_id, "e-1");
    assert_eq!(event.provider_user_id.as_deref(), Some("u-9"));
    assert!(event.concerns_status);
    assert!(SignatureVerifier::from_public_key_pem("nope").is_err());
}
