//! One error type for every provider: what went wrong, whether retrying can help, and the
//! provider's own code, parsed from each provider's error envelope.

use std::time::Duration;

use serde::Serialize;

/// The unified classification of a provider failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErrorKind {
    /// No answer in time, connection refused or dropped, or a 5xx: retry later.
    Unavailable,
    /// 429: retry after the provider's `Retry-After`, or with backoff.
    RateLimited,
    /// The provider refused the data (400/422): retrying the same data cannot help.
    Rejected,
    /// The provider refused our credentials (401/403): a configuration problem.
    Unauthorized,
    /// The provider does not know the user.
    NotFound,
    /// The provider says the user already exists (duplicate external id), or a state conflict.
    Conflict,
    /// The provider answered something we cannot read.
    InvalidResponse,
    /// The operation does not exist at this provider.
    NotSupported,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// Human-readable, from the provider's envelope or our own words; never PII.
    pub message: String,
    /// The provider's own error code (`ENexus:Invalid user ID`, `USER.0001`, `4030`, …).
    pub provider_code: Option<String>,
    pub http_status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// The request may have reached the provider and taken effect although no answer came
    /// back (a timeout or a connection lost mid-exchange). A create in this state must not be
    /// blindly repeated: look the account up first.
    pub outcome_unknown: bool,
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            provider_code: None,
            http_status: None,
            retry_after: None,
            outcome_unknown: false,
        }
    }

    /// Classifies a non-2xx answer by its HTTP status.
    pub fn from_status(
        http_status: u16,
        provider_code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let kind = match http_status {
            400 | 422 => ProviderErrorKind::Rejected,
            401 | 403 => ProviderErrorKind::Unauthorized,
            404 => ProviderErrorKind::NotFound,
            409 => ProviderErrorKind::Conflict,
            429 => ProviderErrorKind::RateLimited,
            408 | 500..=599 => ProviderErrorKind::Unavailable,
            _ => ProviderErrorKind::InvalidResponse,
        };
        Self {
            kind,
            message: message.into(),
            provider_code,
            http_status: Some(http_status),
            retry_after: None,
            outcome_unknown: false,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::Unavailable | ProviderErrorKind::RateLimited
        )
    }

    /// The stable code stored in a link's `last_error.code`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ProviderErrorKind::Unavailable => "provider_unavailable",
            ProviderErrorKind::RateLimited => "provider_rate_limited",
            ProviderErrorKind::Rejected => "provider_rejected",
            ProviderErrorKind::Unauthorized => "provider_unauthorized",
            ProviderErrorKind::NotFound => "provider_not_found",
            ProviderErrorKind::Conflict => "provider_conflict",
            ProviderErrorKind::InvalidResponse => "provider_invalid_response",
            ProviderErrorKind::NotSupported => "provider_not_supported",
        }
    }

    /// The outcome label for metrics and `provider_call` events.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            ProviderErrorKind::Unavailable => "unavailable",
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Rejected => "rejected",
            ProviderErrorKind::Unauthorized => "unauthorized",
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::Conflict => "conflict",
            ProviderErrorKind::InvalidResponse => "invalid_response",
            ProviderErrorKind::NotSupported => "not_supported",
        }
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is rare for APIs and is
/// treated as absent, so the caller's backoff applies).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_and_decide_retries() {
        for (status, kind, retry) in [
            (400, ProviderErrorKind::Rejected, false),
            (401, ProviderErrorKind::Unauthorized, false),
            (404, ProviderErrorKind::NotFound, false),
            (409, ProviderErrorKind::Conflict, false),
            (429, ProviderErrorKind::RateLimited, true),
            (408, ProviderErrorKind::Unavailable, true),
            (503, ProviderErrorKind::Unavailable, true),
        ] {
            let e = ProviderError::from_status(status, None, "x");
            assert_eq!(e.kind, kind, "{status}");
            assert_eq!(e.retryable(), retry, "{status}");
        }
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
