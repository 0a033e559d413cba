//! What operators do by hand (re-drive failed jobs), each recorded in the user's audit trail
//! with the API key's name and the operator's reason, in the transaction that does it.

use serde_json::json;
use uuid::Uuid;

use super::{OnboardingError, Services};
use crate::domain::operator::Reason;
use crate::domain::provider::ProviderId;
use crate::store::events;
use crate::store::jobs::{self, JobKind, JobRow};

/// Failed jobs re-driven by one bulk call at most, so one call stays one short transaction.
pub const MAX_BULK_REDRIVE: i64 = 500;

/// Who acts and why.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'a> {
    pub key_name: &'a str,
    pub reason: Option<&'a Reason>,
}

/// The user a job is about: `user_id` in its payload (link and document jobs), or in its
/// notification's data (notify jobs).
fn job_user(job: &JobRow) -> Option<Uuid> {
    let payload = &job.payload.0;
    payload
        .get("user_id")
        .or_else(|| payload.pointer("/notification/data/user_id"))
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

async fn record_redrive(
    conn: &mut sqlx::PgConnection,
    job: &JobRow,
    operator: Operator<'_>,
) -> Result<(), OnboardingError> {
    let Some(user_id) = job_user(job) else {
        return Ok(());
    };
    events::insert(
        conn,
        user_id,
        "job_redriven",
        json!({
            "job_id": job.id,
            "kind": job.kind,
            "provider": job.payload.0.get("provider"),
            "reason": operator.reason.map(Reason::as_str),
            "key_name": operator.key_name,
        }),
    )
    .await?;
    Ok(())
}

/// Why a job was not re-driven.
#[derive(Debug)]
pub enum RedriveRefusal {
    NotFound,
    /// Only failed jobs can be re-driven; this is its state.
    NotFailed(String),
}

/// Queues one failed job again with a fresh attempt budget, recording `job_redriven`.
pub async fn redrive_job(
    services: &Services,
    id: Uuid,
    operator: Operator<'_>,
) -> Result<Result<JobRow, RedriveRefusal>, OnboardingError> {
    let mut tx = services.pool.begin().await?;
    let Some(job) = jobs::redrive(&mut *tx, id).await? else {
        drop(tx);
        return Ok(Err(match jobs::get(&services.pool, id).await? {
            None => RedriveRefusal::NotFound,
            Some(job) => RedriveRefusal::NotFailed(job.state),
        }));
    };
    record_redrive(&mut tx, &job, operator).await?;
    tx.commit().await?;
    Ok(Ok(job))
}

/// What a bulk re-drive did, and how many matching failed jobs are left for another call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkRedrive {
    pub retried: i64,
    pub remaining: i64,
}

/// Queues again up to [`MAX_BULK_REDRIVE`] failed jobs of `kind` (at `provider`, when given),
/// oldest first, recording one `job_redriven` per job.
pub async fn redrive_failed(
    services: &Services,
    kind: JobKind,
    provider: Option<ProviderId>,
    operator: Operator<'_>,
) -> Result<BulkRedrive, OnboardingError> {
    let provider = provider.map(|p| p.as_str());
    let mut tx = services.pool.begin().await?;
    let redriven = jobs::redrive_failed(&mut tx, kind, provider, MAX_BULK_REDRIVE).await?;
    for job in &redriven {
        record_redrive(&mut tx, job, operator).await?;
    }
    let remaining = jobs::count_failed(&mut *tx, kind, provider).await?;
    tx.commit().await?;
    Ok(BulkRedrive {
        retried: redriven.len() as i64,
        remaining,
    })
}
