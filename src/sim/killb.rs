//! KillB API v2 simulator: JWT login/refresh, PERSON/COMPANY users, person documents, the
//! hosted compliance page and Sumsub access tokens (after https://docs.killb.com/api-reference,
//! https://docs.killb.com/guides/users/upload-documents and
//! https://docs.killb.com/guides/users/kyc-levels).
//!
//! Uploads and the hosted liveness step are recorded in `SimUser::verification`; they never
//! move `status`/`accessLevel` at once. Once ID images (front, and back for two-sided types),
//! a proof of address and liveness are all in, the user becomes `ACTIVE` at `L2` after the
//! review delay (with `USER`/`UPDATE`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use time::OffsetDateTime;

use super::faults::enter;
use super::multipart::{self, Part};
use super::page;
use super::provider::{gateway_section, SimProvider};
use super::state::{lock, Change, SimState, SimStatus, SimUser};
use super::validate::{age, merge, timestamp, Checker};
use super::webhooks::{deliver, Build};
use super::SimConfig;
use crate::domain::provider::ProviderId;
use crate::domain::verification::DocumentContentType;
use crate::providers::killb::webhook::{self as killb_webhook, SignatureScheme};

/// KillB dev login email.
pub const DEV_EMAIL: &str = "gateway-dev@sim.killb.local";
/// KillB dev login password.
pub const DEV_PASSWORD: &str = "Sim-Passw0rd!dev";
/// KillB dev webhook secret (UTF-8, chosen by the integrator).
pub const DEV_WEBHOOK_SECRET: &str = "killb-sim-webhook-secret-dev-only-0123456789";

/// The gateway's config key for the webhook signature scheme.
const SCHEME_KEY: &str = "webhook_signature_scheme";

/// KillB credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Login email.
    pub email: String,
    /// Login password.
    pub password: String,
    /// Webhook secret (UTF-8).
    pub webhook_secret: String,
    /// Access-token lifetime (`expiresIn`, reported in milliseconds).
    pub token_ttl: Duration,
    /// Which of KillB's two disputed signature schemes deliveries use.
    pub webhook_scheme: SignatureScheme,
    /// Smallest document file accepted. KillB says "min 100 KB" without defining the unit; the
    /// simulator reads 100 KiB (102 400 bytes), the stricter reading for a minimum.
    pub min_document_bytes: usize,
    /// Largest document file accepted. KillB says "max 10 MB"; the simulator reads it with the
    /// same binary unit, 10 MiB (10 485 760 bytes), as the gateway's KillB document policy does
    /// (set 10 000 000 to play a KillB that means the decimal unit).
    pub max_document_bytes: usize,
}

impl Config {
    /// The `DEV_*` credentials, 1-hour access tokens, the documented HMAC webhook scheme, the
    /// documented 100 KB–10 MB document sizes.
    pub fn development() -> Self {
        Self {
            email: DEV_EMAIL.into(),
            password: DEV_PASSWORD.into(),
            webhook_secret: DEV_WEBHOOK_SECRET.into(),
            token_ttl: Duration::from_secs(3600),
            webhook_scheme: SignatureScheme::HmacSha256,
            min_document_bytes: 100 * 1024,
            max_document_bytes: 10 * 1024 * 1024,
        }
    }
}

struct Token {
    expires_at: Instant,
    refresh: bool,
}

/// What the KillB simulator keeps.
pub(crate) struct State {
    /// Issued access and refresh tokens.
    tokens: Mutex<HashMap<String, Token>>,
    /// Signs the JWTs.
    token_key: [u8; 32],
    /// The integrator's `customerId`.
    customer_id: String,
}

impl State {
    pub(crate) fn new(_config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            tokens: Mutex::new(HashMap::new()),
            token_key: rand::random(),
            customer_id: uuid::Uuid::new_v4().to_string(),
        })
    }
}

/// The KillB simulator.
pub(crate) struct Simulator;

impl SimProvider for Simulator {
    /// KillB: a delivery's `attempts` counter goes 0–5, so 5 retries (the schedule is not
    /// documented).
    fn webhook_retries(&self) -> u32 {
        5
    }

    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/api/v2")
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        routes(cfg);
    }

    fn render(&self, state: &SimState, user: &SimUser) -> Value {
        render(state, user)
    }

    fn fault_error(&self, status: StatusCode, _req: &HttpRequest) -> HttpResponse {
        let (code, message) = match status.as_u16() {
            429 => ("TOO_MANY_REQUESTS", "Too many requests"),
            503 => ("SERVICE_UNAVAILABLE", "Service unavailable"),
            _ => ("INTERNAL_SERVER_ERROR", "Internal server error"),
        };
        error(status, code, &[message])
    }

    fn not_found(&self, req: &HttpRequest) -> HttpResponse {
        error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &[&format!("Cannot {} {}", req.method(), req.path())],
        )
    }

    /// KillB closes a user by clearing `active` (the status is kept); any other status
    /// reactivates it.
    fn apply_status(&self, user: &mut SimUser, status: SimStatus) {
        if status == SimStatus::Closed {
            user.active = false;
        } else {
            user.status = status;
            user.active = true;
        }
        // A level set through the control endpoint lasts until the status moves.
        if let Some(record) = user.verification.as_object_mut() {
            record.remove(LEVEL);
        }
    }

    fn reviewed(&self, _user: &SimUser) -> SimStatus {
        SimStatus::Approved
    }

    /// `USER`/`CREATE` on create, `USER`/`DELETE` when a status change deactivated the user,
    /// `USER`/`UPDATE` on every other change (also when nothing visible changed).
    fn changed(&self, state: &Arc<SimState>, change: Change<'_>, user: &SimUser) {
        let action = match change {
            Change::Created => "CREATE",
            Change::Status { before } if before.active && !user.active => "DELETE",
            Change::Status { .. } | Change::Updated => "UPDATE",
        };
        emit(state, user, action);
    }

    fn gateway_settings(&self, config: &SimConfig, base_url: &str) -> Map<String, Value> {
        let c = &config.killb;
        gateway_section(
            base_url,
            [
                ("email", c.email.clone().into()),
                ("password", c.password.clone().into()),
                ("webhook_secret", c.webhook_secret.clone().into()),
                (
                    SCHEME_KEY,
                    serde_json::to_value(c.webhook_scheme).unwrap_or(Value::Null),
                ),
            ],
        )
    }

    /// Signs webhooks with the scheme the gateway expects (`webhook_signature_scheme`).
    fn follow_gateway_settings(&self, config: &mut SimConfig, section: &Map<String, Value>) {
        let scheme = section
            .get(SCHEME_KEY)
            .and_then(|v| serde_json::from_value::<SignatureScheme>(v.clone()).ok());
        if let Some(scheme) = scheme {
            config.killb.webhook_scheme = scheme;
        }
    }
}

