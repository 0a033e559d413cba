//! Logs (tracing: JSON in production, human-readable in development) and Prometheus metrics.
//!
//! What is logged is chosen so no PII or secret can reach a log line: requests are logged by
//! route template, never by raw path, query or body; domain types redact PII in `Debug`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

pub mod json_log;
pub mod log_writer;

/// The JSON log layer writing to `writer` (production writes to stdout; tests capture it).
pub fn json_layer<S, W>(
    writer: W,
) -> tracing_subscriber::fmt::Layer<S, json_log::JsonMembers, json_log::JsonLine, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(json_log::JsonMembers)
        .event_format(json_log::JsonLine)
        .with_writer(writer)
}

/// Installs the global tracing subscriber once; later calls are no-ops (tests start many apps).
///
/// The filter: `RUST_LOG` when set (any `EnvFilter` directive), else `log.level`. A level or
/// `target=level` list (all `log.level` usually holds) is a static [`Targets`] filter, which
/// costs nothing per span; only directives that need `EnvFilter` (span or field filters) pay
/// its bookkeeping on every span entered and left. JSON lines go to stdout in batches
/// ([`log_writer`]).
///
/// [`Targets`]: tracing_subscriber::filter::Targets
pub fn init_logging(settings: &LogSettings) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let targets = from_env
        .is_none()
        .then(|| {
            settings
                .level
                .parse::<tracing_subscriber::filter::Targets>()
                .ok()
        })
        .flatten();
    let env_filter = match (from_env, &targets) {
        (Some(filter), _) => Some(filter),
        (None, Some(_)) => None,
        (None, None) => {
            Some(EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info")))
        }
    };
    let registry = tracing_subscriber::registry()
        .with(targets)
        .with(env_filter);
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(json_layer(log_writer::BatchedWriter::stdout()))
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init(),
    };
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("static bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding test harness);
        // the handle then renders an empty registry rather than failing start-up.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Histogram handles of routed requests, by method, route template and status: registering a
/// labelled histogram (three label strings, the key's hash, the registry's lock) cost more per
/// request than recording into it. Per thread, so no lock; bounded, since clients choose the
/// method (past the bound a request is recorded through the registry, as before).
type RoutedKey = (actix_web::http::Method, &'static str, u16);

thread_local! {
    static ROUTED_DURATIONS: std::cell::RefCell<std::collections::HashMap<RoutedKey, metrics::Histogram>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

const ROUTED_HANDLES_PER_THREAD: usize = 1024;

/// [`record_http_request`] for a request the router matched to a resource of `route`.
pub fn record_routed_request(
    method: &actix_web::http::Method,
    route: &'static str,
    status: u16,
    latency: Duration,
) {
    let seconds = latency.as_secs_f64();
    let recorded = ROUTED_DURATIONS.with(|handles| {
        let mut handles = handles.borrow_mut();
        let key = (method.clone(), route, status);
        if let Some(histogram) = handles.get(&key) {
            histogram.record(seconds);
            return true;
        }
        if handles.len() >= ROUTED_HANDLES_PER_THREAD {
            return false;
        }
        let histogram = http_request_histogram(method.as_str(), route, status);
        histogram.record(seconds);
        handles.insert(key, histogram);
        true
    });
    if !recorded {
        http_request_histogram(method.as_str(), route, status).record(seconds);
    }
}

fn http_request_histogram(method: &str, route: &str, status: u16) -> metrics::Histogram {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::histogram!("gateway_http_request_duration_seconds", &labels)
}

pub fn record_http_request(method: &str, route: &str, status: u16, latency: Duration) {
    http_request_histogram(method, route, status).record(latency.as_secs_f64());
}

/// One inbound webhook signature check: `result` is `valid`, `missing`, `invalid`, `expired`
/// (Kraken timestamp), `unconfigured` (no webhook credentials) or `unknown_provider`.
pub fn record_webhook_verification(provider: &str, result: &str) {
    let labels = [
        ("provider", provider.to_owned()),
        ("result", result.to_owned()),
    ];
    metrics::counter!("gateway_webhook_verifications_total", &labels).increment(1);
}

pub fn record_idempotent_replay() {
    metrics::counter!("gateway_idempotent_replays_total").increment(1);
}

pub fn record_provider_call(provider: &str, operation: &str, outcome: &str, latency: Duration) {
    let labels = [
        ("provider", provider.to_owned()),
        ("operation", operation.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::histogram!("gateway_provider_call_duration_seconds", &labels)
        .record(latency.as_secs_f64());
}

pub fn record_job_failure(kind: &str, reason: &str) {
    metrics::counter!(
        "gateway_job_failures_total",
        "kind" => kind.to_owned(),
        "reason" => reason.to_owned()
    )
    .increment(1);
}

pub fn record_job_depth(kind: &str, depth: i64, oldest_age_secs: f64) {
    metrics::gauge!("gateway_job_queue_depth", "kind" => kind.to_owned()).set(depth as f64);
    metrics::gauge!("gateway_job_oldest_age_seconds", "kind" => kind.to_owned())
        .set(oldest_age_secs);
}

/// Rows of `table` not yet sealed under the current data key (rotation progress).
pub fn record_encryption_stale_rows(table: &str, count: i64) {
    metrics::gauge!("gateway_encryption_stale_rows", "table" => table.to_owned()).set(count as f64);
}

/// Links of each drift-report kind (`status_drift`, `missing_at_provider`, `stale`,
/// `submission_failed`, `needs_review`, `failed_jobs`), as of the last pass or report.
pub fn record_reconciliation_drift(kind: &str, count: i64) {
    metrics::gauge!("gateway_reconciliation_drift", "kind" => kind.to_owned()).set(count as f64);
}

tokio::task_local! {
    static PROVIDER_TIME: Arc<AtomicU64>;
}

/// Time the current request spent waiting on provider HTTP calls, in microseconds; shared
/// between the request middleware (which reads it for `Server-Timing`) and the provider client
/// (which adds every call's elapsed time to it).
#[derive(Debug, Clone, Default)]
pub struct ProviderTime(Arc<AtomicU64>);

impl ProviderTime {
    /// Runs `future` with provider calls made on its task counted in this accumulator.
    pub async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        PROVIDER_TIME.scope(self.0.clone(), future).await
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the API request being handled on this task, if any (the HTTP layer sets it; the
/// provider clients log it with every call).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `future` as the handling of the request with this id.
pub async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// Adds one provider call's elapsed time to the current request's total (a no-op outside a
/// request, e.g. in the workers). Concurrent calls of one request are summed.
pub fn add_provider_time(elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let _ = PROVIDER_TIME.try_with(|total| total.fetch_add(micros, Ordering::Relaxed));
}

/// The `Server-Timing` value of a finished request: the gateway's whole handling time and the
/// part of it spent waiting on providers, in milliseconds (so a client or a benchmark can tell
/// the gateway's own share from the provider's).
pub fn server_timing(total: Duration, provider: Duration) -> String {
    format!(
        "gateway;dur={:.3}, provider;dur={:.3}",
        total.as_secs_f64() * 1000.0,
        provider.as_secs_f64() * 1000.0
    )
}

/// API requests in flight and the admission limit (refreshed at each scrape; limit 0: none).
pub fn record_requests_in_flight(in_flight: usize, limit: usize) {
    metrics::gauge!("gateway_http_requests_in_flight").set(in_flight as f64);
    metrics::gauge!("gateway_http_requests_in_flight_limit").set(limit as f64);
}

/// An API request refused with 503 because `server.max_requests_in_flight` were in flight.
pub fn record_request_shed() {
    metrics::counter!("gateway_http_requests_shed_total").increment(1);
}

/// The database pool's size, idle connections and configured maximum (refreshed at each
/// scrape): in use = size - idle; saturation = in use / max.
pub fn record_db_pool(size: u32, idle: usize, max: u32) {
    metrics::gauge!("gateway_db_pool_connections").set(f64::from(size));
    metrics::gauge!("gateway_db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("gateway_db_pool_max_connections").set(f64::from(max));
}
