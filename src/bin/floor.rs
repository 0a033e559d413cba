//! `floor`: the benchmark's same-stack floor (README "Performance", `scripts/bench.sh`).
//!
//! ```text
//! floor [--config PATH] [--port N] [--sim URL]
//! ```
//! The work the gateway's `GET /v1/users/{id}`, `GET /v1/users?provider=…&limit=…` and
//! `POST /v1/users` do, with nothing else: actix-web with no middleware (no request id, span,
//! log line, metrics, admission, rate limit, compression or `Server-Timing`), three routes, the
//! bearer key's SHA-256 looked up among the configured keys, and the gateway's own use-case
//! calls for the rest, because they are the statements and the provider call being measured:
//! the user+links statement and the AES-GCM open of the profile for a read; the list's two
//! statements; for a create the same parse, the one statement committing the user, its link,
//! its claimed job and its event before the provider call, the same simulator call through the
//! same connector, and the one statement recording the answer. The answers are the gateway's
//! bytes (`tests/api/floor.rs` checks them). Errors answer the gateway's problem documents.
//!
//! Settings load as the gateway's do (`config/`, `GATEWAY_CONFIG_FILE` or `--config`,
//! `GATEWAY__…`, `DATABASE_URL`); the database must already be migrated (the gateway does that).
//! `--port` overrides `server.port` (0: any free port); `--sim URL` points every provider at
//! simulators serving there with their development credentials. Prints
//! `floor listening on PORT` once it serves.

// Problem documents are large by design and built only on the cold error path (as in the lib).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use onboarding_gateway::api::problem::Problem;
use onboarding_gateway::api::query::{encode_id_cursor, DEFAULT_PAGE, MAX_PAGE};
use onboarding_gateway::api::resources::{UserInView, UserList, UserResource};
use onboarding_gateway::app::{build_services, simulator_sections};
use onboarding_gateway::auth::{ApiKeyRegistry, Scope};
use onboarding_gateway::domain::parse_create_request;
use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::onboarding::{self, Services};
use onboarding_gateway::providers::registry::ProviderRegistry;
use onboarding_gateway::settings::{ConfigSources, Settings};
use onboarding_gateway::store::users::UserFilter;

/// The gateway's allocator, so the comparison is of the layers, not of allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway's body limit for JSON requests.
const MAX_BODY_BYTES: usize = 1024 * 1024;

struct Floor {
    services: Services,
    keys: ApiKeyRegistry,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = None;
    let mut sim = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--port" => port = iter.next().and_then(|p| p.parse::<u16>().ok()),
            "--sim" => sim = iter.next().cloned(),
            _ => {}
        }
    }
    let mut settings = match ConfigSources::from_env(&args).and_then(|s| Settings::load(&s)) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Some(port) = port {
        settings.server.port = port;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Warnings and errors only: a request's own log lines are one of the layers it leaves out.
    settings.log.level = "warn".into();
    onboarding_gateway::telemetry::init_logging(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(settings, sim)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("floor: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, sim: Option<String>) -> Result<(), String> {
    let keyring = onboarding_gateway::crypto::Keyring::for_environment(
        &settings.encryption,
        settings.is_production(),
    )
    .map_err(|e| e.0)?;
    let sections = match &sim {
        Some(url) => simulator_sections(&onboarding_gateway::sim::SimConfig::development(), url),
        None => BTreeMap::new(),
    };
    let providers = ProviderRegistry::build(&settings.providers, &settings.outbound, &sections)?;
    let pool = onboarding_gateway::store::pool(&settings.database).map_err(|e| e.to_string())?;
    let services = build_services(&settings, pool, Arc::new(providers), Arc::new(keyring))
        .map_err(|e| e.to_string())?;
    let floor = web::Data::new(Floor {
        services,
        keys: ApiKeyRegistry::new(&settings.auth.api_keys),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(floor.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/v1/users/{id}", web::get().to(get_user))
            .route("/v1/users", web::get().to(list_users))
            .route("/v1/users", web::post().to(create_user))
    })
    .bind((settings.server.host.as_str(), settings.server.port))
    .map_err(|e| e.to_string())?;
    let port = server.addrs().first().map(|a| a.port()).unwrap_or_default();
    println!("floor listening on {port}");
    server.run().await.map_err(|e| e.to_string())
}

fn authorize(req: &HttpRequest, floor: &Floor, scope: Scope) -> Result<(), Problem> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    floor.keys.authorize(header, scope)?;
    Ok(())
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

async fn get_user(
    req: HttpRequest,
    floor: web::Data<Floor>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &floor, Scope::UsersRead)?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| Problem::not_found("no such user"))?;
    let view = onboarding::users::get(&floor.services, id).await?;
    let body = serde_json::to_vec(&UserResource::from(view)).expect("a user serialises");
    Ok(json(StatusCode::OK, body))
}

async fn list_users(req: HttpRequest, floor: web::Data<Floor>) -> Result<HttpResponse, Problem> {
    authorize(&req, &floor, Scope::UsersRead)?;
    let mut filter = UserFilter::default();
    let mut limit = DEFAULT_PAGE;
    for pair in req.query_string().split('&') {
        match pair.split_once('=') {
            Some(("provider", value)) => {
                let provider = value
                    .parse::<ProviderId>()
                    .map_err(|_| Problem::bad_request("provider: unknown"))?;
                filter.provider = Some(provider.as_str().to_owned());
            }
            Some(("limit", value)) => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| Problem::bad_request("limit: 1 to 100"))?;
            }
            _ => return Err(Problem::bad_request("the floor takes provider and limit")),
        }
    }
    let (views, has_more) = onboarding::users::list(&floor.services, &filter, None, limit).await?;
    let next_cursor = if has_more {
        views.last().map(|v| encode_id_cursor(v.user.id))
    } else {
        None
    };
    let page = UserList {
        data: views
            .into_iter()
            .map(|view| UserInView::Full(UserResource::from(view)))
            .collect(),
        next_cursor,
    };
    Ok(json(
        StatusCode::OK,
        serde_json::to_vec(&page).expect("a page serialises"),
    ))
}

async fn create_user(
    req: HttpRequest,
    floor: web::Data<Floor>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    authorize(&req, &floor, Scope::UsersWrite)?;
    let body: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| Problem::bad_request("the body is not JSON"))?;
    let (user, providers) = parse_create_request(&body).map_err(Problem::validation)?;
    // No Idempotency-Key here (the benchmark sends none), so no request fingerprint.
    let view = onboarding::users::create(&floor.services, user, providers, None).await?;
    let body = serde_json::to_vec(&UserResource::from(view)).expect("a user serialises");
    Ok(json(StatusCode::CREATED, body))
}