const PERSON_DOCUMENTS: &[&str] = &[
    "PASSPORT",
    "DRIVER_LICENSE",
    "NUIP",
    "RFC",
    "SSN",
    "CURP",
    "CPF",
    "INE",
    "IFE",
    "DNI",
    "DUI",
    "NIT",
    "RUT",
    "CHINESE_ID",
    "BOLIVIAN_ID",
    "CE",
];
const COMPANY_DOCUMENTS: &[&str] = &["NIT", "EIN", "CNPJ", "RFC", "CUIT", "USCC", "RUT"];
const EMPLOYMENT: &[&str] = &[
    "EMPLOYEE",
    "SELF_EMPLOYED",
    "RETIRED",
    "UNEMPLOYED",
    "OTHER",
];
const LEGAL_STRUCTURES: &[&str] = &[
    "C_CORP_PRIVATE",
    "C_CORP_PUBLIC",
    "HNWI",
    "LLC",
    "LLP",
    "LP",
    "S_CORP",
    "SOLE_PROP",
    "TRUST",
    "NON_PROFIT",
    "OTHER",
];
const SOURCES: &[&str] = &[
    "EMPLOYMENT",
    "SAVINGS",
    "WINNINGS",
    "MARITAL",
    "REAL_ESTATE",
    "TRUST",
    "INVESTMENT",
    "OTHER",
    "COMPANY",
    "COMPANY_CAPITAL",
    "LOAN",
    "PRIVATE_CAPITAL",
    "GRANT",
];
const ASSETS: &[&str] = &[
    "UPTO_10K",
    "TEN_TO_100K",
    "ONEHUNDREDK_TO_1M",
    "ONE_TO_10M",
    "TEN_TO_50M",
    "FIFTY_TO_250M",
    "MORE_THAN_250M",
];
const COUNTS: &[&str] = &["UPTO_5", "FIVE_TO_10", "TEN_TO_25", "MORE_THAN_25"];
const AMOUNTS: &[&str] = &[
    "UPTO_1K",
    "ONE_TO_100K",
    "ONEHUNDREDK_TO_1M",
    "MILLION_TO_5M",
    "MORE_THAN_5M",
];
const ACTIVITIES: &[&str] = &[
    "NONE",
    "ADULT_ENTERTAINMENT",
    "DRUGS",
    "FIREARMS",
    "GAMBLING",
    "MARIJUANA",
    "TUMBLING",
];
const REGULATED: &[&str] = &[
    "REGULATED",
    "REGISTERED",
    "LICENSED",
    "NONE",
    "NOT_REQUIRED",
];

/// How long refresh tokens live (not documented publicly).
const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/_sim/killb/expire-tokens").route(web::post().to(expire_tokens)))
        .service(web::resource("/_sim/killb/users/{id}/verify").route(web::get().to(compliance_page)))
        .service(web::resource("/_sim/killb/users/{id}/liveness").route(web::post().to(liveness)))
        .service(web::resource("/_sim/killb/users/{id}/level").route(web::post().to(set_level)))
        .service(
            web::resource("/api/v2/users/person/document").route(web::post().to(upload_document)),
        )
        .service(
            web::resource("/api/v2/compliance/access-token").route(web::post().to(access_token)),
        )
        .service(web::resource("/api/v2/auth/login").route(web::post().to(login)))
        .service(web::resource("/api/v2/auth/refresh").route(web::post().to(refresh)))
        .service(
            web::resource("/api/v2/users")
                .route(web::post().to(create_user))
                .route(web::get().to(list_users)),
        )
        .service(
            web::resource("/api/v2/users/{id}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user))
                .route(web::delete().to(delete_user)),
        );
}

/// KillB's error envelope: `{errorCode, arguments, message[], statusCode: "<string>"}`.
fn error(status: StatusCode, code: &str, messages: &[&str]) -> HttpResponse {
    error_with_args(status, code, messages, json!([]))
}

fn error_with_args(
    status: StatusCode,
    code: &str,
    messages: &[&str],
    arguments: Value,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "errorCode": code,
        "arguments": arguments,
        "message": messages,
        "statusCode": status.as_u16().to_string(),
    }))
}

fn invalid_input(checker: &Checker) -> HttpResponse {
    let messages: Vec<String> = checker
        .errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect();
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    error(StatusCode::BAD_REQUEST, "INVALID.INPUT", &messages)
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID.INPUT",
            &["body must be a JSON object"],
        )),
    }
}

fn make_token(state: &SimState, refresh: bool, ttl: Duration) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = json!({
        "sub": state.providers.killb.customer_id,
        "email": state.config.killb.email,
        "customerId": state.providers.killb.customer_id,
        "origin": "API",
        "typ": if refresh { "refresh" } else { "access" },
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2).max(1),
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.providers.killb.token_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let token = format!("{header}.{payload}.{signature}");
    lock(&state.providers.killb.tokens).insert(
        token.clone(),
        Token {
            expires_at: Instant::now() + ttl,
            refresh,
        },
    );
    token
}

