//! Reconciliation: re-reading links from their providers to catch what webhooks missed, and
//! reporting where our view and the providers' disagree.
//!
//! A pass refreshes (a) every submitted link (one with a provider id) that is not final, and
//! (b) every submitted link not synced within `reconciliation.stale_after_secs`, final ones
//! included (that is how a provider reversing a final decision shows up as drift). Each link
//! goes through [`links::sync_outcome`] with source `poll`, so transitions follow the same rules
//! (and leave the same `status_changed` events) as webhooks and manual syncs.
//!
//! One pass runs at a time across all instances: the pass holds a session-level Postgres
//! advisory lock on a connection dedicated to it, released when the pass ends, or by the
//! database when that connection closes (an instance that dies mid-pass never blocks others).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

use super::links::{self, Source, SyncOutcome};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::settings::ReconciliationSettings;
use crate::store::links::LinkRow;
use crate::store::reconciliation::{self as store, ReportKind};

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The background poller.
    Poll,
    /// `POST /v1/reconciliation/runs`.
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Poll => "poll",
            Trigger::Api => "api",
        }
    }
}

/// A status a pass moved a link to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10", "provider": "killb", "from": "under_review", "to": "approved"}))]
pub struct StatusChange {
    pub user_id: Uuid,
    pub provider: String,
    pub from: String,
    pub to: String,
}

/// At most this many `status_changed` entries are kept in one summary
/// (`status_changed_count` counts them all).
pub const MAX_CHANGES_LISTED: usize = 1000;

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "checked": 42,
    "status_changed": [{"user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10", "provider": "killb", "from": "under_review", "to": "approved"}],
    "status_changed_count": 1,
    "drift": 1,
    "missing": 0,
    "errors": 0,
    "duration_ms": 812,
    "interrupted": false
}))]
pub struct ReconciliationSummary {
    /// Links read from their provider (or attempted).
    pub checked: u64,
    /// Status transitions the pass applied (source `poll`), at most 1000.
    pub status_changed: Vec<StatusChange>,
    /// How many transitions the pass applied in all.
    pub status_changed_count: u64,
    /// Checked links whose provider status maps to another status than ours after the pass
    /// (a transition the rules refused, e.g. the provider approving after our final `rejected`).
    pub drift: u64,
    /// Checked links whose account the provider no longer knows (flagged `missing_at_provider`).
    pub missing: u64,
    /// Checked links whose provider call failed (outage, rate limit, …; kept in `last_error`).
    pub errors: u64,
    pub duration_ms: u64,
    /// The pass stopped early because the instance is shutting down.
    #[serde(default)]
    pub interrupted: bool,
}

/// One recorded pass: its summary plus when, and what started it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936b31-0a2f-7b4c-8d9e-1f2a3b4c5d6e",
    "trigger": "api",
    "started_at": "2026-11-22T10:15:00.123Z",
    "finished_at": "2026-11-22T10:15:00.935Z",
    "checked": 42,
    "status_changed": [{"user_id": "01936b2e-7c4a-7d1e-9f3b-2a5c8e4d6f10", "provider": "killb", "from": "under_review", "to": "approved"}],
    "status_changed_count": 1,
    "drift": 1,
    "missing": 0,
    "errors": 0,
    "duration_ms": 812,
    "interrupted": false
}))]
pub struct ReconciliationRun {
    pub id: Uuid,
    /// `poll` (the background poller) or `api` (`POST /v1/reconciliation/runs`).
    pub trigger: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(flatten)]
    pub summary: ReconciliationSummary,
}

