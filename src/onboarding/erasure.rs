//! Erasure (`DELETE /v1/users/{id}`): the person's data goes, the audit trail of ids, times and
//! statuses stays.
//!
//! Locally, in one transaction: the sealed profile and e-mail hash, the bodies of the user's
//! webhooks and the stored idempotent answers that show the user are removed, and a
//! `user_erased` event is written. At each linked provider: one that can delete accounts (KillB)
//! gets a durable `erase_link` job (retried through outages like any job); one that cannot
//! (Kraken, Carbn), or that refuses, is listed under `erasure_follow_up` in the reconciliation
//! report for a person to ask the provider. A second DELETE answers the same receipt.

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::jobs::{enqueue_link_job, LinkJob};
use super::links::{self as link_ops, Attempt};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::providers::connector::CallLog;
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::store::jobs::JobKind;
pub use crate::store::links::ProviderErasure;
use crate::store::links::{self, LinkRow, LinkUpdate};
use crate::store::{events, idempotency, users, webhooks};

/// One provider's part of an erasure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkErasure {
    pub provider: String,
    /// The provider's id for the account (what to quote when asking the provider by hand).
    pub provider_user_id: Option<String>,
    pub erasure: ProviderErasure,
}

/// The answer to `DELETE /v1/users/{id}` (the same for every repeat).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10",
    "erased": true,
    "erased_at": "2026-11-29T10:00:00Z",
    "links": [
        {"provider": "killb", "provider_user_id": "5b0f6a8e-3d7c-4e21-9a4b-8f2d1c6e7a90", "erasure": "deleted"},
        {"provider": "kraken", "provider_user_id": "AA12 N84G 5XCE YMJC", "erasure": "manual_follow_up"}
    ]
}))]
pub struct ErasureReceipt {
    pub id: Uuid,
    /// Always true: the user's personal data is gone from the gateway.
    pub erased: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub erased_at: OffsetDateTime,
    pub links: Vec<LinkErasure>,
}

fn receipt(id: Uuid, erased_at: OffsetDateTime, links: Vec<LinkRow>) -> ErasureReceipt {
    ErasureReceipt {
        id,
        erased: true,
        erased_at,
        links: links
            .into_iter()
            .map(|link| LinkErasure {
                erasure: link.erasure.unwrap_or(ProviderErasure::ManualFollowUp),
                provider: link.provider.as_str().to_owned(),
                provider_user_id: link.provider_user_id,
            })
            .collect(),
    }
}

