//! Kraken Embed webhook signatures (https://docs.kraken.com/api/docs/embed-api/webhooks).
//!
//! ```text
//! X-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]
//! v1 = hex( HMAC-SHA256( key = base64_decode(webhook_secret), msg = ascii(t) || "." || raw_body ) )
//! ```
//!
//! A delivery is accepted when any `v1` matches (constant-time) and `|now - t| <= tolerance`
//! (Kraken suggests 300 s, [`DEFAULT_TOLERANCE`]).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use crate::providers::webhook::{
    body_digest, bounded, header_text, text, Headers, Verified, VerifyFailure, WebhookEvent,
    WebhookVerifier,
};

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Signature";
/// Header carrying the event type (`user.verified`, `user.disabled`, `user.closed`, …).
pub const EVENT_HEADER: &str = "X-Webhook-Event";
/// Header carrying the webhook configuration id.
pub const WEBHOOK_ID_HEADER: &str = "X-Webhook-ID";
/// The tolerance Kraken's docs suggest.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The webhook secret is not valid base64.
    #[error("the webhook secret is not valid base64")]
    InvalidSecret,
    /// The header is not `t=<unix>,v1=<hex>…`.
    #[error("malformed X-Signature header")]
    MalformedHeader,
    /// The header has no `t=` element.
    #[error("X-Signature has no timestamp")]
    MissingTimestamp,
    /// The header has no `v1=` element.
    #[error("X-Signature has no v1 signature")]
    MissingSignature,
    /// `t` is further than the tolerance from now.
    #[error("X-Signature timestamp outside the tolerance")]
    TimestampOutOfTolerance,
    /// No `v1` matches.
    #[error("signature mismatch")]
    Mismatch,
}

/// A parsed `X-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Unix seconds.
    pub timestamp: i64,
    /// Every `v1` value, as sent (hex).
    pub v1: Vec<String>,
}

/// Parses `t=<unix>,v1=<hex>[,v1=<hex>…]`; unknown elements (e.g. future `v2`) are ignored.
pub fn parse_header(header: &str) -> Result<SignatureHeader, WebhookError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=').ok_or(WebhookError::MalformedHeader)?;
        match key.trim() {
            "t" => {
                timestamp = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| WebhookError::MalformedHeader)?,
                )
            }
            "v1" => v1.push(value.trim().to_owned()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MissingTimestamp)?;
    if v1.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

fn mac(secret_b64: &str, timestamp: i64, body: &[u8]) -> Result<HmacSha256, WebhookError> {
    let key = STANDARD
        .decode(secret_b64.trim())
        .map_err(|_| WebhookError::InvalidSecret)?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| WebhookError::InvalidSecret)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The hex `v1` signature for `timestamp` and `body`.
pub fn sign(secret_b64: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
    Ok(hex::encode(
        mac(secret_b64, timestamp, body)?.finalize().into_bytes(),
    ))
}

