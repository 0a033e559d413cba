//! Notifications to internal services (README "Notifications"): `user.created`,
//! `user.updated`, `user.status_changed`, `link.submission_failed` and `document.rejected`,
//! POSTed as signed JSON to
//! each configured subscriber, at least once, retried, in order per user.
//!
//! They are a projection of the audit trail, which every state change writes in its own
//! transaction: the dispatcher turns settled events into `notify` jobs (one queue per
//! subscriber and user, so a user's notifications arrive in order) and the job queue delivers
//! and retries them.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;

use super::attempt::Attempt;
use super::{OnboardingError, Services};
use crate::auth::sha256_hex;
use crate::providers::error::{parse_retry_after, ProviderError, ProviderErrorKind};
use crate::settings::SubscriberSettings;
use crate::store::jobs::{self, JobKind};
use crate::store::notifications::{self, TrailEvent};

pub const SIGNATURE_HEADER: &str = "Gateway-Signature";

/// The public event types and the audit-trail events they come from.
pub const TRAIL_TYPES: &[&str] = &[
    "user_created",
    "user_updated",
    "status_changed",
    "document_submitted",
];

/// A stable key for a subscriber (its URL's hash), used for its cursor and job queues.
pub fn subscriber_key(subscriber: &SubscriberSettings) -> String {
    sha256_hex(subscriber.url.as_bytes())[..16].to_owned()
}

/// The notification body: `{id, type, created_at, data: {user_id, provider, status,
/// previous_status}}` (plus `fields` for `user.updated`). Never PII.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub data: Value,
}

/// The public notifications one audit event yields (a status change to `submission_failed`
/// is both a `user.status_changed` and a `link.submission_failed`).
pub fn notifications_for(event: &TrailEvent) -> Vec<Notification> {
    let data = &event.data.0;
    let created_at = event.at.format(&Rfc3339).unwrap_or_default();
    let make = |event_type: &str, data: Value| Notification {
        id: if event_type == "link.submission_failed" {
            // Distinct from the status change's id, stable across re-dispatch.
            uuid::Uuid::from_u128(event.id.as_u128() ^ 1)
        } else {
            event.id
        },
        event_type: event_type.to_owned(),
        created_at: created_at.clone(),
        data,
    };
    match event.event_type.as_str() {
        "user_created" => vec![make(
            "user.created",
            json!({ "user_id": event.user_id, "provider": null, "status": "pending_submission", "previous_status": null }),
        )],
        "user_updated" => vec![make(
            "user.updated",
            json!({ "user_id": event.user_id, "provider": null, "status": null, "previous_status": null,
                    "fields": data.get("fields").cloned().unwrap_or(json!([])) }),
        )],
        "status_changed" => {
            let body = json!({
                "user_id": event.user_id,
                "provider": data.get("provider"),
                "status": data.get("to"),
                "previous_status": data.get("from"),
            });
            let mut out = vec![make("user.status_changed", body.clone())];
            if data.get("to").and_then(Value::as_str) == Some("submission_failed") {
                out.push(make("link.submission_failed", body));
            }
            out
        }
        // A provider refused a document (or a provider linked later would): `document_id`,
        // `document_type` and the refusal's `error_code` besides the usual members.
        "document_submitted" if data.get("outcome").and_then(Value::as_str) == Some("rejected") => {
            vec![make(
                "document.rejected",
                json!({
                    "user_id": event.user_id,
                    "provider": data.get("provider"),
                    "status": "rejected",
                    "previous_status": "pending",
                    "document_id": data.get("document_id"),
                    "document_type": data.get("document_type"),
                    "error_code": data.get("error_code"),
                }),
            )]
        }
        _ => Vec::new(),
    }
}

/// Creates every configured subscriber's cursor (at start-up, before requests are served).
pub async fn init_cursors(services: &Services) -> Result<(), OnboardingError> {
    for subscriber in services.subscribers.iter() {
        notifications::ensure_cursor(&services.pool, &subscriber_key(subscriber)).await?;
    }
    Ok(())
}

/// Turns settled audit events into delivery jobs for every subscriber. Safe with many
/// instances: each subscriber's cursor is locked (`SKIP LOCKED`) for the transaction that
/// enqueues its jobs and advances it.
pub async fn dispatch(services: &Services) -> Result<usize, OnboardingError> {
    let mut enqueued = 0;
    for subscriber in services.subscribers.iter() {
        let key = subscriber_key(subscriber);
        let mut tx = services.pool.begin().await?;
        let Some(from) = notifications::lock_cursor(&mut tx, &key).await? else {
            continue;
        };
        let (events, next) = notifications::settled_events(&mut tx, from, TRAIL_TYPES).await?;
        for event in &events {
            for notification in notifications_for(event) {
                if !subscriber.events.contains(&notification.event_type) {
                    continue;
                }
                jobs::enqueue(
                    &mut tx,
                    JobKind::Notify,
                    &format!("notify:{key}:{}", event.user_id),
                    json!({ "subscriber": key, "notification": notification }),
                    services.workers.max_attempts,
                    Duration::ZERO,
                )
                .await?;
                enqueued += 1;
            }
        }
        notifications::advance_cursor(&mut tx, &key, next).await?;
        tx.commit().await?;
    }
    Ok(enqueued)
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, keyed with the subscriber's secret (UTF-8).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Delivers one notification job (its `attempt`-th try), recording `notification_sent` in the
/// user's trail with the subscriber's answer (`http_status` null when it could not be reached).
pub async fn deliver(
    services: &Services,
    payload: &Value,
    attempt: i32,
) -> Result<Attempt, OnboardingError> {
    let key = payload
        .get("subscriber")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(subscriber) = services
        .subscribers
        .iter()
        .find(|s| subscriber_key(s) == key)
    else {
        return Ok(Attempt::Done); // no longer configured
    };
    let Some(notification) = payload.get("notification") else {
        return Ok(Attempt::NeedsReview(
            "notification job without a body".into(),
        ));
    };
    let body = serde_json::to_vec(notification).expect("JSON values serialise");
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = signature(subscriber.secret.expose_secret(), timestamp, &body);
    let started = std::time::Instant::now();
    let result = services
        .http
        .post(&subscriber.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, header)
        .body(body)
        .send()
        .await;
    let http_status = result.as_ref().ok().map(|r| r.status().as_u16());
    if let Some(user_id) = notification
        .pointer("/data/user_id")
        .and_then(Value::as_str)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
    {
        let mut conn = services.pool.acquire().await?;
        crate::store::events::insert(
            &mut conn,
            user_id,
            "notification_sent",
            json!({
                "subscriber": key,
                "notification_id": notification.get("id"),
                "http_status": http_status,
                "attempt": attempt,
            }),
        )
        .await?;
    }
    let outcome = match result {
        Ok(response) if response.status().is_success() => Attempt::Done,
        Ok(response) => {
            let retry_after = parse_retry_after(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            Attempt::Retry(
                ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!("subscriber answered HTTP {}", response.status().as_u16()),
                )
                .with_retry_after(retry_after),
            )
        }
        Err(_) => Attempt::Retry(ProviderError::new(
            ProviderErrorKind::Unavailable,
            "subscriber unreachable",
        )),
    };
    metrics::histogram!(
        "gateway_notification_delivery_duration_seconds",
        "outcome" => if matches!(outcome, Attempt::Done) { "ok" } else { "retry" }
    )
    .record(started.elapsed().as_secs_f64());
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_scheme() {
        // Recomputable with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        let header = signature("whsec", 1_700_000_000, br#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        assert_eq!(
            header,
            format!(
                "t=1700000000,v1={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
    }
}
