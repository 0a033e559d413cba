//! Carbn Connect simulator: `x-api-key`, T&C consent, users and the hosted onboarding session
//! (after https://docs.carbn.xyz/api-reference and
//! https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session).
//!
//! Carbn documents no document upload: identity images reach it through the hosted session (a
//! checkout page), which the simulator serves itself at `/_sim/carbn/checkout`. Completing it
//! (the page's form or `POST /_sim/carbn/sessions/complete`) puts the user under review and,
//! after the review delay, in the chosen outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::faults::enter;
use super::page;
use super::provider::{gateway_section, SimProvider};
use super::state::{lock, Change, SimState, SimStatus, SimUser};
use super::validate::{merge, timestamp, Checker};
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
    /// Lifetime of an onboarding session (the `exp` of its `session` JWT; Carbn does not
    /// document one).
    pub session_ttl: Duration,
    /// How an `incomplete` user's `requirements` look (Carbn documents only `null`).
    pub requirements_shape: RequirementsShape,
}

/// The shape of `requirements` for an `incomplete` user. Carbn's examples only show `null`; its
/// status guide copies Bridge's wording, so Bridge's shapes are the likely non-null ones
/// (https://apidocs.bridge.xyz/api-reference/customers/get-all-customers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequirementsShape {
    /// `null`.
    Null,
    /// `["proof_of_address"]`, like Bridge's `requirements_due`.
    #[default]
    Strings,
    /// Bridge-like endorsement objects: `[{"name": "base", "status": "incomplete",
    /// "requirements": {"complete": […], "pending": [], "missing": {"all_of":
    /// ["proof_of_address"]}, "issues": []}}]`.
    Objects,
}

impl Config {
    /// The `DEV_*` credentials and key pair, 30-minute sessions, `requirements` as strings.
    pub fn development() -> Self {
        Self {
            api_key: DEV_API_KEY.into(),
            webhook_private_key_pem: DEV_WEBHOOK_PRIVATE_KEY_PEM.into(),
            webhook_public_key_pem: DEV_WEBHOOK_PUBLIC_KEY_PEM.into(),
            session_ttl: Duration::from_secs(1800),
            requirements_shape: RequirementsShape::Strings,
        }
    }
}

/// What the Carbn simulator keeps.
pub(crate) struct State {
    /// Signs webhooks with `Config::webhook_private_key_pem`.
    signer: WebhookSigner,
    /// Consent id -> the user id that used it.
    consents: Mutex<HashMap<String, Option<String>>>,
    /// Onboarding sessions by their JWT's `jti` (the token's signature is random bytes, so the
    /// checkout page recognises its sessions here).
    sessions: Mutex<HashMap<String, Session>>,
}

/// One onboarding session.
struct Session {
    user_id: String,
    /// Unix seconds (the JWT's `exp`).
    expires_at: i64,
    redirect_url: String,
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
            sessions: Mutex::new(HashMap::new()),
        })
    }
}

/// The Carbn Connect simulator.
pub(crate) struct Simulator;

