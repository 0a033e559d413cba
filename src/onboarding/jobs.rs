//! Running one background job: submissions, updates and erasures at providers, and
//! notifications, dispatched by one `match` over [`JobKind`]. The request path runs a job inline
//! for a fast answer; whatever does not finish there is retried by the workers with the same
//! code, so there is one way a job is done.

use std::time::Duration;

use rand::Rng;
use tracing::Instrument;
use uuid::Uuid;

use super::attempt::Attempt;
use super::links::{self as link_ops, Source, Submission};
use super::queue::LinkJob;
use super::{OnboardingError, Services};
use crate::domain::user::CanonicalUser;
use crate::settings::WorkerSettings;
use crate::store::jobs::{self, JobKind, JobRow};
use crate::store::links::{self, LinkRow};
use crate::store::users;

/// Exponential backoff with full jitter; a provider's `Retry-After` wins when it is longer.
pub fn backoff(
    settings: &WorkerSettings,
    attempts: i32,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempts.clamp(1, 20) as u32 - 1;
    let ceiling =
        Duration::from_millis(settings.retry_base_ms.saturating_mul(1 << exponent.min(16)))
            .min(Duration::from_secs(settings.retry_max_secs));
    let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
    match retry_after {
        Some(wait) if wait > jittered => wait,
        _ => jittered,
    }
}

/// The one dispatch: what each kind of job does.
async fn attempt(
    services: &Services,
    job: &JobRow,
    fresh_profile: Option<&CanonicalUser>,
) -> Result<Attempt, OnboardingError> {
    match job.kind {
        JobKind::Notify => super::notify::deliver(services, &job.payload.0, job.attempts).await,
        JobKind::SubmitDocument => {
            let sent = super::submissions::run(services, job).await?;
            if let Some(link) = &sent.accepted_at {
                reread_after_document(services, link).await;
            }
            Ok(sent.attempt)
        }
        JobKind::EraseLink => {
            let payload = match link_payload(job) {
                Ok(payload) => payload,
                Err(unreadable) => return Ok(unreadable),
            };
            super::provider_erasure::erase_at_provider(services, payload.user_id, payload.provider)
                .await
        }
        JobKind::SubmitLink => {
            let payload = match link_payload(job) {
                Ok(payload) => payload,
                Err(unreadable) => return Ok(unreadable),
            };
            let profile = match fresh_profile {
                // The create that just stored this user runs its submissions inline: no re-read.
                Some(profile) => profile.clone(),
                None => match current_profile(services, payload.user_id).await? {
                    Some(profile) => profile,
                    None => return Ok(Attempt::Done), // the user is gone, or erased
                },
            };
            link_ops::submit(
                services,
                job.id,
                payload.user_id,
                &profile,
                payload.provider,
                Submission {
                    outcome_unknown: job.outcome_unknown,
                    unknown_since: job.outcome_unknown_since,
                    // Written by this request a moment ago, pending: no need to re-check.
                    fresh_link: fresh_profile.is_some(),
                },
            )
            .await
        }
        JobKind::UpdateLink => {
            let payload = match link_payload(job) {
                Ok(payload) => payload,
                Err(unreadable) => return Ok(unreadable),
            };
            let Some(profile) = current_profile(services, payload.user_id).await? else {
                return Ok(Attempt::Done); // the user is gone, or erased: nothing to send
            };
            let link = links::for_users(&services.pool, &[payload.user_id])
                .await?
                .into_iter()
                .find(|l| l.provider == payload.provider);
            match link {
                Some(link) if link.provider_user_id.is_some() => {
                    link_ops::push_update(services, &link, &profile, &payload.fields).await
                }
                // Never submitted: the pending submission will send the current data.
                _ => Ok(Attempt::Done),
            }
        }
    }
}

/// Reads a link from its provider again after the provider accepted a document, so the link
/// and its next actions show what the provider wants now rather than at the next
/// reconciliation pass. The status still moves only on the provider's own answer, recorded as
/// any sync is (source `api`). The document is already recorded, so a failed read is left to
/// the poller.
async fn reread_after_document(services: &Services, link: &LinkRow) {
    if let Err(error) = link_ops::sync(services, link, Source::Api).await {
        tracing::warn!(
            provider = link.provider.as_str(),
            error = %error,
            "could not re-read a link after its provider accepted a document; the poller will"
        );
    }
}

/// The payload of a link job; an unreadable one is for a person to look at.
fn link_payload(job: &JobRow) -> Result<LinkJob, Attempt> {
    serde_json::from_value(job.payload.0.clone())
        .map_err(|e| Attempt::NeedsReview(format!("unreadable job payload: {e}")))
}

/// The user's profile as stored now; `None` when the user is gone or erased.
async fn current_profile(
    services: &Services,
    user_id: Uuid,
) -> Result<Option<CanonicalUser>, OnboardingError> {
    Ok(users::get(&services.pool, &services.keyring, user_id)
        .await?
        .and_then(|user| user.profile))
}

/// Runs a claimed job and settles it: done, retried later, or failed for ops to re-drive.
pub async fn run(services: &Services, settings: &WorkerSettings, job: JobRow) {
    run_with(services, settings, job, None).await;
}

