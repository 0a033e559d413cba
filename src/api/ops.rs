//! `/v1/ops/overview` (scope `ops`): the population at a glance, for the ops console's first page.

use actix_web::{web, HttpRequest, HttpResponse};

use super::problem::{Problem, ProblemDocument};
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::onboarding::overview::{self, Overview};

/// The ops overview.
///
/// Links by status per provider, the drift report's counts by kind (`GET /v1/reconciliation`
/// lists the rows), failed jobs by kind, webhook deliveries refused for their signature in the
/// last 60 minutes per provider (counted in the database by every instance), and the last
/// reconciliation pass. Counts only; no personal data.
#[utoipa::path(
    get, path = "/v1/ops/overview", tag = "operations",
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `ops`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_overview(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::Ops)?;
    let settings = &state.settings.reconciliation;
    let overview = overview::overview(&state.services, settings).await?;
    Ok(HttpResponse::Ok().json(overview))
}
