//! KillB webhook signatures, header `x-signature-sha256`
//! (https://docs.killb.com/guides/webhooks/security).
//!
//! The sources disagree, so both schemes are implemented:
//!
//! | Scheme | Source | Value |
//! |---|---|---|
//! | [`SignatureScheme::HmacSha256`] | docs (security guide) | `hex(HMAC-SHA256(key = secret as UTF-8, msg = raw_body))` |
//! | [`SignatureScheme::Sha256Concat`] | official TS SDK `Webhook.validateEvent` | `hex(SHA256(JSON.stringify(body) + "_" + secret))` |
//!
//! For the SDK scheme the raw body is tried first, then its compact re-serialization (what
//! `JSON.stringify(JSON.parse(body))` yields for ordinary payloads). Comparisons are constant-time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-signature-sha256";

/// Which of KillB's two documented signature constructions to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// Docs: hex HMAC-SHA256 of the raw body keyed with the secret. The default.
    #[default]
    HmacSha256,
    /// Official SDK: hex SHA-256 of `body + "_" + secret` (not an HMAC).
    Sha256Concat,
}

/// Why a webhook signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The header value is not 64 hex digits.
    #[error("malformed x-signature-sha256 header")]
    MalformedHeader,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

fn digest(scheme: SignatureScheme, secret: &str, body: &[u8]) -> [u8; 32] {
    match scheme {
        SignatureScheme::HmacSha256 => {
            // HMAC accepts keys of any length; this cannot fail.
            let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(body);
            mac.finalize().into_bytes().into()
        }
        SignatureScheme::Sha256Concat => {
            let mut hash = Sha256::new();
            hash.update(body);
            hash.update(b"_");
            hash.update(secret.as_bytes());
            hash.finalize().into()
        }
    }
}

/// The hex signature of `body` under `scheme`.
pub fn sign(scheme: SignatureScheme, secret: &str, body: &[u8]) -> String {
    hex::encode(digest(scheme, secret, body))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies `header_value` against the raw body under one scheme.
pub fn verify(
    scheme: SignatureScheme,
    secret: &str,
    body: &[u8],
    header_value: &str,
) -> Result<(), WebhookError> {
    let given = hex::decode(header_value.trim()).map_err(|_| WebhookError::MalformedHeader)?;
    if given.len() != 32 {
        return Err(WebhookError::MalformedHeader);
    }
    if constant_time_eq(&digest(scheme, secret, body), &given) {
        return Ok(());
    }
    if scheme == SignatureScheme::Sha256Concat {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            if let Ok(compact) = serde_json::to_vec(&value) {
                if compact != body && constant_time_eq(&digest(scheme, secret, &compact), &given) {
                    return Ok(());
                }
            }
        }
    }
    Err(WebhookError::Mismatch)
}

/// Verifies under either scheme (documented first) and says which one matched.
pub fn verify_any(
    secret: &str,
    body: &[u8],
    header_value: &str,
) -> Result<SignatureScheme, WebhookError> {
    for scheme in [SignatureScheme::HmacSha256, SignatureScheme::Sha256Concat] {
        match verify(scheme, secret, body, header_value) {
            Ok(()) => return Ok(scheme),
            Err(WebhookError::MalformedHeader) => return Err(WebhookError::MalformedHeader),
            Err(WebhookError::Mismatch) => {}
        }
    }
    Err(WebhookError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-killb-test-secret-at-least-32-chars";
    const BODY: &[u8] = br#"{"id":"evt_1","event":"USER","action":"UPDATE","data":{"id":"u1","status":"ACTIVE"},"createdAt":"2024-02-06T00:03:30.791Z","updatedAt":"2024-02-06T00:03:30.791Z","attempts":0}"#;

    #[test]
    fn hmac_scheme_matches_an_independent_computation() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(
                SignatureScheme::HmacSha256,
                "Jefe",
                b"what do ya want for nothing?"
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sdk_scheme_is_sha256_of_body_underscore_secret() {
        // sha256("abc") is the FIPS 180-2 vector; body "ab" + "_" + secret "" ≠ "abc", so build it:
        // body "a", secret "bc" hashes "a_bc".
        let expected = hex::encode(Sha256::digest(b"a_bc"));
        assert_eq!(sign(SignatureScheme::Sha256Concat, "bc", b"a"), expected);
    }

    #[test]
    fn round_trips_under_both_schemes() {
        for scheme in [SignatureScheme::HmacSha256, SignatureScheme::Sha256Concat] {
            let sig = sign(scheme, SECRET, BODY);
            assert_eq!(sig.len(), 64);
            verify(scheme, SECRET, BODY, &sig).unwrap();
            assert_eq!(verify_any(SECRET, BODY, &sig), Ok(scheme));
            assert_eq!(verify_any(SECRET, BODY, &sig.to_uppercase()), Ok(scheme));
        }
    }

    #[test]
    fn schemes_are_not_interchangeable() {
        let sig = sign(SignatureScheme::HmacSha256, SECRET, BODY);
        assert_eq!(
            verify(SignatureScheme::Sha256Concat, SECRET, BODY, &sig),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn sdk_scheme_accepts_the_compact_reserialization() {
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap())
                .unwrap();
        // The SDK signs JSON.stringify(parsed) = the compact form, while the wire body is pretty.
        let sig = sign(SignatureScheme::Sha256Concat, SECRET, BODY);
        verify(SignatureScheme::Sha256Concat, SECRET, &pretty, &sig).unwrap();
        // The HMAC scheme is strictly over the raw bytes.
        let sig = sign(SignatureScheme::HmacSha256, SECRET, BODY);
        assert_eq!(
            verify(SignatureScheme::HmacSha256, SECRET, &pretty, &sig),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_garbage() {
        let sig = sign(SignatureScheme::HmacSha256, SECRET, BODY);
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(verify_any(SECRET, &body, &sig), Err(WebhookError::Mismatch));
        assert_eq!(verify_any("other", BODY, &sig), Err(WebhookError::Mismatch));
        assert_eq!(
            verify_any(SECRET, BODY, "xyz"),
            Err(WebhookError::MalformedHeader)
        );
        assert_eq!(
            verify_any(SECRET, BODY, "abcd"),
            Err(WebhookError::MalformedHeader)
        );
    }
}
