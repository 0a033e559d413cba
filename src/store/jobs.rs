//! The `jobs` table as a queue: jobs are written in the same transaction as the state change
//! that needs them, claimed with `FOR UPDATE SKIP LOCKED` under a lease, and kept in order per
//! `queue_key` (a job never starts while an older job of the same key is unfinished).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StoreError;

// Stored as its wire value in `jobs.kind` (TEXT). Every kind there is: a `match` over it is the
// one dispatch (`onboarding::jobs`), and `JobKind::ALL` the one list (metrics, API docs).
/// What a background job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Submit a pending link to its provider.
    SubmitLink,
    /// Send a user's changed fields to a submitted link's provider.
    UpdateLink,
    /// Deliver one notification to a subscriber.
    Notify,
    /// Ask a provider to delete an erased user's account.
    EraseLink,
    /// Send an uploaded document to a provider (or end a front's wait for its back).
    SubmitDocument,
}

impl JobKind {
    /// Every kind, in declaration order.
    pub const ALL: [JobKind; 5] = [
        JobKind::SubmitLink,
        JobKind::UpdateLink,
        JobKind::Notify,
        JobKind::EraseLink,
        JobKind::SubmitDocument,
    ];

    /// The stored (and wire) value.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::SubmitLink => "submit_link",
            JobKind::UpdateLink => "update_link",
            JobKind::Notify => "notify",
            JobKind::EraseLink => "erase_link",
            JobKind::SubmitDocument => "submit_document",
        }
    }

    /// Exact lookup of a stored value.
    pub fn from_wire(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// The kinds as documentation text: `` `submit_link`, `update_link`, … or `erase_link` ``.
    pub fn list_text() -> String {
        let quoted: Vec<String> = Self::ALL.iter().map(|k| format!("`{k}`")).collect();
        match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

text_column!(JobKind, "job kind");

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: JobKind,
    pub queue_key: Option<String>,
    pub payload: Json<serde_json::Value>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: OffsetDateTime,
    pub locked_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub outcome_unknown: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Decoded column by column so that an unknown kind is an error naming the job.
impl<'r> sqlx::FromRow<'r, PgRow> for JobRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let id: Uuid = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let kind = JobKind::from_wire(&kind)
            .ok_or_else(|| super::corrupt_row(format!("jobs {id}: unknown kind {kind:?}")))?;
        Ok(Self {
            id,
            kind,
            queue_key: row.try_get("queue_key")?,
            payload: row.try_get("payload")?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at: row.try_get("run_at")?,
            locked_until: row.try_get("locked_until")?,
            last_error: row.try_get("last_error")?,
            outcome_unknown: row.try_get("outcome_unknown")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

macro_rules! job_columns {
    () => {
        "id, kind, queue_key, payload, state, attempts, max_attempts, run_at, locked_until,
         last_error, outcome_unknown, created_at, updated_at"
    };
}

/// [`job_columns!`] of the table aliased `j` (an `UPDATE … FROM` names them unambiguously).
macro_rules! job_columns_of_j {
    () => {
        "j.id, j.kind, j.queue_key, j.payload, j.state, j.attempts, j.max_attempts, j.run_at,
         j.locked_until, j.last_error, j.outcome_unknown, j.created_at, j.updated_at"
    };
}

/// A job to write: queued (due after `delay`), or already claimed.
#[derive(Debug)]
pub struct NewJob<'a> {
    pub id: Uuid,
    pub kind: JobKind,
    pub queue_key: &'a str,
    pub payload: &'a serde_json::Value,
    pub max_attempts: u32,
    pub delay: Duration,
    /// Written running, held by this worker for the lease (its first attempt under way).
    pub claim: Option<(&'a str, Duration)>,
}

/// Jobs as the one JSON parameter of [`insert_jobs!`].
pub(super) fn rows(jobs: &[NewJob<'_>]) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(
        jobs.iter()
            .map(|job| {
                let (state, attempts, locked_by, lease_secs) = match job.claim {
                    None => ("queued", 0, None, None),
                    Some((worker, lease)) => {
                        ("running", 1, Some(worker), Some(lease.as_secs_f64()))
                    }
                };
                serde_json::json!({
                    "id": job.id,
                    "kind": job.kind,
                    "queue_key": job.queue_key,
                    "payload": job.payload,
                    "max_attempts": job.max_attempts,
                    "delay_secs": job.delay.as_secs_f64(),
                    "state": state,
                    "attempts": attempts,
                    "locked_by": locked_by,
                    "lease_secs": lease_secs,
                })
            })
            .collect(),
    ))
}

/// Enqueues a job due after `delay`. The request path passes a short delay for jobs it runs
/// inline right after committing, so workers do not race it for them; should the process die
/// before its inline attempt, a worker takes the job once the delay has passed.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: JobKind,
    queue_key: &str,
    payload: serde_json::Value,
    max_attempts: u32,
    delay: Duration,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(insert_jobs!(jobs = "$1"))
        .bind(rows(&[NewJob {
            id,
            kind,
            queue_key,
            payload: &payload,
            max_attempts,
            delay,
            claim: None,
        }]))
        .execute(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(id)
}

/// Claims one specific queued job (the request path's inline attempt), unless an older job of
/// the same key is unfinished or someone else holds it.
pub async fn claim_one(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<Option<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE jobs j SET state = 'running', locked_by = $2,
                locked_until = now() + make_interval(secs => $3), attempts = attempts + 1,
                updated_at = now()
          WHERE j.id = $1 AND j.state = 'queued'
            AND NOT EXISTS (SELECT 1 FROM jobs e
                             WHERE e.queue_key = j.queue_key AND e.state IN ('queued', 'running')
                               AND e.id < j.id)
      RETURNING ",
        job_columns!()
    ))
    .bind(id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Claims up to `limit` due jobs: queued ones whose time has come, and running ones whose lease
/// expired (their worker died: the outcome of that attempt is unknown). Older jobs of the same
/// key go first; `SKIP LOCKED` lets many workers and instances share the queue.
pub async fn claim_due(
    pool: &PgPool,
    worker: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE jobs j SET state = 'running', locked_by = $1,
                locked_until = now() + make_interval(secs => $2), attempts = j.attempts + 1,
                outcome_unknown = j.outcome_unknown OR j.state = 'running',
                updated_at = now()
          WHERE j.id IN (
                SELECT c.id FROM jobs c
                 WHERE ((c.state = 'queued' AND c.run_at <= now())
                        OR (c.state = 'running' AND c.locked_until < now()))
                   AND NOT EXISTS (SELECT 1 FROM jobs e
                                    WHERE e.queue_key = c.queue_key
                                      AND e.state IN ('queued', 'running') AND e.id < c.id)
                 ORDER BY c.run_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
      RETURNING ",
        job_columns!()
    ))
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Marks a job done; inside the transaction that recorded its effect when given one, so the
/// effect and the job's completion commit together (one commit fewer per job).
pub async fn succeed<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(complete_job!(id = "$1", when = "true"))
        .bind(id)
        .execute(db)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Puts a job back in the queue to run after `delay`.
pub async fn retry_later(
    pool: &PgPool,
    id: Uuid,
    delay: Duration,
    error: &str,
    outcome_unknown: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_until = NULL,
                run_at = now() + make_interval(secs => $2), last_error = $3,
                outcome_unknown = $4, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .bind(outcome_unknown)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Gives up on a job: it stays visible for ops (`GET /v1/jobs?state=failed`) to re-drive.
pub async fn fail(pool: &PgPool, id: Uuid, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET state = 'failed', locked_by = NULL, locked_until = NULL,
                last_error = $2, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Re-drives a failed job: queued now, with a fresh attempt budget. Re-driving is an
/// operator's statement that the earlier outcome was checked, so the next attempt creates
/// rather than looking for an account first.
pub async fn redrive<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(), outcome_unknown = false,
                updated_at = now()
          WHERE id = $1 AND state = 'failed'
      RETURNING ",
        job_columns!()
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Re-drives up to `limit` failed jobs of `kind` (whose payload names `provider`, when given),
/// oldest first. Rows another transaction holds are skipped (left for the next call).
pub async fn redrive_failed(
    conn: &mut PgConnection,
    kind: JobKind,
    provider: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "WITH picked AS (
            SELECT id FROM jobs
             WHERE state = 'failed' AND kind = $1
               AND ($2::text IS NULL OR payload->>'provider' = $2)
             ORDER BY id LIMIT $3
               FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET state = 'queued', attempts = 0, run_at = now(),
                outcome_unknown = false, updated_at = now()
           FROM picked WHERE j.id = picked.id
      RETURNING ",
        job_columns_of_j!()
    ))
    .bind(kind)
    .bind(provider)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Failed jobs, by kind (kinds without failed jobs are absent).
pub async fn count_failed_by_kind<'e>(
    db: impl PgExecutor<'e>,
) -> Result<Vec<(JobKind, i64)>, StoreError> {
    sqlx::query_as("SELECT kind, count(*) FROM jobs WHERE state = 'failed' GROUP BY kind")
        .fetch_all(db)
        .await
        .map_err(StoreError::from_sqlx)
}

/// Failed jobs of `kind` (at `provider`, when given).
pub async fn count_failed<'e>(
    db: impl PgExecutor<'e>,
    kind: JobKind,
    provider: Option<&str>,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE state = 'failed' AND kind = $1
            AND ($2::text IS NULL OR payload->>'provider' = $2)",
    )
    .bind(kind)
    .bind(provider)
    .fetch_one(db)
    .await
    .map_err(StoreError::from_sqlx)
}

pub async fn get<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// A page of jobs, newest first, optionally of one state, kind and provider.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    state: Option<&str>,
    kind: Option<JobKind>,
    provider: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs
          WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
            AND ($3::uuid IS NULL OR id < $3)
            AND ($5::text IS NULL OR payload->>'provider' = $5)
          ORDER BY id DESC LIMIT $4"
    ))
    .bind(state)
    .bind(kind)
    .bind(before)
    .bind(limit)
    .bind(provider)
    .fetch_all(db)
    .await
    .map_err(StoreError::from_sqlx)
}

/// The queue of one kind: unfinished jobs (queued or running, due or backing off) and the age
/// of the oldest one since it was enqueued (for metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueDepth {
    pub kind: JobKind,
    pub depth: i64,
    pub oldest_age_secs: f64,
}

/// The queue of every kind in [`JobKind::ALL`] order; a drained queue reads 0.
pub async fn depth_by_kind(pool: &PgPool) -> Result<Vec<QueueDepth>, StoreError> {
    let rows = sqlx::query_as::<_, (JobKind, i64, f64)>(
        "SELECT kind, count(*),
                GREATEST(COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0), 0)
           FROM jobs WHERE state IN ('queued', 'running') GROUP BY kind",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(JobKind::ALL
        .into_iter()
        .map(|kind| {
            let (depth, oldest_age_secs) = rows
                .iter()
                .find(|(k, _, _)| *k == kind)
                .map_or((0, 0.0), |(_, depth, age)| (*depth, *age));
            QueueDepth {
                kind,
                depth,
                oldest_age_secs,
            }
        })
        .collect())
}
