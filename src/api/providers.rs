//! `/v1/providers` and `/v1/users/{id}/requirements`: what is configured, and what each
//! provider still needs from a user.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemDocument};
use super::{authorize, AppState};
use crate::auth::Scope;
use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;
use crate::domain::verification::NextAction;
use crate::onboarding;
use crate::providers::registry::ProviderState;
use crate::providers::requirements::required_fields;

/// A configured provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResource {
    /// `kraken`, `killb` or `carbn`.
    pub id: ProviderId,
    /// Whether new users can be routed to it.
    pub enabled: bool,
    /// `enabled`, `disabled` or `unconfigured`.
    pub state: String,
    /// Why it cannot be used, when it cannot.
    pub reason: Option<String>,
    /// The host of its base URL.
    pub base_url_host: Option<String>,
    /// True when served by the built-in simulator (local runs).
    pub simulated: bool,
    /// Countries routed to it by `[[routing.rules]]`.
    pub routing_countries: Vec<String>,
    /// Whether it is `routing.default_provider`.
    pub default: bool,
    /// Canonical fields it requires beyond the base set.
    pub required_fields: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderResource>,
}

/// List the configured providers.
#[utoipa::path(
    get, path = "/v1/providers", tag = "providers",
    responses(
        (status = 200, description = "Every known provider with its state, routing and required fields", body = ProviderList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_providers(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let routing = &state.settings.routing;
    let data = state
        .services
        .providers
        .entries()
        .map(|entry| {
            let (label, reason) = match &entry.state {
                ProviderState::Enabled => ("enabled", None),
                ProviderState::Disabled => {
                    ("disabled", Some("disabled in the configuration".to_owned()))
                }
                ProviderState::Unconfigured(reason) => ("unconfigured", Some(reason.clone())),
            };
            ProviderResource {
                id: entry.id,
                enabled: entry.state == ProviderState::Enabled,
                state: label.to_owned(),
                reason,
                base_url_host: entry.host.clone(),
                simulated: entry.simulated,
                routing_countries: routing
                    .rules
                    .iter()
                    .filter(|r| r.provider == entry.id)
                    .flat_map(|r| r.countries.iter().cloned())
                    .collect(),
                default: routing.default_provider == Some(entry.id),
                required_fields: required_fields(entry.id)
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ProviderList { data }))
}

/// What one provider still needs for a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderRequirements {
    pub provider: ProviderId,
    /// Whether the user has a link at this provider.
    pub linked: bool,
    /// The link's status, when linked.
    pub status: Option<LinkStatus>,
    /// Canonical fields the user lacks for this provider (JSON paths).
    pub missing_fields: Vec<String>,
    /// The provider's outstanding actions as it reported them (Kraken `required_actions`,
    /// Carbn `requirements`/`rejection_reasons`, KillB access level).
    #[schema(value_type = Vec<Object>)]
    pub provider_requirements: Vec<serde_json::Value>,
    /// What to do next, in the canonical vocabulary: every provider value above mapped onto one
    /// action (an unknown one as `contact_support` with `unrecognised: true`), then the missing
    /// canonical fields as one `update_field` action with code `missing_fields`.
    pub actions: Vec<NextAction>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequirementsList {
    pub data: Vec<ProviderRequirements>,
}

/// What each provider still needs from a user.
///
/// For every linked provider and every enabled provider the user could be linked to: the
/// canonical fields still missing, the provider's own outstanding actions as it reported them,
/// and `actions[]`, the next actions in one vocabulary (`update_field`, `upload_document`,
/// `open_link`, `accept_terms`, `wait`, `contact_support`; README "Verification").
#[utoipa::path(
    get, path = "/v1/users/{id}/requirements", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "The gateway's user id")),
    responses(
        (status = 200, description = "Per provider: missing fields, outstanding actions as reported, and the next actions", body = RequirementsList),
        (status = 401, description = "Missing or unknown API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `users:read`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`user_erased`: the user's personal data was erased (`erased_at` says when)", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn user_requirements(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &state, Scope::UsersRead)?;
    let id =
        uuid::Uuid::parse_str(&path).map_err(|_| Problem::not_found("no user with this id"))?;
    let data = onboarding::users::requirements(&state.services, id)
        .await?
        .into_iter()
        .map(|r| ProviderRequirements {
            provider: r.provider,
            linked: r.link.is_some(),
            status: r.link.as_ref().map(|l| l.status),
            missing_fields: r.missing_fields.into_iter().map(|e| e.field).collect(),
            provider_requirements: match r.link.map(|l| l.requirements.0) {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            },
            actions: r.actions,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RequirementsList { data }))
}
