//! Inbound webhooks, provider-neutral: the [`WebhookVerifier`] each provider builds from its
//! effective credentials (configured, or the simulators' development ones), the facts the
//! gateway reads from a delivery ([`WebhookEvent`]: event id, event type, provider user id),
//! and the helpers providers read them with. Each provider's scheme and payload reading live in
//! its folder (`<provider>/webhook.rs`).
//!
//! Whatever cannot be read falls back: an event without id is identified by the SHA-256 of its
//! raw body, so a verbatim redelivery is still recognised.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The request headers of a delivery, looked up by name (case-insensitively).
pub type Headers<'h> = dyn Fn(&str) -> Option<&'h str> + 'h;

/// Verifies one provider's deliveries, built once from its effective credentials.
pub trait WebhookVerifier: Send + Sync {
    /// Verifies a delivery's signature over the raw body; `now` is unix seconds.
    fn verify(
        &self,
        header: &Headers<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyFailure>;
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The signature header is absent.
    Missing,
    /// The header is malformed or the signature does not match.
    Invalid,
    /// The signed timestamp is outside the provider's tolerance.
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
    /// The signed time stamp (unix seconds), for schemes that sign one.
    pub timestamp: Option<i64>,
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

/// The fallback event id: `sha256:<hex>` of the raw body.
pub fn body_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// A JSON string or number as trimmed text; `None` when absent, empty or of another type.
pub fn text(value: Option<&Value>) -> Option<String> {
    let s = match value? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// An event id as sent, or its digest when longer than is kept.
pub fn bounded(id: String) -> String {
    if id.len() > MAX_EVENT_ID {
        body_digest(id.as_bytes())
    } else {
        id
    }
}

/// Reads a header as trimmed, non-empty text.
pub fn header_text(header: &Headers<'_>, name: &str) -> Option<String> {
    header(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
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

    #[test]
    fn unreadable_values_fall_back() {
        assert_eq!(text(Some(&Value::from("  x "))).as_deref(), Some("x"));
        assert_eq!(text(Some(&Value::from(7))).as_deref(), Some("7"));
        assert_eq!(text(Some(&Value::from(""))), None);
        assert_eq!(text(Some(&Value::Null)), None);
        assert_eq!(bounded("evt-1".into()), "evt-1");
        let long = bounded("x".repeat(500));
        assert!(long.starts_with("sha256:"), "{long}");
        assert_eq!(body_digest(b"not json"), body_digest(b"not json"));
        let pairs = [("X-A", " v ")];
        let header = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        assert_eq!(header_text(&header, "x-a").as_deref(), Some("v"));
        assert_eq!(header_text(&header, "x-b"), None);
    }
}
