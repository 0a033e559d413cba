//! Kraken Embed simulator: `POST /b2b/users`, `GET`/`PATCH /b2b/users/{iiban}`,
//! `POST /b2b/verifications/{iiban}` (after https://docs.kraken.com/api/docs/embed-api and
//! https://kraken-sandbox.mintlify.app/api-reference/verifications/submit-verification).
//!
//! A user's `required_actions` start from its status (see the module docs of `sim`); once a
//! verification is accepted or an action is added through the control endpoint, the user keeps
//! an explicit action list (`SimUser::verification.required_actions`) that the status is derived
//! from, until a status is set again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::faults::{self, enter, target};
use super::multipart::{self, Part};
use super::provider::{gateway_section, SimProvider};
use super::state::{lock, Change, SimState, SimStatus, SimUser};
use super::validate::{merge, timestamp, Checker};
use super::webhooks::{deliver, Build};
use super::SimConfig;
use crate::domain::provider::ProviderId;
use crate::domain::verification::DocumentContentType;
use crate::providers::kraken::signing::{verify_api_sign, SigningError};
use crate::providers::kraken::webhook as kraken_webhook;

/// Kraken dev API key.
pub const DEV_API_KEY: &str = "kraken-sim-dev-api-key";
/// Kraken dev API secret (base64, as Kraken issues it).
pub const DEV_API_SECRET_B64: &str =
    "a3Jha2VuLXNpbS1hcGktc2VjcmV0OmRldmVsb3BtZW50LW9ubHk7bmV2ZXItdXNlLWluLXByb2R1Y3Rpb24hIQ==";
/// Kraken dev webhook secret (base64, as returned at webhook registration).
pub const DEV_WEBHOOK_SECRET_B64: &str = "a3Jha2VuLXNpbS13ZWJob29rLXNlY3JldDpkZXYtb25seQ==";
/// The simulator's Kraken webhook configuration id (`X-Webhook-ID`).
const WEBHOOK_ID: &str = "WHSIM-KRAKN-000001";

/// Kraken credentials the simulator accepts and signs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `API-Key` value.
    pub api_key: String,
    /// Base64 API secret used to verify `API-Sign`.
    pub api_secret_b64: String,
    /// Base64 webhook secret used to sign `X-Signature`.
    pub webhook_secret_b64: String,
    /// Accept a `back` part with a passport `identity_document`. Off by default: Payward's twin
    /// API documents "passports must omit `back_url`"
    /// (https://docs.services.payward.com/api-reference/verifications/submit-verification-from-url),
    /// Kraken's own reference says nothing.
    pub accept_passport_back: bool,
}

impl Config {
    /// The `DEV_*` credentials.
    pub fn development() -> Self {
        Self {
            api_key: DEV_API_KEY.into(),
            api_secret_b64: DEV_API_SECRET_B64.into(),
            webhook_secret_b64: DEV_WEBHOOK_SECRET_B64.into(),
            accept_passport_back: false,
        }
    }
}

/// What the Kraken simulator keeps.
pub(crate) struct State {
    /// Last accepted nonce per API key.
    nonces: Mutex<HashMap<String, u64>>,
}

impl State {
    pub(crate) fn new(_config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            nonces: Mutex::new(HashMap::new()),
        })
    }
}

/// The Kraken Embed simulator.
pub(crate) struct Simulator;

impl SimProvider for Simulator {
    /// Kraken: "exponential backoff… Production: Retries for up to 5 minutes": 10 retries, the
    /// last 204.6 s after the first attempt (an 11th would pass 5 minutes).
    fn webhook_retries(&self) -> u32 {
        10
    }

    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/b2b/") || path == "/b2b"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        routes(cfg);
    }

    fn render(&self, _state: &SimState, user: &SimUser) -> Value {
        render(user)
    }

    fn fault_error(&self, status: StatusCode, _req: &HttpRequest) -> HttpResponse {
        let message = match status.as_u16() {
            429 => "EAPI:Rate limit exceeded",
            503 => "EService:Unavailable",
            408 | 504 => "EService:Timeout",
            _ => "EGeneral:Internal error",
        };
        error(status, message)
    }

    fn not_found(&self, _req: &HttpRequest) -> HttpResponse {
        error(StatusCode::NOT_FOUND, "EGeneral:Unknown method")
    }

    /// A status set from outside (control endpoint, end of a review) brings back that status's
    /// own actions: any explicit action list is dropped.
    fn apply_status(&self, user: &mut SimUser, status: SimStatus) {
        user.status = status;
        if let Some(record) = user.verification.as_object_mut() {
            record.remove(ACTIONS);
        }
    }

    fn reviewed(&self, _user: &SimUser) -> SimStatus {
        SimStatus::Approved
    }

    /// `user.verified`/`user.disabled`/`user.closed` when the status moves there; nothing for
    /// a profile change.
    fn changed(&self, state: &Arc<SimState>, change: Change<'_>, user: &SimUser) {
        if change.notifies_status(user) {
            emit(state, user);
        }
    }

    fn gateway_settings(&self, config: &SimConfig, base_url: &str) -> Map<String, Value> {
        let c = &config.kraken;
        gateway_section(
            base_url,
            [
                ("api_key", c.api_key.clone().into()),
                ("api_secret", c.api_secret_b64.clone().into()),
                ("webhook_secret", c.webhook_secret_b64.clone().into()),
            ],
        )
    }

    /// Kraken has no variants to follow.
    fn follow_gateway_settings(&self, _config: &mut SimConfig, _section: &Map<String, Value>) {}
}

