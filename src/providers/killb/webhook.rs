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
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::providers::webhook::{
    body_digest, bounded, text, Headers, Verified, VerifyFailure, WebhookEvent, WebhookVerifier,
};

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

/// Verifies KillB deliveries under the configured scheme.
pub struct Verifier {
    /// UTF-8, chosen by the integrator.
    secret: SecretString,
    scheme: SignatureScheme,
}

impl Verifier {
    /// Refuses an empty secret.
    pub fn new(secret: &SecretString, scheme: SignatureScheme) -> Result<Self, String> {
        if secret.expose_secret().is_empty() {
            return Err("the KillB webhook_secret is empty".into());
        }
        Ok(Self {
            secret: secret.clone(),
            scheme,
        })
    }
}

impl WebhookVerifier for Verifier {
    fn verify(&self, header: &Headers<'_>, body: &[u8], _now: i64) -> Result<Verified, VerifyFailure> {
        let value = header(SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
        verify(self.scheme, self.secret.expose_secret(), body, value)
            .map(|()| Verified::default())
            .map_err(|_| VerifyFailure::Invalid)
    }
}

/// Reads a verified delivery: event id from the body's `id`; type `<event>/<action>`; the user
/// from `data.id` of a `USER` event (or `data.userId` of others, which are stored only).
pub fn parse_event(_header: &Headers<'_>, body: &[u8], _verified: Verified) -> WebhookEvent {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| text(json.get(name));
    let event = field("event");
    let action = field("action");
    let event_type = match (&event, &action) {
        (Some(e), Some(a)) => Some(format!("{e}/{a}")),
        (Some(e), None) => Some(e.clone()),
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    let is_user = event
        .as_deref()
        .is_none_or(|e| e.eq_ignore_ascii_case("USER"));
    let data = json.get("data");
    let data_field = |name: &str| text(data.and_then(|d| d.get(name)));
    let provider_user_id = if is_user {
        data_field("id").or_else(|| data_field("userId"))
    } else {
        data_field("userId")
    };
    let event_id = field("id")
        .map(bounded)
        .unwrap_or_else(|| body_digest(body));
    WebhookEvent {
        event_id,
        event_type,
        concerns_status: is_user && provider_user_id.is_some(),
        provider_user_id,
    }
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

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn the_verifier_uses_the_configured_scheme_and_parse_reads_user_events() {
        let body = br#"{"id":"evt-1","event":"USER","action":"UPDATE","data":{"id":"u-1","status":"ACTIVE"},"attempts":0}"#;
        for scheme in [SignatureScheme::HmacSha256, SignatureScheme::Sha256Concat] {
            let verifier = Verifier::new(&SECRET.into(), scheme).unwrap();
            let good = sign(scheme, SECRET, body);
            let header = |name: &str| (name == SIGNATURE_HEADER).then_some(good.as_str());
            verifier.verify(&header, body, 0).unwrap();
            let other = match scheme {
                SignatureScheme::HmacSha256 => SignatureScheme::Sha256Concat,
                SignatureScheme::Sha256Concat => SignatureScheme::HmacSha256,
            };
            let wrong = sign(other, SECRET, body);
            let header = |name: &str| (name == SIGNATURE_HEADER).then_some(wrong.as_str());
            assert_eq!(
                verifier.verify(&header, body, 0).unwrap_err(),
                VerifyFailure::Invalid
            );
            assert_eq!(
                verifier.verify(&no_headers, body, 0).unwrap_err(),
                VerifyFailure::Missing
            );
        }
        assert!(Verifier::new(&"".into(), SignatureScheme::HmacSha256).is_err());
        let event = parse_event(&no_headers, body, Verified::default());
        assert_eq!(event.event_id, "evt-1");
        assert_eq!(event.event_type.as_deref(), Some("USER/UPDATE"));
        assert_eq!(event.provider_user_id.as_deref(), Some("u-1"));
        assert!(event.concerns_status);

        let ramp = br#"{"id":"evt-2","event":"RAMP","action":"UPDATE","data":{"id":"r-1","userId":"u-1"}}"#;
        let event = parse_event(&no_headers, ramp, Verified::default());
        assert_eq!(event.provider_user_id.as_deref(), Some("u-1"));
        assert!(!event.concerns_status);
    }

    #[test]
    fn unreadable_bodies_fall_back_to_their_digest() {
        let event = parse_event(&no_headers, b"not json", Verified::default());
        assert_eq!(event.event_id, body_digest(b"not json"));
        assert_eq!(event.provider_user_id, None);
        assert!(!event.concerns_status);
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(500));
        let event = parse_event(&no_headers, long.as_bytes(), Verified::default());
        assert!(event.event_id.starts_with("sha256:"));
    }
}
