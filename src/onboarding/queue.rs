//! What link jobs carry and how they are enqueued: written in the transaction of the change that
//! needs them, in one queue per link so a link's jobs run in order.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::OnboardingError;
use crate::domain::provider::ProviderId;
use crate::store::jobs::{self, JobKind};

/// Payload of `submit_link` and `update_link` jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkJob {
    pub user_id: Uuid,
    pub provider: ProviderId,
    /// For updates: the changed canonical paths this provider takes. The values sent are the
    /// user's current ones, so a re-driven older job can never roll a newer value back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Jobs of one (user, provider) run in order.
pub fn queue_key(user_id: Uuid, provider: ProviderId) -> String {
    format!("link:{user_id}:{}", provider.as_str())
}

/// How long workers leave a freshly enqueued job to the request that will run it inline.
const INLINE_GRACE: Duration = Duration::from_secs(5);

/// Enqueues a job for one link inside the caller's transaction, for the caller to run inline.
pub async fn enqueue_link_job(
    tx: &mut sqlx::PgConnection,
    kind: JobKind,
    job: &LinkJob,
    max_attempts: u32,
) -> Result<Uuid, OnboardingError> {
    let payload = serde_json::to_value(job).expect("a link job serialises");
    Ok(jobs::enqueue(
        tx,
        kind,
        &queue_key(job.user_id, job.provider),
        payload,
        max_attempts,
        INLINE_GRACE,
    )
    .await?)
}