const OCCUPATIONS: &[&str] = &[
    "agriculture",
    "business_management",
    "computers_and_it",
    "construction",
    "education",
    "employed",
    "finance",
    "government",
    "healthcare",
    "hospitality",
    "manufacturing",
    "marketing",
    "media",
    "other",
    "science",
    "self_employed",
    "student",
    "transportation",
    "unemployed",
];

/// Non-ISO codes Kraken's country enum also accepts.
const EXTRA_COUNTRIES: &[&str] = &[
    "0C", "AC", "AN", "AP", "CP", "DG", "EA", "EU", "IC", "JX", "QO", "TA", "XK",
];

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/_sim/kraken/users/{user}/actions").route(web::post().to(add_actions)))
        .service(web::resource("/b2b/users").route(web::post().to(create_user)))
        .service(
            web::resource("/b2b/users/{user}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user)),
        )
        .service(
            // There is no GET of a verification: other methods are unknown routes.
            web::resource("/b2b/verifications/{user}")
                .route(web::post().to(submit_verification))
                .default_service(web::to(faults::not_found)),
        );
}

/// `{"error":[message]}` with `status`.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": [message] }))
}

fn invalid_arguments(checker: Checker) -> HttpResponse {
    let errors: Vec<String> = checker
        .errors
        .iter()
        .map(|e| format!("EGeneral:Invalid arguments:{} {}", e.field, e.message))
        .collect();
    HttpResponse::BadRequest().json(json!({ "error": errors }))
}

/// Checks `API-Key`, `API-Nonce`, `API-Sign` over the raw request-target and body.
fn authenticate(state: &SimState, req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let unauthorized = |message: &str| error(StatusCode::UNAUTHORIZED, message);
    let key = header("API-Key").ok_or_else(|| unauthorized("EAPI:Missing API-Key"))?;
    let nonce_text = header("API-Nonce").ok_or_else(|| unauthorized("EAPI:Invalid nonce"))?;
    let nonce: u64 = nonce_text
        .parse()
        .ok()
        .filter(|n: &u64| n.to_string() == nonce_text)
        .ok_or_else(|| unauthorized("EAPI:Invalid nonce"))?;
    let sign = header("API-Sign").ok_or_else(|| unauthorized("EAPI:Invalid signature"))?;
    let credentials = &state.config.kraken;
    if key != credentials.api_key {
        return Err(unauthorized("EAPI:Invalid key"));
    }
    match verify_api_sign(&credentials.api_secret_b64, &target(req), nonce, body, sign) {
        Ok(()) => {}
        Err(SigningError::InvalidSecret) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "EGeneral:Internal error",
            ))
        }
        Err(_) => return Err(unauthorized("EAPI:Invalid signature")),
    }
    let mut nonces = lock(&state.providers.kraken.nonces);
    let last = nonces.entry(key.to_owned()).or_insert(0);
    if nonce <= *last {
        return Err(unauthorized("EAPI:Invalid nonce"));
    }
    *last = nonce;
    Ok(())
}

async fn guard(state: &SimState, req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    enter(state, ProviderId::Kraken, req, body).await?;
    authenticate(state, req, body)
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(HttpResponse::BadRequest()
            .json(json!({"error": ["EGeneral:Invalid arguments:body must be a JSON object"]}))),
    }
}