/// Erases the user's personal data and asks each linked provider to do the same.
pub async fn erase(services: &Services, id: Uuid) -> Result<ErasureReceipt, OnboardingError> {
    let pool = &services.pool;
    let mut tx = pool.begin().await?;
    let Some(already) = users::lock_erasure_state(&mut tx, id).await? else {
        return Err(OnboardingError::NotFound);
    };
    if let Some(erased_at) = already {
        let links = links::for_users(&mut *tx, &[id]).await?;
        tx.rollback().await?;
        return Ok(receipt(id, erased_at, links));
    }
    let erased_at = users::erase(&mut tx, id).await?;
    let bodies = webhooks::forget_user_bodies(&mut tx, id).await?;
    let answers = idempotency::forget_resource(&mut tx, id).await?;
    let mut job_ids = Vec::new();
    let mut outcomes = Vec::new();
    for link in links::for_users(&mut *tx, &[id]).await? {
        let provider = link.provider;
        let connector = services.providers.connector(provider);
        let erasure = match (&link.provider_user_id, connector) {
            (None, _) => ProviderErasure::NotSubmitted,
            (Some(_), Some(connector)) if connector.supports_deletion() => {
                job_ids.push(
                    enqueue_link_job(
                        &mut tx,
                        JobKind::EraseLink,
                        &LinkJob {
                            user_id: id,
                            provider,
                            fields: Vec::new(),
                        },
                        services.workers.max_attempts,
                    )
                    .await?,
                );
                ProviderErasure::Pending
            }
            (Some(_), connector) => {
                let why = match connector {
                    Some(_) => "the provider offers no deletion API; ask it to delete the account",
                    None => "the provider is not configured here; ask it to delete the account",
                };
                follow_up(&mut tx, &link, "erasure_not_supported", why).await?;
                ProviderErasure::ManualFollowUp
            }
        };
        links::set_erasure(&mut tx, id, link.provider, erasure).await?;
        outcomes.push(json!({ "provider": link.provider, "erasure": erasure.as_str() }));
    }
    events::insert(
        &mut tx,
        id,
        "user_erased",
        json!({
            "source": "api",
            "providers": outcomes,
            "webhook_bodies_removed": bodies,
            "idempotent_answers_removed": answers,
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %id, "user erased");
    crate::onboarding::jobs::run_inline(services, &services.workers, &job_ids, &services.instance)
        .await;
    let links = links::for_users(pool, &[id]).await?;
    Ok(receipt(id, erased_at, links))
}

/// A create that was in flight when the user was erased has just recorded an account: ask the
/// provider to delete it too (or list it for manual follow-up). Runs in the create's
/// transaction, under the link's row lock, so it cannot interleave with the erasure.
pub async fn account_created_after_erasure(
    tx: &mut sqlx::PgConnection,
    services: &Services,
    link: &LinkRow,
) -> Result<(), OnboardingError> {
    match services.providers.connector(link.provider) {
        Some(connector) if connector.supports_deletion() => {
            links::set_erasure(tx, link.user_id, link.provider, ProviderErasure::Pending).await?;
            // Left to the workers (after the enqueue grace): the create's answer comes first.
            enqueue_link_job(
                tx,
                JobKind::EraseLink,
                &LinkJob {
                    user_id: link.user_id,
                    provider: link.provider,
                    fields: Vec::new(),
                },
                services.workers.max_attempts,
            )
            .await?;
        }
        _ => {
            follow_up(
                tx,
                link,
                "erasure_not_supported",
                "created while the user was being erased; ask the provider to delete it",
            )
            .await?
        }
    }
    events::insert(
        tx,
        link.user_id,
        "provider_account_after_erasure",
        json!({ "provider": link.provider }),
    )
    .await?;
    Ok(())
}

/// Lists the link under `erasure_follow_up` with the reason in `last_error`.
async fn follow_up(
    tx: &mut sqlx::PgConnection,
    link: &LinkRow,
    code: &str,
    message: &str,
) -> Result<(), OnboardingError> {
    links::apply_update(
        tx,
        link.user_id,
        link.provider,
        &LinkUpdate {
            last_error: Some(Some(json!({
                "code": code,
                "message": message,
                "at": link_ops::now_rfc3339(),
            }))),
            ..LinkUpdate::default()
        },
    )
    .await?;
    links::set_erasure(
        tx,
        link.user_id,
        link.provider,
        ProviderErasure::ManualFollowUp,
    )
    .await?;
    Ok(())
}

/// The `erase_link` job: asks the provider to delete the account and records the answer.
pub async fn erase_at_provider(
    services: &Services,
    user_id: Uuid,
    provider: ProviderId,
) -> Result<Attempt, OnboardingError> {
    let link = links::for_users(&services.pool, &[user_id])
        .await?
        .into_iter()
        .find(|l| l.provider == provider);
    let Some(link) = link.filter(|l| l.erasure == Some(ProviderErasure::Pending)) else {
        return Ok(Attempt::Done); // settled already (a re-driven job)
    };
    let Some((connector, link_ref)) = link_ops::addressable(services, &link) else {
        return Ok(Attempt::Retry(ProviderError::new(
            ProviderErrorKind::Unavailable,
            format!("{} is not configured; erasure waits for it", link.provider),
        )));
    };
    let log = CallLog::new();
    let result = connector.delete_user(link_ref, &log).await;
    let mut tx = services.pool.begin().await?;
    link_ops::record_calls(&mut tx, user_id, &log).await?;
    let attempt = match result {
        // Gone already counts as deleted: erasure is idempotent at the provider too.
        Ok(())
        | Err(ProviderError {
            kind: ProviderErrorKind::NotFound,
            ..
        }) => {
            links::set_erasure(&mut tx, user_id, link.provider, ProviderErasure::Deleted).await?;
            events::insert(
                &mut tx,
                user_id,
                "provider_erased",
                json!({ "provider": link.provider, "erasure": "deleted" }),
            )
            .await?;
            Attempt::Done
        }
        Err(error) if error.retryable() => {
            links::apply_update(
                &mut tx,
                user_id,
                link.provider,
                &LinkUpdate {
                    last_error: Some(Some(link_ops::error_json(&error))),
                    ..LinkUpdate::default()
                },
            )
            .await?;
            Attempt::Retry(error)
        }
        Err(error) => {
            // Refused (KillB: a user with pending ramps cannot be deleted): a person follows up.
            follow_up(&mut tx, &link, error.code(), &error.message).await?;
            events::insert(
                &mut tx,
                user_id,
                "provider_erased",
                json!({
                    "provider": link.provider,
                    "erasure": "manual_follow_up",
                    "error_code": error.code(),
                    "http_status": error.http_status,
                }),
            )
            .await?;
            Attempt::Done
        }
    };
    tx.commit().await?;
    Ok(attempt)
}