impl ReconciliationRun {
    pub fn from_row(row: store::RunRow) -> Self {
        let summary = row
            .summary
            .and_then(|s| serde_json::from_value(s.0).ok())
            .unwrap_or_default();
        Self {
            id: row.id,
            trigger: row.trigger,
            started_at: row.started_at,
            finished_at: row.finished_at,
            summary,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Another pass (on this or another instance) holds the lock.
    #[error("a reconciliation pass is already running")]
    Busy,
    #[error(transparent)]
    Failed(#[from] OnboardingError),
}

impl From<sqlx::Error> for ReconcileError {
    fn from(error: sqlx::Error) -> Self {
        ReconcileError::Failed(error.into())
    }
}

impl From<crate::store::StoreError> for ReconcileError {
    fn from(error: crate::store::StoreError) -> Self {
        ReconcileError::Failed(error.into())
    }
}

/// Runs one pass now, unless another pass holds the lock ([`ReconcileError::Busy`]).
pub async fn run_pass(
    services: &Services,
    settings: &ReconciliationSettings,
    trigger: Trigger,
) -> Result<ReconciliationRun, ReconcileError> {
    run_pass_until(services, settings, trigger, None).await
}

/// [`run_pass`], taking no new link once `stop` turns true (the links in flight finish and
/// the run is recorded as `interrupted`).
pub async fn run_pass_until(
    services: &Services,
    settings: &ReconciliationSettings,
    trigger: Trigger,
    stop: Option<watch::Receiver<bool>>,
) -> Result<ReconciliationRun, ReconcileError> {
    // A connection of its own, taken out of the pool: the session-level lock lives and dies
    // with it, and it never goes back to the pool still holding the lock.
    let mut conn = services.pool.acquire().await?.detach();
    if !store::try_lock(&mut conn).await? {
        let _ = sqlx::Connection::close(conn).await;
        return Err(ReconcileError::Busy);
    }
    let result = locked_pass(services, settings, trigger, stop, &mut conn).await;
    if let Err(error) = store::unlock(&mut conn).await {
        tracing::warn!(%error, "could not release the reconciliation lock; closing its session");
    }
    let _ = sqlx::Connection::close(conn).await;
    let run = result?;
    if let Err(error) = refresh_gauges(services, settings).await {
        tracing::warn!(%error, "could not refresh the reconciliation gauges");
    }
    // Accounts named by webhooks that arrived before their link was flagged (see
    // `links::adopt_from_unmatched_webhooks`): tried again on every pass.
    for &provider in ProviderId::ALL {
        if let Err(error) = links::adopt_from_unmatched_webhooks(services, provider).await {
            tracing::warn!(provider = provider.as_str(), %error,
                "could not retry the stored unmatched webhooks");
        }
    }
    // Housekeeping that needs to run somewhere periodically, once at a time: the overview reads
    // the last hour of webhook verification failures; a day is kept for a look by hand.
    if let Err(error) =
        crate::store::webhooks::prune_verification_failures(&services.pool, 24 * 60).await
    {
        tracing::warn!(%error, "could not prune old webhook verification failure counts");
    }
    Ok(run)
}

/// What one link's check contributed.
enum Checked {
    Unchanged { drift: bool },
    Changed { change: StatusChange, drift: bool },
    Missing,
    Error,
    Skipped,
}

async fn check(services: &Services, link: LinkRow) -> Checked {
    match links::sync_outcome(services, &link, Source::Poll).await {
        Ok(SyncOutcome::Applied {
            from,
            to,
            provider_says,
        }) => {
            let drift = provider_says.as_deref().is_some_and(|p| p != to);
            if from != to {
                Checked::Changed {
                    change: StatusChange {
                        user_id: link.user_id,
                        provider: link.provider.as_str().to_owned(),
                        from,
                        to,
                    },
                    drift,
                }
            } else {
                Checked::Unchanged { drift }
            }
        }
        Ok(SyncOutcome::Missing) => Checked::Missing,
        Ok(SyncOutcome::Failed { code }) => {
            tracing::debug!(
                provider = link.provider.as_str(),
                code,
                "reconciliation read failed"
            );
            Checked::Error
        }
        Ok(SyncOutcome::Skipped) => Checked::Skipped,
        Err(error) => {
            tracing::warn!(provider = link.provider.as_str(), %error, "reconciliation of a link failed");
            Checked::Error
        }
    }
}

async fn locked_pass(
    services: &Services,
    settings: &ReconciliationSettings,
    trigger: Trigger,
    stop: Option<watch::Receiver<bool>>,
    conn: &mut sqlx::PgConnection,
) -> Result<ReconciliationRun, ReconcileError> {
    let started = Instant::now();
    let run = store::start_run(conn, trigger.as_str(), &services.instance).await?;
    let stale_before = stale_cutoff(settings);
    let stopped = || stop.as_ref().is_some_and(|s| *s.borrow());
    let mut summary = ReconciliationSummary::default();
    let mut after = None;
    loop {
        if stopped() {
            summary.interrupted = true;
            break;
        }
        let batch = store::due_links(
            &services.pool,
            stale_before,
            after,
            i64::from(settings.batch_size),
        )
        .await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.user_id, last.provider));
        let full = batch.len() as u32 == settings.batch_size;
        let mut results = futures_util::stream::iter(batch)
            .take_while(|_| std::future::ready(!stopped()))
            .map(|link| check(services, link))
            .buffer_unordered(settings.concurrency.max(1));
        while let Some(checked) = results.next().await {
            match checked {
                Checked::Skipped => continue,
                Checked::Unchanged { drift } => summary.drift += u64::from(drift),
                Checked::Changed { change, drift } => {
                    summary.drift += u64::from(drift);
                    summary.status_changed_count += 1;
                    if summary.status_changed.len() < MAX_CHANGES_LISTED {
                        summary.status_changed.push(change);
                    }
                }
                Checked::Missing => summary.missing += 1,
                Checked::Error => summary.errors += 1,
            }
            summary.checked += 1;
        }
        if !full {
            if stopped() {
                summary.interrupted = true;
            }
            break;
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let value = serde_json::to_value(&summary).unwrap_or_default();
    let row = store::finish_run(conn, run.id, value).await?;
    tracing::info!(
        trigger = trigger.as_str(),
        checked = summary.checked,
        status_changed = summary.status_changed_count,
        drift = summary.drift,
        missing = summary.missing,
        errors = summary.errors,
        duration_ms = summary.duration_ms,
        "reconciliation pass finished"
    );
    let mut finished = ReconciliationRun::from_row(row);
    finished.summary = summary;
    Ok(finished)
}

fn stale_cutoff(settings: &ReconciliationSettings) -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::from_secs(settings.stale_after_secs)
}

/// One kind of the drift report: how many links, and the first rows.
#[derive(Debug)]
pub struct ReportSection {
    pub kind: ReportKind,
    pub count: i64,
    pub rows: Vec<store::ReportRow>,
}

/// The drift report.
#[derive(Debug)]
pub struct Report {
    pub generated_at: OffsetDateTime,
    pub sections: Vec<ReportSection>,
    pub failed_jobs: i64,
    pub last_run: Option<ReconciliationRun>,
}

/// Builds the drift report with at most `rows_per_kind` rows per kind, and refreshes the
/// `gateway_reconciliation_drift{kind}` gauges from its counts.
pub async fn report(
    services: &Services,
    settings: &ReconciliationSettings,
    rows_per_kind: i64,
) -> Result<Report, OnboardingError> {
    let generated_at = OffsetDateTime::now_utc();
    let stale_before = stale_cutoff(settings);
    let mut sections = Vec::with_capacity(ReportKind::ALL.len());
    for kind in ReportKind::ALL {
        let (count, rows) =
            store::report_kind(&services.pool, kind, stale_before, rows_per_kind).await?;
        crate::telemetry::record_reconciliation_drift(kind.as_str(), count);
        sections.push(ReportSection { kind, count, rows });
    }
    let failed_jobs = store::failed_jobs(&services.pool).await?;
    crate::telemetry::record_reconciliation_drift("failed_jobs", failed_jobs);
    let last_run = store::last_finished_run(&services.pool)
        .await?
        .map(ReconciliationRun::from_row);
    Ok(Report {
        generated_at,
        sections,
        failed_jobs,
        last_run,
    })
}

async fn refresh_gauges(
    services: &Services,
    settings: &ReconciliationSettings,
) -> Result<(), OnboardingError> {
    report(services, settings, 0).await.map(|_| ())
}
