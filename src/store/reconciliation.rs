//! Reconciliation: the links a pass refreshes, the drift report's scans, the
//! `reconciliation_runs` log, and the cluster-wide advisory lock that lets one pass run at a time.

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::links::LinkRow;
use super::StoreError;

/// The advisory lock key held by the instance running a pass (any constant unique to this use).
pub const PASS_LOCK_KEY: i64 = 0x6f6e_6267_7263_6e31; // "onbgrcn1"

/// Tries to take the pass lock on `conn`, a connection dedicated to the pass. The lock is held
/// by the database session: it is released by [`unlock`] or when the connection closes (the
/// instance died or the connection was dropped), so a dead owner never blocks the others.
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PASS_LOCK_KEY)
        .fetch_one(conn)
        .await
        .map_err(StoreError::from_sqlx)
}

pub async fn unlock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
        .bind(PASS_LOCK_KEY)
        .fetch_one(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// One page of the links a pass refreshes, in key order after `after` (keyset pagination, so
/// a pass walks every candidate once even when a sync fails): submitted links (with a provider
/// id) that are not final, and any submitted link not synced since `stale_before`.
pub async fn due_links<'e>(
    db: impl PgExecutor<'e>,
    stale_before: OffsetDateTime,
    after: Option<(Uuid, crate::domain::provider::ProviderId)>,
    limit: i64,
) -> Result<Vec<LinkRow>, StoreError> {
    let (after_user, after_provider) = match after {
        Some((u, p)) => (Some(u), Some(p.as_str())),
        None => (None, None),
    };
    sqlx::query_as::<_, LinkRow>(
        "SELECT user_id, provider, provider_user_id, status, provider_status, requirements,
                last_error, provider_data, needs_review, submitted_at, last_synced_at, updated_at,
                provider_observed_at, erasure
           FROM provider_links
          WHERE provider_user_id IS NOT NULL
            AND erasure IS DISTINCT FROM 'deleted'
            AND (status NOT IN ('rejected', 'closed')
                 OR last_synced_at IS NULL OR last_synced_at < $1)
            AND ($2::uuid IS NULL OR (user_id, provider) > ($2, $3::text))
          ORDER BY user_id, provider
          LIMIT $4",
    )
    .bind(stale_before)
    .bind(after_user)
    .bind(after_provider)
    .bind(limit)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// What a link looks like right after a sync: our status and what the provider's answer maps to.
pub async fn link_state<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    provider: crate::domain::provider::ProviderId,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    sqlx::query_as(
        "SELECT status, provider_mapped_status FROM provider_links
          WHERE user_id = $1 AND provider = $2",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// A link as the drift report shows it: ids, statuses, error code and timestamps, never PII.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    pub user_id: Uuid,
    pub provider: String,
    pub provider_user_id: Option<String>,
    pub status: String,
    pub provider_status: Option<String>,
    pub provider_mapped_status: Option<String>,
    pub error_code: Option<String>,
    pub needs_review: bool,
    pub submitted_at: Option<OffsetDateTime>,
    pub last_synced_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

/// The kinds of the drift report, each a predicate on `provider_links` (`$1`: the stale cutoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    StatusDrift,
    MissingAtProvider,
    Stale,
    SubmissionFailed,
    NeedsReview,
    ErasureFollowUp,
}

impl ReportKind {
    pub const ALL: [ReportKind; 6] = [
        ReportKind::StatusDrift,
        ReportKind::MissingAtProvider,
        ReportKind::Stale,
        ReportKind::SubmissionFailed,
        ReportKind::NeedsReview,
        ReportKind::ErasureFollowUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::StatusDrift => "status_drift",
            ReportKind::MissingAtProvider => "missing_at_provider",
            ReportKind::Stale => "stale",
            ReportKind::SubmissionFailed => "submission_failed",
            ReportKind::NeedsReview => "needs_review",
            ReportKind::ErasureFollowUp => "erasure_follow_up",
        }
    }

    fn predicate(self) -> &'static str {
        match self {
            ReportKind::StatusDrift => {
                "provider_mapped_status IS NOT NULL AND provider_mapped_status IS DISTINCT FROM status"
            }
            ReportKind::MissingAtProvider => "last_error->>'code' = 'missing_at_provider'",
            ReportKind::Stale => {
                "provider_user_id IS NOT NULL AND erasure IS DISTINCT FROM 'deleted'
                 AND (last_synced_at IS NULL OR last_synced_at < $1)"
            }
            ReportKind::SubmissionFailed => "status = 'submission_failed'",
            ReportKind::NeedsReview => {
                "needs_review AND (last_error->>'code') IS DISTINCT FROM 'missing_at_provider'"
            }
            // The user was erased here but the provider could not be told (no deletion API, or
            // it refused): someone must ask the provider to delete the account.
            ReportKind::ErasureFollowUp => "erasure = 'manual_follow_up'",
        }
    }
}

/// How many links are of `kind`, and the `limit` most recently updated of them.
pub async fn report_kind(
    pool: &PgPool,
    kind: ReportKind,
    stale_before: OffsetDateTime,
    limit: i64,
) -> Result<(i64, Vec<ReportRow>), StoreError> {
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM provider_links WHERE ($1::timestamptz IS NOT NULL) AND {}",
        kind.predicate()
    )))
    .bind(stale_before)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    let order = if kind == ReportKind::Stale {
        "last_synced_at ASC NULLS FIRST, user_id"
    } else {
        "updated_at DESC, user_id"
    };
    let rows = sqlx::query_as::<_, ReportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT user_id, provider, provider_user_id, status, provider_status,
                provider_mapped_status, last_error->>'code' AS error_code, needs_review,
                submitted_at, last_synced_at, updated_at
           FROM provider_links
          WHERE ($1::timestamptz IS NOT NULL) AND {}
          ORDER BY {order}
          LIMIT $2",
        kind.predicate()
    )))
    .bind(stale_before)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok((count, rows))
}

pub async fn failed_jobs<'e>(db: impl PgExecutor<'e>) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'failed'")
        .fetch_one(db)
        .await
        .map_err(StoreError::from_sqlx)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub trigger: String,
    pub summary: Option<Json<serde_json::Value>>,
}

/// Records the start of a pass (call while holding the pass lock).
pub async fn start_run(
    conn: &mut PgConnection,
    trigger: &str,
    instance: &str,
) -> Result<RunRow, StoreError> {
    sqlx::query_as::<_, RunRow>(
        "INSERT INTO reconciliation_runs (id, started_at, trigger, instance)
         VALUES ($1, clock_timestamp(), $2, $3)
         RETURNING id, started_at, finished_at, trigger, summary",
    )
    .bind(Uuid::now_v7())
    .bind(trigger)
    .bind(instance)
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Records the end of a pass and its summary (call before releasing the pass lock).
pub async fn finish_run(
    conn: &mut PgConnection,
    id: Uuid,
    summary: serde_json::Value,
) -> Result<RunRow, StoreError> {
    sqlx::query_as::<_, RunRow>(
        "UPDATE reconciliation_runs SET finished_at = clock_timestamp(), summary = $2
          WHERE id = $1
      RETURNING id, started_at, finished_at, trigger, summary",
    )
    .bind(id)
    .bind(Json(summary))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// The most recent finished pass.
pub async fn last_finished_run<'e>(db: impl PgExecutor<'e>) -> Result<Option<RunRow>, StoreError> {
    sqlx::query_as::<_, RunRow>(
        "SELECT id, started_at, finished_at, trigger, summary FROM reconciliation_runs
          WHERE finished_at IS NOT NULL
          ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}
