//! Carbn Connect simulator: `x-api-key`, T&C consent and users (after
//! https://docs.carbn.xyz/api-reference).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::faults::enter;
use super::provider::{gateway_section, SimProvider};
use super::state::{lock, Change, SimState, SimStatus, SimUser};
use super::validate::{merge, Checker};
use super::webhooks::{deliver, Build};
use super::SimConfig;
use crate::domain::provider::ProviderId;
use crate::providers::carbn::webhook::{self as carbn_webhook, WebhookSigner};

/// Carbn dev API key (exactly 32 alphanumerics).
pub const DEV_API_KEY: &str = "SimCarbnDevApiKey0123456789abcde";

// A fixed RSA-2048 key pair for the simulator's webhook signatures (development and tests only;
// generated once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`). Never use
// it for anything real: the private key is public in this repository.

/// Carbn dev webhook private key (PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`) the simulator
/// signs with.
pub const DEV_WEBHOOK_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDMFwOWi5zY4GKA
QqsAcuSWzFRp0giQE7x/RCWyFz6QOFBJd4zBFRgPxvyft1w3PfcjDLl0hvaoXe7F
Vd6teNZxIb8MI0UVxmMcxm8zDbkq1mPS3SRKIRltDTlMqDITUZuKNiEGa4okbQZ3
JRrmdqz3ClOycB4+Xdjj/X+rImTtzOp1Xmg98M10n9aF8MGouVW7BT92r1inQi9b
bAWRu2D1SSUygxS/SOK0U4/ITc7ZgVff/cjH6s96VoqknlFcXangwQnNJkPUxeR1
PDwXlmRtlEEdnx8sGZV/m2gGkOYv75QG2zRb88NyUVHBwboXoydNF5T4AT24/fkJ
Fh72LJrfAgMBAAECggEABOne7mkbvxrz3tD8FfguKbVEqQGOBDioFqD45AdBkdj7
5zDneh88Y5DaXywGc9axlFic6cHKvstNfCxw6S3vbReEu9GTkGPPhLoATl3btzzP
IsdWitRY14fJzonUHs6drIpYvt39nEU7B8j5vf0IdVrRy199/ZQRLI1bXVmSzX4m
Qezn/x9de/g8D1LxknVQyEgu6sJLGi3bH9m0e1d0Tyj6P2YLmdzCKMyyH6eO6Tq2
q/wRDV/PouSZan3lCgaEbMwAr+ywowiflgFLJx03VEhyqWYpFxKYWwPv7/zEJEtO
gqn+UwK8Zz7074mX+MtTKcLoMNVWaZP6X/tWp6pNlQKBgQD9Jygf7L/NE91wcsLx
s7luNanMQLp13JmhvPXNQVsas2a3WEfhy6rx9vic4/kVIi1rd0DOGPYxD0u7yNlB
onsXoSu8qzEwQRy5fnqBAXCHUkK9u5DOYX26Q8LILNTppZPdnvlOVH6oDH7+qNIX
GTkr2W3+O+Vm2Ea7TsmMbuHhgwKBgQDOYpoGAdj949HxU/8TJL7pgZO3vigSEHVz
MXV9c3WBIn9Br+QgR/RcYbVxAoGvO0TnkEm5JRgYZTeXpwQQCVmrUZq9OwtnEjLs
gTNjBylHtCNPAHc15s9T38bycmdMmZdDGz8qeFFtLG+DZOPtIdgTBJC+4RHSPYoQ
D732HvkudQKBgAPJFhyEGcojRehsjuW2Xkt7mfJn9WHVzqZQgQx0sbwQerS7KTgD
J6c+njEaZ5sdS7iTq/BpByVsqSFBu53zpAuSaWkE1lN2ZcuQTJypPNmJLV5Q87Vi
V9L1OHBt2zEzPKbPvcKiGNLCfROpypp10hkJw09N7fw/t68NWo4zCkWpAoGAQl48
75+aexLPCY8cYLiZWBfeO+E/m4eFbXTDNoNxjwRb7fC1KJhbAXY+VcgbkhE6OEkT
HCHMnNO3y+HekZWgK1KDs0SQhyW4EIv/zWGZKcDI9ffNXh0KIQu+O2sEwwJFPUQ+
zNaCQNxgQ92m2jPe+0alkWxpQbWed0nIqaQON50CgYAU6NEBpy6oSKaX7skVU+S9
iPxKdR2mS3ImT6eJUAm+g5V7Qv5miWl9tvmj/3qrsy9mMHnMUdf3yhlmQSN7/Zmx
4iwYkRFTjgVjdF3efnP8es6qMAL5xUcy4xF2EK2GIyT8ayM06AoDRurBUwi3JkWc
OSpV1CT+dvtAbY6a+FJkNQ==
-----END PRIVATE KEY-----
";

