//! `/v1/jobs` (scope `ops`): inspect the background job queue and re-drive failed jobs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{parse_reason, read_json_object, read_optional_json_object, JSON};
use super::problem::{Problem, ProblemDocument};
use super::query::{self, decode_id_cursor, encode_id_cursor, invalid, parse_limit, DEFAULT_PAGE};
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::domain::provider::ProviderId;
use crate::domain::FieldError;
use crate::onboarding::operator::{self, Operator, RedriveRefusal, MAX_BULK_REDRIVE};
use crate::onboarding::OnboardingError;
use crate::store::jobs::{self, JobKind, JobRow};

/// A background job: a provider submission, update or erasure, or a notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResource {
    pub id: Uuid,
    pub kind: JobKind,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    /// What the job is about: `user_id`, `provider`, and for updates the `fields`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last failure (provider error code and message; never PII).
    pub last_error: Option<String>,
    /// An earlier attempt may have reached the provider without its answer being recorded.
    pub outcome_unknown: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<JobRow> for JobResource {
    fn from(row: JobRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            state: row.state,
            payload: row.payload.0,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            last_error: row.last_error,
            outcome_unknown: row.outcome_unknown,
            run_at: row.run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobResource>,
    pub next_cursor: Option<String>,
}

const STATES: &[&str] = &["queued", "running", "succeeded", "failed"];

/// List background jobs.
///
/// Newest first; filter by `state` (`queued`, `running`, `succeeded`, `failed`), `kind` and
/// `provider` (the provider the job is about).
#[utoipa::path(
    get, path = "/v1/jobs", tag = "operations",
    params(
        ("state" = Option<String>, Query, pattern = "^(queued|running|succeeded|failed)$", description = "queued, running, succeeded or failed"),
        ("kind" = Option<String>, Query, pattern = r"^[^\x00]{1,40}$", description = JobKind::list_text()),
        ("provider" = Option<ProviderId>, Query, description = "Jobs about this provider"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "Page size, 1–100 (default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid filter, limit or cursor", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_jobs(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::Ops)?;
    let pairs = query::pairs(&req)?;
    let (mut job_state, mut kind, mut before, mut limit) = (None, None, None, DEFAULT_PAGE);
    let mut provider = None;
    let mut errors = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "state" if STATES.contains(&value.as_str()) => job_state = Some(value),
            "state" => errors.push(invalid(
                "state",
                "invalid_value",
                "must be one of queued, running, succeeded, failed",
            )),
            "kind" if !value.is_empty() && value.chars().count() <= 40 => kind = Some(value),
            "kind" => errors.push(invalid(
                "kind",
                "invalid_value",
                "must be a job kind, e.g. submit_link",
            )),
            "provider" => provider = parse_provider(&value, &mut errors),
            "limit" => limit = parse_limit(&value, &mut errors),
            "cursor" => before = decode_id_cursor(&value, &mut errors),
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
    let kind = match kind.as_deref().map(JobKind::from_wire) {
        // A well-formed kind that no job has: an empty page, as any filter that matches nothing.
        Some(None) => {
            return Ok(HttpResponse::Ok().json(JobList {
                data: Vec::new(),
                next_cursor: None,
            }))
        }
        Some(Some(kind)) => Some(kind),
        None => None,
    };
    let mut rows = jobs::list(
        &state.pool,
        job_state.as_deref(),
        kind,
        provider.map(|p: ProviderId| p.as_str()),
        before,
        limit as i64 + 1,
    )
    .await
    .map_err(store_problem)?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if has_more {
        rows.last().map(|r| encode_id_cursor(r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(JobList {
        data: rows.into_iter().map(JobResource::from).collect(),
        next_cursor,
    }))
}

fn parse_provider(raw: &str, errors: &mut Vec<FieldError>) -> Option<ProviderId> {
    let provider = raw.parse::<ProviderId>().ok();
    if provider.is_none() {
        errors.push(invalid(
            "provider",
            "invalid_value",
            &format!("must be one of {}", ProviderId::allowed()),
        ));
    }
    provider
}

fn store_problem(error: crate::store::StoreError) -> Problem {
    Problem::from(OnboardingError::Store(error))
}

/// The body of `POST /v1/jobs/{id}/retry` (optional: an empty body re-drives without a reason).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Kraken confirmed no account exists (ticket 4711)"}))]
pub struct RetryJobRequest {
    /// Why (1–500 characters after trimming); recorded in the user's audit trail.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x08\x0B-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$"
    )]
    pub reason: Option<String>,
}

/// Re-drive a failed job.
///
/// Queues it now with a fresh attempt budget. For a submission flagged
/// `possible_duplicate_account` (a Kraken create whose answer was lost, with
/// `on_unknown_outcome = "review"`), re-driving states that you checked no account exists at
/// the provider: the next attempt creates one. One flagged `provider_account_id_unknown` has an
/// account at the provider already (Kraken refused a second); it is settled by Kraken's next
/// webhook for that account, and a re-drive is refused by Kraken again. Records
/// `job_redriven` (`job_id`, `kind`, `provider`, `reason`, `key_name`) in the user's audit
/// trail; the body, with its `reason`, is optional.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "operations",
    params(("id" = Uuid, Path, description = "The job id")),
    request_body(content = Option<RetryJobRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The job, queued again", body = JobResource),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`job_not_failed`: only failed jobs can be re-driven", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "A body with a content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an invalid `reason` or an unknown member", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn retry_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::Ops)?;
    let body = read_optional_json_object(&req, payload, JSON).await?;
    let id = Uuid::parse_str(&path).map_err(|_| Problem::not_found("no job with this id"))?;
    let mut errors = Vec::new();
    let mut reason = None;
    for (key, value) in body.iter().filter_map(|b| b.as_object()).flatten() {
        match key.as_str() {
            // Optional members may be `null`, meaning absent (as everywhere in the API).
            "reason" if value.is_null() => {}
            "reason" => reason = parse_reason(value, &mut errors),
            other => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `reason`",
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
    match operator::redrive_job(&state.services, id, operator).await? {
        Ok(job) => Ok(HttpResponse::Ok().json(JobResource::from(job))),
        Err(RedriveRefusal::NotFound) => Err(Problem::not_found("no job with this id")),
        Err(RedriveRefusal::NotFailed(job_state)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "job_not_failed",
            "Only failed jobs can be re-driven",
        )
        .detail(format!("the job is {job_state}"))),
    }
}

/// The body of `POST /v1/jobs/retry`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "submit_link", "provider": "kraken", "reason": "Kraken outage over (status page)"}))]
pub struct RetryJobsRequest {
    pub kind: JobKind,
    /// Only jobs about this provider.
    #[schema(value_type = Option<ProviderId>)]
    pub provider: Option<String>,
    /// Why (1–500 characters after trimming); recorded in each user's audit trail.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x08\x0B-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// What a bulk re-drive did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"retried": 500, "remaining": 12}))]
pub struct RetryJobsResponse {
    /// Failed jobs queued again by this call (at most 500).
    pub retried: i64,
    /// Failed jobs of the kind (and provider) still left: call again to re-drive them.
    pub remaining: i64,
}

/// Re-drive every failed job of a kind.
///
/// Queues again, oldest first, at most 500 failed jobs of `kind` (and `provider`, when given)
/// per call, each with a fresh attempt budget and one `job_redriven` event in its user's audit
/// trail; `remaining` says how many are left for the next call. `reason` is required.
#[utoipa::path(
    post, path = "/v1/jobs/retry", tag = "operations",
    request_body(content = RetryJobsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many were re-driven and how many remain", body = RetryJobsResponse),
        (status = 400, description = "Malformed JSON or not an object", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Content type other than `application/json`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a missing or unknown `kind`, an unknown `provider`, a missing or invalid `reason`, an unknown member", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn retry_jobs(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let principal = authorize(&req, &state, Scope::Ops)?;
    let body = read_json_object(&req, payload, JSON).await?;
    let mut errors = Vec::new();
    let (mut kind, mut provider, mut reason) = (None, None, None);
    let mut reason_seen = false;
    for (key, value) in body.as_object().into_iter().flatten() {
        match (key.as_str(), value.as_str()) {
            ("kind", Some(raw)) => {
                kind = JobKind::from_wire(raw);
                if kind.is_none() {
                    errors.push(invalid(
                        "kind",
                        "invalid_value",
                        &format!("must be one of {}", JobKind::list_text()),
                    ));
                }
            }
            ("provider", None) if value.is_null() => {} // optional: null means absent
            ("provider", Some(raw)) => provider = parse_provider(raw, &mut errors),
            ("kind" | "provider", None) => {
                errors.push(invalid(key, "invalid_type", "must be a string"))
            }
            ("reason", _) => {
                reason_seen = true;
                reason = parse_reason(value, &mut errors);
            }
            (other, _) => errors.push(invalid(
                other,
                "unknown_field",
                "is not a known field; expected `kind`, `provider` and `reason`",
            )),
        }
    }
    if body.get("kind").is_none() {
        errors.push(invalid("kind", "required", "is required"));
    }
    if !reason_seen {
        errors.push(invalid("reason", "required", "is required"));
    }
    let (Some(kind), Some(reason)) = (kind, reason) else {
        return Err(Problem::validation(errors));
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let operator = Operator {
        key_name: &principal.name,
        reason: Some(&reason),
    };
    let done = operator::redrive_failed(&state.services, kind, provider, operator).await?;
    debug_assert!(done.retried <= MAX_BULK_REDRIVE);
    Ok(HttpResponse::Ok().json(RetryJobsResponse {
        retried: done.retried,
        remaining: done.remaining,
    }))
}
