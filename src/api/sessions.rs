//! `POST /v1/users/{id}/verification-sessions`: the provider's hosted verification for a user.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{read_json_object, JSON};
use super::idempotency;
use super::problem::{Problem, ProblemDocument};
use super::query::invalid;
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::domain::provider::ProviderId;
use crate::domain::verification::check_redirect_url;
use crate::domain::FieldError;
use crate::onboarding::sessions::{self, NewSessionRequest, SessionError, SessionView};
use crate::providers::error::{ProviderError, ProviderErrorKind};

/// The body of `POST /v1/users/{id}/verification-sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "carbn", "redirect_url": "https://app.example.com/onboarding/done"}))]
pub struct VerificationSessionRequest {
    /// The provider whose hosted verification to open; the user must have a submitted link there.
    #[schema(value_type = ProviderId)]
    pub provider: String,
    /// Where the provider sends the person afterwards: an absolute `https` URL (`http` only for
    /// `localhost`), at most 2048 characters. Providers that need one and have no configured
    /// default answer `422` naming this field when it is missing.
    #[schema(format = "uri", pattern = "^https?://", max_length = 2048)]
    pub redirect_url: Option<String>,
}

/// A hosted verification session, ready for the person to open in a browser.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"provider": "carbn", "url": "https://checkout.noah.com/kyc?session=eyJhbGciOiJFUzM4NCJ9.eyJleHAiOjE3OTcwNzY4MDB9.c2ln",
    "expires_at": "2026-12-03T13:00:00Z", "reused": false}))]
pub struct VerificationSessionResource {
    pub provider: ProviderId,
    /// The provider's hosted flow. It carries a session token: hand it to the person only.
    pub url: String,
    /// When the session stops working, if the provider says; null otherwise.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<OffsetDateTime>,
    /// True when this session was handed out before (no new one was opened at the provider).
    pub reused: bool,
}

impl std::fmt::Debug for VerificationSessionResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationSessionResource")
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl From<SessionView> for VerificationSessionResource {
    fn from(view: SessionView) -> Self {
        Self {
            provider: view.provider,
            url: view.url,
            expires_at: view.expires_at,
            reused: view.reused,
        }
    }
}

fn field_problem(
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    error: FieldError,
) -> Problem {
    Problem {
        errors: vec![error.clone()],
        ..Problem::new(status, code, title).detail(format!("{}: {}", error.field, error.message))
    }
}

/// A failed provider call, classified as the write paths classify it (`last_error.code`):
/// a provider that is down or throttling is `503` with `Retry-After` (retry later), a refusal
/// of the data `422`, anything else (credentials, an account it does not know, an answer it
/// cannot be understood by) `502`.
fn provider_problem(error: ProviderError) -> Problem {
    let code = error.code();
    match error.kind {
        ProviderErrorKind::Unavailable | ProviderErrorKind::RateLimited => Problem {
            retry_after_secs: Some(error.retry_after.map_or(1, |d| d.as_secs().max(1))),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                "The provider could not open a session now",
            )
            .detail(format!(
                "{}; retry after Retry-After seconds",
                error.message
            ))
        },
        ProviderErrorKind::Rejected => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "The provider refused to open a session",
        )
        .detail(error.message),
        _ => Problem::new(
            StatusCode::BAD_GATEWAY,
            code,
            "The provider's answer could not be used",
        )
        .detail(error.message),
    }
}

impl From<SessionError> for Problem {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Onboarding(error) => error.into(),
            SessionError::NotLinked(provider) => field_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "provider_not_linked",
                "The user has no link at this provider",
                FieldError {
                    field: "provider".into(),
                    code: "not_linked",
                    message: format!(
                        "the user has no link at {provider}; POST /v1/users/{{id}}/providers first"
                    ),
                },
            ),
            SessionError::NotSubmitted(provider) => Problem::new(
                StatusCode::CONFLICT,
                "link_not_submitted",
                "The user's link has not reached the provider yet",
            )
            .detail(format!(
                "the link at {provider} has no provider account yet; retry once its status is \
                 past pending_submission"
            )),
            SessionError::ProviderUnavailable(provider, reason) => {
                Problem::validation(vec![FieldError {
                    field: "provider".into(),
                    code: "provider_unavailable",
                    message: format!("{provider} {reason}"),
                }])
            }
            SessionError::NotSupported(message) => field_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_supported_by_provider",
                "The provider has no hosted verification",
                FieldError {
                    field: "provider".into(),
                    code: "not_supported_by_provider",
                    message,
                },
            ),
            SessionError::Provider(error) => provider_problem(error),
        }
    }
}