/// Carbn dev webhook public key (PEM SPKI, `-----BEGIN PUBLIC KEY-----`) that verifies the
/// simulator's signatures: what a gateway configures.
pub const DEV_WEBHOOK_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzBcDlouc2OBigEKrAHLk
lsxUadIIkBO8f0Qlshc+kDhQSXeMwRUYD8b8n7dcNz33Iwy5dIb2qF3uxVXerXjW
cSG/DCNFFcZjHMZvMw25KtZj0t0kSiEZbQ05TKgyE1GbijYhBmuKJG0GdyUa5nas
9wpTsnAePl3Y4/1/qyJk7czqdV5oPfDNdJ/WhfDBqLlVuwU/dq9Yp0IvW2wFkbtg
9UklMoMUv0jitFOPyE3O2YFX3/3Ix+rPelaKpJ5RXF2p4MEJzSZD1MXkdTw8F5Zk
bZRBHZ8fLBmVf5toBpDmL++UBts0W/PDclFRwcG6F6MnTReU+AE9uP35CRYe9iya
3wIDAQAB
-----END PUBLIC KEY-----
";

/// The simulator's Carbn webhook configuration id (`X-Webhook-Id`).
const WEBHOOK_ID: &str = "5b1f3c9e-7a0d-4c8e-9f21-3d6a8b0c4e17";

/// Carbn credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `x-api-key` value (32 alphanumerics).
    pub api_key: String,
    /// PKCS#8 PEM private key that signs webhooks.
    pub webhook_private_key_pem: String,
    /// The matching SPKI PEM public key (what the gateway verifies with).
    pub webhook_public_key_pem: String,
}

impl Config {
    /// The `DEV_*` credentials and key pair.
    pub fn development() -> Self {
        Self {
            api_key: DEV_API_KEY.into(),
            webhook_private_key_pem: DEV_WEBHOOK_PRIVATE_KEY_PEM.into(),
            webhook_public_key_pem: DEV_WEBHOOK_PUBLIC_KEY_PEM.into(),
        }
    }
}

/// What the Carbn simulator keeps.
pub(crate) struct State {
    /// Signs webhooks with `Config::webhook_private_key_pem`.
    signer: WebhookSigner,
    /// Consent id -> the user id that used it.
    consents: Mutex<HashMap<String, Option<String>>>,
}

impl State {
    pub(crate) fn new(config: &Config) -> std::io::Result<Self> {
        let signer = WebhookSigner::from_private_key_pem(&config.webhook_private_key_pem)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("carbn webhook private key: {e}"),
                )
            })?;
        Ok(Self {
            signer,
            consents: Mutex::new(HashMap::new()),
        })
    }
}

/// The Carbn Connect simulator.
pub(crate) struct Simulator;

