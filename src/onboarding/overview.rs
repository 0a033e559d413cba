//! The ops overview: the population at a glance (links by status per provider, the drift
//! report's counts, failed jobs, recent webhook verification failures, the last pass), built
//! from counts only, so it stays cheap however many users there are.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::reconcile::{self, ReconciliationRun};
use super::{OnboardingError, Services};
use crate::domain::provider::ProviderId;
use crate::settings::ReconciliationSettings;
use crate::store::{jobs, links, webhooks};

/// The window of `webhook_verification_failures`.
pub const WEBHOOK_FAILURE_WINDOW_MINUTES: i32 = 60;

/// A total and its parts (kinds without any are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    pub total: i64,
    pub by_kind: BTreeMap<String, i64>,
}

impl Counts {
    fn add(&mut self, kind: &str, count: i64) {
        if count > 0 {
            self.total += count;
            *self.by_kind.entry(kind.to_owned()).or_default() += count;
        }
    }
}

/// Webhook deliveries refused because their signature could not be verified, counted durably
/// by every instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookFailures {
    pub window_minutes: i32,
    pub total: i64,
    /// Every provider, 0 when it had none.
    pub by_provider: BTreeMap<String, i64>,
}

/// The ops overview.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "generated_at": "2026-12-04T18:00:00Z",
    "links_by_status": {"kraken": {"approved": 3, "under_review": 1}, "killb": {}, "carbn": {}},
    "drift": {"total": 2, "by_kind": {"status_drift": 2}},
    "failed_jobs": {"total": 1, "by_kind": {"submit_link": 1}},
    "webhook_verification_failures": {"window_minutes": 60, "total": 0,
        "by_provider": {"carbn": 0, "killb": 0, "kraken": 0}},
    "last_reconciliation": null
}))]
pub struct Overview {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Per provider (every one), how many links are in each status (statuses without links
    /// are left out).
    #[schema(value_type = Object)]
    pub links_by_status: BTreeMap<String, BTreeMap<String, i64>>,
    /// The drift report's counts (`GET /v1/reconciliation`), by kind.
    pub drift: Counts,
    /// Jobs that exhausted their attempts, by job kind.
    pub failed_jobs: Counts,
    pub webhook_verification_failures: WebhookFailures,
    /// The last finished reconciliation pass, as `GET /v1/reconciliation` shows it.
    pub last_reconciliation: Option<ReconciliationRun>,
}

pub async fn overview(
    services: &Services,
    settings: &ReconciliationSettings,
) -> Result<Overview, OnboardingError> {
    let every_provider = || {
        ProviderId::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let mut links_by_status: BTreeMap<String, BTreeMap<String, i64>> = every_provider()
        .into_iter()
        .map(|p| (p, BTreeMap::new()))
        .collect();
    for (provider, status, count) in links::count_by_provider_and_status(&services.pool).await? {
        links_by_status
            .entry(provider)
            .or_default()
            .insert(status, count);
    }
    // Counts only (no rows): the report's per-kind counts are what the overview shows.
    let report = reconcile::report(services, settings, 0).await?;
    let mut drift = Counts::default();
    for section in &report.sections {
        drift.add(section.kind.as_str(), section.count);
    }
    let mut failed_jobs = Counts::default();
    for (kind, count) in jobs::count_failed_by_kind(&services.pool).await? {
        failed_jobs.add(kind.as_str(), count);
    }
    let mut by_provider: BTreeMap<String, i64> =
        every_provider().into_iter().map(|p| (p, 0)).collect();
    let failures =
        webhooks::verification_failures(&services.pool, WEBHOOK_FAILURE_WINDOW_MINUTES).await?;
    for (provider, count) in failures {
        *by_provider.entry(provider).or_default() += count;
    }
    Ok(Overview {
        generated_at: report.generated_at,
        links_by_status,
        drift,
        failed_jobs,
        webhook_verification_failures: WebhookFailures {
            window_minutes: WEBHOOK_FAILURE_WINDOW_MINUTES,
            total: by_provider.values().sum(),
            by_provider,
        },
        last_reconciliation: report.last_run,
    })
}