/// The provider and redirect of a request body, or one error per offending field.
fn parse_request(body: &serde_json::Value) -> Result<(ProviderId, Option<String>), Problem> {
    let mut errors = Vec::new();
    let mut provider = None;
    let mut redirect_url = None;
    for (key, value) in body.as_object().into_iter().flatten() {
        match key.as_str() {
            "provider" => match value.as_str() {
                Some(name) => match name.parse::<ProviderId>() {
                    Ok(p) => provider = Some(p),
                    Err(_) => errors.push(invalid(
                        "provider",
                        "invalid_value",
                        &format!("must be one of {}", ProviderId::allowed()),
                    )),
                },
                None => errors.push(invalid("provider", "invalid_type", "must be a string")),
            },
            "redirect_url" => match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(url) => match check_redirect_url(url) {
                    Ok(()) => redirect_url = Some(url.clone()),
                    Err(why) => errors.push(invalid("redirect_url", "invalid_format", &why)),
                },
                _ => errors.push(invalid("redirect_url", "invalid_type", "must be a string")),
            },
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `provider` and optionally `redirect_url`",
            )),
        }
    }
    if provider.is_none() && !errors.iter().any(|e| e.field == "provider") {
        errors.push(invalid("provider", "required", "is required"));
    }
    match provider {
        Some(provider) if errors.is_empty() => Ok((provider, redirect_url)),
        _ => Err(Problem::validation(errors)),
    }
}

/// Open a hosted verification session.
///
/// The provider's own verification flow for the user (KillB: the user's `complianceUrl`;
/// Carbn: an onboarding session), for a provider the user has a submitted link at. An
/// unexpired session is handed out again (`reused: true`) instead of opening another: one
/// whose `expires_at` is more than a minute away, or, without an expiry, one opened within
/// `verification.session_reuse_secs`; a provider that keeps one current link per user (KillB)
/// is asked every time, and `reused` says whether the link is the one handed out before. A
/// provider without hosted verification (Kraken) is `422 not_supported_by_provider`. Opening a
/// session never changes a link's status; the provider's answer, webhook or the poller does.
/// `Idempotency-Key` honoured.
#[utoipa::path(
    post, path = "/v1/users/{id}/verification-sessions", tag = "users",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes the request safe to retry"),
    ),
    request_body(content = VerificationSessionRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The session (new, or handed out again with `reused: true`)", body = VerificationSessionResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`link_not_submitted` (the link has no provider account yet), `idempotency_key_reused` or `idempotency_request_in_progress`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (unknown, disabled or unconfigured `provider`; invalid or missing `redirect_url`; unknown fields), `provider_not_linked` (no link at `provider`), `not_supported_by_provider` (no hosted verification there) or `provider_rejected` (the provider refused)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "The provider's answer could not be used (`provider_unauthorized`, `provider_not_found`, `provider_conflict`, `provider_invalid_response`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The provider is down or throttling (`provider_unavailable`, `provider_rate_limited`; retry after `Retry-After`), or the database is unreachable", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::UsersWrite)?;
    let id = Uuid::parse_str(&path).map_err(|_| Problem::not_found("no user with this id"))?;
    let body = read_json_object(&req, payload, JSON).await?;
    idempotency::run_for_user(
        &state.pool,
        &state.services.keyring,
        &req,
        &principal,
        &body,
        Some(id),
        || async {
            let (provider, redirect_url) = parse_request(&body)?;
            let request = NewSessionRequest {
                provider,
                redirect_url: redirect_url.as_deref(),
                reuse_window: std::time::Duration::from_secs(
                    state.settings.verification.session_reuse_secs,
                ),
            };
            let view = sessions::create(&state.services, id, request).await?;
            let resource = VerificationSessionResource::from(view);
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(&resource).expect("a session resource serialises"),
            ))
        },
    )
    .await
}