/// Validates a create (`create = true`) or update body.
fn check_profile(body: &Map<String, Value>, create: bool) -> Checker {
    let mut c = Checker::default();
    let mut allowed = vec![
        "tos_version_accepted",
        "full_name",
        "date_of_birth",
        "residence",
        "phone",
        "nationalities",
        "occupation",
        "employer_name",
        "client_identifier",
        "city_of_birth",
        "country_of_birth",
        "tax_ids",
        "language",
    ];
    if create {
        allowed.extend(["email", "external_id"]);
        c.email(body, "", "email", true);
        c.string(body, "", "external_id", true);
    } else {
        for key in ["email", "external_id"] {
            if body.contains_key(key) {
                c.err(key, "is not updatable");
            }
        }
    }
    c.no_unknown(body, "", &allowed);
    c.integer(body, "", "tos_version_accepted", create);
    if let Some(name) = c.object(body, "", "full_name", create) {
        c.no_unknown(
            name,
            "full_name",
            &["first_name", "middle_name", "last_name"],
        );
        c.string(name, "full_name", "first_name", true);
        c.string(name, "full_name", "middle_name", false);
        c.string(name, "full_name", "last_name", true);
    }
    c.birth_date(body, "", "date_of_birth", create);
    if let Some(res) = c.object(body, "", "residence", create) {
        c.no_unknown(
            res,
            "residence",
            &[
                "line1",
                "line2",
                "city",
                "postal_code",
                "province",
                "country",
            ],
        );
        c.string(res, "residence", "line1", true);
        c.string(res, "residence", "line2", false);
        c.string(res, "residence", "city", true);
        c.string(res, "residence", "postal_code", true);
        c.string(res, "residence", "province", false);
        c.alpha2(res, "residence", "country", true, EXTRA_COUNTRIES);
    }
    c.phone(body, "", "phone", create, false);
    if let Some(list) = c.array(body, "", "nationalities", create) {
        if list.is_empty() && create {
            c.err("nationalities", "must not be empty");
        }
        for (i, item) in list.iter().enumerate() {
            let field = format!("nationalities[{i}]");
            match item.as_str() {
                Some(code) => {
                    c.check_alpha2(&field, code, EXTRA_COUNTRIES);
                }
                None => c.err(field, "must be a string"),
            }
        }
    }
    c.one_of(body, "", "occupation", create, OCCUPATIONS);
    c.string(body, "", "employer_name", false);
    c.string(body, "", "city_of_birth", false);
    c.alpha2(body, "", "country_of_birth", false, EXTRA_COUNTRIES);
    c.string(body, "", "language", false);
    if let Some(list) = c.array(body, "", "tax_ids", false) {
        for (i, item) in list.iter().enumerate() {
            let path = format!("tax_ids[{i}]");
            match item.as_object() {
                Some(tax) => {
                    c.no_unknown(tax, &path, &["id", "issuing_country"]);
                    c.string(tax, &path, "id", true);
                    c.alpha2(tax, &path, "issuing_country", true, EXTRA_COUNTRIES);
                }
                None => c.err(path, "must be an object"),
            }
        }
    }
    c
}

fn new_iiban(seq: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let digits: u8 = rand::random_range(10..100);
    let body: String = (0..12)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    // Every other IIBAN carries spaces, like the documented `AA95 N84G TEST XXXX`, so clients
    // must percent-encode the path (and sign the encoded form).
    if seq % 2 == 1 {
        format!(
            "AA{digits} {} {} {}",
            &body[0..4],
            &body[4..8],
            &body[8..12]
        )
    } else {
        format!("AA{digits}{body}")
    }
}

fn valid_iiban(id: &str) -> bool {
    (14..=42).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

/// Percent-decodes a path segment (tolerates already-decoded input).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = [bytes[i + 1], bytes[i + 2]];
            if let Some(b) = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn user_id(req: &HttpRequest) -> Result<String, HttpResponse> {
    let raw = req.match_info().get("user").unwrap_or_default();
    let id = percent_decode(raw);
    if valid_iiban(&id) {
        Ok(id)
    } else {
        Err(error(StatusCode::BAD_REQUEST, "ENexus:Invalid user ID"))
    }
}

fn seconds(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The `status` object Kraken reports for a user.
fn status_json(user: &SimUser) -> Value {
    if let Some(raw) = &user.provider_status {
        return raw.clone();
    }
    if let Some(actions) = explicit_actions(user) {
        return json!({"state": "ok", "required_actions": actions});
    }
    status_of(user)
}

/// The `status` object of the user's sim status alone.
fn status_of(user: &SimUser) -> Value {
    let deadline = seconds(user.created_at + time::Duration::days(30));
    match user.status {
        SimStatus::Pending => json!({"state": "ok", "required_actions": [{
            "action_type": "verification", "verification_type": "identity",
            "reasons": ["initial_onboarding"], "deadline": deadline}]}),
        SimStatus::UnderReview => json!({"state": "ok", "required_actions": [{
            "action_type": "wait", "wait_reason_code": "manual_review"}]}),
        SimStatus::Incomplete => json!({"state": "ok", "required_actions": [{
            "action_type": "provide_details", "details_type": {"type": "residence"},
            "reason": "missing_information", "deadline": deadline}]}),
        SimStatus::Approved => json!({"state": "ok", "required_actions": []}),
        SimStatus::Rejected => json!({"state": "closed", "reasons": ["verification_failed"]}),
        SimStatus::Suspended => {
            json!({"state": "disabled", "reasons": ["account_suspended"], "required_actions": []})
        }
        SimStatus::Closed => json!({"state": "closed", "reasons": ["account_closed"]}),
    }
}

/// The webhook event a user's current status corresponds to, if any.
fn event_for(user: &SimUser) -> Option<&'static str> {
    let status = status_json(user);
    match status.get("state").and_then(Value::as_str) {
        Some("disabled") => Some("user.disabled"),
        Some("closed") => Some("user.closed"),
        Some("ok")
            if status
                .get("required_actions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.is_empty()) =>
        {
            Some("user.verified")
        }
        _ => None,
    }
}

/// `GET /b2b/users/{user}`'s `result`.
fn render(user: &SimUser) -> Value {
    json!({
        "user": user.id,
        "user_type": "individual",
        "status": status_json(user),
        "created_at": seconds(user.created_at),
        "external_id": user.external_id,
    })
}

fn event_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let part = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}-{}-{}", part(6), part(5), part(6))
}

