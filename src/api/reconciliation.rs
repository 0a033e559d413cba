//! `/v1/reconciliation` (scope `ops`): the drift report, and running a reconciliation pass now.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{Problem, ProblemDocument};
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::domain::FieldError;
use crate::onboarding::reconcile::{self, ReconcileError, ReconciliationRun, Trigger};
use crate::store::reconciliation::{ReportKind, ReportRow};

/// Rows listed per kind at most (the `count` covers them all).
pub const MAX_ROWS_PER_KIND: usize = 100;

/// How long `POST /v1/reconciliation/runs` waits for a pass running elsewhere to finish.
const WAIT_FOR_RUNNING_PASS: Duration = Duration::from_secs(10);

/// A link in the drift report: ids, statuses, error code and timestamps only (never PII).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10",
    "provider": "killb",
    "provider_user_id": "5b0f6a8e-3d7c-4e21-9a4b-8f2d1c6e7a90",
    "status": "rejected",
    "provider_status": "ACTIVE",
    "provider_mapped_status": "approved",
    "reason": null,
    "submitted_at": "2026-11-20T08:00:00Z",
    "last_synced_at": "2026-11-22T10:15:00Z",
    "updated_at": "2026-11-22T10:15:00Z"
}))]
pub struct ReconciliationLink {
    pub user_id: Uuid,
    pub provider: String,
    /// The provider's id for the account (null before the first successful submission).
    pub provider_user_id: Option<String>,
    /// Our canonical status.
    pub status: String,
    /// The provider's raw status, as last received.
    pub provider_status: Option<String>,
    /// The canonical status the provider's last answer maps to, even when the transition was
    /// refused (e.g. ours is a final `rejected` while the provider now says `approved`); null
    /// when the raw status is unknown to the mapping or the link was never read.
    pub provider_mapped_status: Option<String>,
    /// Why the link is listed: `last_error.code` (`missing_at_provider`,
    /// `possible_duplicate_account`, `provider_rejected`, …), `unknown_provider_status`, or
    /// `unknown_provider_requirement` (a requirement value no mapping knows).
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_synced_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ReportRow> for ReconciliationLink {
    fn from(row: ReportRow) -> Self {
        let reason = match &row.error_code {
            Some(code) => Some(code.clone()),
            // A known status flagged anyway: a requirement value no mapping knows.
            None if row.needs_review && row.provider_mapped_status.is_some() => {
                Some("unknown_provider_requirement".to_owned())
            }
            None if row.needs_review => Some("unknown_provider_status".to_owned()),
            None => None,
        };
        Self {
            user_id: row.user_id,
            provider: row.provider,
            provider_user_id: row.provider_user_id,
            status: row.status,
            provider_status: row.provider_status,
            provider_mapped_status: row.provider_mapped_status,
            reason,
            submitted_at: row.submitted_at,
            last_synced_at: row.last_synced_at,
            updated_at: row.updated_at,
        }
    }
}

/// One kind of the report: how many links, and the first of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationSection {
    /// All links of this kind.
    pub count: i64,
    /// At most `limit` of them (most recently updated first; `stale`: longest unsynced first).
    pub data: Vec<ReconciliationLink>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedJobsSection {
    /// Background jobs that exhausted their attempts (`GET /v1/jobs?state=failed`).
    pub count: i64,
}

/// The drift report.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "generated_at": "2026-11-22T10:20:00Z",
    "stale_after_secs": 900,
    "limit": 100,
    "status_drift": {"count": 1, "data": [{
        "user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10", "provider": "killb",
        "provider_user_id": "5b0f6a8e-3d7c-4e21-9a4b-8f2d1c6e7a90", "status": "rejected",
        "provider_status": "ACTIVE", "provider_mapped_status": "approved", "reason": null,
        "submitted_at": "2026-11-20T08:00:00Z", "last_synced_at": "2026-11-22T10:15:00Z",
        "updated_at": "2026-11-22T10:15:00Z"}]},
    "missing_at_provider": {"count": 0, "data": []},
    "stale": {"count": 0, "data": []},
    "submission_failed": {"count": 0, "data": []},
    "needs_review": {"count": 0, "data": []},
    "erasure_follow_up": {"count": 0, "data": []},
    "failed_jobs": {"count": 0},
    "last_run": {
        "id": "01936b31-0a2f-7b4c-8d9e-1f2a3b4c5d6e", "trigger": "poll",
        "started_at": "2026-11-22T10:15:00.123Z", "finished_at": "2026-11-22T10:15:00.935Z",
        "checked": 42, "status_changed": [], "status_changed_count": 0, "drift": 1,
        "missing": 0, "errors": 0, "duration_ms": 812, "interrupted": false}
}))]
pub struct ReconciliationReport {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// `reconciliation.stale_after_secs`: the window of the `stale` kind.
    pub stale_after_secs: u64,
    /// Rows listed per kind at most.
    pub limit: usize,
    /// Links whose provider's last answer maps to another status than ours (provider says
    /// `provider_mapped_status`, we say `status`): a transition the rules refused.
    pub status_drift: ReconciliationSection,
    /// Submitted links whose account the provider no longer knows.
    pub missing_at_provider: ReconciliationSection,
    /// Submitted links not synced within `stale_after_secs`.
    pub stale: ReconciliationSection,
    /// Links whose submission the provider refused (`last_error` says why).
    pub submission_failed: ReconciliationSection,
    /// Links flagged for a person (unknown provider status, possible duplicate account).
    pub needs_review: ReconciliationSection,
    /// Links of erased users whose provider could not be told to delete the account (it has
    /// no deletion API, or refused): ask the provider to delete it, by `provider_user_id`.
    pub erasure_follow_up: ReconciliationSection,
    pub failed_jobs: FailedJobsSection,
    /// The last finished pass, or null before the first.
    pub last_run: Option<ReconciliationRun>,
}