impl SimProvider for Simulator {
    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/onboarding/")
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        routes(cfg);
    }

    fn render(&self, _state: &SimState, user: &SimUser) -> Value {
        render(user)
    }

    fn fault_error(&self, status: StatusCode, req: &HttpRequest) -> HttpResponse {
        let message = match status.as_u16() {
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal server error",
        };
        error(status, &status.as_u16().to_string(), message, req)
    }

    /// AWS API Gateway answers unknown routes with "Missing Authentication Token".
    fn not_found(&self, req: &HttpRequest) -> HttpResponse {
        error(
            StatusCode::FORBIDDEN,
            "4030",
            "Missing authentication token",
            req,
        )
    }

    fn apply_status(&self, user: &mut SimUser, status: SimStatus) {
        user.status = status;
    }

    /// `USER_STATUS_UPDATE` when the status moves (or is created past the initial one); nothing
    /// for a profile change.
    fn changed(&self, state: &Arc<SimState>, change: Change<'_>, user: &SimUser) {
        if change.notifies_status(user) {
            emit(state, user);
        }
    }

    fn gateway_settings(&self, config: &SimConfig, base_url: &str) -> Map<String, Value> {
        let c = &config.carbn;
        gateway_section(
            base_url,
            [
                ("api_key", c.api_key.clone().into()),
                ("webhook_public_key", c.webhook_public_key_pem.clone().into()),
            ],
        )
    }

    /// Carbn has no variants to follow.
    fn follow_gateway_settings(&self, _config: &mut SimConfig, _section: &Map<String, Value>) {}
}

const BASE: &str = "/onboarding/api/v1";
/// Identity document names the simulator knows (the full enum is not documented publicly).
const IDENTITY_DOCUMENTS: &[&str] = &[
    "national_id",
    "passport",
    "drivers_license",
    "permanent_residency_id",
];

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(format!("{BASE}/tnc")).route(web::post().to(consent)))
        .service(web::resource(format!("{BASE}/users")).route(web::post().to(create_user)))
        .service(web::resource(format!("{BASE}/users/all")).route(web::get().to(list_users)))
        .service(web::resource(format!("{BASE}/users/session")).route(web::post().to(session)))
        .service(
            web::resource(format!("{BASE}/users/{{id}}"))
                .route(web::get().to(get_user))
                .route(web::put().to(update_user)),
        );
}

/// Carbn's (AWS API Gateway) error envelope with a fresh `requestId`.
fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    req: &HttpRequest,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "code": code,
        "httpMethod": req.method().as_str(),
        "message": message,
        "path": req.path(),
        "requestId": uuid::Uuid::new_v4().to_string(),
        "resourcePath": "/onboarding/api/v1/{proxy+}",
    }))
}

fn invalid(checker: &Checker, req: &HttpRequest) -> HttpResponse {
    let message = checker
        .errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    error(
        StatusCode::BAD_REQUEST,
        "4000",
        &format!("Validation failed: {message}"),
        req,
    )
}

fn authenticate(state: &SimState, req: &HttpRequest) -> Result<(), HttpResponse> {
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "4030",
            "Missing authentication token",
            req,
        ));
    };
    if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "4100",
            "API key must be exactly 32 alphanumeric characters",
            req,
        ));
    }
    if key != state.config.carbn.api_key {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "4101",
            "API key not found",
            req,
        ));
    }
    Ok(())
}

async fn guard(state: &SimState, req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    enter(state, ProviderId::Carbn, req, body).await?;
    authenticate(state, req)
}

fn parse_object(body: &[u8], req: &HttpRequest) -> Result<Map<String, Value>, HttpResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "4000",
            "Invalid request body",
            req,
        )),
    }
}

async fn consent(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body, &req) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    c.no_unknown(&body, "", &["tnc_data"]);
    if let Some(tnc) = c.object(&body, "", "tnc_data", true) {
        c.no_unknown(tnc, "tnc_data", &["tnc_accepted", "accepted_at"]);
        if c.boolean(tnc, "tnc_data", "tnc_accepted", true) == Some(false) {
            c.err("tnc_data.tnc_accepted", "must be true");
        }
        if let Some(at) = c.string(tnc, "tnc_data", "accepted_at", true) {
            if OffsetDateTime::parse(at, &Rfc3339).is_err() {
                c.err("tnc_data.accepted_at", "must be an ISO 8601 timestamp");
            }
        }
    }
    if !c.ok() {
        return invalid(&c, &req);
    }
    let id = uuid::Uuid::new_v4().to_string();
    lock(&state.providers.carbn.consents).insert(id.clone(), None);
    HttpResponse::Ok().json(Value::from(id))
}

