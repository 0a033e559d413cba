//! Sending documents to providers: each (document, provider) submission is checked against the
//! provider's document policy, then sent by a durable `submit_document` job, only once the link
//! has its account at the provider (a submission for a link still being submitted waits, and
//! the link's successful submission enqueues it in the same transaction).
//!
//! Two-sided documents at a provider that takes both sides in one call (`pairs_sides`): the
//! front is held until its back arrives (then one call carries both, and both submissions are
//! marked with the call's outcome) or until `documents.back_side_wait_secs` pass (a timer job
//! then releases it, and it is sent alone). A back that arrives after its front was sent is
//! sent with that front again, so the provider always gets a front with a back.
//!
//! Jobs that send run in one queue per user and provider (`documents:<user>:<provider>`), so a
//! user's documents reach a provider one at a time; hold timers have a queue each, so a held
//! front never delays anything else.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::attempt::Attempt;
use super::calls::{call_events, error_json, now_rfc3339};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::domain::verification::DocumentSide;
use crate::providers::connector::{CallLog, DocumentFile, DocumentUpload, LinkRef};
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::providers::provider::{DocumentFacts, DocumentPolicy};
use crate::store::documents::{self as store, DocumentRow, NewSubmission, SubmissionStatus};
use crate::store::jobs::{self, JobKind, JobRow};
use crate::store::{events, links, users};

/// Payload of `submit_document` jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentJob {
    pub user_id: Uuid,
    pub document_id: Uuid,
    pub provider: ProviderId,
    /// A hold timer: the front's wait for its back is over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release_hold: bool,
}

/// `last_error.code` of a submission the provider's policy turns down.
pub const NOT_SUPPORTED: &str = "not_supported_by_provider";

/// The facts a provider's policy sees of a stored document.
pub fn facts(document: &DocumentRow) -> DocumentFacts {
    DocumentFacts {
        document_type: document.document_type,
        side: document.side,
        content_type: document.content_type,
        size: document.size as u64,
        has_verification: document.has_verification,
    }
}

/// What `provider`'s rules say of a document about to get its submission there. A back side
/// that goes in one call with an attested front (a provider that pairs sides) is sent with the
/// front's attestation (see `send`), so it is judged as attested too: the front's attestation
/// covers the pair.
pub(crate) async fn policy(
    tx: &mut sqlx::PgConnection,
    provider: ProviderId,
    user_id: Uuid,
    document_id: Uuid,
    facts: &DocumentFacts,
) -> Result<DocumentPolicy, OnboardingError> {
    let module = crate::providers::module(provider);
    let own = module.document_policy(facts);
    if facts.side != Some(DocumentSide::Back)
        || facts.has_verification
        || !facts.document_type.is_two_sided()
    {
        return Ok(own);
    }
    let attested_front =
        store::front_for_back(tx, user_id, facts.document_type, provider, document_id)
            .await?
            .is_some_and(|front| front.has_verification);
    if attested_front {
        let with_front = module.document_policy(&DocumentFacts {
            has_verification: true,
            ..*facts
        });
        if matches!(with_front, DocumentPolicy::Accept { pairs_sides: true }) {
            return Ok(with_front);
        }
    }
    Ok(own)
}

fn send_queue_key(user_id: Uuid, provider: ProviderId) -> String {
    format!("documents:{user_id}:{}", provider.as_str())
}

fn hold_queue_key(document_id: Uuid, provider: ProviderId) -> String {
    format!("document-hold:{document_id}:{}", provider.as_str())
}

async fn enqueue(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    job: &DocumentJob,
    delay: Duration,
) -> Result<Uuid, OnboardingError> {
    let key = if job.release_hold {
        hold_queue_key(job.document_id, job.provider)
    } else {
        send_queue_key(job.user_id, job.provider)
    };
    Ok(jobs::enqueue(
        tx,
        JobKind::SubmitDocument,
        &key,
        serde_json::to_value(job).expect("a document job serialises"),
        services.workers.max_attempts,
        delay,
    )
    .await?)
}

