//! The reconciliation poller: every `workers.reconcile_interval_secs` (±20% jitter, so
//! instances started together drift apart) it tries to run a pass. Only the instance that takes
//! the cluster-wide advisory lock runs it; the others skip that tick. `0` turns it off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::onboarding::reconcile::{self, ReconcileError, Trigger};
use crate::onboarding::Services;
use crate::settings::ReconciliationSettings;

/// The running poller of this instance.
pub struct Reconciler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Reconciler {
    /// Starts the poller, or returns `None` when `interval_secs` is 0.
    pub fn start(
        services: Services,
        settings: ReconciliationSettings,
        interval_secs: u64,
    ) -> Option<Self> {
        if interval_secs == 0 {
            tracing::info!("reconciliation poller disabled (workers.reconcile_interval_secs = 0)");
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let interval = Duration::from_secs(interval_secs);
        let task = tokio::spawn(run_loop(services, Arc::new(settings), interval, stopped));
        Some(Self { stop, task })
    }

    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Stops the poller: a pass in progress takes no new link, finishes the ones in flight and
    /// records itself (up to `grace`; past that it is dropped, and its lock goes with its
    /// connection).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("the reconciliation pass did not finish in time");
        }
    }
}

/// `interval` scaled by a random factor in [0.8, 1.2).
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.8..1.2))
}

async fn run_loop(
    services: Services,
    settings: Arc<ReconciliationSettings>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(jittered(interval)) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            break;
        }
        match reconcile::run_pass_until(&services, &settings, Trigger::Poll, Some(stopped.clone()))
            .await
        {
            Ok(_) => {}
            Err(ReconcileError::Busy) => {
                tracing::debug!("another instance is reconciling; skipping this tick")
            }
            Err(ReconcileError::Failed(error)) => {
                tracing::warn!(%error, "reconciliation pass failed")
            }
        }
    }
}