/// Validates a create (`create = true`) or update body.
fn check_user(c: &mut Checker, body: &Map<String, Value>, create: bool) {
    c.no_unknown(
        body,
        "",
        &[
            "first_name",
            "last_name",
            "email_address",
            "phone_number",
            "user_type",
            "date_of_birth",
            "consent_id",
            "metadata",
            "sharing_consent",
            "identity",
            "documents",
            "address",
        ],
    );
    c.string(body, "", "first_name", create);
    c.string(body, "", "last_name", create);
    c.email(body, "", "email_address", create);
    c.phone(body, "", "phone_number", create, true);
    c.one_of(body, "", "user_type", create, &["individual", "business"]);
    c.birth_date(body, "", "date_of_birth", create);
    if let Some(consent) = c.string(body, "", "consent_id", create) {
        if uuid::Uuid::parse_str(consent).is_err() {
            c.err("consent_id", "must be a UUID");
        }
    }
    c.string(body, "", "metadata", false);
    c.boolean(body, "", "sharing_consent", false);
    if let Some(identity) = c.object(body, "", "identity", create) {
        c.no_unknown(
            identity,
            "identity",
            &[
                "identity_country_code",
                "identity_number",
                "identity_document_name",
            ],
        );
        c.alpha3(identity, "identity", "identity_country_code", true);
        c.string(identity, "identity", "identity_number", true);
        c.one_of(
            identity,
            "identity",
            "identity_document_name",
            true,
            IDENTITY_DOCUMENTS,
        );
    }
    if let Some(documents) = c.array(body, "", "documents", false) {
        for (i, doc) in documents.iter().enumerate() {
            let path = format!("documents[{i}]");
            let Some(doc) = doc.as_object() else {
                c.err(path, "must be an object");
                continue;
            };
            c.no_unknown(
                doc,
                &path,
                &["name", "type", "issuing_country", "document_number"],
            );
            c.string(doc, &path, "name", true);
            c.string(doc, &path, "type", true);
            c.alpha3(doc, &path, "issuing_country", true);
            c.string(doc, &path, "document_number", true);
        }
    }
    if let Some(address) = c.object(body, "", "address", create) {
        c.no_unknown(
            address,
            "address",
            &[
                "line1",
                "line2",
                "city",
                "sub_division",
                "region",
                "country",
                "postal_code",
            ],
        );
        c.string(address, "address", "line1", true);
        c.string(address, "address", "line2", false);
        c.string(address, "address", "city", true);
        c.string(address, "address", "sub_division", false);
        c.string(address, "address", "region", false);
        c.alpha3(address, "address", "country", true);
        c.string(address, "address", "postal_code", true);
    }
}

