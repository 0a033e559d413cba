//! Webhook delivery: each provider builds its own signed webhook, this sends it from a spawned
//! task with retries (never blocking the request that caused them) and records it.

use std::sync::Arc;
use std::time::Duration;

use super::state::{DeliveryAttempt, SimState, WebhookDelivery};
use crate::domain::provider::ProviderId;

/// The wait before each retry of a delivery: exponential from 200 ms, as many retries as the
/// provider documents ([`SimProvider::webhook_retries`](super::provider::SimProvider)). A
/// receiver down for a few seconds (an instance restarting) gets the delivery later, as it
/// would from the provider: the chaos run found Kraken accounts whose only naming webhook the
/// simulator had given up on after 3 s, where Kraken retries for up to 5 minutes.
fn retry_delays_ms(provider: ProviderId) -> impl Iterator<Item = u64> {
    (0..super::simulator(provider).webhook_retries()).map(|k| 200 * 2u64.pow(k))
}

/// Headers and body of attempt `n` (from 0).
pub(crate) type Build = Box<dyn Fn(u32) -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>;

/// Sends one webhook of `provider` about `user_id` to its target, recording it (unless
/// `SimConfig::record` is off): `build(attempt)` gives each attempt's headers and body (a
/// provider may re-sign or count attempts), retried with backoff until a 2xx or the provider's
/// last retry ([`retry_delays_ms`]), on a spawned task.
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
        let waits = std::iter::once(0).chain(retry_delays_ms(provider));
        for (attempt, wait_ms) in (0u32..).zip(waits) {
            if wait_ms > 0 {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_within_what_each_provider_documents() {
        for provider in ProviderId::ALL.iter().copied() {
            let waits: Vec<u64> = retry_delays_ms(provider).collect();
            assert!(!waits.is_empty(), "{provider:?}");
            assert_eq!(waits[0], 200);
            assert!(waits.windows(2).all(|w| w[1] == 2 * w[0]));
            // No provider documents retrying for longer than 5 minutes.
            assert!(
                waits.iter().sum::<u64>() <= 300_000,
                "{provider:?}: {waits:?}"
            );
        }
    }
}
