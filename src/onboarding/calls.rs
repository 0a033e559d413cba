//! Talking to a provider about one link: where to reach the link's account, and how the calls
//! made and the errors met are written down (`provider_call` events, `last_error`).

use std::sync::Arc;

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OnboardingError, Services};
use crate::providers::connector::{CallLog, Connector, LinkRef};
use crate::providers::error::ProviderError;
use crate::store::events;
use crate::store::links::LinkRow;

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn error_json(error: &ProviderError) -> serde_json::Value {
    json!({ "code": error.code(), "message": error.message, "at": now_rfc3339() })
}

/// The `provider_call` events of the calls in `log`, in the order they were made.
pub(crate) fn call_events(log: &CallLog) -> Vec<(&'static str, serde_json::Value)> {
    log.take()
        .into_iter()
        .map(|call| {
            (
                "provider_call",
                json!({
                    "provider": call.provider.as_str(),
                    "operation": call.operation,
                    "http_status": call.http_status,
                    "latency_ms": (call.latency_ms * 10.0).round() / 10.0,
                    "outcome": call.outcome,
                }),
            )
        })
        .collect()
}

pub(crate) async fn record_calls(
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    log: &CallLog,
) -> Result<(), OnboardingError> {
    // One statement for all the calls (Carbn's create makes two).
    let calls = call_events(log).into_iter().map(|(_, data)| data).collect();
    events::insert_many(tx, user_id, "provider_call", calls).await?;
    Ok(())
}

/// The connector and address of a submitted link whose provider is configured.
pub(crate) fn addressable<'a>(
    services: &'a Services,
    link: &'a LinkRow,
) -> Option<(&'a Arc<dyn Connector>, LinkRef<'a>)> {
    let connector = services.providers.connector(link.provider)?;
    let provider_user_id = link.provider_user_id.as_deref()?;
    Some((
        connector,
        LinkRef {
            provider_user_id,
            link_data: &link.provider_data.0,
        },
    ))
}