/// The status guide's odd timestamp format, e.g. `Thu, 04 May 2023 15:40:40.832827000 UTC +00:00`.
fn carbn_time(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second].[subsecond digits:9] UTC +00:00"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// The Carbn user object.
fn render(user: &SimUser) -> Value {
    let p = &user.profile;
    let get = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
    let (status, requirements, rejection_reasons) = match user.status {
        SimStatus::Pending | SimStatus::UnderReview => ("under_review", Value::Null, Value::Null),
        SimStatus::Incomplete => ("incomplete", json!(["proof_of_address"]), Value::Null),
        SimStatus::Approved => ("active", Value::Null, Value::Null),
        SimStatus::Rejected => (
            "rejected",
            Value::Null,
            json!([{"reason": "identity_document_invalid",
                    "developer_reason": "Simulated rejection (magic value or control endpoint)"}]),
        ),
        SimStatus::Suspended => ("paused", Value::Null, Value::Null),
        SimStatus::Closed => ("offboarded", Value::Null, Value::Null),
    };
    let status = user.provider_status.clone().unwrap_or(Value::from(status));
    let mut documents = Vec::new();
    if let Some(name) = p
        .get("identity")
        .and_then(|i| i.get("identity_document_name"))
        .and_then(Value::as_str)
    {
        documents.push(json!({"name": name, "type": "identity_front"}));
        if name != "passport" {
            documents.push(json!({"name": name, "type": "identity_back"}));
        }
    }
    for doc in p
        .get("documents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        documents.push(json!({"name": doc.get("name"), "type": doc.get("type")}));
    }
    let address = p.get("address").map(|a| {
        let field = |k: &str| a.get(k).cloned().unwrap_or(Value::Null);
        json!({
            "line1": field("line1"), "line2": field("line2"), "city": field("city"),
            "country": field("country"), "region": field("region"),
            "sub_division": field("sub_division"), "postal_code": field("postal_code"),
        })
    });
    json!({
        "id": user.id,
        "status": status,
        "documents": documents,
        "address": address,
        "first_name": get("first_name"),
        "last_name": get("last_name"),
        "email_address": get("email_address"),
        "phone_number": get("phone_number"),
        "date_of_birth": get("date_of_birth"),
        "rejection_reasons": rejection_reasons,
        "requirements": requirements,
        "created_at": carbn_time(user.created_at),
        "updated_at": carbn_time(user.updated_at),
    })
}

/// Sends the signed `USER_STATUS_UPDATE` webhook with the user's current status.
fn emit(state: &Arc<SimState>, user: &SimUser) {
    let rendered = render(user);
    let body = serde_json::to_vec(&json!({
        "status": rendered.get("status").cloned().unwrap_or(Value::Null),
        "user_id": user.id,
    }))
    .unwrap_or_default();
    let signature = state.providers.carbn.signer.sign(&body).unwrap_or_default();
    let event_id = uuid::Uuid::new_v4().to_string();
    let build: Build = Box::new(move |_attempt| {
        (
            vec![
                ("Content-Type".into(), "application/json".into()),
                ("User-Agent".into(), "Java/17.0.14".into()),
                (carbn_webhook::EVENT_ID_HEADER.into(), event_id.clone()),
                (carbn_webhook::WEBHOOK_ID_HEADER.into(), WEBHOOK_ID.into()),
                (carbn_webhook::SIGNATURE_HEADER.into(), signature.clone()),
            ],
            body.clone(),
        )
    });
    deliver(
        state,
        ProviderId::Carbn,
        "USER_STATUS_UPDATE".into(),
        &user.id,
        build,
    );
}

fn email_taken(state: &SimState, email: &str, except: Option<&str>) -> bool {
    state
        .lock()
        .candidates(ProviderId::Carbn, &format!("email:{email}"))
        .any(|u| {
            Some(u.id.as_str()) != except
                && u.profile.get("email_address").and_then(Value::as_str) == Some(email)
        })
}

fn new_user(state: &SimState, status: SimStatus, profile: Map<String, Value>) -> SimUser {
    let now = OffsetDateTime::now_utc();
    SimUser {
        id: uuid::Uuid::new_v4().to_string(),
        seq: state.next_seq(),
        provider: ProviderId::Carbn,
        status,
        provider_status: None,
        active: true,
        profile: Value::Object(profile),
        external_id: None,
        user_type: None,
        created_at: now,
        updated_at: now,
    }
}

