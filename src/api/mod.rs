//! The HTTP edge: parse and check requests, call one use-case, answer JSON or a problem
//! document. No SQL and no provider calls here.

pub mod admission;
pub mod body;
pub mod compression;
pub mod console;
pub mod documents;
pub mod health;
pub mod idempotency;
pub mod jobs;
pub mod me;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod providers;
pub mod query;
pub mod rate_limit;
pub mod reconciliation;
pub mod request_id;
pub mod resources;
pub mod sessions;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use sqlx::PgPool;

use crate::auth::{ApiKeyRegistry, Principal, Scope};
use crate::settings::Settings;
use problem::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Readiness's own database connection (`/health/ready`).
    pub readiness: Arc<crate::store::ReadinessProbe>,
    pub rate_limiter: Arc<rate_limit::RateLimiter>,
    /// Webhook deliveries, keyed by provider and peer address.
    pub webhook_rate_limiter: Arc<rate_limit::RateLimiter>,
    pub services: crate::onboarding::Services,
    pub api_keys: ApiKeyRegistry,
    pub settings: Arc<Settings>,
    /// API requests in flight, and the limit beyond which they are refused (503).
    pub admission: Arc<admission::Admission>,
    /// Document uploads read and stored at once (`documents.max_concurrent_uploads`).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// Authenticates the request's bearer key and checks it has `scope`.
pub fn authorize(req: &HttpRequest, state: &AppState, scope: Scope) -> Result<Principal, Problem> {
    authorize_any(req, state, &[scope])
}

/// Authenticates the request's bearer key and checks it has one of `scopes` (any known key
/// when `scopes` is empty).
pub fn authorize_any(
    req: &HttpRequest,
    state: &AppState,
    scopes: &[Scope],
) -> Result<Principal, Problem> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = state.api_keys.authorize_any(header, scopes)?;
    if let Err(wait) = state.rate_limiter.check(&principal.name) {
        return Err(Problem::rate_limited(
            wait,
            "Too many requests for this API key",
        ));
    }
    Ok(principal)
}

/// A resource's answer to a method it does not have: 405 with `Allow`.
fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<Result<HttpResponse, Problem>> + Clone {
    move || std::future::ready(Err(Problem::method_not_allowed(allow)))
}

async fn not_found() -> Result<HttpResponse, Problem> {
    Err(Problem::not_found("no such endpoint"))
}

/// A resource at `path` that carries its own template (metrics and logs label by it).
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path).app_data(request_id::RouteTemplate(path))
}

/// All routes. Each resource lists its methods; any other method is a 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/users")
            .route(web::post().to(users::create_user))
            .route(web::get().to(users::list_users))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        resource("/v1/users/{id}")
            .route(web::get().to(users::get_user))
            .route(web::patch().to(users::patch_user))
            .route(web::delete().to(users::erase_user))
            .default_service(web::to(method_not_allowed("GET, PATCH, DELETE"))),
    )
    .service(
        resource("/v1/users/{id}/providers")
            .route(web::post().to(users::link_provider))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/users/{id}/documents")
            .route(web::post().to(documents::upload_document))
            .route(web::get().to(documents::list_documents))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        resource("/v1/users/{id}/documents/{document_id}")
            .route(web::get().to(documents::get_document))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/users/{id}/sync")
            .route(web::post().to(users::sync_user))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/users/{id}/reveal")
            .route(web::post().to(users::reveal_fields))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/me")
            .route(web::get().to(me::get_me))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/users/{id}/requirements")
            .route(web::get().to(providers::user_requirements))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/users/{id}/verification-sessions")
            .route(web::post().to(sessions::create_session))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/jobs")
            .route(web::get().to(jobs::list_jobs))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/jobs/retry")
            .route(web::post().to(jobs::retry_jobs))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/jobs/{id}/retry")
            .route(web::post().to(jobs::retry_job))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/ops/overview")
            .route(web::get().to(ops::get_overview))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/reconciliation")
            .route(web::get().to(reconciliation::get_report))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/reconciliation/runs")
            .route(web::post().to(reconciliation::run_now))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/providers")
            .route(web::get().to(providers::list_providers))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/users/{id}/events")
            .route(web::get().to(users::list_events))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/webhooks/{provider}")
            .route(web::post().to(webhooks::receive))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        resource("/health/live")
            .route(web::get().to(health::live))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/health/ready")
            .route(web::get().to(health::ready))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/docs")
            .route(web::get().to(openapi::docs_redirect))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(openapi::swagger_ui())
    .service(
        resource("/console")
            .route(web::get().to(console::redirect))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        resource("/console/{file:.*}")
            .route(web::get().to(console::file))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .default_service(web::to(not_found));
}
