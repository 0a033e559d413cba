//! `/v1/me`: who the caller's API key is, so a client (the console) shows only what it may do.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemDocument};
use super::{authorize_any, AppState};

/// The calling API key: its configured name (never the key) and its scopes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"key_name": "ops-console", "scopes": ["users:read", "users:write", "ops"]}))]
pub struct MeResource {
    pub key_name: String,
    /// `users:read`, `users:write`, `ops`: as configured for the key.
    pub scopes: Vec<String>,
}

/// The calling API key.
///
/// Any known key may ask (no scope needed).
#[utoipa::path(
    get, path = "/v1/me", tag = "operations",
    responses(
        (status = 200, description = "The key's name and scopes", body = MeResource),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_me(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let principal = authorize_any(&req, &state, &[])?;
    Ok(HttpResponse::Ok().json(MeResource {
        key_name: principal.name.to_string(),
        scopes: principal
            .scopes()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    }))
}
