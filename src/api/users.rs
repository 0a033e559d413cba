//! `/v1/users`: create, read, list, patch, and the audit trail.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use super::body::{
    parse_reason, read_json_object, read_optional_json_object, JSON, JSON_OR_MERGE_PATCH,
};
use super::idempotency;
use super::problem::{Problem, ProblemDocument};
use super::query::{
    decode_id_cursor, encode_id_cursor, invalid, pairs as query_pairs, parse_limit, DEFAULT_PAGE,
    MAX_PAGE,
};
use super::resources::{
    EventList, EventResource, MaskedUserResource, UserInView, UserList, UserResource,
};
use super::{authorize, authorize_any, AppState};
use crate::auth::Scope;
use crate::domain::masking::RevealableField;
use crate::domain::operator::Reason;
use crate::domain::parse::parse_create_request;
use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;
use crate::domain::user::CanonicalUser;
use crate::domain::FieldError;
use crate::onboarding::operator::Operator;
use crate::onboarding::{self, OnboardingError};
use crate::store::users::UserFilter;

impl From<OnboardingError> for Problem {
    fn from(error: OnboardingError) -> Self {
        match error {
            OnboardingError::NotFound => Problem::not_found("no user with this id"),
            OnboardingError::Validation(errors) => Problem::validation(errors),
            OnboardingError::ProviderRequirementsUnmet(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "provider_requirements_unmet",
                    "The user lacks fields a provider requires",
                )
                .detail("each entry names a missing field and the provider that needs it")
            },
            OnboardingError::FieldNotUpdatable(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "field_not_updatable",
                    "A linked provider cannot take this change",
                )
                .detail("nothing was changed; each entry names the field and the provider")
            },
            OnboardingError::AlreadyLinked => Problem::new(
                StatusCode::CONFLICT,
                "link_already_exists",
                "The user is already linked to this provider",
            )
            .detail("a user has at most one link per provider"),
            OnboardingError::UserAlreadyExists { existing_user_id } => {
                let mut problem = Problem::new(
                    StatusCode::CONFLICT,
                    "user_already_exists",
                    "A user with this external_id already exists",
                );
                if let Some(id) = existing_user_id {
                    problem = problem
                        .detail(format!("external_id is already used by user {id}"))
                        .with_extra("existing_user_id", serde_json::json!(id));
                }
                problem
            }
            OnboardingError::Erased { erased_at } => {
                let mut problem = Problem::new(
                    StatusCode::GONE,
                    "user_erased",
                    "The user's personal data was erased",
                )
                .detail("DELETE /v1/users/{id} erased this user; its events remain readable");
                if let Some(at) = erased_at {
                    problem = problem.with_extra(
                        "erased_at",
                        serde_json::json!(at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()),
                    );
                }
                problem
            }
            OnboardingError::Store(error) => {
                tracing::error!(error = %error, "store failure");
                if error.is_unavailable() {
                    Problem::unavailable("the database is unreachable; retry shortly")
                } else {
                    Problem::internal()
                }
            }
        }
    }
}

/// Invalid ids are simply ids that match no user.
fn parse_user_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found("no user with this id"))
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("API resources always serialise")
}

/// Create a user.
///
/// Validates the canonical user, routes it (the request's `providers`, else the first routing
/// rule matching `address.country`, else `routing.default_provider`), checks each provider's
/// required fields (`422 provider_requirements_unmet`, one entry per missing field), persists
/// the user with one link per provider, then submits it to the providers. Answers 201 once
/// persisted, even when a provider is down: its link then shows `pending_submission` with
/// `last_error`. `Idempotency-Key` makes retries safe: the same key and body replay the first
/// answer.
#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    request_body(content = CanonicalUser, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes the request safe to retry (1–255 visible ASCII characters; a UUID is a good choice). Remembered for 24 hours.")),
    responses(
        (status = 201, description = "Created", body = UserResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`user_already_exists` (with `existing_user_id`), `idempotency_key_reused` or `idempotency_request_in_progress`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user was erased (DELETE) while it was being created", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type is not application/json", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (one entry per invalid field; a disabled or unconfigured provider in `providers`) or `provider_requirements_unmet` (one entry per missing field, naming the provider)", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::UsersWrite)?;
    let body = read_json_object(&req, payload, JSON).await?;
    let fingerprint =
        idempotency::request_fingerprint(&state.services.keyring, &req, &principal, &body)?;
    idempotency::run(
        &state.pool,
        &state.services.keyring,
        &req,
        &principal,
        &body,
        || async {
            let (user, providers) = parse_create_request(&body).map_err(Problem::validation)?;
            let view =
                onboarding::users::create(&state.services, user, providers, fingerprint.as_deref())
                    .await?;
            Ok((StatusCode::CREATED, to_json(&UserResource::from(view))))
        },
    )
    .await
}

/// How a user is shown: `full` (the default) or `masked` (personal values masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum View {
    #[default]
    Full,
    Masked,
}

