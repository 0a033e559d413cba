//! Signed webhook deliveries, each provider with its own scheme, sent from a spawned task with
//! retries (never blocking the request that caused them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::state::{SimState, SimUser};
use super::validate::timestamp;
use super::{carbn, killb, kraken};
use crate::domain::provider::ProviderId;
use crate::providers::kraken::webhook as kraken_webhook;
use crate::providers::{carbn::webhook as carbn_webhook, killb::webhook as killb_webhook};

/// The simulator's Kraken webhook configuration id (`X-Webhook-ID`).
pub const KRAKEN_WEBHOOK_ID: &str = "WHSIM-KRAKN-000001";
/// The simulator's Carbn webhook configuration id (`X-Webhook-Id`).
pub const CARBN_WEBHOOK_ID: &str = "5b1f3c9e-7a0d-4c8e-9f21-3d6a8b0c4e17";
/// Attempts per delivery (KillB's `attempts` goes 0..=4).
const MAX_ATTEMPTS: u32 = 5;

/// One attempt's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliveryAttempt {
    /// HTTP status answered, if any.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
}

/// A webhook the simulator sent (or would have sent: `url` is `None` without a target).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WebhookDelivery {
    /// Sequence number.
    pub id: u64,
    /// Which provider's scheme.
    pub provider: ProviderId,
    /// Kraken event type, KillB `USER/<action>`, Carbn `USER_STATUS_UPDATE`.
    pub event: String,
    /// The provider user id concerned.
    pub user_id: String,
    /// Target URL.
    pub url: Option<String>,
    /// Headers of the last attempt.
    pub headers: BTreeMap<String, String>,
    /// Body of the last attempt.
    pub body: String,
    /// Attempts made.
    pub attempts: Vec<DeliveryAttempt>,
    /// Whether a 2xx was received.
    pub delivered: bool,
}

type Build = Box<dyn Fn(u32) -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>;

fn kraken_event_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let part = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}-{}-{}", part(6), part(5), part(6))
}

/// Emits the status webhook for a Kraken or Carbn user (none for Kraken statuses without event).
pub(crate) fn emit_status(state: &Arc<SimState>, user: &SimUser) {
    match user.provider {
        ProviderId::Kraken => {
            let Some(event) = kraken::event_for(user) else {
                return;
            };
            let secret = state.config.kraken.webhook_secret_b64.clone();
            let body = serde_json::to_vec(&json!({
                "event_type": event,
                "iiban": user.id,
                "id": kraken_event_id(),
                "timestamp": timestamp(OffsetDateTime::now_utc(), true),
            }))
            .unwrap_or_default();
            let build: Build = Box::new(move |_attempt| {
                let t = OffsetDateTime::now_utc().unix_timestamp();
                let signature =
                    kraken_webhook::signature_header(&secret, t, &body).unwrap_or_default();
                (
                    vec![
                        ("Content-Type".into(), "application/json".into()),
                        (kraken_webhook::SIGNATURE_HEADER.into(), signature),
                        (kraken_webhook::EVENT_HEADER.into(), event.into()),
                        (
                            kraken_webhook::WEBHOOK_ID_HEADER.into(),
                            KRAKEN_WEBHOOK_ID.into(),
                        ),
                    ],
                    body.clone(),
                )
            });
            deliver(state, ProviderId::Kraken, event.to_owned(), &user.id, build);
        }
        ProviderId::Carbn => {
            let rendered = carbn::render(user);
            let body = serde_json::to_vec(&json!({
                "status": rendered.get("status").cloned().unwrap_or(Value::Null),
                "user_id": user.id,
            }))
            .unwrap_or_default();
            let signature = state.carbn_signer.sign(&body).unwrap_or_default();
            let event_id = uuid::Uuid::new_v4().to_string();
            let build: Build = Box::new(move |_attempt| {
                (
                    vec![
                        ("Content-Type".into(), "application/json".into()),
                        ("User-Agent".into(), "Java/17.0.14".into()),
                        (carbn_webhook::EVENT_ID_HEADER.into(), event_id.clone()),
                        (
                            carbn_webhook::WEBHOOK_ID_HEADER.into(),
                            CARBN_WEBHOOK_ID.into(),
                        ),
                        (carbn_webhook::SIGNATURE_HEADER.into(), signature.clone()),
                    ],
                    body.clone(),
                )
            });
            deliver(
                state,
                ProviderId::Carbn,
                "USER_STATUS_UPDATE".into(),
                &user.id,
                build,
            );
        }
        ProviderId::Killb => emit_killb(state, user, "UPDATE"),
    }
}

/// Emits a KillB `USER` event with `action` (`CREATE`, `UPDATE`, `DELETE`).
pub(crate) fn emit_killb(state: &Arc<SimState>, user: &SimUser, action: &'static str) {
    let data = killb::render(state, user);
    let secret = state.config.killb.webhook_secret.clone();
    let scheme = state.config.killb.webhook_scheme;
    let event_id = uuid::Uuid::new_v4().to_string();
    let now = timestamp(OffsetDateTime::now_utc(), false);
    let build: Build = Box::new(move |attempt| {
        let body = serde_json::to_vec(&json!({
            "id": event_id,
            "event": "USER",
            "action": action,
            "data": data,
            "createdAt": now,
            "updatedAt": timestamp(OffsetDateTime::now_utc(), false),
            "attempts": attempt,
        }))
        .unwrap_or_default();
        let signature = killb_webhook::sign(scheme, &secret, &body);
        (
            vec![
                ("Content-Type".into(), "application/json".into()),
                (killb_webhook::SIGNATURE_HEADER.into(), signature),
            ],
            body,
        )
    });
    deliver(
        state,
        ProviderId::Killb,
        format!("USER/{action}"),
        &user.id,
        build,
    );
}

fn deliver(
    state: &Arc<SimState>,
    provider: ProviderId,
    event: String,
    user_id: &str,
    build: Build,
) {
    let url = {
        let store = state.lock();
        match provider {
            ProviderId::Kraken => store.webhook_targets.kraken.clone(),
            ProviderId::Killb => store.webhook_targets.killb.clone(),
            ProviderId::Carbn => store.webhook_targets.carbn.clone(),
        }
    };
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