fn token_pair(state: &SimState) -> Value {
    let ttl = state.config.killb.token_ttl;
    json!({
        "accessToken": make_token(state, false, ttl),
        "expiresIn": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        "refreshToken": make_token(state, true, REFRESH_TTL),
    })
}

/// Checks `Authorization: Bearer <access token>`.
fn authenticate(state: &SimState, req: &HttpRequest) -> Result<(), HttpResponse> {
    let unauthorized =
        |code: &str, message: &str| error(StatusCode::UNAUTHORIZED, code, &[message]);
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("AUTH.0003", "Missing bearer token"))?;
    let tokens = lock(&state.providers.killb.tokens);
    match tokens.get(token) {
        Some(t) if t.refresh => Err(unauthorized("AUTH.0003", "Invalid token")),
        Some(t) if t.expires_at <= Instant::now() => {
            Err(unauthorized("AUTH.0002", "Token expired"))
        }
        Some(_) => Ok(()),
        None => Err(unauthorized("AUTH.0003", "Invalid token")),
    }
}

async fn guard(state: &SimState, req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    enter(state, ProviderId::Killb, req, body).await?;
    authenticate(state, req)
}

async fn login(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = enter(&state, ProviderId::Killb, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    let email = c.email(&body, "", "email", true);
    let password = c.string(&body, "", "password", true);
    if !c.ok() {
        return invalid_input(&c);
    }
    let credentials = &state.config.killb;
    if email.as_deref() != Some(credentials.email.as_str())
        || password != Some(credentials.password.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "AUTH.0001",
            &["Invalid credentials"],
        );
    }
    HttpResponse::Created().json(token_pair(&state))
}

async fn refresh(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = enter(&state, ProviderId::Killb, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    let Some(token) = c.string(&body, "", "refreshToken", true) else {
        return invalid_input(&c);
    };
    let valid = {
        let tokens = lock(&state.providers.killb.tokens);
        match tokens.get(token) {
            Some(t) if t.refresh && t.expires_at > Instant::now() => Ok(()),
            Some(t) if t.refresh => Err(("AUTH.0002", "Refresh token expired")),
            _ => Err(("AUTH.0003", "Invalid refresh token")),
        }
    };
    match valid {
        Ok(()) => HttpResponse::Created().json(token_pair(&state)),
        Err((code, message)) => error(StatusCode::UNAUTHORIZED, code, &[message]),
    }
}

fn check_address(c: &mut Checker, obj: &Map<String, Value>, path: &str, required: bool) {
    if let Some(a) = c.object(obj, path, "address", required) {
        let p = format!("{path}.address");
        c.no_unknown(
            a,
            &p,
            &[
                "street1",
                "street2",
                "city",
                "state",
                "zipCode",
                "countryCode",
            ],
        );
        c.string(a, &p, "street1", true);
        c.string(a, &p, "street2", false);
        c.string(a, &p, "city", true);
        c.string(a, &p, "state", true);
        c.string(a, &p, "zipCode", true);
        c.alpha2(a, &p, "countryCode", true, &[]);
    }
}

fn check_investment_profile(c: &mut Checker, obj: &Map<String, Value>, path: &str) {
    let Some(p) = c.object(obj, path, "investmentProfile", false) else {
        return;
    };
    let path = format!("{path}.investmentProfile");
    let fields: [(&str, &[&str]); 12] = [
        ("primarySourceOfFunds", SOURCES),
        ("totalAssets", ASSETS),
        ("usdValueOfFiat", ASSETS),
        ("monthlyDeposits", COUNTS),
        ("monthlyWithdrawals", COUNTS),
        ("monthlyInvestmentDeposit", AMOUNTS),
        ("monthlyInvestmentWithdrawal", AMOUNTS),
        ("usdValueOfCrypto", AMOUNTS),
        ("monthlyCryptoDeposits", COUNTS),
        ("monthlyCryptoWithdrawals", COUNTS),
        ("monthlyCryptoInvestmentDeposit", AMOUNTS),
        ("monthlyCryptoInvestmentWithdrawal", AMOUNTS),
    ];
    let mut allowed: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    allowed.push("primarySourceOfFundsDescription");
    c.no_unknown(p, &path, &allowed);
    for (key, values) in fields {
        c.one_of(p, &path, key, true, values);
    }
    c.string(p, &path, "primarySourceOfFundsDescription", true);
}

fn check_kyc_profile(c: &mut Checker, obj: &Map<String, Value>, path: &str, company: bool) {
    let Some(k) = c.object(obj, path, "kycProfile", false) else {
        return;
    };
    let path = format!("{path}.kycProfile");
    let mut allowed = vec!["fundsSendReceiveJurisdictions", "engageInActivities"];
    if company {
        allowed.extend(["regulatedStatus", "descriptionOfBusinessNature"]);
        c.one_of(k, &path, "regulatedStatus", true, REGULATED);
        c.string(k, &path, "descriptionOfBusinessNature", true);
    }
    c.no_unknown(k, &path, &allowed);
    if let Some(list) = c.array(k, &path, "fundsSendReceiveJurisdictions", true) {
        for (i, v) in list.iter().enumerate() {
            if !v.is_string() {
                c.err(
                    format!("{path}.fundsSendReceiveJurisdictions[{i}]"),
                    "must be a string",
                );
            }
        }
    }
    // The spec types it as an array; the docs' example sends a scalar. Accept both.
    let field = format!("{path}.engageInActivities");
    match k.get("engageInActivities") {
        None | Some(Value::Null) => c.err(field, "is required"),
        Some(Value::String(s)) if ACTIVITIES.contains(&s.as_str()) => {}
        Some(Value::Array(items))
            if items
                .iter()
                .all(|v| v.as_str().is_some_and(|s| ACTIVITIES.contains(&s))) => {}
        Some(_) => c.err(
            field,
            format!(
                "must be one of the following values: {}",
                ACTIVITIES.join(", ")
            ),
        ),
    }
}

const PERSON_FIELDS: &[&str] = &[
    "firstName",
    "middleName",
    "lastName",
    "dateOfBirth",
    "email",
    "phone",
    "address",
    "document",
    "nationality",
    "citizenship",
    "employmentStatus",
    "employmentDescription",
    "employerName",
    "occupation",
    "investmentProfile",
    "kycProfile",
];
const COMPANY_FIELDS: &[&str] = &[
    "companyName",
    "tradeName",
    "registeredNumber",
    "legalStructure",
    "description",
    "establishedOn",
    "phone",
    "email",
    "address",
    "mainOwnerUser",
    "ownerUsers",
    "naics",
    "naicsDescription",
    "document",
    "investmentProfile",
    "kycProfile",
    "ein",
];

fn check_person(c: &mut Checker, d: &Map<String, Value>, path: &str, create: bool) {
    c.no_unknown(d, path, PERSON_FIELDS);
    c.string(d, path, "firstName", create);
    c.string(d, path, "middleName", false);
    c.string(d, path, "lastName", create);
    c.birth_date(d, path, "dateOfBirth", create);
    c.email(d, path, "email", create);
    c.phone(d, path, "phone", create, true);
    check_address(c, d, path, create);
    if let Some(doc) = c.object(d, path, "document", create) {
        let p = format!("{path}.document");
        c.no_unknown(
            doc,
            &p,
            &[
                "type",
                "number",
                "issuedCountryCode",
                "expeditionDate",
                "cic",
                "identificadorCiudadano",
                "ocr",
                "numeroEmision",
            ],
        );
        let kind = c.one_of(doc, &p, "type", true, PERSON_DOCUMENTS);
        if let Some(number) = c.string(doc, &p, "number", true) {
            if !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
                c.err(format!("{p}.number"), "must be alphanumeric");
            }
        }
        c.alpha2(doc, &p, "issuedCountryCode", true, &[]);
        c.date(doc, &p, "expeditionDate", false);
        c.string(doc, &p, "cic", kind == Some("INE"));
        c.string(doc, &p, "identificadorCiudadano", kind == Some("INE"));
        c.string(doc, &p, "ocr", kind == Some("IFE"));
        c.string(doc, &p, "numeroEmision", kind == Some("IFE"));
    }
    c.alpha2(d, path, "nationality", false, &[]);
    c.alpha2(d, path, "citizenship", false, &[]);
    c.one_of(d, path, "employmentStatus", false, EMPLOYMENT);
    c.string(d, path, "employmentDescription", false);
    c.string(d, path, "employerName", false);
    c.string(d, path, "occupation", false);
    check_investment_profile(c, d, path);
    check_kyc_profile(c, d, path, false);
}