/// [`run`], given the profile a create just stored (its inline submissions skip re-reading it).
async fn run_with(
    services: &Services,
    settings: &WorkerSettings,
    job: JobRow,
    fresh_profile: Option<&CanonicalUser>,
) -> Option<Box<LinkRow>> {
    // Instrumented rather than entered: a guard held across `.await` would leak the span into
    // whatever else runs on this thread while the job waits on a provider.
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
    settle(services, settings, job, fresh_profile)
        .instrument(span)
        .await
}

/// Settles the job; the link as written when a create's first answer was recorded in one
/// statement (the create answers with it instead of reading the user back).
async fn settle(
    services: &Services,
    settings: &WorkerSettings,
    job: JobRow,
    fresh_profile: Option<&CanonicalUser>,
) -> Option<Box<LinkRow>> {
    let outcome = attempt(services, &job, fresh_profile).await;
    let pool = &services.pool;
    let mut written = None;
    let settled = match outcome {
        Ok(Attempt::Done) => jobs::succeed(pool, job.id).await,
        Ok(Attempt::Settled(link)) => {
            written = link;
            Ok(())
        }
        Ok(Attempt::NeedsReview(reason)) => {
            crate::telemetry::record_job_failure(job.kind.as_str(), "needs_review");
            let failed = jobs::fail(pool, job.id, &reason).await;
            if failed.is_ok() && job.kind == JobKind::SubmitLink {
                // A flagged link whose account a webhook named before the flag: adopt it now
                // (the failed job is what the adoption settles, hence after `fail`).
                if let Ok(payload) = link_payload(&job) {
                    let adopted =
                        super::links::adopt_from_unmatched_webhooks(services, payload.provider)
                            .await;
                    if let Err(error) = adopted {
                        tracing::warn!(%error, "could not retry the stored unmatched webhooks");
                    }
                }
            }
            failed
        }
        Ok(Attempt::Retry(error)) if job.attempts >= job.max_attempts => {
            tracing::warn!(kind = ?error.kind, "job out of attempts");
            crate::telemetry::record_job_failure(job.kind.as_str(), "exhausted");
            jobs::fail(
                pool,
                job.id,
                &format!("{}: {}", error.code(), error.message),
            )
            .await
        }
        Ok(Attempt::Retry(error)) => {
            let delay = backoff(settings, job.attempts, error.retry_after);
            jobs::retry_later(
                pool,
                job.id,
                delay,
                &format!("{}: {}", error.code(), error.message),
                job.outcome_unknown || error.outcome_unknown,
            )
            .await
        }
        Err(error) => {
            // Our own storage failed mid-job: try again soon (the lease also protects us).
            tracing::error!(%error, "job failed on the gateway side");
            let delay = backoff(settings, job.attempts, None);
            jobs::retry_later(pool, job.id, delay, "gateway storage error", true).await
        }
    };
    if let Err(error) = settled {
        tracing::error!(%error, "could not settle job; its lease will expire and it will rerun");
    }
    written
}

/// The request path's inline attempt at jobs it just enqueued; one that cannot be claimed
/// (an older job of the same link is unfinished) is left to the workers.
pub async fn run_inline(
    services: &Services,
    settings: &WorkerSettings,
    ids: &[Uuid],
    worker: &str,
) {
    let lease = Duration::from_secs(settings.lease_secs);
    let runs = ids.iter().map(|id| async move {
        match jobs::claim_one(&services.pool, *id, worker, lease).await {
            Ok(Some(job)) => {
                run_with(services, settings, job, None).await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "inline claim failed; a worker will run the job"),
        }
    });
    futures_util::future::join_all(runs).await;
}

/// Runs the submission jobs a create wrote already claimed (`store::users::insert_with_links`),
/// given the profile it just stored: no claim and no re-read, the rows are as written. Returns,
/// per job, the link as its one-statement record wrote it (`None`: recorded otherwise, or not
/// finished).
pub async fn run_claimed(
    services: &Services,
    claimed: &[users::ClaimedJob],
    max_attempts: u32,
    profile: &CanonicalUser,
) -> Vec<Option<Box<LinkRow>>> {
    let settings = &services.workers;
    let now = time::OffsetDateTime::now_utc();
    let runs = claimed.iter().map(|job| {
        let row = JobRow {
            id: job.id,
            kind: job.kind,
            queue_key: Some(job.queue_key.clone()),
            payload: sqlx::types::Json(job.payload.clone()),
            state: "running".to_owned(),
            attempts: 1,
            max_attempts: max_attempts as i32,
            run_at: now,
            locked_until: Some(now + Duration::from_secs(settings.lease_secs)),
            last_error: None,
            outcome_unknown: false,
            outcome_unknown_since: None,
            created_at: now,
            updated_at: now,
        };
        run_with(services, settings, row, Some(profile))
    });
    futures_util::future::join_all(runs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let settings = WorkerSettings {
            retry_base_ms: 1000,
            retry_max_secs: 60,
            ..WorkerSettings::default()
        };
        let first = backoff(&settings, 1, None);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let fifth = backoff(&settings, 5, None);
        assert!(fifth >= Duration::from_secs(8) && fifth <= Duration::from_secs(16));
        let capped = backoff(&settings, 30, None);
        assert!(capped <= Duration::from_secs(60));
        assert_eq!(
            backoff(&settings, 1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
