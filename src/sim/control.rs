//! `/_sim/…` control endpoints (not part of any provider API).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::state::{ActiveFault, FaultSpec, SimState, SimStatus, SimUser};
use super::{simulator, WebhookTargets};
use crate::domain::provider::ProviderId;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_sim")
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
            .route("/faults", web::post().to(add_fault))
            .route("/faults", web::get().to(list_faults))
            .route("/faults", web::delete().to(clear_faults))
            .route("/faults/{id}", web::delete().to(remove_fault))
            .route("/requests", web::get().to(list_requests))
            .route("/requests", web::delete().to(clear_requests))
            .route("/webhooks", web::get().to(list_webhooks))
            .route("/webhooks", web::delete().to(clear_webhooks))
            .route("/webhook-targets", web::put().to(set_targets))
            .route("/webhook-targets", web::get().to(get_targets))
            .route("/{provider}/users", web::get().to(dump_users))
            .route("/{provider}/users/{id}/status", web::post().to(set_status)),
    );
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message.into() }))
}

/// A provider id, case-insensitive (as the control endpoints have always taken it).
fn parse_provider(name: &str) -> Option<ProviderId> {
    ProviderId::from_wire(&name.to_ascii_lowercase())
}

fn provider(req: &HttpRequest) -> Result<ProviderId, HttpResponse> {
    let name = req.match_info().get("provider").unwrap_or_default();
    parse_provider(name).ok_or_else(|| {
        HttpResponse::NotFound().json(json!({ "error": format!("unknown provider {name}") }))
    })
}

/// The provider's own view of a user.
fn view(state: &SimState, user: &SimUser) -> Value {
    simulator(user.provider).render(state, user)
}

async fn dump_users(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let provider = match provider(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let users: Vec<Value> = state
        .users(provider)
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "sim_status": u.status,
                "active": u.active,
                "external_id": u.external_id,
                "user": view(&state, u),
                "profile": u.profile,
                "verification": u.verification,
            })
        })
        .collect();
    HttpResponse::Ok().json(users)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: Option<String>,
    provider_status: Option<Value>,
    #[serde(default = "yes")]
    webhook: bool,
}

fn yes() -> bool {
    true
}

async fn set_status(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let provider = match provider(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let change: StatusChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    let status = match change.status.as_deref().map(SimStatus::parse) {
        Some(None) => return bad_request("unknown status"),
        Some(Some(s)) => Some(s),
        None if change.provider_status.is_none() => {
            return bad_request("give status and/or provider_status")
        }
        None => None,
    };
    // actix decodes %20 in match_info; IIBANs with spaces arrive decoded.
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let state = state.into_inner();
    match state.set_status(
        provider,
        &id,
        status,
        change.provider_status,
        change.webhook,
    ) {
        Some(user) => HttpResponse::Ok().json(view(&state, &user)),
        None => HttpResponse::NotFound().json(json!({ "error": "unknown user" })),
    }
}

async fn add_fault(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(format!("invalid fault: {e}")),
    };
    if !(0.0..=1.0).contains(&spec.error_rate) {
        return bad_request("error_rate must be within 0..=1");
    }
    let mut store = state.lock();
    let id = store.faults.iter().map(|f| f.id).max().unwrap_or(0) + 1;
    let fault = ActiveFault { id, spec, hits: 0 };
    store.faults.push(fault.clone());
    HttpResponse::Created().json(fault)
}

async fn list_faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.lock().faults)
}

async fn clear_faults(state: web::Data<SimState>) -> HttpResponse {
    let mut store = state.lock();
    let cleared = store.faults.len();
    store.faults.clear();
    HttpResponse::Ok().json(json!({ "cleared": cleared }))
}

/// Ends one fault, leaving the others (a chaos schedule overlaps faults at several providers).
async fn remove_fault(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let Some(id) = req
        .match_info()
        .get("id")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return bad_request("fault id must be a number");
    };
    let mut store = state.lock();
    match store.faults.iter().position(|f| f.id == id) {
        Some(i) => HttpResponse::Ok().json(store.faults.remove(i)),
        None => HttpResponse::NotFound().json(json!({ "error": "unknown fault" })),
    }
}

#[derive(serde::Deserialize)]
struct RequestQuery {
    provider: Option<String>,
}

async fn list_requests(
    state: web::Data<SimState>,
    query: web::Query<RequestQuery>,
) -> HttpResponse {
    let provider = match query.provider.as_deref() {
        None | Some("") => None,
        Some(name) => match parse_provider(name) {
            Some(p) => Some(p),
            None => return bad_request(format!("unknown provider {name}")),
        },
    };
    HttpResponse::Ok().json(state.requests(provider))
}

async fn clear_requests(state: web::Data<SimState>) -> HttpResponse {
    let mut store = state.lock();
    let cleared = store.requests.len();
    store.requests.clear();
    HttpResponse::Ok().json(json!({ "cleared": cleared }))
}

async fn list_webhooks(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.webhook_deliveries())
}

async fn clear_webhooks(state: web::Data<SimState>) -> HttpResponse {
    let mut store = state.lock();
    let cleared = store.webhooks.len();
    store.webhooks.clear();
    HttpResponse::Ok().json(json!({ "cleared": cleared }))
}

async fn set_targets(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<WebhookTargets>(&body) {
        Ok(targets) => {
            state.set_webhook_targets(targets.clone());
            HttpResponse::Ok().json(targets)
        }
        Err(e) => bad_request(format!("invalid targets: {e}")),
    }
}

async fn get_targets(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.lock().webhook_targets)
}