fn check_company(c: &mut Checker, d: &Map<String, Value>, path: &str, create: bool) {
    c.no_unknown(d, path, COMPANY_FIELDS);
    if create && d.contains_key("ein") {
        c.err(format!("{path}.ein"), "is not a known field");
    }
    c.string(d, path, "companyName", create);
    c.one_of(d, path, "legalStructure", false, LEGAL_STRUCTURES);
    c.date(d, path, "establishedOn", false);
    c.phone(d, path, "phone", false, true);
    c.email(d, path, "email", false);
    check_address(c, d, path, create);
    if let Some(doc) = c.object(d, path, "document", create) {
        let p = format!("{path}.document");
        c.no_unknown(doc, &p, &["type", "number", "issuedCountryCode"]);
        c.one_of(doc, &p, "type", true, COMPANY_DOCUMENTS);
        c.string(doc, &p, "number", true);
        c.alpha2(doc, &p, "issuedCountryCode", true, &[]);
    }
    check_investment_profile(c, d, path);
    check_kyc_profile(c, d, path, true);
}

fn status_fields(user: &SimUser) -> (Value, &'static str, &'static str) {
    let (status, level, note) = match user.status {
        SimStatus::Pending => ("PENDING", "L1", "Verification in progress."),
        SimStatus::UnderReview => ("PENDING", "L1", "Documents under review."),
        SimStatus::Incomplete => (
            "PENDING",
            "L0",
            "Additional information required: identity document images and proof of address.",
        ),
        SimStatus::Approved => (
            "ACTIVE",
            "L2",
            "Identity verification completed successfully.",
        ),
        SimStatus::Rejected => ("REJECTED", "L0", "KYC verification failed."),
        SimStatus::Suspended => ("SUSPENDED", "L1", "Account suspended."),
        SimStatus::Closed => ("REJECTED", "L0", "Account closed."),
    };
    let status = user.provider_status.clone().unwrap_or(Value::from(status));
    (status, level, note)
}

/// The KillB user object (`CreateUserResponseDto`).
fn render(state: &SimState, user: &SimUser) -> Value {
    let (status, level, note) = status_fields(user);
    let level = user
        .verification
        .get(LEVEL)
        .and_then(Value::as_str)
        .unwrap_or(level);
    let progress = Progress::of(user);
    let note = match user.status {
        SimStatus::Pending | SimStatus::Incomplete if progress.any() => {
            let missing = progress.missing();
            if missing.is_empty() {
                "Documents and liveness received: under review for L2.".to_owned()
            } else {
                format!("Still needed for L2: {}.", missing.join(", "))
            }
        }
        _ => note.to_owned(),
    };
    let page = format!("/_sim/killb/users/{}/verify", user.id);
    let compliance_url = state
        .public_url(&page)
        .unwrap_or_else(|| format!("https://kyc.sim.killb.local/verify/{}", user.id));
    let mut out = json!({
        "id": user.id,
        "status": status,
        "customerId": state.providers.killb.customer_id,
        "type": user.user_type.as_deref().unwrap_or("PERSON"),
        "data": user.profile,
        "complianceUrl": compliance_url,
        "accessLevel": level,
        "note": note,
        "active": user.active,
        "createdAt": timestamp(user.created_at, false),
        "updatedAt": timestamp(user.updated_at, false),
    });
    if let Some(external_id) = &user.external_id {
        out["externalId"] = Value::from(external_id.clone());
    }
    out
}

