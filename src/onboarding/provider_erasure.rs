//! Erasure at the providers, after the user's data is gone here: the `erase_link` job that asks
//! a provider to delete the account, the follow-up listing for a provider that cannot (or
//! refuses), and the account a create recorded while its user was being erased.

use serde_json::json;
use uuid::Uuid;

use super::attempt::Attempt;
use super::calls;
use super::queue::{enqueue_link_job, LinkJob};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::providers::connector::CallLog;
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::store::events;
use crate::store::jobs::JobKind;
use crate::store::links::{self, LinkRow, LinkUpdate, ProviderErasure};

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
pub(crate) async fn follow_up(
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
                "at": calls::now_rfc3339(),
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
    let Some((connector, link_ref)) = calls::addressable(services, &link) else {
        return Ok(Attempt::Retry(ProviderError::new(
            ProviderErrorKind::Unavailable,
            format!("{} is not configured; erasure waits for it", link.provider),
        )));
    };
    let log = CallLog::new();
    let result = connector.delete_user(link_ref, &log).await;
    let mut tx = services.pool.begin().await?;
    // The user's links before the call events: an event share-locks the user row (its foreign
    // key), and a repeated DELETE takes the links and then the user; taking them in the other
    // order deadlocked the two, and Postgres aborted the DELETE (a 500 instead of the receipt).
    links::lock_user_links(&mut tx, user_id).await?;
    calls::record_calls(&mut tx, user_id, &log).await?;
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
                    last_error: Some(Some(calls::error_json(&error))),
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