/// Sends the signed status webhook for the user's current status (none for a status without
/// an event).
fn emit(state: &Arc<SimState>, user: &SimUser) {
    let Some(event) = event_for(user) else {
        return;
    };
    let secret = state.config.kraken.webhook_secret_b64.clone();
    let body = serde_json::to_vec(&json!({
        "event_type": event,
        "iiban": user.id,
        "id": event_id(),
        "timestamp": timestamp(OffsetDateTime::now_utc(), true),
    }))
    .unwrap_or_default();
    let build: Build = Box::new(move |_attempt| {
        let t = OffsetDateTime::now_utc().unix_timestamp();
        let signature = kraken_webhook::signature_header(&secret, t, &body).unwrap_or_default();
        (
            vec![
                ("Content-Type".into(), "application/json".into()),
                (kraken_webhook::SIGNATURE_HEADER.into(), signature),
                (kraken_webhook::EVENT_HEADER.into(), event.into()),
                (kraken_webhook::WEBHOOK_ID_HEADER.into(), WEBHOOK_ID.into()),
            ],
            body.clone(),
        )
    });
    deliver(state, ProviderId::Kraken, event.to_owned(), &user.id, build);
}

async fn create_user(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let profile = match parse_object(&body) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let checker = check_profile(&profile, true);
    if !checker.ok() {
        return invalid_arguments(checker);
    }
    let external_id = profile
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let email = profile
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = SimStatus::from_email_tag(email).unwrap_or(SimStatus::Pending);
    let state: Arc<SimState> = state.into_inner();
    let seq = state.next_seq();
    // `external_id` is unique within a partner account (Kraken states it for subaccounts; the
    // gateway relies on it for Create User too): a second create with it is refused with 409,
    // checked and inserted under one lock so concurrent creates cannot both pass. The
    // simulator serves one partner (one API key), so the check spans all its users.
    let created = state.insert_user_unless(|store| {
        if store
            .candidates(ProviderId::Kraken, &format!("ext:{external_id}"))
            .any(|u| u.external_id.as_deref() == Some(external_id.as_str()))
        {
            return Err(error(StatusCode::CONFLICT, "ENexus:User already exists"));
        }
        let users = store.users(ProviderId::Kraken);
        let mut id = new_iiban(seq);
        while users.contains_key(&id) {
            id = new_iiban(seq);
        }
        let now = OffsetDateTime::now_utc();
        Ok(SimUser {
            id,
            seq,
            provider: ProviderId::Kraken,
            status,
            provider_status: None,
            active: true,
            profile: Value::Object(profile),
            external_id: Some(external_id),
            user_type: None,
            verification: Value::Null,
            created_at: now,
            updated_at: now,
        })
    });
    let id = match created {
        Ok(user) => user.id,
        Err(refused) => return refused,
    };
    HttpResponse::Created().json(json!({ "result": { "user": id } }))
}