async fn create_user(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body, &req) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    check_user(&mut c, &body, true);
    if !c.ok() {
        return invalid(&c, &req);
    }
    let consent = body
        .get("consent_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let email = body
        .get("email_address")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if email_taken(&state, &email, None) {
        return error(
            StatusCode::CONFLICT,
            "4090",
            "User with this email_address already exists",
            &req,
        );
    }
    let status = SimStatus::from_email_tag(&email).unwrap_or(SimStatus::Pending);
    let user = new_user(&state, status, body);
    {
        let mut consents = lock(&state.providers.carbn.consents);
        match consents.get_mut(&consent) {
            None => {
                drop(consents);
                return error(StatusCode::BAD_REQUEST, "4000", "Invalid consent_id", &req);
            }
            Some(Some(_)) => {
                drop(consents);
                return error(StatusCode::CONFLICT, "4090", "Consent already used", &req);
            }
            Some(slot) => *slot = Some(user.id.clone()),
        }
    }
    let rendered = render(&user);
    state.into_inner().insert_user(user);
    HttpResponse::Created().json(rendered)
}

async fn list_users(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let users: Vec<Value> = state.users(ProviderId::Carbn).iter().map(render).collect();
    HttpResponse::Ok().json(users)
}

fn lookup(state: &SimState, req: &HttpRequest) -> Result<SimUser, HttpResponse> {
    let id = req.match_info().get("id").unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "4000",
            "user_id must be a UUID",
            req,
        ));
    }
    state
        .user(ProviderId::Carbn, id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "4040", "User not found", req))
}

async fn get_user(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    match lookup(&state, &req) {
        Ok(user) => HttpResponse::Ok().json(render(&user)),
        Err(response) => response,
    }
}

async fn update_user(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let user = match lookup(&state, &req) {
        Ok(u) => u,
        Err(response) => return response,
    };
    let patch = match parse_object(&body, &req) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    check_user(&mut c, &patch, false);
    if !c.ok() {
        return invalid(&c, &req);
    }
    if let Some(consent) = patch.get("consent_id").and_then(Value::as_str) {
        if !lock(&state.providers.carbn.consents).contains_key(consent) {
            return error(StatusCode::BAD_REQUEST, "4000", "Invalid consent_id", &req);
        }
    }
    if let Some(email) = patch.get("email_address").and_then(Value::as_str) {
        if email_taken(&state, email, Some(&user.id)) {
            return error(
                StatusCode::CONFLICT,
                "4090",
                "User with this email_address already exists",
                &req,
            );
        }
    }
    {
        let mut store = state.lock();
        if let Some(u) = store.users_mut(ProviderId::Carbn).get_mut(&user.id) {
            merge(&mut u.profile, &Value::Object(patch));
            u.updated_at = OffsetDateTime::now_utc();
            let updated = u.clone();
            store.index_user(&updated);
        }
    }
    let state = state.into_inner();
    state.after_update(ProviderId::Carbn, &user.id, false);
    match state.user(ProviderId::Carbn, &user.id) {
        Some(u) => HttpResponse::Ok().json(render(&u)),
        None => HttpResponse::InternalServerError().finish(),
    }
}

async fn session(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body, &req) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    c.no_unknown(&body, "", &["email", "currency", "redirect_url"]);
    let email = c.email(&body, "", "email", true);
    if let Some(currency) = c.string(&body, "", "currency", true) {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            c.err("currency", "must be an ISO 4217 code");
        }
    }
    if let Some(url) = c.string(&body, "", "redirect_url", true) {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            c.err("redirect_url", "must be a URI");
        }
    }
    let Some(email) = email.filter(|_| c.ok()) else {
        return invalid(&c, &req);
    };
    let state: Arc<SimState> = state.into_inner();
    let mut profile = Map::new();
    profile.insert("email_address".into(), Value::from(email.clone()));
    let status = SimStatus::from_email_tag(&email).unwrap_or(SimStatus::Pending);
    let user = new_user(&state, status, profile);
    let id = user.id.clone();
    state.insert_user(user);
    HttpResponse::Ok().json(json!({
        "onboarding_url": format!("https://checkout.sim.carbn.local/kyc?session={}", uuid::Uuid::new_v4()),
        "user_id": id,
    }))
}
