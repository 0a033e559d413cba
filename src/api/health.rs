//! Liveness, readiness and metrics.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process is serving", example = json!({"status": "ok"}))))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the database answers. 503 while it does not; recovers on its own when it returns.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", example = json!({"status": "ready", "checks": {"database": "ok"}})),
        (status = 503, description = "The database is unreachable", example = json!({"status": "unavailable", "checks": {"database": "unreachable"}})),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.readiness.check().await {
        HttpResponse::Ok().json(json!({ "status": "ready", "checks": { "database": "ok" } }))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "1"))
            .json(json!({ "status": "unavailable", "checks": { "database": "unreachable" } }))
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = &state.pool;
    crate::telemetry::record_db_pool(
        pool.size(),
        pool.num_idle(),
        state.settings.database.max_connections,
    );
    crate::telemetry::record_requests_in_flight(
        state.admission.in_flight(),
        state.admission.limit(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::metrics().render())
}