async fn get_user(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let id = match user_id(&req) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match state.user(ProviderId::Kraken, &id) {
        Some(user) => HttpResponse::Ok().json(json!({ "result": render(&user) })),
        None => error(StatusCode::NOT_FOUND, "ENexus:User not found"),
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
    let id = match user_id(&req) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let patch = match parse_object(&body) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let Some(user) = state.user(ProviderId::Kraken, &id) else {
        return error(StatusCode::NOT_FOUND, "ENexus:User not found");
    };
    let checker = check_profile(&patch, false);
    if !checker.ok() {
        return invalid_arguments(checker);
    }
    let state = state.into_inner();
    let patched: Vec<String> = patch.keys().cloned().collect();
    let patch = Value::Object(patch);
    if explicit_actions(&user).is_some() {
        // The patch provides the details its fields name: their `provide_details` actions go.
        state.update_user(ProviderId::Kraken, &id, true, |user| {
            merge(&mut user.profile, &patch);
            settle_actions(user, |actions| {
                actions.retain(|action| {
                    action_type(action) != "provide_details"
                        || !details_field(action).is_some_and(|f| patched.iter().any(|p| p == f))
                })
            });
        });
    } else {
        {
            let mut store = state.lock();
            if let Some(user) = store.users_mut(ProviderId::Kraken).get_mut(&id) {
                merge(&mut user.profile, &patch);
                user.updated_at = OffsetDateTime::now_utc();
            }
        }
        state.after_update(ProviderId::Kraken, &id, false);
    }
    HttpResponse::Ok().json(json!({ "result": "success" }))
}

// ---------------------------------------------------------------------------------------------
// Verifications and required actions

/// Key of the explicit action list in `SimUser::verification`.
const ACTIONS: &str = "required_actions";
/// Key of the accepted verifications (id, type, time; never metadata or files).
const VERIFICATIONS: &str = "verifications";

/// The `type`s of `POST /b2b/verifications/{user}` (Privy's proxy spec of Embed lists them:
/// https://github.com/privy-io/rust-sdk, `openapi.json`).
const VERIFICATION_KINDS: &[&str] = &[
    "identity_document",
    "residence_document",
    "tax_id_document",
    "selfie",
    "watchlists",
];
const IDENTITY_DOCUMENT_TYPES: &[&str] = &[
    "drivers_license",
    "id_card",
    "passport",
    "residence_card",
    "special_permanent_residence_card",
];
const RESIDENCE_DOCUMENT_TYPES: &[&str] = &[
    "bank_statement",
    "credit_card_statement",
    "employer_letter_or_work_contract",
    "government_issued_document",
    "home_or_rental_insurance",
    "internet_or_cable_bill",
    "mobile_phone_bill",
    "mortgage_statement",
    "official_government_letter",
    "other",
    "passport_address_page",
    "rental_or_lease_agreement",
    "residence_certificate",
    "social_insurance_payment_receipt",
    "tax_receipt",
    "tax_return",
    "utility_bill",
];
const TAX_ID_TYPES: &[&str] = &[
    "cpf",
    "curp",
    "individual_taxpayer_identification_number",
    "national_insurance_number",
    "personal_public_service_number",
    "sin",
    "ssn",
    "tax_identification_number",
];
const SELFIE_TYPES: &[&str] = &["selfie", "selfie_capture_video"];
/// Every part the multipart body may have.
const PARTS: &[&str] = &[
    "type",
    "metadata",
    "front",
    "back",
    "document",
    "selfie",
    "verifier_response",
];
/// The file parts that carry a document image (`verifier_response` is free-form evidence).
const IMAGE_PARTS: &[&str] = &["front", "back", "document", "selfie"];
/// The attestation fields every `metadata` but `watchlists` has.
const ATTESTATION: &[&str] = &[
    "verifier",
    "verified_at",
    "verifier_response",
    "external_verification_id",
    "expiration_date",
];
/// The `watchlists` sections and the `verification` action each clears.
const WATCHLISTS: &[(&str, &str)] = &[
    ("sanctions", "sanctions_check"),
    ("pep", "pep_check"),
    ("negative_news", "negative_news_check"),
];

/// The image parts a `type` requires and those it allows. The tax id document's part name is
/// not documented for this route; Kraken's older `VerifyUser` call names it `document`
/// (https://github.com/krakenfx/api-go, `pkg/spot/rest.go`).
fn image_parts(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "identity_document" => (&["front"], &["front", "back"]),
        "residence_document" | "tax_id_document" => (&["document"], &["document"]),
        "selfie" => (&["selfie"], &["selfie"]),
        _ => (&[], &[]),
    }
}

/// A submission that passed validation.
struct Submission {
    kind: &'static str,
    metadata: Map<String, Value>,
}

impl Submission {
    /// The `verification_type`s of the `verification` actions this submission satisfies (a
    /// watchlist section only when it came back `Cleared`).
    fn satisfies(&self) -> Vec<&'static str> {
        match self.kind {
            "identity_document" => vec!["identity"],
            "residence_document" => vec!["residence"],
            "tax_id_document" => vec!["tax_id"],
            "selfie" => vec!["selfie"],
            _ => WATCHLISTS
                .iter()
                .filter(|(section, _)| {
                    self.metadata
                        .get(*section)
                        .and_then(|s| s.get("status"))
                        .and_then(Value::as_str)
                        == Some("Cleared")
                })
                .map(|(_, action)| *action)
                .collect(),
        }
    }
}