fn data_email(profile: &Value) -> Option<&str> {
    profile.get("email").and_then(Value::as_str)
}

async fn create_user(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    c.no_unknown(&body, "", &["type", "data", "externalId"]);
    let kind = c.one_of(&body, "", "type", true, &["PERSON", "COMPANY"]);
    let external_id = c.string(&body, "", "externalId", false).map(str::to_owned);
    let data = c.object(&body, "", "data", true);
    if let (Some(kind), Some(data)) = (kind, data) {
        if kind == "PERSON" {
            check_person(&mut c, data, "data", true);
        } else {
            check_company(&mut c, data, "data", true);
        }
    }
    if !c.ok() {
        return invalid_input(&c);
    }
    let (Some(kind), Some(data)) = (kind, data) else {
        return invalid_input(&c);
    };
    if kind == "PERSON" {
        let under_age = data
            .get("dateOfBirth")
            .and_then(Value::as_str)
            .and_then(|d| {
                time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
            })
            .is_some_and(|dob| age(dob) < 18);
        if under_age {
            return error(StatusCode::BAD_REQUEST, "USER.0004", &["User must be 18+"]);
        }
    }
    let email = data.get("email").and_then(Value::as_str).map(str::to_owned);
    let status = email
        .as_deref()
        .and_then(SimStatus::from_email_tag)
        .unwrap_or(SimStatus::Pending);
    let state: Arc<SimState> = state.into_inner();
    let seq = state.next_seq();
    // Checked and inserted under one lock: concurrent creates cannot both pass the checks.
    let created = state.insert_user_unless(|store| {
        if let Some(ext) = &external_id {
            if store
                .candidates(ProviderId::Killb, &format!("ext:{ext}"))
                .any(|u| u.external_id.as_ref() == Some(ext))
            {
                return Err(error_with_args(
                    StatusCode::CONFLICT,
                    "USER.0005",
                    &["User with this externalId already exists"],
                    json!([{"key": "externalId", "value": ext}]),
                ));
            }
        }
        if let Some(email) = &email {
            if kind == "PERSON"
                && store
                    .candidates(ProviderId::Killb, &format!("email:{email}"))
                    .any(|u| u.active && data_email(&u.profile) == Some(email.as_str()))
            {
                return Err(error(
                    StatusCode::CONFLICT,
                    "USER.0003",
                    &["Email already exists"],
                ));
            }
        }
        let now = OffsetDateTime::now_utc();
        Ok(SimUser {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            provider: ProviderId::Killb,
            status,
            provider_status: None,
            active: true,
            profile: Value::Object(data.clone()),
            external_id,
            user_type: Some(kind.to_owned()),
            verification: Value::Null,
            created_at: now,
            updated_at: now,
        })
    });
    let user = match created {
        Ok(user) => user,
        Err(refused) => return refused,
    };
    let rendered = render(&state, &user);
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
    let query = match web::Query::<HashMap<String, String>>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID.INPUT",
                &["invalid query string"],
            )
        }
    };
    let kind = query.get("type").map(String::as_str);
    if !matches!(kind, Some("PERSON" | "COMPANY")) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID.INPUT",
            &["type must be one of the following values: PERSON, COMPANY"],
        );
    }
    let number = |key: &str, default: usize| -> Result<usize, HttpResponse> {
        match query.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "INVALID.INPUT",
                    &[&format!("{key} must be a positive integer")],
                )
            }),
        }
    };
    let (limit, page) = match (number("limit", 10), number("page", 1)) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let users: Vec<SimUser> = state
        .users(ProviderId::Killb)
        .into_iter()
        .filter(|u| u.user_type.as_deref() == kind)
        .filter(|u| {
            query.iter().all(|(key, wanted)| match key.as_str() {
                "type" | "limit" | "page" => true,
                "externalId" => u.external_id.as_deref() == Some(wanted.as_str()),
                "id" => u.id == *wanted,
                "customerId" => state.providers.killb.customer_id == *wanted,
                field => u.profile.get(field).and_then(Value::as_str) == Some(wanted.as_str()),
            })
        })
        .collect();
    let total_page = users.len().div_ceil(limit);
    let page_users: Vec<Value> = users
        .iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|u| render(&state, u))
        .collect();
    HttpResponse::Ok().json(json!({ "users": page_users, "totalPage": total_page }))
}

fn lookup(state: &SimState, req: &HttpRequest) -> Result<SimUser, HttpResponse> {
    let id = req.match_info().get("id").unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID.INPUT",
            &["id must be a UUID"],
        ));
    }
    state.user(ProviderId::Killb, id).ok_or_else(|| {
        error_with_args(
            StatusCode::NOT_FOUND,
            "USER.0001",
            &["User not found"],
            json!([{"key": "id", "value": id}]),
        )
    })
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
    let mut patch = match parse_object(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    // The flat DTO is documented; one guide wraps it as {type, data}. Accept both.
    if let (Some(Value::Object(inner)), Some(_)) = (patch.get("data"), patch.get("type")) {
        patch = inner.clone();
    }
    let mut c = Checker::default();
    if user.user_type.as_deref() == Some("COMPANY") {
        check_company(&mut c, &patch, "", false);
    } else {
        check_person(&mut c, &patch, "", false);
    }
    if !c.ok() {
        return invalid_input(&c);
    }
    if let Some(email) = patch.get("email").and_then(Value::as_str) {
        let taken = state
            .lock()
            .candidates(ProviderId::Killb, &format!("email:{email}"))
            .any(|u| u.id != user.id && u.active && data_email(&u.profile) == Some(email));
        if taken {
            return error(StatusCode::CONFLICT, "USER.0003", &["Email already exists"]);
        }
    }
    let reverify = patch
        .get("document")
        .is_some_and(|d| user.profile.get("document") != Some(d));
    {
        let mut store = state.lock();
        if let Some(u) = store.users_mut(ProviderId::Killb).get_mut(&user.id) {
            merge(&mut u.profile, &Value::Object(patch));
            u.updated_at = OffsetDateTime::now_utc();
            let updated = u.clone();
            store.index_user(&updated);
        }
    }
    let state = state.into_inner();
    state.after_update(ProviderId::Killb, &user.id, reverify);
    match state.user(ProviderId::Killb, &user.id) {
        Some(u) => HttpResponse::Ok().json(render(&state, &u)),
        None => HttpResponse::InternalServerError().finish(),
    }
}

