//! Webhook delivery: each provider builds its own signed webhook, this sends it from a spawned
//! task with retries (never blocking the request that caused them) and records it.

use std::sync::Arc;
use std::time::Duration;

use super::state::{DeliveryAttempt, SimState, WebhookDelivery};
use crate::domain::provider::ProviderId;

/// Attempts per delivery (a provider's attempt counter goes 0..=4).
const MAX_ATTEMPTS: u32 = 5;

/// Headers and body of attempt `n` (from 0).
pub(crate) type Build = Box<dyn Fn(u32) -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>;

/// Sends one webhook of `provider` about `user_id` to its target, recording it (unless
/// `SimConfig::record` is off): `build(attempt)` gives each attempt's headers and body (a
/// provider may re-sign or count attempts), retried with backoff until a 2xx or
/// [`MAX_ATTEMPTS`], on a spawned task.
pub(crate) fn deliver(
    state: &Arc<SimState>,
    provider: ProviderId,
    event: String,
    user_id: &str,
    build: Build,
) {
    let url = state
        .lock()
        .webhook_targets
        .get(provider)
        .map(str::to_owned);
    let (headers, body) = build(0);
    let id = if !state.config.record {
        0 // not kept: the delivery below updates nothing
    } else {
        let mut store = state.lock();
        let id = store.webhooks.last().map_or(1, |d| d.id + 1);
        store.webhooks.push(WebhookDelivery {
            id,
            provider,
            event,
            user_id: user_id.to_owned(),
            url: url.clone(),
            headers: headers.iter().cloned().collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            attempts: Vec::new(),
            delivered: false,
        });
        id
    };
    let Some(url) = url else {
        return;
    };
    let state = Arc::clone(state);
    state.runtime.clone().spawn(async move {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            }
            let (headers, body) = build(attempt);
            let mut request = state.http.post(&url).body(body.clone());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let outcome = request.send().await;
            let (status, error) = match &outcome {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            {
                let mut store = state.lock();
                if let Some(d) = store.webhooks.iter_mut().find(|d| d.id == id) {
                    d.headers = headers.iter().cloned().collect();
                    d.body = String::from_utf8_lossy(&body).into_owned();
                    d.attempts.push(DeliveryAttempt { status, error });
                    d.delivered = delivered;
                }
            }
            if delivered {
                break;
            }
        }
    });
}