/// Validates the parts of a verification. Errors name the part, or `metadata.<path>`.
fn check_submission(parts: &[Part], config: &Config) -> Result<Submission, Checker> {
    let mut c = Checker::default();
    let mut by_name: HashMap<&str, &Part> = HashMap::new();
    for part in parts {
        if !PARTS.contains(&part.name.as_str()) {
            c.err(part.name.clone(), "is not a known part");
        } else if by_name.insert(part.name.as_str(), part).is_some() {
            c.err(part.name.clone(), "is given more than once");
        }
    }
    let text = |c: &mut Checker, name: &str| -> Option<&str> {
        match by_name.get(name) {
            None => {
                c.err(name, "is required");
                None
            }
            Some(part) if part.is_file() => {
                c.err(name, "must be a text part, not a file");
                None
            }
            Some(part) => {
                let text = part.text();
                if text.is_none() {
                    c.err(name, "must be UTF-8 text");
                }
                text
            }
        }
    };
    let kind = text(&mut c, "type").and_then(|value| {
        let kind = VERIFICATION_KINDS.iter().find(|k| **k == value).copied();
        if kind.is_none() {
            c.err(
                "type",
                format!(
                    "must be one of the following values: {}",
                    VERIFICATION_KINDS.join(", ")
                ),
            );
        }
        kind
    });
    let metadata = text(&mut c, "metadata").and_then(|value| {
        match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                c.err("metadata", "must be a JSON object sent as a string");
                None
            }
        }
    });
    let (Some(kind), Some(metadata)) = (kind, metadata) else {
        return Err(c);
    };
    let (required, allowed) = image_parts(kind);
    for name in required {
        if !by_name.contains_key(name) {
            c.err(*name, format!("is required for {kind}"));
        }
    }
    for name in IMAGE_PARTS {
        match by_name.get(name) {
            Some(_) if !allowed.contains(name) => c.err(*name, format!("is not allowed for {kind}")),
            Some(part) => check_image(&mut c, part),
            None => {}
        }
    }
    check_metadata(&mut c, kind, &metadata);
    let passport = metadata.get("document_type").and_then(Value::as_str) == Some("passport");
    if kind == "identity_document"
        && passport
        && by_name.contains_key("back")
        && !config.accept_passport_back
    {
        c.err("back", "must be omitted for a passport");
    }
    if c.ok() {
        Ok(Submission { kind, metadata })
    } else {
        Err(c)
    }
}

/// An image part: a file whose content is JPEG, PNG or PDF, and whose declared type (when it
/// declares one of those) agrees with its content.
fn check_image(c: &mut Checker, part: &Part) {
    let name = part.name.as_str();
    if !part.is_file() {
        c.err(name, "must be a file (a part with a filename)");
        return;
    }
    let Some(sniffed) = DocumentContentType::sniff(&part.data) else {
        c.err(name, "must be a JPEG, PNG or PDF file");
        return;
    };
    let declared = part
        .content_type
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let declared = match declared.as_deref() {
        Some("image/jpg") => Some("image/jpeg".to_owned()),
        _ => declared,
    };
    if let Some(declared) = declared.filter(|d| DocumentContentType::from_wire(d).is_some()) {
        if declared != sniffed.as_str() {
            c.err(
                name,
                format!("is declared {declared} but its content is {}", sniffed.as_str()),
            );
        }
    }
}

/// `metadata` per `type`: the model of Privy's proxy spec (required fields, enums, alpha-2
/// countries, RFC 3339 `verified_at`); unknown fields are refused.
fn check_metadata(c: &mut Checker, kind: &str, m: &Map<String, Value>) {
    let p = "metadata";
    if kind == "watchlists" {
        let sections: Vec<&str> = WATCHLISTS.iter().map(|(s, _)| *s).collect();
        c.no_unknown(m, p, &sections);
        let mut any = false;
        for section in sections {
            let Some(s) = c.object(m, p, section, false) else {
                continue;
            };
            any = true;
            let path = format!("{p}.{section}");
            c.no_unknown(
                s,
                &path,
                &[
                    "verifier",
                    "verified_at",
                    "status",
                    "verifier_response",
                    "external_verification_id",
                    "expiration_date",
                ],
            );
            c.string(s, &path, "verifier", true);
            c.datetime(s, &path, "verified_at", true);
            c.one_of(s, &path, "status", true, &["Cleared", "Matched"]);
            c.string(s, &path, "external_verification_id", false);
            c.date(s, &path, "expiration_date", false);
        }
        if !any {
            c.err(p, "needs at least one of sanctions, pep, negative_news");
        }
        return;
    }
    c.string(m, p, "verifier", true);
    c.datetime(m, p, "verified_at", true);
    c.string(m, p, "external_verification_id", false);
    c.date(m, p, "expiration_date", false);
    let own: &[&str] = match kind {
        "identity_document" => &[
            "identity",
            "document_type",
            "document_number",
            "issuing_country",
            "nationality",
        ],
        "residence_document" => &["address", "document_type"],
        "tax_id_document" => &["tax_id_type", "document_type", "country"],
        _ => &["selfie_type"],
    };
    c.no_unknown(m, p, &[ATTESTATION, own].concat());
    match kind {
        "identity_document" => {
            if let Some(identity) = c.object(m, p, "identity", true) {
                let path = "metadata.identity";
                c.no_unknown(identity, path, &["full_name", "date_of_birth"]);
                if let Some(name) = c.object(identity, path, "full_name", true) {
                    let path = "metadata.identity.full_name";
                    c.no_unknown(name, path, &["first_name", "middle_name", "last_name"]);
                    c.string(name, path, "first_name", true);
                    c.string(name, path, "middle_name", false);
                    c.string(name, path, "last_name", true);
                }
                c.birth_date(identity, path, "date_of_birth", true);
            }
            c.one_of(m, p, "document_type", true, IDENTITY_DOCUMENT_TYPES);
            c.string(m, p, "document_number", true);
            c.alpha2(m, p, "issuing_country", true, EXTRA_COUNTRIES);
            c.alpha2(m, p, "nationality", false, EXTRA_COUNTRIES);
        }
        "residence_document" => {
            if let Some(address) = c.object(m, p, "address", true) {
                let path = "metadata.address";
                c.no_unknown(
                    address,
                    path,
                    &["line1", "line2", "city", "postal_code", "province", "country"],
                );
                c.string(address, path, "line1", true);
                c.string(address, path, "line2", false);
                c.string(address, path, "city", true);
                c.string(address, path, "postal_code", true);
                c.string(address, path, "province", false);
                c.alpha2(address, path, "country", true, EXTRA_COUNTRIES);
            }
            c.one_of(m, p, "document_type", true, RESIDENCE_DOCUMENT_TYPES);
        }
        "tax_id_document" => {
            c.one_of(m, p, "tax_id_type", true, TAX_ID_TYPES);
            c.one_of(m, p, "document_type", true, &["other", "tax_return"]);
            c.alpha2(m, p, "country", true, EXTRA_COUNTRIES);
        }
        _ => {
            c.one_of(m, p, "selfie_type", true, SELFIE_TYPES);
        }
    }
}

