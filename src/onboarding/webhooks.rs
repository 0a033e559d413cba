//! Handling a verified provider webhook: store it first (deduplicated by the provider's event
//! id), then find the link it concerns and re-read that user's status from the provider rather
//! than trusting the payload.

use uuid::Uuid;

use super::links::{self, Source, SyncOutcome};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::providers::webhook::WebhookEvent;
use crate::store::links as link_store;
use crate::store::webhooks::{self, NewWebhookEvent};

/// What became of a delivery (each is a 2xx answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The user's status was re-read from the provider and recorded.
    Applied,
    /// An event with this id was already received; nothing was done.
    Duplicate,
    /// No link has this provider user id; the event is kept (unprocessed) for reconciliation.
    UnknownUser,
    /// The event does not concern an onboarding status (e.g. a trade or a test); stored only.
    Ignored,
    /// Stored, but the provider could not be asked for the user's status; kept unprocessed with
    /// the error, for reconciliation to retry.
    Stored,
}

impl WebhookOutcome {
    /// The `status` member of the answer, and the stored `outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::UnknownUser => "unknown_user",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Stored => "stored",
        }
    }
}

/// Counts a delivery from `provider` that failed verification, durably (per minute, for the ops
/// overview). Best effort: a database failure is logged, and the delivery is refused anyway.
pub async fn record_verification_failure(services: &Services, provider: ProviderId) {
    if let Err(error) =
        webhooks::count_verification_failure(&services.pool, provider.as_str()).await
    {
        tracing::warn!(provider = provider.as_str(), %error, "could not count a webhook verification failure");
    }
}

/// Stores and applies one verified delivery. Errors are database failures only: a provider
/// that cannot be reached still yields `Ok` (the event is stored for a retry).
pub async fn receive(
    services: &Services,
    provider: ProviderId,
    event: &WebhookEvent,
    raw_body: &[u8],
) -> Result<WebhookOutcome, OnboardingError> {
    let stored = webhooks::insert(
        &services.pool,
        &services.keyring,
        &NewWebhookEvent {
            provider: provider.as_str(),
            provider_event_id: &event.event_id,
            event_type: event.event_type.as_deref(),
            provider_user_id: event.provider_user_id.as_deref(),
            raw_body,
        },
    )
    .await?;
    let Some(id) = stored else {
        tracing::info!(
            provider = provider.as_str(),
            event_type = event.event_type.as_deref(),
            "duplicate webhook delivery ignored"
        );
        return Ok(WebhookOutcome::Duplicate);
    };
    let result = process(services, provider, event, id).await;
    if let Err(error) = &result {
        // Leave the event for reconciliation; the caller answers 5xx.
        let _ = webhooks::mark(
            &services.pool,
            id,
            "failed",
            false,
            None,
            Some(&error.to_string()),
        )
        .await;
    }
    result
}

async fn process(
    services: &Services,
    provider: ProviderId,
    event: &WebhookEvent,
    id: Uuid,
) -> Result<WebhookOutcome, OnboardingError> {
    let pool = &services.pool;
    let (Some(provider_user_id), true) = (event.provider_user_id.as_deref(), event.concerns_status)
    else {
        webhooks::mark(pool, id, WebhookOutcome::Ignored.as_str(), true, None, None).await?;
        return Ok(WebhookOutcome::Ignored);
    };
    let Some(link) = link_store::find_by_provider_user_id(pool, provider, provider_user_id).await?
    else {
        // Often a race with our own create (the provider notifies before we stored its id);
        // the create's answer carries the same state. Kept unprocessed for reconciliation.
        tracing::info!(
            provider = provider.as_str(),
            webhook_event_id = %id,
            event_type = event.event_type.as_deref(),
            "webhook for an unknown provider user"
        );
        webhooks::mark(
            pool,
            id,
            WebhookOutcome::UnknownUser.as_str(),
            false,
            None,
            Some("no link has this provider user id"),
        )
        .await?;
        return Ok(WebhookOutcome::UnknownUser);
    };
    match links::sync_outcome(services, &link, Source::Webhook).await? {
        SyncOutcome::Applied { .. } => {
            webhooks::mark(
                pool,
                id,
                WebhookOutcome::Applied.as_str(),
                true,
                Some(link.user_id),
                None,
            )
            .await?;
            Ok(WebhookOutcome::Applied)
        }
        failed @ (SyncOutcome::Failed { .. } | SyncOutcome::Missing) => {
            let code = match failed {
                SyncOutcome::Failed { code } => code,
                _ => links::MISSING_AT_PROVIDER,
            };
            tracing::warn!(
                provider = provider.as_str(),
                webhook_event_id = %id,
                user_id = %link.user_id,
                code,
                "webhook stored; the provider could not be asked for the user's status"
            );
            let message = format!("re-fetch failed: {code}");
            webhooks::mark(
                pool,
                id,
                WebhookOutcome::Stored.as_str(),
                false,
                Some(link.user_id),
                Some(&message),
            )
            .await?;
            Ok(WebhookOutcome::Stored)
        }
        SyncOutcome::Skipped => {
            let message = "the provider is not configured for re-fetching";
            webhooks::mark(
                pool,
                id,
                WebhookOutcome::Stored.as_str(),
                false,
                Some(link.user_id),
                Some(message),
            )
            .await?;
            Ok(WebhookOutcome::Stored)
        }
    }
}
