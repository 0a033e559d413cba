//! Inbound webhooks, provider-neutral: a verifier per provider, built once from the effective
//! credentials (configured, or the simulators' development ones), and a tolerant reading of the
//! few facts the gateway needs from a delivery (event id, event type, provider user id).
//!
//! | Provider | Signature | Event id | Provider user id |
//! |---|---|---|---|
//! | kraken | `X-Signature: t=…,v1=…`, HMAC-SHA256 of `t.body` (key: base64-decoded secret), `t` within 300 s | body `id`, else `X-Webhook-ID` + body `timestamp` (or `t`) | body `iiban` |
//! | killb | `x-signature-sha256`, hex HMAC-SHA256 of the body (or, by config, SHA-256 of body + `_` + secret) | body `id` | `data.id` of a `USER` event |
//! | carbn | `X-Webhook-Signature`, base64 RSASSA-PKCS1-v1_5/SHA-256 of the body | header `X-Webhook-Event-Id` | body `user_id` |
//!
//! Whatever cannot be read falls back: an event without id is identified by the SHA-256 of its
//! raw body, so a verbatim redelivery is still recognised.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::carbn::webhook as carbn;
use super::killb::webhook as killb;
use super::kraken::webhook as kraken;
use crate::domain::provider::ProviderId;

/// Verifies one provider's deliveries.
pub enum WebhookVerifier {
    Kraken {
        /// Base64, as Kraken returns it at registration.
        secret_b64: SecretString,
        tolerance: Duration,
    },
    Killb {
        /// UTF-8, chosen by the integrator.
        secret: SecretString,
        scheme: killb::SignatureScheme,
    },
    Carbn(carbn::WebhookVerifier),
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookVerifier::Kraken { tolerance, .. } => f
                .debug_struct("Kraken")
                .field("tolerance", tolerance)
                .finish_non_exhaustive(),
            WebhookVerifier::Killb { scheme, .. } => f
                .debug_struct("Killb")
                .field("scheme", scheme)
                .finish_non_exhaustive(),
            WebhookVerifier::Carbn(_) => f.write_str("Carbn"),
        }
    }
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The signature header is absent.
    Missing,
    /// The header is malformed or the signature does not match.
    Invalid,
    /// Kraken: the signed timestamp is outside the tolerance.
    Expired,
}

impl VerifyFailure {
    /// The `result` label of `gateway_webhook_verifications_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyFailure::Missing => "missing",
            VerifyFailure::Invalid => "invalid",
            VerifyFailure::Expired => "expired",
        }
    }
}

/// What a successful verification learnt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verified {
    /// Kraken: the signed `t`.
    pub timestamp: Option<i64>,
}

impl WebhookVerifier {
    /// Kraken, with the documented 300 s tolerance. Refuses a secret that is not base64.
    pub fn kraken(secret_b64: &SecretString) -> Result<Self, String> {
        match STANDARD.decode(secret_b64.expose_secret().trim()) {
            Ok(key) if !key.is_empty() => Ok(WebhookVerifier::Kraken {
                secret_b64: secret_b64.clone(),
                tolerance: kraken::DEFAULT_TOLERANCE,
            }),
            _ => Err("the Kraken webhook_secret is not base64".into()),
        }
    }

    pub fn killb(secret: &SecretString, scheme: killb::SignatureScheme) -> Result<Self, String> {
        if secret.expose_secret().is_empty() {
            return Err("the KillB webhook_secret is empty".into());
        }
        Ok(WebhookVerifier::Killb {
            secret: secret.clone(),
            scheme,
        })
    }

    pub fn carbn(public_key_pem: &str) -> Result<Self, String> {
        carbn::WebhookVerifier::from_public_key_pem(public_key_pem)
            .map(WebhookVerifier::Carbn)
            .map_err(|_| "the Carbn webhook_public_key is not a PEM SPKI RSA key".into())
    }