/// `ver_` and 20 Crockford base32 characters, like Payward's documented
/// `ver_01J0M9P2T7K3W2BHJ7T9` (Embed's own id format is not documented publicly).
fn new_verification_id() -> String {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let body: String = (0..20)
        .map(|_| CROCKFORD[rand::random_range(0..CROCKFORD.len())] as char)
        .collect();
    format!("ver_{body}")
}

fn action_type(action: &Value) -> &str {
    action
        .get("action_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The profile field a `provide_details` action asks for (its `details_type.type`, in the
/// field names of `PATCH /b2b/users/{user}`).
fn details_field(action: &Value) -> Option<&str> {
    let wanted = action.get("details_type")?.get("type")?.as_str()?;
    Some(match wanted {
        "terms_of_service" => "tos_version_accepted",
        "employer" => "employer_name",
        other => other,
    })
}

/// The user's explicit action list, once it has one.
fn explicit_actions(user: &SimUser) -> Option<&Vec<Value>> {
    user.verification.get(ACTIONS).and_then(Value::as_array)
}

/// The actions the user has now, explicit or those of its status; `None` when it is not in
/// state `ok` (closed, disabled, or a raw provider status the simulator does not interpret).
fn current_actions(user: &SimUser) -> Option<Vec<Value>> {
    if user.provider_status.is_some() {
        return None;
    }
    if let Some(actions) = explicit_actions(user) {
        return Some(actions.clone());
    }
    let status = status_of(user);
    (status.get("state").and_then(Value::as_str) == Some("ok")).then(|| {
        status
            .get("required_actions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    })
}

/// The sim status an action list stands for: any `verification` → pending, any other
/// non-`wait` action → incomplete, only `wait` → under review (approved when the review
/// delay ends), none → approved.
fn status_for(actions: &[Value]) -> SimStatus {
    if actions.iter().any(|a| action_type(a) == "verification") {
        SimStatus::Pending
    } else if actions.iter().any(|a| action_type(a) != "wait") {
        SimStatus::Incomplete
    } else if actions.is_empty() {
        SimStatus::Approved
    } else {
        SimStatus::UnderReview
    }
}

/// Applies `change` to the user's actions (made explicit). When it removes the last
/// `verification`/`provide_details` (any non-`wait`) action, a `wait` (`sim_review`) takes their
/// place, so the user goes under review and is approved after the review delay. The status
/// follows the list. Nothing happens to a user that is not in state `ok`.
fn settle_actions(user: &mut SimUser, change: impl FnOnce(&mut Vec<Value>)) {
    let Some(mut actions) = current_actions(user) else {
        return;
    };
    let blocking = |actions: &[Value]| actions.iter().filter(|a| action_type(a) != "wait").count();
    let before = blocking(&actions);
    change(&mut actions);
    if before > 0 && blocking(&actions) == 0 {
        actions.push(json!({"action_type": "wait", "wait_reason_code": "sim_review"}));
    }
    user.status = status_for(&actions);
    user.verification[ACTIONS] = Value::Array(actions);
}

/// `POST /b2b/verifications/{user}`: a partner-attested verification, multipart, signed over
/// the exact body bytes.
async fn submit_verification(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = guard(&state, &req, &body).await {
        return response;
    }
    let id = match user_id(&req) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let content_type = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok());
    let parts = match multipart::parse_request(content_type, &body) {
        Ok(parts) => parts,
        // Kraken documents no verification-specific error strings; this follows its
        // `EGeneral:Invalid arguments` family (invented text).
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("EGeneral:Invalid arguments:{e}")),
    };
    if state.user(ProviderId::Kraken, &id).is_none() {
        return error(StatusCode::NOT_FOUND, "ENexus:User not found");
    }
    // Invented strings too: `EGeneral:Invalid arguments:<part or metadata path> <problem>`.
    let submission = match check_submission(&parts, &state.config.kraken) {
        Ok(submission) => submission,
        Err(checker) => return invalid_arguments(checker),
    };
    let verification_id = new_verification_id();
    let satisfied = submission.satisfies();
    let record = json!({
        "verification_id": verification_id,
        "type": submission.kind,
        "received_at": seconds(OffsetDateTime::now_utc()),
    });
    state
        .into_inner()
        .update_user(ProviderId::Kraken, &id, true, |user| {
            match user.verification.get_mut(VERIFICATIONS).and_then(Value::as_array_mut) {
                Some(list) => list.push(record),
                None => user.verification[VERIFICATIONS] = json!([record]),
            }
            settle_actions(user, |actions| {
                actions.retain(|action| {
                    action_type(action) != "verification"
                        || !action
                            .get("verification_type")
                            .and_then(Value::as_str)
                            .is_some_and(|t| satisfied.contains(&t))
                })
            });
        });
    HttpResponse::Ok().json(json!({"error": [], "result": {"verification_id": verification_id}}))
}

/// `POST /_sim/kraken/users/{user}/actions`: adds raw actions (an object or an array of them,
/// each with an `action_type`) to a user in state `ok`.
async fn add_actions(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let bad = |message: &str| HttpResponse::BadRequest().json(json!({ "error": message }));
    let added = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(list)) => list,
        Ok(action @ Value::Object(_)) => vec![action],
        _ => return bad("body must be an action object or an array of them"),
    };
    if added.is_empty()
        || added
            .iter()
            .any(|a| !a.is_object() || a.get("action_type").and_then(Value::as_str).is_none())
    {
        return bad("every action needs a string action_type");
    }
    let id = percent_decode(req.match_info().get("user").unwrap_or_default());
    let Some(user) = state.user(ProviderId::Kraken, &id) else {
        return HttpResponse::NotFound().json(json!({ "error": "unknown user" }));
    };
    if current_actions(&user).is_none() {
        return HttpResponse::Conflict()
            .json(json!({ "error": "actions apply to users in state ok" }));
    }
    let state = state.into_inner();
    match state.update_user(ProviderId::Kraken, &id, true, |user| {
        settle_actions(user, |actions| actions.extend(added))
    }) {
        Some(user) => HttpResponse::Ok().json(render(&user)),
        None => HttpResponse::NotFound().json(json!({ "error": "unknown user" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iibans_are_valid_and_alternate_spaces() {
        let spaced = new_iiban(1);
        let plain = new_iiban(2);
        assert!(
            valid_iiban(&spaced) && spaced.contains(' ') && spaced.len() == 19,
            "{spaced}"
        );
        assert!(
            valid_iiban(&plain) && !plain.contains(' ') && plain.len() == 16,
            "{plain}"
        );
        assert!(!valid_iiban("AA12"));
        assert!(!valid_iiban("aa12n84gabcdefgh"));
    }

    #[test]
    fn an_action_list_stands_for_a_status() {
        let verification = json!({"action_type": "verification", "verification_type": "selfie"});
        let details = json!({"action_type": "provide_details", "details_type": {"type": "phone"}});
        let wait = json!({"action_type": "wait", "wait_reason_code": "sim_review"});
        let odd = json!({"action_type": "something_new"});
        assert_eq!(status_for(&[]), SimStatus::Approved);
        assert_eq!(status_for(std::slice::from_ref(&wait)), SimStatus::UnderReview);
        assert_eq!(status_for(&[wait.clone(), details.clone()]), SimStatus::Incomplete);
        assert_eq!(status_for(&[odd]), SimStatus::Incomplete);
        assert_eq!(status_for(&[details.clone(), verification]), SimStatus::Pending);
        assert_eq!(details_field(&details), Some("phone"));
        assert_eq!(
            details_field(&json!({"action_type": "provide_details",
                                  "details_type": {"type": "terms_of_service", "version": 2}})),
            Some("tos_version_accepted")
        );
        assert_eq!(details_field(&wait), None);
    }

    #[test]
    fn verification_ids_are_ver_and_twenty_crockford_characters() {
        let id = new_verification_id();
        let body = id.strip_prefix("ver_").unwrap();
        assert_eq!(body.len(), 20, "{id}");
        assert!(body
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b))));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("AA12%20N84G"), "AA12 N84G");
        assert_eq!(percent_decode("AA12 N84G"), "AA12 N84G");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