fn parse_limit(req: &HttpRequest) -> Result<usize, Problem> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| Problem::bad_request("the query string is not valid URL encoding"))?
        .into_inner();
    let mut limit = MAX_ROWS_PER_KIND;
    let mut errors = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if n <= MAX_ROWS_PER_KIND => limit = n,
                _ => errors.push(FieldError {
                    field: "limit".into(),
                    code: "invalid_value",
                    message: "must be an integer from 0 to 100".into(),
                }),
            },
            other => errors.push(FieldError {
                field: other.to_owned(),
                code: "unknown_field",
                message: "is not a known query parameter".into(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(limit)
    } else {
        Err(Problem::validation(errors))
    }
}

/// The drift report.
///
/// Counts and rows (at most `limit` per kind; ids, statuses, error codes and timestamps only,
/// never PII) for: `status_drift` (the provider's status maps to another than ours),
/// `missing_at_provider`, `stale` (submitted links not synced within
/// `reconciliation.stale_after_secs`), `submission_failed`, `needs_review` (unknown provider
/// status, possible duplicate account), the number of `failed_jobs`, and the last pass's
/// summary. Also refreshes the `gateway_reconciliation_drift{kind}` gauges.
#[utoipa::path(
    get, path = "/v1/reconciliation", tag = "operations",
    params(("limit" = Option<usize>, Query, minimum = 0, maximum = 100, description = "Rows per kind, 0–100 (default 100)")),
    responses(
        (status = 200, description = "The drift report", body = ReconciliationReport),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An invalid `limit`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_report(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::Ops)?;
    let limit = parse_limit(&req)?;
    let settings = &state.settings.reconciliation;
    let report = reconcile::report(&state.services, settings, limit as i64).await?;
    let mut sections = report.sections.into_iter().map(|section| {
        (
            section.kind,
            ReconciliationSection {
                count: section.count,
                data: section
                    .rows
                    .into_iter()
                    .map(ReconciliationLink::from)
                    .collect(),
            },
        )
    });
    let mut take = |kind: ReportKind| {
        sections
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s)
            .unwrap_or(ReconciliationSection {
                count: 0,
                data: Vec::new(),
            })
    };
    // ReportKind::ALL is in this order; `take` walks the iterator once.
    let status_drift = take(ReportKind::StatusDrift);
    let missing_at_provider = take(ReportKind::MissingAtProvider);
    let stale = take(ReportKind::Stale);
    let submission_failed = take(ReportKind::SubmissionFailed);
    let needs_review = take(ReportKind::NeedsReview);
    let erasure_follow_up = take(ReportKind::ErasureFollowUp);
    Ok(HttpResponse::Ok().json(ReconciliationReport {
        generated_at: report.generated_at,
        stale_after_secs: settings.stale_after_secs,
        limit,
        status_drift,
        missing_at_provider,
        stale,
        submission_failed,
        needs_review,
        erasure_follow_up,
        failed_jobs: FailedJobsSection {
            count: report.failed_jobs,
        },
        last_run: report.last_run,
    }))
}

/// Run a reconciliation pass now.
///
/// Re-reads from its provider every submitted link that is not final, and every submitted
/// link not synced within `reconciliation.stale_after_secs`; applies what changed (as
/// `status_changed` events with `source: "poll"`), flags accounts missing at the provider, and
/// answers the pass's summary once it is done. One pass runs at a time across all instances:
/// when another is running, this waits up to 10 s for it, then answers
/// `409 reconciliation_in_progress` (retry later).
#[utoipa::path(
    post, path = "/v1/reconciliation/runs", tag = "operations",
    responses(
        (status = 200, description = "The finished pass and its summary", body = ReconciliationRun),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`reconciliation_in_progress`: another pass is still running", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn run_now(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::Ops)?;
    let settings = &state.settings.reconciliation;
    let deadline = tokio::time::Instant::now() + WAIT_FOR_RUNNING_PASS;
    loop {
        match reconcile::run_pass(&state.services, settings, Trigger::Api).await {
            Ok(run) => return Ok(HttpResponse::Ok().json(run)),
            Err(ReconcileError::Busy) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(ReconcileError::Busy) => {
                let mut problem = Problem::new(
                    StatusCode::CONFLICT,
                    "reconciliation_in_progress",
                    "A reconciliation pass is already running",
                )
                .detail("another pass is still running; retry when it has finished");
                problem.retry_after_secs = Some(5);
                return Err(problem);
            }
            Err(ReconcileError::Failed(error)) => return Err(error.into()),
        }
    }
}