/// The full `X-Signature` header value, `t=<timestamp>,v1=<hex>`.
pub fn signature_header(
    secret_b64: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookError> {
    Ok(format!(
        "t={timestamp},v1={}",
        sign(secret_b64, timestamp, body)?
    ))
}

/// Verifies an `X-Signature` header against the raw body at time `now` (unix seconds).
pub fn verify(
    secret_b64: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<SignatureHeader, WebhookError> {
    let parsed = parse_header(header)?;
    let base = mac(secret_b64, parsed.timestamp, body)?;
    let matched = parsed
        .v1
        .iter()
        .any(|candidate| match hex::decode(candidate) {
            Ok(bytes) => base.clone().verify_slice(&bytes).is_ok(),
            Err(_) => false,
        });
    if !matched {
        return Err(WebhookError::Mismatch);
    }
    let age = now.abs_diff(parsed.timestamp);
    if age > tolerance.as_secs() {
        return Err(WebhookError::TimestampOutOfTolerance);
    }
    Ok(parsed)
}

/// Verifies Kraken deliveries: `X-Signature` within [`DEFAULT_TOLERANCE`] of now.
pub struct Verifier {
    /// Base64, as Kraken returns it at registration.
    secret_b64: SecretString,
    tolerance: Duration,
}

impl Verifier {
    /// Refuses a secret that is not base64.
    pub fn new(secret_b64: &SecretString) -> Result<Self, String> {
        match STANDARD.decode(secret_b64.expose_secret().trim()) {
            Ok(key) if !key.is_empty() => Ok(Self {
                secret_b64: secret_b64.clone(),
                tolerance: DEFAULT_TOLERANCE,
            }),
            _ => Err("the Kraken webhook_secret is not base64".into()),
        }
    }
}

impl WebhookVerifier for Verifier {
    fn verify(&self, header: &Headers<'_>, body: &[u8], now: i64) -> Result<Verified, VerifyFailure> {
        let value = header(SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
        match verify(self.secret_b64.expose_secret(), value, body, now, self.tolerance) {
            Ok(parsed) => Ok(Verified {
                timestamp: Some(parsed.timestamp),
            }),
            Err(WebhookError::TimestampOutOfTolerance) => Err(VerifyFailure::Expired),
            Err(_) => Err(VerifyFailure::Invalid),
        }
    }
}

/// Reads a verified delivery: event id from the body's `id`, else `X-Webhook-ID` with the
/// body's `timestamp` (or the signed `t`); the user from `iiban`; `user.*` events (or events
/// without a type) that name a user concern the onboarding status.
pub fn parse_event(header: &Headers<'_>, body: &[u8], verified: Verified) -> WebhookEvent {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| text(json.get(name));
    let event_type = field("event_type").or_else(|| header_text(header, EVENT_HEADER));
    let provider_user_id = field("iiban");
    let event_id = field("id")
        .or_else(|| {
            let webhook = header_text(header, WEBHOOK_ID_HEADER)?;
            let at = field("timestamp").or_else(|| verified.timestamp.map(|t| t.to_string()))?;
            Some(format!("{webhook}:{at}"))
        })
        .map(bounded)
        .unwrap_or_else(|| body_digest(body));
    let concerns_status = provider_user_id.is_some()
        && event_type.as_deref().is_none_or(|t| t.starts_with("user."));
    WebhookEvent {
        event_id,
        event_type,
        provider_user_id,
        concerns_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "dGVzdC1zZWNyZXQtcGxlYXNlLWlnbm9yZQ==";
    const BODY: &str = r#"{"event_type":"webhook.test","message":"This is a test webhook event to verify your endpoint configuration."}"#;
    const T: i64 = 1_734_567_890;
    const V1: &str = "1ef668d4f2ef42f82d076fcdd4b6320d5d956df364588a36a00d1e3027744654";

    #[test]
    fn reproduces_the_documented_vector() {
        assert_eq!(sign(SECRET, T, BODY.as_bytes()).unwrap(), V1);
        assert_eq!(
            signature_header(SECRET, T, BODY.as_bytes()).unwrap(),
            format!("t={T},v1={V1}")
        );
    }

    #[test]
    fn verifies_the_documented_vector_within_tolerance() {
        let header = format!("t={T},v1={V1}");
        let parsed = verify(SECRET, &header, BODY.as_bytes(), T + 299, DEFAULT_TOLERANCE).unwrap();
        assert_eq!(parsed.timestamp, T);
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), T - 300, DEFAULT_TOLERANCE)
                .map(|p| p.timestamp),
            Ok(T)
        );
    }

    #[test]
    fn accepts_any_of_several_v1() {
        let header = format!("t={T},v1={},v1={V1}", "00".repeat(32));
        verify(SECRET, &header, BODY.as_bytes(), T, DEFAULT_TOLERANCE).unwrap();
        let header = format!("t={T}, v1=zz, v1={V1}, v0=ignored");
        verify(SECRET, &header, BODY.as_bytes(), T, DEFAULT_TOLERANCE).unwrap();
    }

    #[test]
    fn refuses_stale_or_future_timestamps() {
        let header = format!("t={T},v1={V1}");
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), T + 301, DEFAULT_TOLERANCE),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), T - 301, DEFAULT_TOLERANCE),
            Err(WebhookError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn refuses_tampering_and_bad_headers() {
        let header = format!("t={T},v1={V1}");
        let mut body = BODY.as_bytes().to_vec();
        body[5] ^= 1;
        assert_eq!(
            verify(SECRET, &header, &body, T, DEFAULT_TOLERANCE),
            Err(WebhookError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let header = format!("t={},v1={V1}", T + 1);
        assert_eq!(
            verify(SECRET, &header, BODY.as_bytes(), T, DEFAULT_TOLERANCE),
            Err(WebhookError::Mismatch)
        );
        let other_secret = STANDARD.encode("another secret");
        let header = format!("t={T},v1={V1}");
        assert_eq!(
            verify(
                &other_secret,
                &header,
                BODY.as_bytes(),
                T,
                DEFAULT_TOLERANCE
            ),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            parse_header(&format!("v1={V1}")),
            Err(WebhookError::MissingTimestamp)
        );
        assert_eq!(
            parse_header(&format!("t={T}")),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(parse_header("garbage"), Err(WebhookError::MalformedHeader));
        assert_eq!(
            parse_header("t=abc,v1=00"),
            Err(WebhookError::MalformedHeader)
        );
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn the_verifier_checks_the_header_and_parse_reads_the_event() {
        let verifier = Verifier::new(&SECRET.into()).unwrap();
        let body = br#"{"event_type":"user.verified","iiban":"AA00 TEST","id":"EV-1","timestamp":"2025-01-15T10:30:00.000000000Z"}"#;
        let t = 1_734_567_890;
        let sig = signature_header(SECRET, t, body).unwrap();
        let pairs = [("x-signature", sig.as_str())];
        let verified = verifier.verify(&headers(&pairs), body, t + 10).unwrap();
        assert_eq!(verified.timestamp, Some(t));
        assert_eq!(
            verifier.verify(&headers(&pairs), body, t + 301).unwrap_err(),
            VerifyFailure::Expired
        );
        assert_eq!(
            verifier.verify(&headers(&[]), body, t).unwrap_err(),
            VerifyFailure::Missing
        );
        let event = parse_event(&headers(&pairs), body, verified);
        assert_eq!(event.event_id, "EV-1");
        assert_eq!(event.event_type.as_deref(), Some("user.verified"));
        assert_eq!(event.provider_user_id.as_deref(), Some("AA00 TEST"));
        assert!(event.concerns_status);

        // No id: the webhook id and the body's timestamp; a trade event is stored only.
        let body = br#"{"event_type":"quote.executed","iiban":"AA00 TEST","timestamp":"T1"}"#;
        let pairs = [("X-Webhook-ID", "WH-1")];
        let event = parse_event(&headers(&pairs), body, verified);
        assert_eq!(event.event_id, "WH-1:T1");
        assert!(!event.concerns_status);
        // The test event has no user.
        let body = br#"{"event_type":"webhook.test","message":"hi"}"#;
        let event = parse_event(&headers(&[]), body, verified);
        assert!(event.event_id.starts_with("sha256:"));
        assert_eq!(event.provider_user_id, None);
        assert!(!event.concerns_status);
    }

    #[test]
    fn the_verifier_refuses_a_secret_that_is_not_base64() {
        assert!(Verifier::new(&"not base64!".into()).is_err());
    }
}