async fn delete_user(
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
    state.into_inner().set_status(
        ProviderId::Killb,
        &user.id,
        Some(SimStatus::Closed),
        None,
        user.active,
    );
    HttpResponse::Ok().finish()
}

/// Sends a signed `USER` event with `action` (`CREATE`, `UPDATE`, `DELETE`) and the user as
/// `data`; each attempt is re-signed with its `attempts` count.
fn emit(state: &Arc<SimState>, user: &SimUser, action: &'static str) {
    let data = render(state, user);
    let secret = state.config.killb.webhook_secret.clone();
    let scheme = state.config.killb.webhook_scheme;
    let event_id = uuid::Uuid::new_v4().to_string();
    let now = timestamp(OffsetDateTime::now_utc(), false);
    let build: Build = Box::new(move |attempt| {
        let body = serde_json::to_vec(&json!({
            "id": event_id,
            "event": "USER",
            "action": action,
            "data": data,
            "createdAt": now,
            "updatedAt": timestamp(OffsetDateTime::now_utc(), false),
            "attempts": attempt,
        }))
        .unwrap_or_default();
        let signature = killb_webhook::sign(scheme, &secret, &body);
        (
            vec![
                ("Content-Type".into(), "application/json".into()),
                (killb_webhook::SIGNATURE_HEADER.into(), signature),
            ],
            body,
        )
    });
    deliver(
        state,
        ProviderId::Killb,
        format!("USER/{action}"),
        &user.id,
        build,
    );
}

// ---------------------------------------------------------------------------------------------
// Documents, the hosted compliance page, access tokens

/// Keys of what `SimUser::verification` keeps: documents received by `documentType`
/// (`{"front": true, "back": bool}`), when liveness was done, a level set by the control
/// endpoint.
const DOCUMENTS: &str = "documents";
const LIVENESS: &str = "liveness_at";
const LEVEL: &str = "access_level";

/// Identity documents with one side (a passport's data page).
const ONE_SIDED_IDS: &[&str] = &["PASSPORT"];
/// Identity cards: front and back.
const TWO_SIDED_IDS: &[&str] = &[
    "DRIVER_LICENSE",
    "NUIP",
    "INE",
    "IFE",
    "DNI",
    "DUI",
    "CHINESE_ID",
    "BOLIVIAN_ID",
    "CE",
];
const PROOFS_OF_ADDRESS: &[&str] = &[
    "PROVE_OF_ADDRESS_BANK_STATEMENT",
    "PROVE_OF_ADDRESS_UTILITY_BILL",
    "PROVE_OF_ADDRESS_LEASE_AGREEMENT",
];
/// Every `documentType` of `UploadPersonDocumentDto` (`PROVE_OF` is KillB's spelling); tax
/// numbers, source of funds and KYC reports are accepted but count for no L2 item.
const UPLOAD_DOCUMENTS: &[&str] = &[
    "PASSPORT",
    "DRIVER_LICENSE",
    "NUIP",
    "RFC",
    "SSN",
    "CURP",
    "CPF",
    "INE",
    "IFE",
    "DNI",
    "DUI",
    "CHINESE_ID",
    "BOLIVIAN_ID",
    "CE",
    "PROVE_OF_ADDRESS_BANK_STATEMENT",
    "PROVE_OF_ADDRESS_UTILITY_BILL",
    "PROVE_OF_ADDRESS_LEASE_AGREEMENT",
    "SOURCE_OF_FUNDS_BANK_STATEMENT",
    "SOURCE_OF_FUNDS_PAYSLIP",
    "KYC_REPORT",
];
const UPLOAD_PARTS: &[&str] = &["userId", "documentType", "frontDocument", "backDocument"];
const LEVELS: &[&str] = &["L0", "L1", "L2", "L3", "L4"];

/// What of L2 a user has in: ID images, a proof of address, the hosted liveness step.
struct Progress {
    identity: bool,
    proof_of_address: bool,
    liveness: bool,
}

impl Progress {
    fn of(user: &SimUser) -> Self {
        let documents = user.verification.get(DOCUMENTS).and_then(Value::as_object);
        let has = |kind: &str, side: &str| {
            documents
                .and_then(|d| d.get(kind))
                .and_then(|d| d.get(side))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Self {
            identity: ONE_SIDED_IDS.iter().any(|k| has(k, "front"))
                || TWO_SIDED_IDS.iter().any(|k| has(k, "front") && has(k, "back")),
            proof_of_address: PROOFS_OF_ADDRESS.iter().any(|k| has(k, "front")),
            liveness: user.verification.get(LIVENESS).is_some_and(Value::is_string),
        }
    }

    fn any(&self) -> bool {
        self.identity || self.proof_of_address || self.liveness
    }

    fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.identity {
            missing.push("ID images (front, and back for ID cards)");
        }
        if !self.proof_of_address {
            missing.push("proof of address");
        }
        if !self.liveness {
            missing.push("liveness (complianceUrl)");
        }
        missing
    }
}

/// Whether `user` can still be raised to L2 by its documents (active, below L2).
fn awaits_level_two(user: &SimUser) -> bool {
    user.active
        && matches!(
            user.status,
            SimStatus::Pending | SimStatus::Incomplete | SimStatus::UnderReview
        )
}

