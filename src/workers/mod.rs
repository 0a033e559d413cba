//! Background loops: the job queue workers (and the reconciliation poller, in [`reconciler`]). Bounded, observable, safe with many gateway
//! instances on one database (claims use `FOR UPDATE SKIP LOCKED` under a lease), and stopped
//! cleanly: on shutdown they take no new job and finish the ones in flight.

pub mod reconciler;
pub mod resealer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::onboarding::{jobs as job_runner, Services};
use crate::settings::WorkerSettings;
use crate::store::jobs;

/// The running workers of this instance.
pub struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A name for this instance in `jobs.locked_by` (diagnostics only; correctness rests on leases).
pub fn instance_name() -> String {
    format!(
        "gw-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl Workers {
    pub fn start(services: Services, settings: WorkerSettings, worker: String) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_loop(services, Arc::new(settings), worker, stopped));
        Self { stop, task }
    }

    /// Kills the loop and its in-flight jobs without settling them (a simulated crash).
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Stops claiming jobs and waits (up to `grace`) for the ones in flight. A job still
    /// running after that keeps its lease and is picked up again once the lease expires.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("workers did not finish in time; their jobs will be retried");
        }
    }
}

/// Sets the queue-depth gauges: one series per kind in [`jobs::JobKind::ALL`], so each exists
/// while its queue is empty and a drained queue reads 0, not its last non-zero depth.
pub fn record_queue_depths(depths: &[jobs::QueueDepth]) {
    for queue in depths {
        crate::telemetry::record_job_depth(queue.kind.as_str(), queue.depth, queue.oldest_age_secs);
    }
}

async fn run_loop(
    services: Services,
    settings: Arc<WorkerSettings>,
    worker: String,
    mut stopped: watch::Receiver<bool>,
) {
    let lease = Duration::from_secs(settings.lease_secs);
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let mut in_flight = JoinSet::new();
    let mut last_metrics = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        if *stopped.borrow() {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        let free = settings.concurrency.saturating_sub(in_flight.len());
        let mut claimed = 0;
        if free > 0 {
            match jobs::claim_due(&services.pool, &worker, lease, free as i64).await {
                Ok(due) => {
                    claimed = due.len();
                    for job in due {
                        let services = services.clone();
                        let settings = settings.clone();
                        in_flight
                            .spawn(async move { job_runner::run(&services, &settings, job).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }
        if !services.subscribers.is_empty() {
            if let Err(error) = crate::onboarding::notify::dispatch(&services).await {
                tracing::warn!(%error, "notification dispatch failed; will retry");
            }
        }
        if last_metrics.elapsed() >= Duration::from_secs(5) {
            last_metrics = tokio::time::Instant::now();
            if let Ok(depths) = jobs::depth_by_kind(&services.pool).await {
                record_queue_depths(&depths);
            }
        }
        // Busy: look again at once. Idle: wait for the poll interval, a finished job or stop.
        if claimed == 0 || claimed < free {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = stopped.changed() => {}
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}