impl View {
    fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "full" => Ok(View::Full),
            "masked" => Ok(View::Masked),
            _ => Err(invalid("view", "invalid_value", "must be full or masked")),
        }
    }

    fn show(self, user: UserResource) -> UserInView {
        match self {
            View::Full => UserInView::Full(user),
            View::Masked => UserInView::Masked(MaskedUserResource::from(user)),
        }
    }
}

/// Get a user.
///
/// `view=masked` shows every personal value masked (`j***@e***.com`, `J***`, `+49***78`,
/// `****-**-**`, `***` for address lines, city and postal code, `***` and the last 4 characters
/// of document and tax id numbers, `***` for `metadata` values); `POST /v1/users/{id}/reveal`
/// then shows chosen fields, recording that it did.
#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("view" = Option<View>, Query, description = "`full` (default) or `masked`"),
    ),
    responses(
        (status = 200, description = "The user with its provider links, in the view asked for", body = UserInView),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid `view`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let mut view = View::default();
    for (key, value) in query_pairs(&req)? {
        if key == "view" {
            view = View::parse(&value).map_err(|e| Problem::validation(vec![e]))?;
        }
    }
    let id = parse_user_id(&path)?;
    let user = onboarding::users::get(&state.services, id).await?;
    Ok(HttpResponse::Ok().json(view.show(UserResource::from(user))))
}

/// Erase a user.
///
/// Erases the person's personal data from the gateway: the profile (name, contact details,
/// address, document and tax numbers), its e-mail lookup hash, the bodies of the user's
/// provider webhooks and the stored idempotent answers that show the user. What stays is the
/// audit trail of ids, times and statuses (`GET /v1/users/{id}/events` keeps working; other
/// reads of the user answer `410 user_erased`, and lists leave it out). Each linked provider
/// that can delete accounts (KillB: `DELETE /api/v2/users/{id}`) is asked to, by a durable job
/// retried through outages; the others (Kraken, Carbn) are listed under `erasure_follow_up` in
/// `GET /v1/reconciliation` for a person to ask the provider. Idempotent: a repeat answers the
/// same receipt.
#[utoipa::path(
    delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "The gateway's user id")),
    responses(
        (status = 200, description = "Erased (now, or by an earlier request): what happened at each provider", body = crate::onboarding::erasure::ErasureReceipt),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn erase_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersWrite)?;
    let id = parse_user_id(&path)?;
    let receipt = onboarding::erasure::erase(&state.services, id).await?;
    Ok(HttpResponse::Ok().json(receipt))
}