/// Queues the sending of these pending submissions at `provider` when the link has its account
/// there, or marks them waiting for it. Returns the jobs enqueued (due after `delay`, which the
/// request path uses to run them inline first).
pub(crate) async fn dispatch(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    user_id: Uuid,
    provider: ProviderId,
    document_ids: &[Uuid],
    delay: Duration,
) -> Result<Vec<Uuid>, OnboardingError> {
    if document_ids.is_empty()
        || !store::ready_or_waiting(tx, user_id, provider, document_ids).await?
    {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(document_ids.len());
    for document_id in document_ids {
        let job = DocumentJob {
            user_id,
            document_id: *document_id,
            provider,
            release_hold: false,
        };
        ids.push(enqueue(tx, services, &job, delay).await?);
    }
    Ok(ids)
}

/// The link just got its account at the provider (in the transaction that records it, under
/// the link's lock): the submissions that waited for it are queued.
pub(crate) async fn link_submitted(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<(), OnboardingError> {
    for document_id in store::take_waiting(tx, user_id, provider).await? {
        let job = DocumentJob {
            user_id,
            document_id,
            provider,
            release_hold: false,
        };
        enqueue(tx, services, &job, Duration::ZERO).await?;
    }
    Ok(())
}

/// What creating a document's submissions wrote: jobs to run, events to append.
#[derive(Debug, Default)]
pub(crate) struct Created {
    pub jobs: Vec<Uuid>,
    pub events: Vec<(&'static str, serde_json::Value)>,
}

fn submitted_event(
    document: &DocumentRow,
    provider: ProviderId,
    outcome: SubmissionStatus,
    error_code: Option<&str>,
) -> (&'static str, serde_json::Value) {
    let mut data = json!({
        "document_id": document.id,
        "document_type": document.document_type,
        "provider": provider,
        "outcome": outcome,
    });
    if let Some(code) = error_code {
        data["error_code"] = json!(code);
    }
    ("document_submitted", data)
}

/// Writes a document's submission at each provider as its policy says: `Refuse` becomes
/// `rejected` (a provider linked after the upload; an upload with a refusal is refused whole
/// before this), `NotSupported` becomes `not_supported`, `Accept` a pending submission, held
/// for its other side or dispatched. `delay`: see [`dispatch`].
pub(crate) async fn create(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    document: &DocumentRow,
    policies: &[(ProviderId, DocumentPolicy)],
    delay: Duration,
) -> Result<Created, OnboardingError> {
    let mut created = Created::default();
    let now = OffsetDateTime::now_utc();
    let wait = time::Duration::seconds(services.documents.back_side_wait_secs as i64);
    for (provider, policy) in policies {
        let provider = *provider;
        let mut submission = NewSubmission {
            document_id: document.id,
            provider,
            status: SubmissionStatus::Pending,
            last_error: None,
            hold_until: None,
            partner_document_id: None,
        };
        let pairs_sides = match policy {
            DocumentPolicy::Refuse { rule, message } => {
                submission.status = SubmissionStatus::Rejected;
                submission.last_error =
                    Some(json!({ "code": rule, "message": message, "at": now_rfc3339() }));
                store::insert_submission(tx, &submission).await?;
                created.events.push(submitted_event(
                    document,
                    provider,
                    submission.status,
                    Some(rule),
                ));
                continue;
            }
            DocumentPolicy::NotSupported(reason) => {
                submission.status = SubmissionStatus::NotSupported;
                submission.last_error =
                    Some(json!({ "code": NOT_SUPPORTED, "message": reason, "at": now_rfc3339() }));
                store::insert_submission(tx, &submission).await?;
                created.events.push(submitted_event(
                    document,
                    provider,
                    submission.status,
                    Some(NOT_SUPPORTED),
                ));
                continue;
            }
            DocumentPolicy::Accept { pairs_sides } => {
                *pairs_sides && document.document_type.is_two_sided()
            }
        };
        let mut send = vec![document.id];
        if pairs_sides && document.side == Some(DocumentSide::Back) {
            match store::front_for_back(
                tx,
                document.user_id,
                document.document_type,
                provider,
                document.id,
            )
            .await?
            {
                Some(front) => {
                    submission.partner_document_id = Some(front.document_id);
                    if front.status == SubmissionStatus::Pending
                        && front.partner_document_id.is_none()
                    {
                        // Its front is waiting for it: both go in one call now.
                        store::pair_front(tx, front.document_id, provider, document.id).await?;
                        send.insert(0, front.document_id);
                    }
                }
                None => {
                    let reason = format!(
                        "{provider} takes the back side only together with its front: upload the front first"
                    );
                    submission.status = SubmissionStatus::NotSupported;
                    submission.last_error = Some(
                        json!({ "code": "front_side_missing", "message": reason, "at": now_rfc3339() }),
                    );
                    store::insert_submission(tx, &submission).await?;
                    created.events.push(submitted_event(
                        document,
                        provider,
                        submission.status,
                        Some("front_side_missing"),
                    ));
                    continue;
                }
            }
        } else if pairs_sides && wait > time::Duration::ZERO {
            // A front: wait for its back (counted from the upload, also for a provider linked
            // later), with a timer job that ends the wait.
            let hold_until = document.created_at + wait;
            if hold_until > now {
                submission.hold_until = Some(hold_until);
                store::insert_submission(tx, &submission).await?;
                let timer = DocumentJob {
                    user_id: document.user_id,
                    document_id: document.id,
                    provider,
                    release_hold: true,
                };
                let left = (hold_until - now).unsigned_abs();
                enqueue(tx, services, &timer, left).await?;
                continue;
            }
        }
        store::insert_submission(tx, &submission).await?;
        created
            .jobs
            .extend(dispatch(tx, services, document.user_id, provider, &send, delay).await?);
    }
    Ok(created)
}

/// What one `submit_document` attempt did.
#[derive(Debug)]
pub struct Sent {
    pub attempt: Attempt,
    /// The link whose provider just accepted a document. An accepted document changes what
    /// the provider wants next (Kraken swaps the verification action for a review `wait` and
    /// sends no webhook until it decides), so the job runner reads this link again at once.
    pub accepted_at: Option<links::LinkRow>,
}

impl From<Attempt> for Sent {
    fn from(attempt: Attempt) -> Self {
        Sent {
            attempt,
            accepted_at: None,
        }
    }
}

/// The `submit_document` job.
pub async fn run(services: &Services, job: &JobRow) -> Result<Sent, OnboardingError> {
    let payload: DocumentJob = match serde_json::from_value(job.payload.0.clone()) {
        Ok(payload) => payload,
        Err(e) => return Ok(Attempt::NeedsReview(format!("unreadable job payload: {e}")).into()),
    };
    if payload.release_hold {
        return release(services, job, &payload).await.map(Sent::from);
    }
    send(services, job, &payload).await
}

/// A hold timer: the front is sent alone if its back has not come.
async fn release(
    services: &Services,
    job: &JobRow,
    payload: &DocumentJob,
) -> Result<Attempt, OnboardingError> {
    let mut tx = services.pool.begin().await?;
    if store::release_hold(&mut tx, payload.document_id, payload.provider).await? {
        dispatch(
            &mut tx,
            services,
            payload.user_id,
            payload.provider,
            &[payload.document_id],
            Duration::ZERO,
        )
        .await?;
    }
    jobs::succeed(&mut *tx, job.id).await?;
    tx.commit().await?;
    Ok(Attempt::Settled(None))
}

/// What one call sends: the front, and the back when there is one to go with it; and which
/// pending submissions its answer settles.
struct Call {
    front: Uuid,
    back: Option<Uuid>,
    settles: Vec<Uuid>,
}

async fn send(
    services: &Services,
    job: &JobRow,
    payload: &DocumentJob,
) -> Result<Sent, OnboardingError> {
    let pool = &services.pool;
    let (user_id, provider, document_id) = (payload.user_id, payload.provider, payload.document_id);
    let Some(document) = store::get(pool, user_id, document_id).await? else {
        return Ok(Attempt::Done.into());
    };
    let Some(submission) = store::submissions_of(pool, &[document_id])
        .await?
        .into_iter()
        .find(|s| s.provider == provider)
    else {
        return Ok(Attempt::Done.into());
    };
    if submission.status != SubmissionStatus::Pending || document.erased_at.is_some() {
        return Ok(Attempt::Done.into()); // sent with its other side, or erased
    }
    if submission.hold_until.is_some() && submission.partner_document_id.is_none() {
        return Ok(Attempt::Done.into()); // still held: its timer job releases it
    }
    let link = links::for_users(pool, &[user_id])
        .await?
        .into_iter()
        .find(|l| l.provider == provider);
    let Some(link) = link else {
        return Ok(Attempt::Done.into());
    };
    let Some(provider_user_id) = link.provider_user_id.as_deref() else {
        // Not submitted to the provider yet: wait for the link's account.
        let mut tx = pool.begin().await?;
        dispatch(
            &mut tx,
            services,
            user_id,
            provider,
            &[document_id],
            Duration::ZERO,
        )
        .await?;
        tx.commit().await?;
        return Ok(Attempt::Done.into());
    };
    let Some(connector) = services.providers.connector(provider) else {
        return Ok(Attempt::Retry(ProviderError::new(
            ProviderErrorKind::Unavailable,
            format!("{provider} is not configured; the document waits for it"),
        ))
        .into());
    };
    let partner = match submission.partner_document_id {
        Some(partner) => store::submissions_of(pool, &[partner])
            .await?
            .into_iter()
            .find(|s| s.provider == provider),
        None => None,
    };
    let partner_pending = partner
        .as_ref()
        .is_some_and(|p| p.status == SubmissionStatus::Pending);
    let call = match (document.side, submission.partner_document_id) {
        // A back goes with its front; the front's submission too when it is still pending.
        (Some(DocumentSide::Back), Some(front)) => Call {
            front,
            back: Some(document_id),
            settles: if partner_pending {
                vec![front, document_id]
            } else {
                vec![document_id]
            },
        },
        (_, Some(back)) if partner_pending => Call {
            front: document_id,
            back: Some(back),
            settles: vec![document_id, back],
        },
        _ => Call {
            front: document_id,
            back: None,
            settles: vec![document_id],
        },
    };
    // A slot bounds the files (and request bodies) held in memory by submissions at once.
    let slot = Arc::clone(&services.document_sends)
        .acquire_owned()
        .await
        .expect("the send semaphore is never closed");
    let Some(front) = store::open(pool, &services.keyring, call.front).await? else {
        return Ok(Attempt::Done.into());
    };
    let back = match call.back {
        Some(back) => match store::open(pool, &services.keyring, back).await? {
            Some(opened) => Some(opened),
            None => return Ok(Attempt::Done.into()),
        },
        None => None,
    };
    let Some(profile) = users::get(pool, &services.keyring, user_id)
        .await?
        .and_then(|u| u.profile)
    else {
        return Ok(Attempt::Done.into()); // the user was erased
    };
    let front_name = format!("front.{}", front.row.content_type.extension());
    let back_name = back
        .as_ref()
        .map(|b| format!("back.{}", b.row.content_type.extension()))
        .unwrap_or_default();
    let upload = DocumentUpload {
        user: &profile,
        document_type: document.document_type,
        front: DocumentFile {
            bytes: &front.file,
            content_type: front.row.content_type,
            file_name: &front_name,
        },
        back: back.as_ref().map(|b| DocumentFile {
            bytes: &b.file,
            content_type: b.row.content_type,
            file_name: &back_name,
        }),
        verification: front
            .verification
            .as_ref()
            .or(back.as_ref().and_then(|b| b.verification.as_ref())),
    };
    let log = CallLog::new();
    let link_ref = LinkRef {
        provider_user_id,
        link_data: &link.provider_data.0,
    };
    let result = connector.submit_document(link_ref, upload, &log).await;
    drop((front, back, slot));
    let accepted = result.is_ok();
    let attempt = record(
        services,
        job,
        &document,
        provider,
        &call.settles,
        &log,
        result,
    )
    .await?;
    Ok(Sent {
        attempt,
        accepted_at: accepted.then_some(link),
    })
}

/// A final answer for the submissions one call settles.
struct Outcome<'a> {
    status: SubmissionStatus,
    provider_document_id: Option<&'a str>,
    last_error: Option<serde_json::Value>,
    error_code: Option<&'static str>,
}

/// Records a provider's answer to one call, with the job's completion when it is final.
async fn record(
    services: &Services,
    job: &JobRow,
    document: &DocumentRow,
    provider: ProviderId,
    settles: &[Uuid],
    log: &CallLog,
    result: Result<crate::providers::connector::SubmittedDocument, ProviderError>,
) -> Result<Attempt, OnboardingError> {
    let mut tx = services.pool.begin().await?;
    let mut trail = call_events(log);
    let outcome = match &result {
        Ok(submitted) => Ok(Outcome {
            status: SubmissionStatus::Submitted,
            provider_document_id: submitted.provider_document_id.as_deref(),
            last_error: None,
            error_code: None,
        }),
        Err(error) if error.kind == ProviderErrorKind::NotSupported => Ok(Outcome {
            status: SubmissionStatus::NotSupported,
            provider_document_id: None,
            last_error: Some(
                json!({ "code": NOT_SUPPORTED, "message": error.message, "at": now_rfc3339() }),
            ),
            error_code: Some(NOT_SUPPORTED),
        }),
        // The provider refused the document (or does not know the account): final.
        Err(error)
            if matches!(
                error.kind,
                ProviderErrorKind::Rejected
                    | ProviderErrorKind::NotFound
                    | ProviderErrorKind::Conflict
            ) =>
        {
            Ok(Outcome {
                status: SubmissionStatus::Rejected,
                provider_document_id: None,
                last_error: Some(error_json(error)),
                error_code: Some(error.code()),
            })
        }
        Err(error) => Err(error.clone()),
    };
    let attempt = match outcome {
        Ok(outcome) => {
            let written = store::record_outcome(
                &mut tx,
                settles,
                provider,
                outcome.status,
                outcome.provider_document_id,
                outcome.last_error.as_ref(),
            )
            .await?;
            for id in written {
                let mut event = json!({
                    "document_id": id,
                    "document_type": document.document_type,
                    "provider": provider,
                    "outcome": outcome.status,
                });
                if let Some(other) = settles.iter().find(|other| **other != id) {
                    event["sent_with"] = json!(other);
                }
                if let Some(code) = outcome.error_code {
                    event["error_code"] = json!(code);
                }
                trail.push(("document_submitted", event));
            }
            if outcome.status == SubmissionStatus::Rejected {
                tracing::warn!(provider = provider.as_str(), document_id = %document.id, "a provider refused a document");
            }
            jobs::succeed(&mut *tx, job.id).await?;
            Attempt::Settled(None)
        }
        Err(error) => {
            store::record_error(&mut tx, settles, provider, &error_json(&error)).await?;
            if error.retryable() || error.kind == ProviderErrorKind::Unauthorized {
                Attempt::Retry(error)
            } else {
                // An answer that cannot be read: the provider may hold the document. Not resent
                // blindly; a person checks and re-drives the job.
                Attempt::NeedsReview(format!(
                    "{}: {}; check whether {provider} took the document, then re-drive",
                    error.code(),
                    error.message
                ))
            }
        }
    };
    events::append(&mut tx, document.user_id, &trail).await?;
    tx.commit().await?;
    Ok(attempt)
}