/// Once everything L2 needs is in, approves the user after the review delay (if it still
/// qualifies then).
fn review_for_level_two(state: &Arc<SimState>, id: &str) {
    let ready = |user: &SimUser| awaits_level_two(user) && Progress::of(user).missing().is_empty();
    if !state.user(ProviderId::Killb, id).is_some_and(|u| ready(&u)) {
        return;
    }
    let id = id.to_owned();
    state.after_review_delay(move |state| {
        if state.user(ProviderId::Killb, &id).is_some_and(|u| ready(&u)) {
            state.set_status(ProviderId::Killb, &id, Some(SimStatus::Approved), None, true);
        }
    });
}

/// `API_USER.0001`, the documented answer of the upload route for an unknown user.
fn user_not_found(key: &str, value: &str) -> HttpResponse {
    error_with_args(
        StatusCode::BAD_REQUEST,
        "API_USER.0001",
        &["User not found", "Account not found"],
        json!([{"key": key, "value": value}]),
    )
}

/// `POST /api/v2/users/person/document`: `userId`, `documentType`, `frontDocument`,
/// `backDocument?` (multipart); 201 with no body.
async fn upload_document(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let content_type = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok());
    let parts = match multipart::parse_request(content_type, &body) {
        Ok(parts) => parts,
        Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID.INPUT", &[&e.to_string()]),
    };
    // class-validator style messages, as KillB's INVALID.INPUT answers carry.
    let mut messages: Vec<String> = Vec::new();
    let mut by_name: HashMap<&str, &Part> = HashMap::new();
    for part in &parts {
        if !UPLOAD_PARTS.contains(&part.name.as_str()) {
            messages.push(format!("property {} should not exist", part.name));
        } else if by_name.insert(part.name.as_str(), part).is_some() {
            messages.push(format!("{} must be given once", part.name));
        }
    }
    let mut text = |name: &str| -> Option<String> {
        match by_name.get(name) {
            None => {
                messages.push(format!("{name} should not be empty"));
                None
            }
            Some(part) if part.is_file() => {
                messages.push(format!("{name} must be a string"));
                None
            }
            Some(part) => {
                let value = part.text().map(str::trim).unwrap_or_default();
                if value.is_empty() {
                    messages.push(format!("{name} should not be empty"));
                    None
                } else {
                    Some(value.to_owned())
                }
            }
        }
    };
    let user_id = text("userId");
    let document_type = text("documentType");
    let user_id = user_id.filter(|id| {
        let uuid = uuid::Uuid::parse_str(id).is_ok();
        if !uuid {
            messages.push("userId must be a UUID".into());
        }
        uuid
    });
    let document_type = document_type.filter(|t| {
        let known = UPLOAD_DOCUMENTS.contains(&t.as_str());
        if !known {
            messages.push(format!(
                "documentType must be one of the following values: {}",
                UPLOAD_DOCUMENTS.join(", ")
            ));
        }
        known
    });
    for (name, required) in [("frontDocument", true), ("backDocument", false)] {
        match by_name.get(name) {
            None if required => messages.push(format!("{name} is required")),
            Some(part) if !part.is_file() => messages.push(format!("{name} must be a file")),
            _ => {}
        }
    }
    let (Some(user_id), Some(document_type)) = (user_id, document_type) else {
        let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
        return error(StatusCode::BAD_REQUEST, "INVALID.INPUT", &messages);
    };
    if !messages.is_empty() {
        let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
        return error(StatusCode::BAD_REQUEST, "INVALID.INPUT", &messages);
    }
    if state.user(ProviderId::Killb, &user_id).is_none() {
        return user_not_found("userId", &user_id);
    }
    let config = &state.config.killb;
    let acceptable = |part: &Part| {
        DocumentContentType::sniff(&part.data).is_some()
            && (config.min_document_bytes..=config.max_document_bytes).contains(&part.data.len())
    };
    let back = by_name.get("backDocument").copied();
    let files_ok = by_name.get("frontDocument").is_some_and(|p| acceptable(p))
        && back.is_none_or(acceptable);
    if !files_ok {
        return error(StatusCode::BAD_REQUEST, "USER.0002", &["Invalid document"]);
    }
    let state = state.into_inner();
    // Recorded without a webhook: nothing the user object shows moves until the review.
    state.update_user(ProviderId::Killb, &user_id, false, |user| {
        let entry = &mut user.verification[DOCUMENTS][document_type.as_str()];
        entry["front"] = Value::Bool(true);
        if back.is_some() {
            entry["back"] = Value::Bool(true);
        } else if entry.get("back").is_none() {
            entry["back"] = Value::Bool(false);
        }
    });
    review_for_level_two(&state, &user_id);
    HttpResponse::Created().finish()
}

/// `POST /api/v2/compliance/access-token` `{id, idType?, levelName?, ttlInSecs?}`: a Sumsub
/// WebSDK access token for the user (`201 {"token": "_act-<uuid>"}`).
async fn access_token(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let body = match parse_object(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c = Checker::default();
    c.no_unknown(&body, "", &["id", "idType", "levelName", "ttlInSecs"]);
    let id = c.string(&body, "", "id", true);
    let id_type = c.one_of(&body, "", "idType", false, &["userId", "accountId"]);
    c.string(&body, "", "levelName", false);
    if c.integer(&body, "", "ttlInSecs", false).is_some_and(|t| t <= 0) {
        c.err("ttlInSecs", "must be a positive number");
    }
    if !c.ok() {
        return invalid_input(&c);
    }
    let Some(id) = id else {
        return invalid_input(&c);
    };
    // The simulator has no accounts: an `accountId` is never found.
    let found = id_type.unwrap_or("userId") == "userId"
        && state.user(ProviderId::Killb, id).is_some();
    if !found {
        return user_not_found("id", id);
    }
    HttpResponse::Created().json(json!({ "token": format!("_act-{}", uuid::Uuid::new_v4()) }))
}

/// A control or page request's KillB user, or a JSON 400/404.
fn control_user(state: &SimState, req: &HttpRequest) -> Result<SimUser, HttpResponse> {
    let id = req.match_info().get("id").unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(HttpResponse::BadRequest().json(json!({ "error": "id must be a UUID" })));
    }
    state
        .user(ProviderId::Killb, id)
        .ok_or_else(|| HttpResponse::NotFound().json(json!({ "error": "unknown user" })))
}

