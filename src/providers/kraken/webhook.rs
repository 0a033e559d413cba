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
use sha2::Sha256;

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

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
}