    /// Verifies a delivery's signature over the raw body. `header` looks a request header up
    /// (case-insensitively); `now` is unix seconds.
    pub fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyFailure> {
        match self {
            WebhookVerifier::Kraken {
                secret_b64,
                tolerance,
            } => {
                let value = header(kraken::SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
                match kraken::verify(secret_b64.expose_secret(), value, body, now, *tolerance) {
                    Ok(parsed) => Ok(Verified {
                        timestamp: Some(parsed.timestamp),
                    }),
                    Err(kraken::WebhookError::TimestampOutOfTolerance) => {
                        Err(VerifyFailure::Expired)
                    }
                    Err(_) => Err(VerifyFailure::Invalid),
                }
            }
            WebhookVerifier::Killb { secret, scheme } => {
                let value = header(killb::SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
                killb::verify(*scheme, secret.expose_secret(), body, value)
                    .map(|()| Verified::default())
                    .map_err(|_| VerifyFailure::Invalid)
            }
            WebhookVerifier::Carbn(verifier) => {
                let value = header(carbn::SIGNATURE_HEADER).ok_or(VerifyFailure::Missing)?;
                verifier
                    .verify(body, value)
                    .map(|()| Verified::default())
                    .map_err(|_| VerifyFailure::Invalid)
            }
        }
    }
}

/// The facts the gateway reads from a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The provider's event id (the deduplication key), or a fallback (see the module docs).
    pub event_id: String,
    /// e.g. `user.verified`, `USER/UPDATE`, `USER_STATUS_UPDATE`.
    pub event_type: Option<String>,
    /// The provider's id of the user concerned, when the event names one.
    pub provider_user_id: Option<String>,
    /// Whether the event may concern the user's onboarding status (the gateway then re-reads
    /// the user); other events (trades, payouts, tests) are stored only.
    pub concerns_status: bool,
}

/// Longest event id kept as sent; longer ones are replaced by their SHA-256.
const MAX_EVENT_ID: usize = 200;

fn body_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

fn text(value: Option<&Value>) -> Option<String> {
    let s = match value? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

fn bounded(id: String) -> String {
    if id.len() > MAX_EVENT_ID {
        body_digest(id.as_bytes())
    } else {
        id
    }
}

/// Reads a verified delivery. Never fails: unreadable parts are `None` (or a fallback id).
pub fn parse_event<'h>(
    provider: ProviderId,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    verified: Verified,
) -> WebhookEvent {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| text(json.get(name));
    let header_text = |name: &str| {
        header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    match provider {
        ProviderId::Kraken => {
            let event_type = field("event_type").or_else(|| header_text(kraken::EVENT_HEADER));
            let provider_user_id = field("iiban");
            let event_id = field("id")
                .or_else(|| {
                    let webhook = header_text(kraken::WEBHOOK_ID_HEADER)?;
                    let at =
                        field("timestamp").or_else(|| verified.timestamp.map(|t| t.to_string()))?;
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
        ProviderId::Killb => {
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
        ProviderId::Carbn => {
            let provider_user_id = field("user_id");
            // Carbn payloads carry no event type; transaction categories carry a `txn_id`.
            let is_transaction = json.get("txn_id").is_some();
            let event_type = Some(if is_transaction {
                "TRANSACTION_STATUS".to_owned()
            } else {
                "USER_STATUS_UPDATE".to_owned()
            });
            let event_id = header_text(carbn::EVENT_ID_HEADER)
                .map(bounded)
                .unwrap_or_else(|| body_digest(body));
            WebhookEvent {
                event_id,
                event_type,
                concerns_status: !is_transaction && provider_user_id.is_some(),
                provider_user_id,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{
        keys::CARBN_WEBHOOK_PRIVATE_KEY_PEM, DEV_CARBN_WEBHOOK_PUBLIC_KEY_PEM,
        DEV_KILLB_WEBHOOK_SECRET, DEV_KRAKEN_WEBHOOK_SECRET_B64,
    };

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn kraken_verifies_and_reads_the_event() {
        let verifier = WebhookVerifier::kraken(&DEV_KRAKEN_WEBHOOK_SECRET_B64.into()).unwrap();
        let body = br#"{"event_type":"user.verified","iiban":"AA00 TEST","id":"EV-1","timestamp":"2025-01-15T10:30:00.000000000Z"}"#;
        let t = 1_734_567_890;
        let sig = kraken::signature_header(DEV_KRAKEN_WEBHOOK_SECRET_B64, t, body).unwrap();
        let pairs = [("x-signature", sig.as_str())];
        let verified = verifier.verify(headers(&pairs), body, t + 10).unwrap();
        assert_eq!(verified.timestamp, Some(t));
        assert_eq!(
            verifier.verify(headers(&pairs), body, t + 301).unwrap_err(),
            VerifyFailure::Expired
        );
        assert_eq!(
            verifier.verify(headers(&[]), body, t).unwrap_err(),
            VerifyFailure::Missing
        );
        let event = parse_event(ProviderId::Kraken, headers(&pairs), body, verified);
        assert_eq!(event.event_id, "EV-1");
        assert_eq!(event.event_type.as_deref(), Some("user.verified"));
        assert_eq!(event.provider_user_id.as_deref(), Some("AA00 TEST"));
        assert!(event.concerns_status);

        // No id: the webhook id and the body's timestamp; a trade event is stored only.
        let body = br#"{"event_type":"quote.executed","iiban":"AA00 TEST","timestamp":"T1"}"#;
        let pairs = [("X-Webhook-ID", "WH-1")];
        let event = parse_event(ProviderId::Kraken, headers(&pairs), body, verified);
        assert_eq!(event.event_id, "WH-1:T1");
        assert!(!event.concerns_status);
        // The test event has no user.
        let body = br#"{"event_type":"webhook.test","message":"hi"}"#;
        let event = parse_event(ProviderId::Kraken, headers(&[]), body, verified);
        assert!(event.event_id.starts_with("sha256:"));
        assert_eq!(event.provider_user_id, None);
        assert!(!event.concerns_status);
    }

    #[test]
    fn kraken_refuses_a_secret_that_is_not_base64() {
        assert!(WebhookVerifier::kraken(&"not base64!".into()).is_err());
    }

    #[test]
    fn killb_uses_the_configured_scheme_and_reads_user_events() {
        let body = br#"{"id":"evt-1","event":"USER","action":"UPDATE","data":{"id":"u-1","status":"ACTIVE"},"attempts":0}"#;
        for scheme in [
            killb::SignatureScheme::HmacSha256,
            killb::SignatureScheme::Sha256Concat,
        ] {
            let verifier =
                WebhookVerifier::killb(&DEV_KILLB_WEBHOOK_SECRET.into(), scheme).unwrap();
            let good = killb::sign(scheme, DEV_KILLB_WEBHOOK_SECRET, body);
            let pairs = [("x-signature-sha256", good.as_str())];
            verifier.verify(headers(&pairs), body, 0).unwrap();
            let other = match scheme {
                killb::SignatureScheme::HmacSha256 => killb::SignatureScheme::Sha256Concat,
                killb::SignatureScheme::Sha256Concat => killb::SignatureScheme::HmacSha256,
            };
            let wrong = killb::sign(other, DEV_KILLB_WEBHOOK_SECRET, body);
            let pairs = [("x-signature-sha256", wrong.as_str())];
            assert_eq!(
                verifier.verify(headers(&pairs), body, 0).unwrap_err(),
                VerifyFailure::Invalid
            );
        }
        let event = parse_event(ProviderId::Killb, headers(&[]), body, Verified::default());
        assert_eq!(event.event_id, "evt-1");
        assert_eq!(event.event_type.as_deref(), Some("USER/UPDATE"));
        assert_eq!(event.provider_user_id.as_deref(), Some("u-1"));
        assert!(event.concerns_status);

        let ramp = br#"{"id":"evt-2","event":"RAMP","action":"UPDATE","data":{"id":"r-1","userId":"u-1"}}"#;
        let event = parse_event(ProviderId::Killb, headers(&[]), ramp, Verified::default());
        assert_eq!(event.provider_user_id.as_deref(), Some("u-1"));
        assert!(!event.concerns_status);
    }

    #[test]
    fn carbn_verifies_rsa_and_reads_the_event_id_header() {
        let verifier = WebhookVerifier::carbn(DEV_CARBN_WEBHOOK_PUBLIC_KEY_PEM).unwrap();
        let body = br#"{"status":"active","user_id":"u-9"}"#;
        let sig = carbn::sign(CARBN_WEBHOOK_PRIVATE_KEY_PEM, body).unwrap();
        let pairs = [
            ("X-Webhook-Signature", sig.as_str()),
            ("X-Webhook-Event-Id", "e-1"),
        ];
        verifier.verify(headers(&pairs), body, 0).unwrap();
        let tampered = br#"{"status":"active","user_id":"u-8"}"#;
        assert_eq!(
            verifier.verify(headers(&pairs), tampered, 0).unwrap_err(),
            VerifyFailure::Invalid
        );
        let event = parse_event(
            ProviderId::Carbn,
            headers(&pairs),
            body,
            Verified::default(),
        );
        assert_eq!(event.event_id, "e-1");
        assert_eq!(event.provider_user_id.as_deref(), Some("u-9"));
        assert!(event.concerns_status);
        assert!(WebhookVerifier::carbn("nope").is_err());
    }

    #[test]
    fn unreadable_bodies_fall_back_to_their_digest() {
        let event = parse_event(
            ProviderId::Killb,
            |_| None,
            b"not json",
            Verified::default(),
        );
        assert_eq!(event.event_id, body_digest(b"not json"));
        assert_eq!(event.provider_user_id, None);
        assert!(!event.concerns_status);
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(500));
        let event = parse_event(
            ProviderId::Killb,
            |_| None,
            long.as_bytes(),
            Verified::default(),
        );
        assert!(event.event_id.starts_with("sha256:"));
    }
}