impl SimProvider for Simulator {
    /// Carbn: retries happen, the schedule is not documented; 4 (the simulator's earlier count).
    fn webhook_retries(&self) -> u32 {
        4
    }

    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/onboarding/")
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        routes(cfg);
    }

    fn render(&self, state: &SimState, user: &SimUser) -> Value {
        render(state, user)
    }

    fn fault_error(&self, status: StatusCode, req: &HttpRequest) -> HttpResponse {
        let message = match status.as_u16() {
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal server error",
        };
        error(status, &status.as_u16().to_string(), message, req)
    }

    /// AWS API Gateway answers unknown routes with "Missing Authentication Token"; a
    /// document-upload-like path is a plain 404 (Carbn takes documents only through its hosted
    /// session).
    fn not_found(&self, req: &HttpRequest) -> HttpResponse {
        if is_document_path(req.path()) {
            return error(StatusCode::NOT_FOUND, "4040", "Not Found", req);
        }
        error(
            StatusCode::FORBIDDEN,
            "4030",
            "Missing authentication token",
            req,
        )
    }

    /// A recorded session outcome lasts until the review it waits for ends (or the status is
    /// set otherwise).
    fn apply_status(&self, user: &mut SimUser, status: SimStatus) {
        user.status = status;
        if status != SimStatus::UnderReview {
            if let Some(record) = user.verification.as_object_mut() {
                record.remove(OUTCOME);
            }
        }
    }

    /// The outcome chosen when the hosted session was completed; approval otherwise.
    fn reviewed(&self, user: &SimUser) -> SimStatus {
        user.verification
            .get(OUTCOME)
            .and_then(Value::as_str)
            .and_then(outcome_status)
            .unwrap_or(SimStatus::Approved)
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
    cfg.service(web::resource("/_sim/carbn/checkout").route(web::get().to(checkout_page)))
        .service(
            web::resource("/_sim/carbn/sessions/complete").route(web::post().to(complete_session)),
        )
        .service(web::resource(format!("{BASE}/tnc")).route(web::post().to(consent)))
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

/// `requirements` of an `incomplete` user, in the configured shape.
fn requirements(shape: RequirementsShape) -> Value {
    match shape {
        RequirementsShape::Null => Value::Null,
        RequirementsShape::Strings => json!(["proof_of_address"]),
        RequirementsShape::Objects => json!([{
            "name": "base",
            "status": "incomplete",
            "requirements": {
                "complete": ["first_name", "last_name", "date_of_birth", "email_address"],
                "pending": [],
                "missing": {"all_of": ["proof_of_address"]},
                "issues": [],
            },
        }]),
    }
}

/// Bridge-like `rejection_reasons`: `reason` for the person, `developer_reason` for the
/// integrator, `created_at` (https://apidocs.bridge.xyz/api-reference/kyc-links/get-all-kyc-links).
fn rejection_reasons(user: &SimUser) -> Value {
    json!([{
        "developer_reason": "Simulated rejection: the document image is blurry.",
        "reason": "Cannot validate ID -- upload a clear photo of the full ID",
        "created_at": timestamp(user.updated_at, false),
    }])
}

/// The Carbn user object.
fn render(state: &SimState, user: &SimUser) -> Value {
    let p = &user.profile;
    let get = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
    let (status, requirements, rejection_reasons) = match user.status {
        SimStatus::Pending | SimStatus::UnderReview => ("under_review", Value::Null, Value::Null),
        SimStatus::Incomplete => (
            "incomplete",
            requirements(state.config.carbn.requirements_shape),
            Value::Null,
        ),
        SimStatus::Approved => ("active", Value::Null, Value::Null),
        SimStatus::Rejected => ("rejected", Value::Null, rejection_reasons(user)),
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
    let rendered = render(state, user);
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
        verification: Value::Null,
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
    let rendered = render(&state, &user);
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
    let users: Vec<Value> = state
        .users(ProviderId::Carbn)
        .iter()
        .map(|u| render(&state, u))
        .collect();
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
        Ok(user) => HttpResponse::Ok().json(render(&state, &user)),
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
        Some(u) => HttpResponse::Ok().json(render(&state, &u)),
        None => HttpResponse::InternalServerError().finish(),
    }
}

/// Whether `uri` is an absolute URI (`scheme:` and something after it, no whitespace).
fn is_absolute_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A path under Carbn's API that looks like a document upload.
fn is_document_path(path: &str) -> bool {
    path.strip_prefix(BASE).is_some_and(|rest| {
        rest.split('/').any(|segment| {
            let segment = segment.to_ascii_lowercase();
            ["document", "upload", "file", "image"]
                .iter()
                .any(|word| segment.contains(word))
        })
    })
}

/// The hosted session's `session` token: a JWT with Carbn's header
/// (`{"alg":"ES384","kid":"kms","typ":"JWT"}`, as its documented example decodes) and a payload
/// with `sub` (the user id), `iat`, `exp`, `jti`. The signature is 96 random bytes (the size of
/// an ES384 signature): nobody outside Carbn can verify its KMS key, so the simulator does not
/// sign, and recognises its sessions by `jti`.
fn session_token(user_id: &str, issued_at: i64, expires_at: i64, jti: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES384","kid":"kms","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": user_id, "iat": issued_at, "exp": expires_at, "jti": jti}).to_string(),
    );
    let signature: Vec<u8> = (0..96).map(|_| rand::random::<u8>()).collect();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The `jti` of a session token (its payload read without verification).
fn session_jti(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    payload.get("jti")?.as_str().map(str::to_owned)
}

/// `POST /onboarding/api/v1/users/session` `{email, currency, redirect_url}` →
/// `{onboarding_url, user_id}`: the same email gets the same user (a new email creates one, as
/// the checkout would).
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
    let redirect_url = c.string(&body, "", "redirect_url", true).map(str::to_owned);
    if redirect_url.as_deref().is_some_and(|url| !is_absolute_uri(url)) {
        c.err("redirect_url", "must be an absolute URI");
    }
    let (Some(email), Some(redirect_url)) = (email.filter(|_| c.ok()), redirect_url) else {
        return invalid(&c, &req);
    };
    let state: Arc<SimState> = state.into_inner();
    let existing = state
        .lock()
        .candidates(ProviderId::Carbn, &format!("email:{email}"))
        .find(|u| u.profile.get("email_address").and_then(Value::as_str) == Some(email.as_str()))
        .map(|u| u.id.clone());
    let id = match existing {
        Some(id) => id,
        None => {
            let mut profile = Map::new();
            profile.insert("email_address".into(), Value::from(email.clone()));
            let status = SimStatus::from_email_tag(&email).unwrap_or(SimStatus::Pending);
            let user = new_user(&state, status, profile);
            let id = user.id.clone();
            state.insert_user(user);
            id
        }
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let ttl = i64::try_from(state.config.carbn.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let expires_at = now.saturating_add(ttl);
    let jti = uuid::Uuid::new_v4().to_string();
    let token = session_token(&id, now, expires_at, &jti);
    lock(&state.providers.carbn.sessions).insert(
        jti,
        Session {
            user_id: id.clone(),
            expires_at,
            redirect_url,
        },
    );
    let page = format!("/_sim/carbn/checkout?session={token}");
    let onboarding_url = state
        .public_url(&page)
        .unwrap_or_else(|| format!("https://checkout.sim.carbn.local/kyc?session={token}"));
    HttpResponse::Ok().json(json!({
        "onboarding_url": onboarding_url,
        "user_id": id,
    }))
}

/// Key of the outcome chosen at completion in `SimUser::verification`.
const OUTCOME: &str = "session_outcome";
const OUTCOMES: &[&str] = &["active", "incomplete", "rejected"];

fn outcome_status(outcome: &str) -> Option<SimStatus> {
    Some(match outcome {
        "active" => SimStatus::Approved,
        "incomplete" => SimStatus::Incomplete,
        "rejected" => SimStatus::Rejected,
        _ => return None,
    })
}

/// `GET /_sim/carbn/checkout?session=<JWT>`: the hosted onboarding page `onboarding_url` opens,
/// with a form that completes it.
async fn checkout_page(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let token = query.get("session").map(String::as_str).unwrap_or_default();
    let session = session_jti(token).and_then(|jti| {
        lock(&state.providers.carbn.sessions)
            .get(&jti)
            .map(|s| (s.user_id.clone(), s.expires_at))
    });
    let Some((user_id, expires_at)) = session else {
        return page::html(
            StatusCode::NOT_FOUND,
            "Unknown session",
            "<p>This onboarding link is not valid.</p>",
        );
    };
    if expires_at <= OffsetDateTime::now_utc().unix_timestamp() {
        return page::html(
            StatusCode::GONE,
            "Session expired",
            "<p>This onboarding link has expired: ask for a new one.</p>",
        );
    }
    let options: String = OUTCOMES
        .iter()
        .map(|o| format!("<option value=\"{o}\">{o}</option>"))
        .collect();
    page::html(
        StatusCode::OK,
        "Verify your identity",
        &format!(
            "<p>Here the person would photograph their ID and take a selfie.</p>\
             <form method=\"post\" action=\"/_sim/carbn/sessions/complete\">\
             <input type=\"hidden\" name=\"user_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"session\" value=\"{}\">\
             <label>Review outcome <select name=\"outcome\">{options}</select></label> \
             <button type=\"submit\">Submit verification</button></form>",
            page::escape(&user_id),
            page::escape(token),
        ),
    )
}

/// `POST /_sim/carbn/sessions/complete` `{"user_id", "outcome"?: "active"|"incomplete"|
/// "rejected"}` (JSON, or the checkout page's form): the person finished the hosted flow. The
/// user goes `under_review` now and to the outcome after the review delay, each with
/// `USER_STATUS_UPDATE`.
async fn complete_session(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = page::is_form_post(&req);
    let fields: HashMap<String, String> = if form {
        match web::Query::<HashMap<String, String>>::from_query(&String::from_utf8_lossy(&body)) {
            Ok(fields) => fields.into_inner(),
            Err(_) => return control_error(StatusCode::BAD_REQUEST, "invalid form body"),
        }
    } else {
        match serde_json::from_slice::<Map<String, Value>>(&body) {
            Ok(map) => {
                let mut fields = HashMap::new();
                for (key, value) in map {
                    if !["user_id", "outcome"].contains(&key.as_str()) {
                        return control_error(
                            StatusCode::BAD_REQUEST,
                            &format!("unknown field {key}"),
                        );
                    }
                    match value {
                        Value::String(text) => {
                            fields.insert(key, text);
                        }
                        Value::Null => {}
                        _ => {
                            return control_error(
                                StatusCode::BAD_REQUEST,
                                &format!("{key} must be a string"),
                            )
                        }
                    }
                }
                fields
            }
            Err(_) => {
                return control_error(
                    StatusCode::BAD_REQUEST,
                    "body must be a JSON object {\"user_id\", \"outcome\"?}",
                )
            }
        }
    };
    let Some(user_id) = fields.get("user_id").filter(|id| !id.is_empty()) else {
        return control_error(StatusCode::BAD_REQUEST, "user_id is required");
    };
    let outcome = fields.get("outcome").map(String::as_str).unwrap_or("active");
    if outcome_status(outcome).is_none() {
        return control_error(
            StatusCode::BAD_REQUEST,
            &format!("outcome must be one of {}", OUTCOMES.join(", ")),
        );
    }
    let Some(user) = state.user(ProviderId::Carbn, user_id) else {
        return control_error(StatusCode::NOT_FOUND, "unknown user");
    };
    // "Additional KYC applications for users who have already completed KYC will be rejected"
    // (Noah, host of Carbn's checkout: https://docs.noah.com/api-reference/create-onboarding-session).
    if matches!(
        user.status,
        SimStatus::Approved | SimStatus::Suspended | SimStatus::Closed
    ) {
        return control_error(
            StatusCode::CONFLICT,
            "the user is not awaiting verification (active, paused or offboarded)",
        );
    }
    let state = state.into_inner();
    let completed_at = timestamp(OffsetDateTime::now_utc(), false);
    let Some(user) = state.update_user(ProviderId::Carbn, user_id, true, |user| {
        user.verification[OUTCOME] = Value::from(outcome);
        user.verification["completed_at"] = Value::from(completed_at);
        // Set directly: `apply_status` would drop the outcome just recorded.
        user.status = SimStatus::UnderReview;
    }) else {
        return control_error(StatusCode::NOT_FOUND, "unknown user");
    };
    if form {
        let redirect = fields
            .get("session")
            .and_then(|token| session_jti(token))
            .and_then(|jti| {
                lock(&state.providers.carbn.sessions)
                    .get(&jti)
                    .map(|s| s.redirect_url.clone())
            });
        let link = redirect
            .map(|url| {
                format!(
                    "<p><a href=\"{}\">Continue</a></p>",
                    page::escape(&url)
                )
            })
            .unwrap_or_default();
        return page::html(
            StatusCode::OK,
            "Verification submitted",
            &format!("<p>Your documents are under review.</p>{link}"),
        );
    }
    HttpResponse::Ok().json(json!({
        "user_id": user.id,
        "outcome": outcome,
        "user": render(&state, &user),
    }))
}

fn control_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris() {
        for ok in ["https://a.example/x?y=1", "myapp://done", "urn:x:y", "http://127.0.0.1:8080"] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in ["", "/relative", "www.example.com", "https://a b", "1x://a", "https:", ":x"] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
    }

    #[test]
    fn document_like_paths() {
        assert!(is_document_path("/onboarding/api/v1/users/u/documents"));
        assert!(is_document_path("/onboarding/api/v1/Uploads"));
        assert!(!is_document_path("/onboarding/api/v1/users/u"));
        assert!(!is_document_path("/onboarding/api/v2/documents"));
    }

    #[test]
    fn session_tokens_carry_their_jti() {
        let token = session_token("user-1", 100, 1900, "jti-1");
        assert_eq!(session_jti(&token).as_deref(), Some("jti-1"));
        assert_eq!(session_jti("a.b.c"), None);
        assert_eq!(session_jti(""), None);
    }
}
