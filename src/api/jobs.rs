//! `/v1/jobs` (scope `ops`): inspect the background job queue and re-drive failed jobs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{Problem, ProblemDocument};
use super::query::{self, decode_id_cursor, encode_id_cursor, invalid, parse_limit, DEFAULT_PAGE};
use super::{authorize, AppState};
use crate::auth::Scope;
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
/// Newest first; filter by `state` (`queued`, `running`, `succeeded`, `failed`) and `kind`.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "operations",
    params(
        ("state" = Option<String>, Query, pattern = "^(queued|running|succeeded|failed)$", description = "queued, running, succeeded or failed"),
        ("kind" = Option<String>, Query, pattern = r"^[^\x00]{1,40}$", description = JobKind::list_text()),
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
        before,
        limit as i64 + 1,
    )
    .await
    .map_err(|e| Problem::from(OnboardingError::Store(e)))?;
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

/// Re-drive a failed job.
///
/// Queues it now with a fresh attempt budget. For a submission flagged
/// `possible_duplicate_account` (a Kraken create whose answer was lost, with
/// `on_unknown_outcome = "review"`), re-driving states that you checked no account exists at
/// the provider: the next attempt creates one. One flagged `provider_account_id_unknown` has an
/// account at the provider already (Kraken refused a second); it is settled by Kraken's next
/// webhook for that account, and a re-drive is refused by Kraken again.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "operations",
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job, queued again", body = JobResource),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`job_not_failed`: only failed jobs can be re-driven", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn retry_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::Ops)?;
    let id = Uuid::parse_str(&path).map_err(|_| Problem::not_found("no job with this id"))?;
    let store_error = |e| Problem::from(OnboardingError::Store(e));
    match jobs::redrive(&state.pool, id).await.map_err(store_error)? {
        Some(job) => Ok(HttpResponse::Ok().json(JobResource::from(job))),
        None => match jobs::get(&state.pool, id).await.map_err(store_error)? {
            None => Err(Problem::not_found("no job with this id")),
            Some(job) => Err(Problem::new(
                StatusCode::CONFLICT,
                "job_not_failed",
                "Only failed jobs can be re-driven",
            )
            .detail(format!("the job is {}", job.state))),
        },
    }
}
