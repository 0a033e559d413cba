//! `POST /v1/webhooks/{provider}`: inbound provider webhooks, authenticated by each provider's
//! own signature over the raw body (no API key).

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body;
use super::problem::{Problem, ProblemDocument};
use super::AppState;
use crate::domain::provider::ProviderId;
use crate::onboarding::webhooks::{self, WebhookOutcome};
use crate::providers::webhook::unix_now;
use crate::telemetry::record_webhook_verification;

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "applied"}))]
pub struct WebhookAck {
    /// `applied` (the user's status was re-read from the provider and recorded), `duplicate`
    /// (this event id was already received; nothing done), `ignored` (not about an onboarding
    /// status; stored only), `stored` (202: the provider could not be asked for the status;
    /// kept for a retry by reconciliation), `unknown_user` (202: no link has this provider
    /// user id; kept).
    pub status: String,
}

fn invalid_signature(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "Missing or invalid webhook signature",
    )
    .detail(detail.to_owned())
}

/// One flag per provider: a provider without webhook credentials is logged once per process.
static UNCONFIGURED_LOGGED: [AtomicBool; ProviderId::ALL.len()] =
    [const { AtomicBool::new(false) }; ProviderId::ALL.len()];

fn log_unconfigured_once(provider: ProviderId, reason: &str) {
    if !UNCONFIGURED_LOGGED[provider.index()].swap(true, Ordering::Relaxed) {
        tracing::error!(
            provider = provider.as_str(),
            %reason,
            "configuration problem: webhooks from this provider cannot be verified and are refused"
        );
    }
}

/// Receive a provider webhook.
///
/// Authenticated by the provider's own signature over the raw body, not by an API key:
/// - `kraken`: `X-Signature: t=<unix>,v1=<hex>`, hex HMAC-SHA256 of `<t>.<raw body>` keyed
///   with the base64-decoded `webhook_secret`; `t` must be within 300 s of now.
/// - `killb`: `x-signature-sha256`, hex HMAC-SHA256 of the raw body keyed with the
///   `webhook_secret` (`providers.killb.webhook_signature_scheme = "hmac_sha256"`, the default),
///   or hex SHA-256 of `<body>_<secret>` as KillB's SDK computes it (`"sha256_concat"`).
/// - `carbn`: `X-Webhook-Signature`, base64 RSASSA-PKCS1-v1_5 SHA-256 signature of the raw body,
///   verified with the configured `webhook_public_key`.
///
/// A missing or bad signature, an unknown provider, or a provider without webhook credentials
/// is `401 invalid_signature` and nothing is stored or applied. A verified event is stored
/// first and deduplicated by the provider's event id (kraken `id`, killb `id`, carbn
/// `X-Webhook-Event-Id`): a redelivery answers `200 {"status":"duplicate"}` and does nothing.
/// The payload is not trusted for the status: the gateway re-reads the user from the provider
/// and records any transition with `source: "webhook"` (a stale state, by the provider's own
/// time stamp, or a change after a final decision is never applied). A valid delivery always
/// gets a 2xx unless the gateway's database is down (503).
///
/// Deliveries are rate-limited per provider and peer address (`rate_limit.webhook_per_second`,
/// `webhook_burst`; per instance), before the body is read: over it, `429 rate_limited` with
/// `Retry-After` (providers retry).
#[utoipa::path(
    post, path = "/v1/webhooks/{provider}", tag = "webhooks",
    params(
        // The provider ids and each provider's signature headers are added from the provider
        // list (`api::openapi`).
        ("provider" = String, Path),
    ),
    request_body(content = Object, description = "The provider's event, exactly as it sends it (at most 1 MiB)", content_type = "application/json",
        example = json!({"event_type": "user.verified", "iiban": "AA00 TEST EXAM PLE1", "id": "AEGXGV-JZ4I2-6QXEJS", "timestamp": "2025-01-15T10:30:00.000000000Z"})),
    responses(
        (status = 200, description = "`applied`, `duplicate` or `ignored`", body = WebhookAck),
        (status = 202, description = "`unknown_user` or `stored` (kept for reconciliation)", body = WebhookAck),
        (status = 401, description = "`invalid_signature`: missing or bad signature, signed timestamp outside the provider's tolerance, unknown provider, or no webhook credentials configured", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "`request_timeout`: the body did not arrive within `server.body_read_timeout_secs`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: over `rate_limit.webhook_per_second` per provider and peer address; retry after `Retry-After` seconds", body = ProblemDocument, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The database is unreachable; the provider should retry", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let provider = req
        .match_info()
        .get("provider")
        .and_then(|p| p.parse::<ProviderId>().ok());
    // Before the body is read or a signature checked: a flood costs a hash-map look-up.
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let bucket = format!(
        "{}:{peer}",
        provider.as_ref().map_or("unknown", ProviderId::as_str)
    );
    if let Err(wait) = state.webhook_rate_limiter.check(&bucket) {
        record_webhook_verification(
            provider.as_ref().map_or("unknown", ProviderId::as_str),
            "rate_limited",
        );
        return Err(Problem::rate_limited(
            wait,
            "Too many webhook deliveries from this address",
        ));
    }
    let Some(provider) = provider else {
        record_webhook_verification("unknown", "unknown_provider");
        return Err(invalid_signature(
            "no provider by this name sends webhooks here",
        ));
    };
    let label = provider.as_str();
    let raw = body::read_bytes(&req, payload).await?;
    let verifier = match state.services.providers.webhook_verifier(provider) {
        Ok(verifier) => verifier,
        Err(reason) => {
            log_unconfigured_once(provider, reason);
            record_webhook_verification(label, "unconfigured");
            webhooks::record_verification_failure(&state.services, provider).await;
            return Err(invalid_signature(
                "webhooks from this provider cannot be verified",
            ));
        }
    };
    let headers = req.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = match verifier.verify(&header, &raw, unix_now()) {
        Ok(verified) => verified,
        Err(failure) => {
            record_webhook_verification(label, failure.as_str());
            webhooks::record_verification_failure(&state.services, provider).await;
            tracing::warn!(
                provider = label,
                result = failure.as_str(),
                "webhook refused"
            );
            return Err(invalid_signature(match failure.as_str() {
                "missing" => "the signature header is missing",
                "expired" => "the signed timestamp is outside the tolerance",
                _ => "the signature does not match",
            }));
        }
    };
    record_webhook_verification(label, "valid");
    let event = crate::providers::module(provider).parse_webhook(&header, &raw, verified);
    let outcome = webhooks::receive(&state.services, provider, &event, &raw).await?;
    let status = match outcome {
        WebhookOutcome::UnknownUser | WebhookOutcome::Stored => StatusCode::ACCEPTED,
        WebhookOutcome::Applied | WebhookOutcome::Duplicate | WebhookOutcome::Ignored => {
            StatusCode::OK
        }
    };
    Ok(HttpResponse::build(status).json(WebhookAck {
        status: outcome.as_str().to_owned(),
    }))
}