/// `GET /_sim/killb/users/{id}/verify`: the hosted compliance page `complianceUrl` opens: what
/// is in, and a button that completes the liveness step.
async fn compliance_page(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let user = match control_user(&state, &req) {
        Ok(user) => user,
        Err(_) => {
            return page::html(
                StatusCode::NOT_FOUND,
                "Unknown verification link",
                "<p>This link does not belong to any user.</p>",
            )
        }
    };
    let progress = Progress::of(&user);
    let item = |done: bool, what: &str| {
        format!(
            "<li>{} {}</li>",
            if done { "&#10003;" } else { "&#9744;" },
            page::escape(what)
        )
    };
    let form = if progress.liveness {
        "<p>Liveness check done.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/_sim/killb/users/{}/liveness\">\
             <button type=\"submit\">Complete the liveness check</button></form>",
            page::escape(&user.id)
        )
    };
    page::html(
        StatusCode::OK,
        "Identity verification",
        &format!(
            "<ul>{}{}{}</ul>
{form}",
            item(progress.identity, "ID images"),
            item(progress.proof_of_address, "Proof of address"),
            item(progress.liveness, "Liveness check"),
        ),
    )
}

/// `POST /_sim/killb/users/{id}/liveness`: the person completed the hosted liveness step (the
/// page's button, or a test). Answers JSON, or a page for a browser's form post.
async fn liveness(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let user = match control_user(&state, &req) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let state = state.into_inner();
    let now = timestamp(OffsetDateTime::now_utc(), false);
    let Some(user) = state.update_user(ProviderId::Killb, &user.id, false, |user| {
        user.verification[LIVENESS] = Value::from(now);
    }) else {
        return HttpResponse::NotFound().json(json!({ "error": "unknown user" }));
    };
    review_for_level_two(&state, &user.id);
    let missing = Progress::of(&user).missing();
    if page::is_form_post(&req) {
        let next = if missing.is_empty() {
            "Everything is in: the review takes a moment.".to_owned()
        } else {
            format!("Still needed: {}.", missing.join(", "))
        };
        return page::html(
            StatusCode::OK,
            "Liveness check done",
            &format!("<p>{}</p>", page::escape(&next)),
        );
    }
    HttpResponse::Ok().json(json!({
        "id": user.id,
        "liveness": true,
        "missing_for_l2": missing,
        "user": render(&state, &user),
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelChange {
    level: String,
    #[serde(default = "yes")]
    webhook: bool,
}

fn yes() -> bool {
    true
}

/// `POST /_sim/killb/users/{id}/level` `{"level": "L0"…"L4", "webhook"?}`: reports another
/// `accessLevel` (until the status moves) and sends `USER`/`UPDATE`.
async fn set_level(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let bad = |message: String| HttpResponse::BadRequest().json(json!({ "error": message }));
    let change: LevelChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    if !LEVELS.contains(&change.level.as_str()) {
        return bad(format!("level must be one of {}", LEVELS.join(", ")));
    }
    let user = match control_user(&state, &req) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let state = state.into_inner();
    match state.update_user(ProviderId::Killb, &user.id, change.webhook, |user| {
        user.verification[LEVEL] = Value::from(change.level);
    }) {
        Some(user) => HttpResponse::Ok().json(render(&state, &user)),
        None => HttpResponse::NotFound().json(json!({ "error": "unknown user" })),
    }
}

/// `POST /_sim/killb/expire-tokens`: expires every access token now.
async fn expire_tokens(state: web::Data<SimState>) -> HttpResponse {
    let mut tokens = lock(&state.providers.killb.tokens);
    let now = Instant::now();
    let mut n = 0;
    for token in tokens.values_mut().filter(|t| !t.refresh) {
        token.expires_at = now;
        n += 1;
    }
    HttpResponse::Ok().json(json!({ "expired": n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_settings_round_trip_the_webhook_scheme() {
        for (scheme, wire) in [
            (SignatureScheme::HmacSha256, "hmac_sha256"),
            (SignatureScheme::Sha256Concat, "sha256_concat"),
        ] {
            let mut config = SimConfig::development();
            config.killb.webhook_scheme = scheme;
            let section = config.gateway_settings(ProviderId::Killb, "http://sim");
            assert_eq!(section[SCHEME_KEY], Value::from(wire));
            assert_eq!(section["email"], Value::from(DEV_EMAIL));
            assert_eq!(section["password"], Value::from(DEV_PASSWORD));
            assert_eq!(section["webhook_secret"], Value::from(DEV_WEBHOOK_SECRET));

            let mut follower = SimConfig::development();
            follower.killb.webhook_scheme = match scheme {
                SignatureScheme::HmacSha256 => SignatureScheme::Sha256Concat,
                SignatureScheme::Sha256Concat => SignatureScheme::HmacSha256,
            };
            follower.follow_gateway_settings(ProviderId::Killb, &section);
            assert_eq!(follower.killb.webhook_scheme, scheme);
        }
    }

    #[test]
    fn an_unreadable_scheme_is_not_followed() {
        let mut config = SimConfig::development();
        let mut section = Map::new();
        section.insert(SCHEME_KEY.into(), Value::from("md5"));
        config.follow_gateway_settings(ProviderId::Killb, &section);
        assert_eq!(config.killb.webhook_scheme, SignatureScheme::HmacSha256);
    }
}
