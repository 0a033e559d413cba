//! Kraken Embed simulator: `POST /b2b/users`, `GET`/`PATCH /b2b/users/{iiban}` (after
//! https://docs.kraken.com/api/docs/embed-api).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::faults::{enter, target};
use super::provider::{gateway_section, SimProvider};
use super::state::{lock, Change, SimState, SimStatus, SimUser};
use super::validate::{merge, timestamp, Checker};
use super::webhooks::{deliver, Build};
use super::SimConfig;
use crate::domain::provider::ProviderId;
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
}

impl Config {
    /// The `DEV_*` credentials.
    pub fn development() -> Self {
        Self {
            api_key: DEV_API_KEY.into(),
            api_secret_b64: DEV_API_SECRET_B64.into(),
            webhook_secret_b64: DEV_WEBHOOK_SECRET_B64.into(),
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

    fn apply_status(&self, user: &mut SimUser, status: SimStatus) {
        user.status = status;
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
    cfg.service(web::resource("/b2b/users").route(web::post().to(create_user)))
        .service(
            web::resource("/b2b/users/{user}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user)),
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
    let user = {
        let mut store = state.lock();
        if store
            .candidates(ProviderId::Kraken, &format!("ext:{external_id}"))
            .any(|u| u.external_id.as_deref() == Some(external_id.as_str()))
        {
            return error(StatusCode::CONFLICT, "ENexus:User already exists");
        }
        let users = store.users_mut(ProviderId::Kraken);
        let mut id = new_iiban(seq);
        while users.contains_key(&id) {
            id = new_iiban(seq);
        }
        let now = OffsetDateTime::now_utc();
        SimUser {
            id,
            seq,
            provider: ProviderId::Kraken,
            status,
            provider_status: None,
            active: true,
            profile: Value::Object(profile),
            external_id: Some(external_id),
            user_type: None,
            created_at: now,
            updated_at: now,
        }
    };
    let id = user.id.clone();
    state.insert_user(user);
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
    if state.user(ProviderId::Kraken, &id).is_none() {
        return error(StatusCode::NOT_FOUND, "ENexus:User not found");
    }
    let checker = check_profile(&patch, false);
    if !checker.ok() {
        return invalid_arguments(checker);
    }
    {
        let mut store = state.lock();
        if let Some(user) = store.users_mut(ProviderId::Kraken).get_mut(&id) {
            merge(&mut user.profile, &Value::Object(patch));
            user.updated_at = OffsetDateTime::now_utc();
        }
    }
    state
        .into_inner()
        .after_update(ProviderId::Kraken, &id, false);
    HttpResponse::Ok().json(json!({ "result": "success" }))
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
    fn percent_decoding() {
        assert_eq!(percent_decode("AA12%20N84G"), "AA12 N84G");
        assert_eq!(percent_decode("AA12 N84G"), "AA12 N84G");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
