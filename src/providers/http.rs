//! Outbound HTTP shared by the connectors: one pooled client with connect and total timeouts,
//! and one `send` that times each exchange, classifies transport failures, and records the
//! call (operation, status, latency, outcome) for the audit trail, metrics and tracing.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use tracing::Instrument;

use super::connector::{CallLog, ProviderCall};
use super::error::{parse_retry_after, ProviderError, ProviderErrorKind};
use crate::domain::provider::ProviderId;

/// Timeouts for provider calls (`[outbound]` in config).
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// An answer from a provider, whatever its status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl RawResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(
            self.headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        )
    }

    /// Decodes a 2xx body into the provider's response type.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError {
                http_status: Some(self.status),
                ..ProviderError::new(
                    ProviderErrorKind::InvalidResponse,
                    // Position only: the body may hold PII.
                    format!(
                        "unreadable response body (line {} column {})",
                        e.line(),
                        e.column()
                    ),
                )
            }
        })
    }
}

/// The client one provider uses.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    provider: ProviderId,
    base_url: String,
    client: reqwest::Client,
}

impl ProviderHttp {
    pub fn new(
        provider: ProviderId,
        base_url: &str,
        timeouts: HttpTimeouts,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("onboarding-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                format!(
                    "providers.{}: cannot build the HTTP client: {e}",
                    provider.as_str()
                )
            })?;
        Ok(Self {
            provider,
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    pub fn provider(&self) -> ProviderId {
        self.provider
    }

    /// `base_url` + `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_url, path_and_query)
    }

    /// The base URL's host, for `GET /v1/providers` (never credentials or paths).
    pub fn host(&self) -> String {
        let without_scheme = self
            .base_url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&self.base_url);
        let authority = without_scheme.split('/').next().unwrap_or_default();
        authority.rsplit('@').next().unwrap_or_default().to_owned()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one request, records it in `log`, and returns the answer whatever its status.
    /// Only transport failures (timeout, connection refused or reset) are errors here; the
    /// connector reads non-2xx answers with its provider's envelope.
    pub async fn send(
        &self,
        log: &CallLog,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<RawResponse, ProviderError> {
        // The request id joins a call to the API request that made it (JSON logs show only the
        // current span's fields); calls made by the workers carry the job's span instead.
        let request_id = crate::telemetry::current_request_id();
        let span = tracing::info_span!(
            "provider_call",
            provider = self.provider.as_str(),
            operation,
            request_id = request_id.as_deref(),
        );
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(RawResponse {
                status,
                headers,
                body,
            })
        }
        .instrument(span.clone())
        .await;
        let latency = started.elapsed();
        crate::telemetry::add_provider_time(latency);
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let (http_status, outcome, result) = match result {
            Ok(raw) => {
                let outcome = if raw.is_success() {
                    "ok"
                } else {
                    ProviderError::from_status(raw.status, None, "").outcome()
                };
                (Some(raw.status), outcome, Ok(raw))
            }
            Err(error) => {
                let message = if error.is_timeout() {
                    "the provider did not answer in time"
                } else if error.is_connect() {
                    "could not connect to the provider"
                } else {
                    "the connection to the provider failed"
                };
                // Only a refused connection proves the request never left.
                let outcome_unknown = !error.is_connect();
                (
                    None,
                    "unavailable",
                    Err(ProviderError {
                        outcome_unknown,
                        ..ProviderError::new(ProviderErrorKind::Unavailable, message)
                    }),
                )
            }
        };
        // Status and latency go on the call's line only: each field recorded on a span later
        // re-parses and re-writes the span's formatted JSON fields.
        span.in_scope(|| {
            tracing::info!(
                provider = self.provider.as_str(),
                operation,
                http_status,
                latency_ms = %format_args!("{latency_ms:.1}"),
                outcome,
                "provider call"
            )
        });
        crate::telemetry::record_provider_call(self.provider.as_str(), operation, outcome, latency);
        log.record(ProviderCall {
            provider: self.provider,
            operation,
            http_status,
            latency_ms,
            outcome,
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_drops_scheme_path_and_credentials() {
        let timeouts = HttpTimeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_secs(1),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = ProviderHttp::new(
            ProviderId::Kraken,
            "https://user:pw@nexus.kraken.com:443/x/",
            timeouts,
        )
        .unwrap();
        assert_eq!(http.host(), "nexus.kraken.com:443");
        assert_eq!(
            http.url("/b2b/users"),
            "https://user:pw@nexus.kraken.com:443/x/b2b/users"
        );
    }
}