/// List users.
///
/// Newest first, filtered by any combination of `external_id`, `email` (case-insensitive),
/// `status` (the user's summary status), `provider` (has a link there) and `provider_user_id`
/// (a link's id at its provider; with `provider`, at that provider). Cursor pagination:
/// pass `next_cursor` back as `cursor`; users created meanwhile never shift later pages.
/// `view=masked` masks personal values as `GET /v1/users/{id}` does.
#[utoipa::path(
    get, path = "/v1/users", tag = "users",
    params(
        ("external_id" = Option<String>, Query, pattern = r"^[^\x00]*\S[^\x00]*$", description = "Exact external_id"),
        ("email" = Option<String>, Query, pattern = r"^[^\x00]*\S[^\x00]*$", description = "Email, compared case-insensitively"),
        ("status" = Option<LinkStatus>, Query, description = "The user's summary status"),
        ("provider" = Option<ProviderId>, Query, description = "Users linked to this provider"),
        ("provider_user_id" = Option<String>, Query, pattern = r"^[^\x00]*\S[^\x00]*$", max_length = 200, description = "The provider's id for the user (of any link, or of the `provider` link)"),
        ("view" = Option<View>, Query, description = "`full` (default) or `masked`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "Page size, 1–100 (default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of users, in the view asked for", body = UserList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid filter, limit or cursor", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let mut filter = UserFilter::default();
    let mut view = View::default();
    let mut limit = DEFAULT_PAGE;
    let mut before = None;
    let mut errors = Vec::new();
    for (key, value) in query_pairs(&req)? {
        if value.trim().is_empty() {
            errors.push(invalid(&key, "required", "must not be empty when given"));
            continue;
        }
        match key.as_str() {
            "external_id" => filter.external_id = Some(value),
            "email" => filter.email = Some(value.trim().to_owned()),
            "status" => match value.parse::<LinkStatus>() {
                Ok(status) => filter.status = Some(status),
                Err(_) => errors.push(invalid(
                    "status",
                    "invalid_value",
                    "must be one of pending_submission, submission_failed, action_required, under_review, approved, rejected, suspended, closed",
                )),
            },
            "provider" => match value.parse::<ProviderId>() {
                Ok(provider) => filter.provider = Some(provider.as_str().to_owned()),
                Err(_) => errors.push(invalid(
                    "provider",
                    "invalid_value",
                    &format!("must be one of {}", ProviderId::allowed()),
                )),
            },
            "provider_user_id" if value.chars().count() > 200 => {
                errors.push(invalid(key.as_str(), "too_long", "must be at most 200 characters"))
            }
            "provider_user_id" => filter.provider_user_id = Some(value.trim().to_owned()),
            "view" => match View::parse(&value) {
                Ok(v) => view = v,
                Err(e) => errors.push(e),
            },
            "limit" => limit = parse_limit(&value, &mut errors),
            "cursor" => before = decode_id_cursor(&value, &mut errors),
            other => errors.push(invalid(other, "unknown_field", "is not a known query parameter")),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let (views, has_more) =
        onboarding::users::list(&state.services, &filter, before, limit).await?;
    let next_cursor = if has_more {
        views.last().map(|v| encode_id_cursor(v.user.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(UserList {
        data: views
            .into_iter()
            .map(|v| view.show(UserResource::from(v)))
            .collect(),
        next_cursor,
    }))
}

/// Update a user (JSON merge patch).
///
/// RFC 7396 merge patch of the canonical user: members replace, `null` clears an optional
/// field, objects merge, arrays replace whole. The result is validated with the same rules as
/// a create; errors name the JSON path. A patch that changes nothing is a no-op (no event).
/// Each linked provider then receives only the changed fields it takes, in its own update
/// call; a provider failure is recorded on the link (`last_error`), not returned.
/// `Idempotency-Key` honoured.
#[utoipa::path(
    patch, path = "/v1/users/{id}", tag = "users",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes the request safe to retry"),
    ),
    request_body(content = Object, description = "A JSON merge patch of the canonical user", content_type = "application/merge-patch+json",
        example = json!({"phone": "+49 151 1234 5679", "address": {"line2": null, "city": "Potsdam"}})),
    responses(
        (status = 200, description = "The updated user", body = UserResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`user_already_exists` (external_id taken), `idempotency_key_reused` or `idempotency_request_in_progress`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type is not application/json or application/merge-patch+json", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, or `field_not_updatable` when a linked provider cannot take a change after creation (e.g. `email` or `external_id` at some providers); nothing is changed", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::UsersWrite)?;
    let id = parse_user_id(&path)?;
    let body = read_json_object(&req, payload, JSON_OR_MERGE_PATCH).await?;
    idempotency::run(
        &state.pool,
        &state.services.keyring,
        &req,
        &principal,
        &body,
        || async {
            let view = onboarding::users::patch(&state.services, id, &body).await?;
            Ok((StatusCode::OK, to_json(&UserResource::from(view))))
        },
    )
    .await
}

/// The event's sequence number, 8 bytes big-endian, base64url: 11 characters, and every
/// string of that shape decodes (the OpenAPI pattern says exactly which ones).
fn encode_event_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(seq.to_be_bytes())
}

fn decode_event_cursor(raw: &str) -> Option<i64> {
    let bytes: [u8; 8] = URL_SAFE_NO_PAD.decode(raw).ok()?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// A user's audit trail.
///
/// Oldest first: creation, updates (which fields), provider calls (operation, HTTP status,
/// latency) and status transitions with their source. Never PII.
#[utoipa::path(
    get, path = "/v1/users/{id}/events", tag = "users",
    params(
        ("id" = Uuid, Path, description = "The gateway's user id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "Page size, 1–100 (default 100)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$", description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The user's events, oldest first", body = EventList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid limit or cursor", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let id = parse_user_id(&path)?;
    let mut limit = MAX_PAGE;
    let mut after = None;
    let mut errors = Vec::new();
    for (key, value) in query_pairs(&req)? {
        match key.as_str() {
            "limit" => limit = parse_limit(&value, &mut errors),
            "cursor" => match decode_event_cursor(&value) {
                Some(seq) => after = Some(seq),
                None => errors.push(invalid(
                    "cursor",
                    "invalid_value",
                    "is not a cursor returned by this endpoint",
                )),
            },
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known query parameter",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let (rows, has_more) = onboarding::users::events(&state.pool, id, after, limit).await?;
    let next_cursor = if has_more {
        rows.last().map(|r| encode_event_cursor(r.seq))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(EventList {
        data: rows.into_iter().map(EventResource::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        let mut errors = Vec::new();
        assert_eq!(
            decode_id_cursor(&encode_id_cursor(id), &mut errors),
            Some(id)
        );
        assert_eq!(decode_event_cursor(&encode_event_cursor(42)), Some(42));
        assert_eq!(decode_id_cursor("not-a-cursor", &mut errors), None);
        assert_eq!(errors.len(), 1);
        assert_eq!(decode_event_cursor(&encode_id_cursor(id)), None);
    }
}

/// The body of `POST /v1/users/{id}/providers`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "carbn"}))]
pub struct LinkProviderRequest {
    /// `kraken`, `killb` or `carbn`.
    #[schema(value_type = ProviderId)]
    pub provider: String,
}

/// Onboard an existing user at one more provider.
///
/// Same requirement checks as a create; a user has at most one link per provider.
#[utoipa::path(
    post, path = "/v1/users/{id}/providers", tag = "users",
    params(("id" = Uuid, Path, description = "The gateway's user id")),
    request_body(content = LinkProviderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The user with its new link (submitted, or pending with `last_error`)", body = UserResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:write`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`link_already_exists`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (unknown, disabled or unconfigured provider) or `provider_requirements_unmet`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn link_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersWrite)?;
    let id = parse_user_id(&path)?;
    let body = read_json_object(&req, payload, JSON).await?;
    let mut errors = Vec::new();
    let mut provider = None;
    for (key, value) in body.as_object().into_iter().flatten() {
        match (key.as_str(), value.as_str()) {
            ("provider", Some(name)) => match name.parse::<ProviderId>() {
                Ok(p) => provider = Some(p),
                Err(_) => errors.push(invalid(
                    "provider",
                    "invalid_value",
                    &format!("must be one of {}", ProviderId::allowed()),
                )),
            },
            ("provider", None) => {
                errors.push(invalid("provider", "invalid_type", "must be a string"))
            }
            (other, _) => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `provider`",
            )),
        }
    }
    if provider.is_none() && errors.is_empty() {
        errors.push(invalid("provider", "required", "is required"));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let provider = provider.expect("checked above");
    let view = onboarding::users::link_provider(&state.services, id, provider).await?;
    Ok(HttpResponse::Created().json(UserResource::from(view)))
}

/// Sync a user's provider statuses now.
///
/// Fetches every submitted link's status from its provider (only `provider`'s, when the
/// optional body names one) and records it (transitions are recorded with source `api`);
/// returns the user. Records `sync_requested` (`provider`, `reason`, `key_name`) first. Scope
/// `users:write` or `ops`.
#[utoipa::path(
    post, path = "/v1/users/{id}/sync", tag = "users",
    params(("id" = Uuid, Path, description = "The gateway's user id")),
    request_body(content = Option<SyncRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The user after the sync", body = UserResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key has neither `users:write` nor `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "A body with a content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown `provider` (or one the user has no submitted link at), an invalid `reason`, an unknown member", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn sync_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize_any(&req, &state, &[Scope::UsersWrite, Scope::Ops])?;
    let body = read_optional_json_object(&req, payload, JSON).await?;
    let id = parse_user_id(&path)?;
    let mut errors = Vec::new();
    let (mut provider, mut reason) = (None, None);
    for (key, value) in body.iter().filter_map(|b| b.as_object()).flatten() {
        match key.as_str() {
            // Optional members may be `null`, meaning absent (as everywhere in the API).
            "provider" | "reason" if value.is_null() => {}
            "provider" => match value.as_str().map(str::parse::<ProviderId>) {
                Some(Ok(p)) => provider = Some(p),
                Some(Err(_)) => errors.push(invalid(
                    "provider",
                    "invalid_value",
                    &format!("must be one of {}", ProviderId::allowed()),
                )),
                None => errors.push(invalid("provider", "invalid_type", "must be a string")),
            },
            "reason" => reason = parse_reason(value, &mut errors),
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `provider` and `reason`",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let operator = Operator {
        key_name: &principal.name,
        reason: reason.as_ref(),
    };
    let view = onboarding::users::sync(&state.services, id, provider, operator).await?;
    Ok(HttpResponse::Ok().json(UserResource::from(view)))
}

/// The body of `POST /v1/users/{id}/sync` (optional).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "kraken", "reason": "drift report: status_drift"}))]
pub struct SyncRequest {
    /// Only this provider's link.
    #[schema(value_type = Option<ProviderId>)]
    pub provider: Option<String>,
    /// Why (1–500 characters after trimming); recorded in the user's audit trail.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x08\x0B-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$"
    )]
    pub reason: Option<String>,
}

/// The body of `POST /v1/users/{id}/reveal`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fields": ["email", "phone"], "reason": "customer called about ticket 4711"}))]
pub struct RevealRequest {
    /// The fields to show, 1–11 distinct.
    #[schema(value_type = std::collections::BTreeSet<RevealableField>, min_items = 1, max_items = 11)]
    pub fields: Vec<RevealableField>,
    /// Why (1–500 characters after trimming); recorded in the user's audit trail.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x08\x0B-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// The revealed values.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"values": {"email": "jane.doe@example.com"}}))]
pub struct RevealResponse {
    /// Each field asked for and its value (`null` when the user has none).
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// `fields` and `reason` of a reveal body, each error naming its member (`fields[1]`).
fn parse_reveal(body: &serde_json::Value) -> Result<(Vec<RevealableField>, Reason), Problem> {
    let mut errors = Vec::new();
    let (mut fields, mut reason) = (None, None);
    for (key, value) in body.as_object().into_iter().flatten() {
        match key.as_str() {
            "fields" => fields = Some(parse_reveal_fields(value, &mut errors)),
            "reason" => reason = parse_reason(value, &mut errors),
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `fields` and `reason`",
            )),
        }
    }
    if fields.is_none() {
        errors.push(invalid("fields", "required", "is required"));
    }
    if reason.is_none() && !errors.iter().any(|e| e.field == "reason") {
        errors.push(invalid("reason", "required", "is required"));
    }
    match (fields, reason) {
        (Some(fields), Some(reason)) if errors.is_empty() => Ok((fields, reason)),
        _ => Err(Problem::validation(errors)),
    }
}

fn parse_reveal_fields(
    value: &serde_json::Value,
    errors: &mut Vec<FieldError>,
) -> Vec<RevealableField> {
    let Some(items) = value.as_array() else {
        errors.push(invalid(
            "fields",
            "invalid_type",
            "must be an array of field names",
        ));
        return Vec::new();
    };
    if items.is_empty() {
        errors.push(invalid(
            "fields",
            "too_short",
            "must name at least one field",
        ));
    }
    let mut fields = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("fields[{i}]");
        match item.as_str().map(RevealableField::from_wire) {
            Some(Some(field)) if fields.contains(&field) => {
                errors.push(invalid(&path, "duplicate_item", "is already listed"))
            }
            Some(Some(field)) => fields.push(field),
            Some(None) => errors.push(invalid(
                &path,
                "invalid_value",
                &format!("must be one of {}", RevealableField::allowed()),
            )),
            None => errors.push(invalid(&path, "invalid_type", "must be a string")),
        }
    }
    fields
}

/// Reveal personal fields of a user.
///
/// Answers the unmasked values of the fields asked for and records one `pii_revealed` event in
/// the user's audit trail: the field names, the reason and the API key's name (never the
/// values). Fields: `first_name`, `middle_name`, `last_name`, `email`, `phone`,
/// `date_of_birth`, `birth_place`, `address`, `identity_document`, `tax_ids`, `metadata`.
#[utoipa::path(
    post, path = "/v1/users/{id}/reveal", tag = "users",
    params(("id" = Uuid, Path, description = "The gateway's user id")),
    request_body(content = RevealRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The values, the reveal recorded", body = RevealResponse),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown or repeated field (`fields[i]`), a missing or invalid `reason`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn reveal_fields(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::UsersRead)?;
    let id = parse_user_id(&path)?;
    let body = read_json_object(&req, payload, JSON).await?;
    let (fields, reason) = parse_reveal(&body)?;
    let values =
        onboarding::users::reveal(&state.services, id, &fields, &reason, &principal.name).await?;
    Ok(HttpResponse::Ok().json(RevealResponse { values }))
}
