//! Key rotation in the background: every `encryption.rotation_interval_secs` this re-seals, in
//! batches of `encryption.rotation_batch_size` rows per transaction, whatever is still sealed
//! under an older data key (or stored in plaintext from before encryption) under the current
//! key, then refreshes `gateway_encryption_stale_rows{table}`. Rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so several instances share the work; stopping mid-pass loses
//! nothing (each batch commits or rolls back whole). `0` turns it off.

use std::time::Duration;

use serde::Serialize;

use crate::crypto::Keyring;
use crate::store::{documents, idempotency, sessions, users, webhooks, StoreError};

/// Rows re-sealed by one pass, and rows still stale after it, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    pub users_moved: u64,
    pub webhook_events_moved: u64,
    pub idempotency_keys_moved: u64,
    pub document_files_moved: u64,
    pub documents_moved: u64,
    pub verification_sessions_moved: u64,
    pub users_stale: i64,
    pub webhook_events_stale: i64,
    pub idempotency_keys_stale: i64,
    pub document_files_stale: i64,
    pub documents_stale: i64,
    pub verification_sessions_stale: i64,
}

/// Re-seals everything not under the current key, batch by batch, until nothing is left.
pub async fn reseal_all(
    pool: &sqlx::PgPool,
    keyring: &Keyring,
    batch_size: u32,
) -> Result<ResealReport, StoreError> {
    let limit = i64::from(batch_size.max(1));
    let mut report = ResealReport::default();
    loop {
        let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
        let users = users::reseal_batch(&mut tx, keyring, limit).await?;
        let events = webhooks::reseal_batch(&mut tx, keyring, limit).await?;
        let answers = idempotency::reseal_batch(&mut tx, keyring, limit).await?;
        let (files, attestations) = documents::reseal_batch(&mut tx, keyring, limit).await?;
        let session_urls = sessions::reseal_batch(&mut tx, keyring, limit).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        report.users_moved += users;
        report.webhook_events_moved += events;
        report.idempotency_keys_moved += answers;
        report.document_files_moved += files;
        report.documents_moved += attestations;
        report.verification_sessions_moved += session_urls;
        if users + events + answers + files + attestations + session_urls == 0 {
            break;
        }
    }
    let current = keyring.current_key_id();
    report.users_stale = users::count_stale_seals(pool, current).await?;
    report.webhook_events_stale = webhooks::count_stale_seals(pool, current).await?;
    report.idempotency_keys_stale = idempotency::count_stale_seals(pool, current).await?;
    (report.document_files_stale, report.documents_stale) =
        documents::count_stale_seals(pool, current).await?;
    report.verification_sessions_stale = sessions::count_stale_seals(pool, current).await?;
    crate::telemetry::record_encryption_stale_rows("users", report.users_stale);
    crate::telemetry::record_encryption_stale_rows("webhook_events", report.webhook_events_stale);
    crate::telemetry::record_encryption_stale_rows(
        "idempotency_keys",
        report.idempotency_keys_stale,
    );
    crate::telemetry::record_encryption_stale_rows("document_files", report.document_files_stale);
    crate::telemetry::record_encryption_stale_rows("documents", report.documents_stale);
    crate::telemetry::record_encryption_stale_rows(
        "verification_sessions",
        report.verification_sessions_stale,
    );
    Ok(report)
}

/// Starts the periodic pass; `None` when `interval_secs` is 0.
pub fn start(
    pool: sqlx::PgPool,
    keyring: std::sync::Arc<Keyring>,
    interval_secs: u64,
    batch_size: u32,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval_secs == 0 {
        tracing::info!("re-sealing disabled (encryption.rotation_interval_secs = 0)");
        return None;
    }
    Some(tokio::spawn(async move {
        // The first pass soon after start-up, so a rotation takes effect without waiting long.
        let mut wait = Duration::from_secs(5).min(Duration::from_secs(interval_secs));
        loop {
            tokio::time::sleep(wait).await;
            wait = Duration::from_secs(interval_secs);
            match reseal_all(&pool, &keyring, batch_size).await {
                Ok(report) => {
                    let moved = report.users_moved
                        + report.webhook_events_moved
                        + report.idempotency_keys_moved
                        + report.document_files_moved
                        + report.documents_moved
                        + report.verification_sessions_moved;
                    if moved > 0 {
                        tracing::info!(
                            users = report.users_moved,
                            webhook_events = report.webhook_events_moved,
                            idempotency_keys = report.idempotency_keys_moved,
                            document_files = report.document_files_moved,
                            documents = report.documents_moved,
                            verification_sessions = report.verification_sessions_moved,
                            key_id = keyring.current_key_id(),
                            "re-sealed rows under the current data key"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "re-sealing pass failed; next one retries"),
            }
        }
    }))
}
