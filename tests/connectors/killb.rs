//! KillB connector contract tests: wire bodies, bearer auth, the token life cycle and error
//! envelopes against wiremock over real HTTP
//! (https://docs.killb.com/api-reference/auth/generate-an-access-token,
//! https://docs.killb.com/api-reference/user/create-a-user,
//! https://docs.killb.com/resources/error-handling), and document uploads as multipart
//! (https://docs.killb.com/api-reference/user/add-person-user-document).

use std::sync::Arc;
use std::time::Duration;

use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::domain::status::LinkStatus;
use onboarding_gateway::domain::user::CanonicalUser;
use onboarding_gateway::domain::verification::{DocumentContentType, DocumentSide, DocumentType};
use onboarding_gateway::providers::connector::{
    CallLog, Connector, CreateRequest, DocumentFile, DocumentUpload, FieldPolicy, HostedSession,
    LinkRef, SessionRequest, SessionReuse, SubmittedDocument,
};
use onboarding_gateway::providers::error::{ProviderError, ProviderErrorKind};
use onboarding_gateway::providers::http::{HttpTimeouts, ProviderHttp};
use onboarding_gateway::providers::killb::KillbConnector;
use onboarding_gateway::providers::killb::KillbSettings;
use onboarding_gateway::providers::provider::{DocumentFacts, DocumentPolicy};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::multipart_wire;
use crate::schema;

const EMAIL: &str = "ops@gateway.example";
const PASSWORD: &str = "S3cure-Passw0rd!";
const USER_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const LOGIN: &str = "/api/v2/auth/login";
const USERS: &str = "/api/v2/users";

fn user_path() -> String {
    format!("{USERS}/{USER_ID}")
}

fn settings(base_url: &str) -> KillbSettings {
    KillbSettings {
        enabled: true,
        base_url: base_url.to_owned(),
        email: Some(SecretString::from(EMAIL)),
        password: Some(SecretString::from(PASSWORD)),
        webhook_secret: None,
        webhook_signature_scheme: Default::default(),
    }
}

fn connector_with(server: &MockServer, total: Duration) -> KillbConnector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = ProviderHttp::new(
        ProviderId::Killb,
        &server.uri(),
        HttpTimeouts {
            connect: Duration::from_secs(2),
            total,
        },
    )
    .unwrap();
    KillbConnector::new(&settings(&server.uri()), http).unwrap()
}

fn connector(server: &MockServer) -> KillbConnector {
    connector_with(server, Duration::from_secs(5))
}

fn user_json() -> Value {
    json!({
        "external_id": "crm-000123",
        "type": "individual",
        "email": "juan.perez@example.com",
        "phone": "+576015555555",
        "name": { "first": "Juan", "middle": "Carlos", "last": "Pérez" },
        "date_of_birth": "1990-01-15",
        "birth_place": { "city": "Medellín", "country": "CO" },
        "nationalities": ["CO", "ES"],
        "citizenship": "CO",
        "address": { "line1": "Calle 1 # 2-3", "line2": "Apto 4", "city": "Bogotá",
                     "region": "DC", "postal_code": "110111", "country": "CO" },
        "identity_document": { "type": "national_id", "number": "1020304050",
                               "issuing_country": "CO", "issued_on": "2010-03-04",
                               "expires_on": "2030-03-04" },
        "tax_ids": [ { "type": "nit", "number": "900123456", "issuing_country": "CO" } ],
        "employment": { "status": "employed", "industry": "computers_and_it",
                        "occupation": "Engineer", "employer_name": "Acme SAS" },
        "financial_profile": { "source_of_funds": "employment", "total_assets_usd": "10k_100k",
                               "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k" },
        "language": "es",
        "terms": { "version": 3, "accepted_at": "2026-11-01T09:30:00Z" },
        "metadata": { "tier": "gold" }
    })
}

fn user() -> CanonicalUser {
    serde_json::from_value(user_json()).unwrap()
}

/// The exact create body for [`user`].
fn expected_create_body() -> Value {
    json!({
        "type": "PERSON",
        "data": {
            "firstName": "Juan",
            "middleName": "Carlos",
            "lastName": "Pérez",
            "dateOfBirth": "1990-01-15",
            "email": "juan.perez@example.com",
            "phone": "+576015555555",
            "address": { "street1": "Calle 1 # 2-3", "street2": "Apto 4", "city": "Bogotá",
                         "state": "DC", "zipCode": "110111", "countryCode": "CO" },
            "document": { "type": "NUIP", "number": "1020304050", "issuedCountryCode": "CO",
                          "expeditionDate": "2010-03-04" },
            "nationality": "CO",
            "citizenship": "CO",
            "employmentStatus": "EMPLOYEE",
            "employerName": "Acme SAS",
            "occupation": "Engineer"
        },
        "externalId": "crm-000123"
    })
}

fn killb_user(status: &str) -> Value {
    json!({
        "id": USER_ID,
        "status": status,
        "customerId": "9c1b6a57-0a3e-4a8e-8c1f-2f6f0d1e2a3b",
        "type": "PERSON",
        "data": { "firstName": "Juan", "lastName": "Pérez" },
        "externalId": "crm-000123",
        "complianceUrl": "https://kyc.example.com/session/abc",
        "accessLevel": "L1",
        "note": "Identity verification in progress.",
        "active": true,
        "createdAt": "2024-02-06T00:03:30.791Z",
        "updatedAt": "2024-02-06T00:05:00.000Z"
    })
}

fn login_ok(token: &str, expires_in_ms: u64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "accessToken": token,
        "expiresIn": expires_in_ms,
        "refreshToken": "refresh-jwt"
    }))
}

/// A login mock that checks the body and answers `token`.
fn login_mock(token: &str, expires_in_ms: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(json!({ "email": EMAIL, "password": PASSWORD })))
        .respond_with(login_ok(token, expires_in_ms))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn requests_to(server: &MockServer, m: &str, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .collect()
}

fn create_request(user: &CanonicalUser) -> CreateRequest<'_> {
    CreateRequest {
        gateway_user_id: Uuid::now_v7(),
        user,
    }
}

fn link() -> LinkRef<'static> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    LinkRef {
        provider_user_id: USER_ID,
        link_data: &EMPTY,
    }
}

// ---------------------------------------------------------------------------------------------
// (1) create: exact body, bearer token, one login

#[tokio::test]
async fn create_sends_the_expected_body_with_the_bearer_token_after_one_login() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .and(header("authorization", bearer("tok-1").as_str()))
        .and(body_json(expected_create_body()))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_user("PENDING")))
        .expect(1)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let u = user();
    let state = killb.create_user(create_request(&u), &log).await.unwrap();

    assert_eq!(state.provider_user_id, USER_ID);
    assert_eq!(state.provider_status, "PENDING");
    assert_eq!(state.status, Some(LinkStatus::UnderReview));
    assert_eq!(state.requirements[0], json!({ "accessLevel": "L1" }));
    assert_eq!(
        state.requirements[1],
        json!({ "complianceUrl": "https://kyc.example.com/session/abc" })
    );
    assert!(state.observed_at.is_some());

    let create = &requests_to(&server, "POST", USERS).await[0];
    let sent: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(sent, expected_create_body());
    let login = &requests_to(&server, "POST", LOGIN).await[0];
    assert!(login.headers.get("authorization").is_none());
    let login_body: Value = serde_json::from_slice(&login.body).unwrap();
    assert_eq!(login_body, json!({ "email": EMAIL, "password": PASSWORD }));

    let calls = log.take();
    let ops: Vec<_> = calls.iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["login", "create_user"]);
    assert_eq!(calls[1].http_status, Some(201));
    assert_eq!(calls[1].outcome, "ok");
}

#[tokio::test]
async fn create_refuses_users_killb_cannot_take_without_calling_it() {
    let server = MockServer::start().await;
    let killb = connector(&server);
    let log = CallLog::new();
    let mut without_document = user_json();
    without_document["identity_document"] = Value::Null;
    let mut german_id = user_json();
    german_id["identity_document"]["issuing_country"] = json!("DE");
    let mut without_region = user_json();
    without_region["address"]["region"] = Value::Null;
    for (body, field) in [
        (without_document, "identity_document"),
        (german_id, "identity_document.type"),
        (without_region, "address.region"),
    ] {
        let u: CanonicalUser = serde_json::from_value(body).unwrap();
        let e = killb
            .create_user(create_request(&u), &log)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Rejected);
        assert!(e.message.contains(field), "{}", e.message);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_credentials_name_the_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeouts = HttpTimeouts {
        connect: Duration::from_secs(1),
        total: Duration::from_secs(1),
    };
    let http = ProviderHttp::new(ProviderId::Killb, "http://127.0.0.1:9", timeouts).unwrap();
    let mut s = settings("http://127.0.0.1:9");
    s.email = None;
    assert_eq!(
        KillbConnector::new(&s, http.clone()).unwrap_err(),
        "providers.killb.email is required when the provider is enabled"
    );
    let mut s = settings("http://127.0.0.1:9");
    s.password = Some(SecretString::from(""));
    assert_eq!(
        KillbConnector::new(&s, http.clone()).unwrap_err(),
        "providers.killb.password is required when the provider is enabled"
    );
    let killb = KillbConnector::new(&settings("http://127.0.0.1:9"), http).unwrap();
    let debug = format!("{killb:?}");
    assert!(
        !debug.contains(PASSWORD) && !debug.contains(EMAIL),
        "{debug}"
    );
    assert_eq!(killb.id(), ProviderId::Killb);
    assert_eq!(killb.field_policy("external_id"), FieldPolicy::Refuse);
}

// ---------------------------------------------------------------------------------------------
// (2) outbound bodies against the reconstructed spec

#[tokio::test]
async fn outbound_create_and_update_bodies_match_the_spec() {
    let spec = schema::load_spec("killb-users-subset.reconstructed.json");
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_user("ACTIVE")))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(user_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("PENDING")))
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();

    // A few shapes: the full user, a minimal one, and a passport without an issue date.
    let mut minimal = user_json();
    for key in [
        "birth_place",
        "nationalities",
        "citizenship",
        "tax_ids",
        "employment",
        "financial_profile",
        "language",
        "terms",
    ] {
        minimal[key] = Value::Null;
    }
    minimal["name"]["middle"] = Value::Null;
    minimal["address"]["line2"] = Value::Null;
    minimal["identity_document"] = json!({"type": "passport", "number": "PA1234567",
                                          "issuing_country": "MX", "issued_on": null,
                                          "expires_on": null});
    for body in [user_json(), minimal] {
        let u: CanonicalUser = serde_json::from_value(body).unwrap();
        killb.create_user(create_request(&u), &log).await.unwrap();
    }
    let every_path: Vec<String> = [
        "name.first",
        "name.middle",
        "name.last",
        "date_of_birth",
        "email",
        "phone",
        "address.city",
        "identity_document.number",
        "nationalities",
        "citizenship",
        "employment.status",
        "employment.occupation",
        "employment.employer_name",
    ]
    .map(String::from)
    .to_vec();
    let u = user();
    killb
        .update_user(link(), &u, &every_path, &log)
        .await
        .unwrap();
    killb
        .update_user(link(), &u, &["phone".to_owned()], &log)
        .await
        .unwrap();

    let create_schema = schema::pointer(&spec, "#/components/schemas/CreateUserDto");
    let creates = requests_to(&server, "POST", USERS).await;
    assert_eq!(creates.len(), 2);
    for r in &creates {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        schema::assert_valid(&spec, create_schema, &body);
    }
    // The check has teeth: an off-enum value or a missing nested field is caught.
    let mut bad: Value = serde_json::from_slice(&creates[0].body).unwrap();
    bad["data"]["employmentStatus"] = json!("STUDENT");
    bad["data"]["address"]
        .as_object_mut()
        .unwrap()
        .remove("state");
    assert!(!schema::validate(&spec, create_schema, &bad).is_empty());
    let person = schema::pointer(&spec, "#/components/schemas/PersonData");
    assert_eq!(schema::validate(&spec, person, &bad["data"]).len(), 2);
    let update_schema = schema::pointer(&spec, "#/components/schemas/UpdatePersonUserDto");
    let updates = requests_to(&server, "PATCH", &user_path()).await;
    assert_eq!(updates.len(), 2);
    for r in &updates {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        schema::assert_valid(&spec, update_schema, &body);
        // Flat: never the `{type, data}` wrapper
        // (https://docs.killb.com/api-reference/user/update-user).
        assert!(body.get("data").is_none() && body.get("type").is_none());
    }
    // The login body too.
    let login_schema = schema::pointer(&spec, "#/components/schemas/LoginDto");
    let login: Value =
        serde_json::from_slice(&requests_to(&server, "POST", LOGIN).await[0].body).unwrap();
    schema::assert_valid(&spec, login_schema, &login);
}

// ---------------------------------------------------------------------------------------------
// (3) token life cycle

#[tokio::test]
async fn the_token_is_reused_across_calls() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(user_path()))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("ACTIVE")))
        .expect(3)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    for _ in 0..3 {
        let s = killb.get_user(link(), &log).await.unwrap();
        assert_eq!(s.status, Some(LinkStatus::Approved));
    }
}

#[tokio::test]
async fn an_expiring_token_is_renewed_before_the_next_call() {
    let server = MockServer::start().await;
    // 300 ms lifetime: renewed after 240 ms.
    login_mock("tok-1", 300)
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    login_mock("tok-2", 3_600_000)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    for token in ["tok-1", "tok-2"] {
        Mock::given(method("GET"))
            .and(path(user_path()))
            .and(header("authorization", bearer(token).as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("ACTIVE")))
            .expect(1)
            .mount(&server)
            .await;
    }
    let killb = connector(&server);
    let log = CallLog::new();
    killb.get_user(link(), &log).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    killb.get_user(link(), &log).await.unwrap();
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["login", "get_user", "login", "get_user"]);
}

#[tokio::test]
async fn a_401_causes_one_relogin_and_one_retry() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    login_mock("tok-2", 3_600_000)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errorCode": "AUTH.0002", "arguments": [], "message": ["Token expired"],
            "statusCode": "401"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .and(header("authorization", bearer("tok-2").as_str()))
        .and(body_json(expected_create_body()))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_user("ACTIVE")))
        .expect(1)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let u = user();
    let s = killb.create_user(create_request(&u), &log).await.unwrap();
    assert_eq!(s.status, Some(LinkStatus::Approved));
    assert_eq!(requests_to(&server, "POST", LOGIN).await.len(), 2);
    let calls = log.take();
    let ops: Vec<_> = calls.iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["login", "create_user", "login", "create_user"]);
    assert_eq!(calls[1].outcome, "unauthorized");

    // The new token is kept: the next call logs in no more.
    Mock::given(method("GET"))
        .and(path(user_path()))
        .and(header("authorization", bearer("tok-2").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("ACTIVE")))
        .expect(1)
        .mount(&server)
        .await;
    killb.get_user(link(), &log).await.unwrap();
    assert_eq!(requests_to(&server, "POST", LOGIN).await.len(), 2);
}

#[tokio::test]
async fn a_second_401_is_unauthorized_and_does_not_loop() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(user_path()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errorCode": "AUTH.0003", "arguments": [], "message": ["Invalid token"],
            "statusCode": "401"
        })))
        .expect(2)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let e = killb.get_user(link(), &log).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unauthorized);
    assert_eq!(e.http_status, Some(401));
    assert_eq!(e.provider_code.as_deref(), Some("AUTH.0003"));
    assert!(!e.retryable());
}

#[tokio::test]
async fn a_refused_login_is_unauthorized_and_hides_the_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorCode": "INVALID.INPUT", "arguments": [{"key": "password", "value": PASSWORD}],
            "message": ["password is not strong enough", format!("{EMAIL} {PASSWORD}")],
            "statusCode": "400"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let e = killb.get_user(link(), &log).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unauthorized);
    assert_eq!(e.provider_code.as_deref(), Some("INVALID.INPUT"));
    let text = format!("{e:?} {e}");
    assert!(!text.contains(PASSWORD) && !text.contains(EMAIL), "{text}");
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["login"]);
}

// ---------------------------------------------------------------------------------------------
// (4) single-flight login

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_share_exactly_one_login() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(json!({ "email": EMAIL, "password": PASSWORD })))
        .respond_with(login_ok("tok-1", 3_600_000).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_user("PENDING")))
        .expect(20)
        .mount(&server)
        .await;
    let killb = Arc::new(connector(&server));
    let u = Arc::new(user());
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (killb, u, barrier) = (killb.clone(), u.clone(), barrier.clone());
            tokio::spawn(async move {
                let log = CallLog::new();
                barrier.wait().await;
                let result = killb.create_user(create_request(&u), &log).await;
                (result, log.take())
            })
        })
        .collect();
    let mut logins = 0;
    for task in tasks {
        let (result, calls) = task.await.unwrap();
        result.unwrap();
        logins += calls.iter().filter(|c| c.operation == "login").count();
    }
    assert_eq!(logins, 1);
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// (5) mappings seen on the wire

#[tokio::test]
async fn document_types_follow_the_issuing_country_on_the_wire() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .respond_with(ResponseTemplate::new(201).set_body_json(killb_user("PENDING")))
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let cases = [
        ("national_id", "CO", "NUIP"),
        ("national_id", "MX", "INE"),
        ("national_id", "BR", "CPF"),
        ("national_id", "AR", "DNI"),
        ("passport", "DE", "PASSPORT"),
        ("drivers_license", "CO", "DRIVER_LICENSE"),
        ("residence_permit", "CO", "CE"),
    ];
    for (doc_type, country, _) in cases {
        let mut body = user_json();
        body["identity_document"]["type"] = json!(doc_type);
        body["identity_document"]["issuing_country"] = json!(country);
        let u: CanonicalUser = serde_json::from_value(body).unwrap();
        killb.create_user(create_request(&u), &log).await.unwrap();
    }
    let sent = requests_to(&server, "POST", USERS).await;
    for (request, (_, country, want)) in sent.iter().zip(cases) {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["data"]["document"]["type"], json!(want));
        assert_eq!(
            body["data"]["document"]["issuedCountryCode"],
            json!(country)
        );
    }
}

#[tokio::test]
async fn statuses_map_from_what_get_returns() {
    let cases = [
        (
            killb_user("PENDING"),
            "PENDING",
            Some(LinkStatus::UnderReview),
        ),
        (killb_user("ACTIVE"), "ACTIVE", Some(LinkStatus::Approved)),
        (
            killb_user("REJECTED"),
            "REJECTED",
            Some(LinkStatus::Rejected),
        ),
        (
            killb_user("SUSPENDED"),
            "SUSPENDED",
            Some(LinkStatus::Suspended),
        ),
        (
            {
                let mut u = killb_user("ACTIVE");
                u["active"] = json!(false);
                u
            },
            "ACTIVE",
            Some(LinkStatus::Closed),
        ),
        (killb_user("ON_HOLD"), "ON_HOLD", None),
    ];
    for (answer, raw, want) in cases {
        let server = MockServer::start().await;
        login_mock("tok-1", 3_600_000).mount(&server).await;
        Mock::given(method("GET"))
            .and(path(user_path()))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&server)
            .await;
        let s = connector(&server)
            .get_user(link(), &CallLog::new())
            .await
            .unwrap();
        assert_eq!(s.provider_status, raw);
        assert_eq!(s.status, want, "{raw}");
        assert_eq!(s.requirements[0], json!({ "accessLevel": "L1" }));
    }
}

// ---------------------------------------------------------------------------------------------
// (6) error envelopes

async fn error_for(
    response: ResponseTemplate,
) -> onboarding_gateway::providers::error::ProviderError {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("POST"))
        .and(path(USERS))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let u = user();
    connector(&server)
        .create_user(create_request(&u), &CallLog::new())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn error_envelopes_are_classified_without_leaking_input() {
    // 400 validation: the constraint message is kept, the echo is dropped.
    let e = error_for(ResponseTemplate::new(400).set_body_json(json!({
        "errorCode": "INVALID.INPUT",
        "arguments": [{"key": "email", "value": "juan.perez@example.com"}],
        "message": ["phone must be a valid phone number", "juan.perez@example.com is invalid"],
        "statusCode": "400"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert_eq!(e.provider_code.as_deref(), Some("INVALID.INPUT"));
    assert_eq!(e.http_status, Some(400));
    assert!(e.message.contains("phone must be a valid phone number"));
    assert!(!e.message.contains("juan.perez"), "{}", e.message);

    // 404 USER.0001.
    let e = error_for(ResponseTemplate::new(404).set_body_json(json!({
        "errorCode": "USER.0001", "arguments": [], "message": ["User not found"],
        "statusCode": "404"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
    assert_eq!(e.provider_code.as_deref(), Some("USER.0001"));
    assert_eq!(e.message, "killb: user not found");

    // 409 USER.0003, whose message echoes the email.
    let e = error_for(ResponseTemplate::new(409).set_body_json(json!({
        "errorCode": "USER.0003", "arguments": [{"key": "email", "value": "juan.perez@example.com"}],
        "message": ["Email juan.perez@example.com already exists"], "statusCode": "409"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Conflict);
    assert_eq!(e.provider_code.as_deref(), Some("USER.0003"));
    assert!(!e.message.contains("juan"), "{}", e.message);

    // USER.0003 arriving as a 400 is still a conflict.
    let e = error_for(ResponseTemplate::new(400).set_body_json(json!({
        "errorCode": "USER.0003", "arguments": [], "message": ["Email already exists"],
        "statusCode": "400"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Conflict);
    assert_eq!(e.http_status, Some(400));

    // 429 with Retry-After.
    let e = error_for(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(json!({"message": ["Too Many Requests"], "statusCode": "429"})),
    )
    .await;
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.retryable());

    // 500, InternalServerErrorResponse (no errorCode).
    let e = error_for(ResponseTemplate::new(500).set_body_json(json!({
        "statusCode": "500", "message": ["Internal server error"]
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Unavailable);
    assert_eq!(e.provider_code, None);
    assert!(e.retryable());

    // A body that is not an envelope.
    let e = error_for(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>")).await;
    assert_eq!(e.kind, ProviderErrorKind::Unavailable);
    assert_eq!(e.http_status, Some(502));

    // A 2xx body we cannot read.
    let e = error_for(ResponseTemplate::new(201).set_body_string("{\"no_id\": true}")).await;
    assert_eq!(e.kind, ProviderErrorKind::InvalidResponse);
}

#[tokio::test]
async fn a_timeout_is_unavailable() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("GET"))
        .and(path(user_path()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(killb_user("ACTIVE"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let killb = connector_with(&server, Duration::from_millis(500));
    let log = CallLog::new();
    let e = killb.get_user(link(), &log).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unavailable);
    assert!(e.retryable());
    let calls = log.take();
    assert_eq!(calls.last().unwrap().operation, "get_user");
    assert_eq!(calls.last().unwrap().http_status, None);
}

// ---------------------------------------------------------------------------------------------
// (7) update: only changed fields

#[tokio::test]
async fn update_sends_only_the_changed_fields() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("PATCH"))
        .and(path(user_path()))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("PENDING")))
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let mut body = user_json();
    body["phone"] = json!("+573001234567");
    body["address"]["city"] = json!("Medellín");
    body["employment"]["status"] = json!("student");
    let u: CanonicalUser = serde_json::from_value(body).unwrap();
    let changed: Vec<String> = ["address.city", "employment.status", "phone"]
        .map(String::from)
        .to_vec();
    let state = killb
        .update_user(link(), &u, &changed, &log)
        .await
        .unwrap()
        .expect("the PATCH answer carries the user");
    assert_eq!(state.status, Some(LinkStatus::UnderReview));

    // A document change sends the whole document; a name change only the name.
    let mut body = user_json();
    body["identity_document"]["number"] = json!("99887766");
    body["name"]["first"] = json!("Juana");
    let u2: CanonicalUser = serde_json::from_value(body).unwrap();
    let changed2: Vec<String> = ["identity_document.number", "name.first"]
        .map(String::from)
        .to_vec();
    killb
        .update_user(link(), &u2, &changed2, &log)
        .await
        .unwrap();

    // Nothing KillB can take (expiry date, industry): no call at all.
    let none: Vec<String> = ["identity_document.expires_on", "employment.industry"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        killb.update_user(link(), &u2, &none, &log).await.unwrap(),
        None
    );

    let patches = requests_to(&server, "PATCH", &user_path()).await;
    assert_eq!(patches.len(), 2);
    let first: Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(
        first,
        json!({
            "phone": "+573001234567",
            "address": { "street1": "Calle 1 # 2-3", "street2": "Apto 4", "city": "Medellín",
                         "state": "DC", "zipCode": "110111", "countryCode": "CO" },
            "employmentStatus": "OTHER"
        })
    );
    let second: Value = serde_json::from_slice(&patches[1].body).unwrap();
    assert_eq!(
        second,
        json!({
            "firstName": "Juana",
            "document": { "type": "NUIP", "number": "99887766", "issuedCountryCode": "CO",
                          "expeditionDate": "2010-03-04" }
        })
    );
}

// ---------------------------------------------------------------------------------------------
// (8) lookup by external id, delete

#[tokio::test]
async fn find_by_external_id_queries_the_search_endpoint() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    let mut other = killb_user("ACTIVE");
    other["id"] = json!("00000000-0000-4000-8000-000000000000");
    other["externalId"] = json!("crm-000123-old");
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("type", "PERSON"))
        .and(query_param("externalId", "crm-000123"))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": [other, killb_user("PENDING")], "totalPage": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("externalId", "crm:unknown&x=1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"users": [], "totalPage": 0})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let log = CallLog::new();
    let found = killb
        .find_by_external_id("crm-000123", &log)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.provider_user_id, USER_ID);
    assert_eq!(found.status, Some(LinkStatus::UnderReview));
    assert_eq!(
        killb
            .find_by_external_id("crm:unknown&x=1", &log)
            .await
            .unwrap(),
        None
    );
    let search = &requests_to(&server, "GET", USERS).await[0];
    assert_eq!(
        search.url.query(),
        Some("type=PERSON&externalId=crm-000123")
    );
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["login", "find_user", "find_user"]);
}

#[tokio::test]
async fn delete_user_soft_deletes() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("DELETE"))
        .and(path(user_path()))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let killb = connector(&server);
    killb.delete_user(USER_ID, &CallLog::new()).await.unwrap();
    let e = killb
        .delete_user("unknown", &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
}

// ---------------------------------------------------------------------------------------------
// (7) document uploads: `POST /api/v2/users/person/document`
// (https://docs.killb.com/api-reference/user/add-person-user-document)

const DOCUMENT: &str = "/api/v2/users/person/document";

/// A file as the store hands it over, with the caller's own file name (never sent).
fn file(bytes: &[u8]) -> DocumentFile<'_> {
    DocumentFile {
        bytes,
        content_type: DocumentContentType::sniff(bytes).expect("a recognised file"),
        file_name: "IMG_juan_perez_cedula.raw",
    }
}

fn upload<'a>(
    user: &'a CanonicalUser,
    document_type: DocumentType,
    front: DocumentFile<'a>,
    back: Option<DocumentFile<'a>>,
) -> DocumentUpload<'a> {
    DocumentUpload {
        user,
        document_type,
        front,
        back,
        verification: None,
    }
}

/// A JPEG of `size` bytes: the magic bytes, then filler, then the end-of-image marker.
fn jpeg_of(size: usize) -> Vec<u8> {
    let mut bytes = multipart_wire::JPEG[..multipart_wire::JPEG.len() - 2].to_vec();
    bytes.extend((0..size - bytes.len() - 2).map(|i| (i % 251) as u8));
    bytes.extend_from_slice(b"\xFF\xD9");
    assert_eq!(bytes.len(), size);
    bytes
}

fn user_with(document: Value, address_country: &str) -> CanonicalUser {
    let mut body = user_json();
    body["identity_document"] = document;
    body["address"]["country"] = json!(address_country);
    serde_json::from_value(body).unwrap()
}

fn document_facts(document_type: DocumentType, side: DocumentSide, bytes: &[u8]) -> DocumentFacts {
    DocumentFacts {
        document_type,
        side: Some(side),
        content_type: DocumentContentType::sniff(bytes).unwrap(),
        size: bytes.len() as u64,
        has_verification: false,
    }
}

/// A server that must not be called, not even to log in.
async fn untouchable_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_two_sided_card_goes_in_one_bearer_multipart_request() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    // Above KillB's 100 KB minimum, as the policy wants them.
    let front = jpeg_of(150 * 1024);
    let back = {
        let mut png = multipart_wire::PNG.to_vec();
        png.resize(120 * 1024, 0x42);
        png
    };
    let module = onboarding_gateway::providers::module(ProviderId::Killb);
    for (side, bytes) in [(DocumentSide::Front, &front), (DocumentSide::Back, &back)] {
        assert_eq!(
            module.document_policy(&document_facts(DocumentType::NationalId, side, bytes)),
            DocumentPolicy::Accept { pairs_sides: true }
        );
    }
    let killb = connector(&server);
    let u = user();
    let log = CallLog::new();
    let submitted = killb
        .submit_document(
            link(),
            upload(
                &u,
                DocumentType::NationalId,
                file(&front),
                Some(file(&back)),
            ),
            &log,
        )
        .await
        .unwrap();
    assert_eq!(
        submitted,
        SubmittedDocument {
            provider_document_id: None
        }
    );

    let sent = requests_to(&server, "POST", DOCUMENT).await;
    assert_eq!(sent.len(), 1, "both sides in one request");
    let request = &sent[0];
    let parts = multipart_wire::parts(request);
    assert_eq!(
        multipart_wire::names(&parts),
        ["userId", "documentType", "frontDocument", "backDocument"]
    );
    multipart_wire::assert_text(&parts[0], "userId", USER_ID);
    multipart_wire::assert_text(&parts[1], "documentType", "NUIP");
    multipart_wire::assert_file(
        &parts[2],
        "frontDocument",
        "front.jpg",
        "image/jpeg",
        &front,
    );
    multipart_wire::assert_file(&parts[3], "backDocument", "back.png", "image/png", &back);
    assert!(!String::from_utf8_lossy(&request.body).contains("IMG_juan"));

    // The parts against the reconstructed spec of the route.
    let spec = schema::load_spec("killb-users-subset.reconstructed.json");
    let form_schema =
        &spec["paths"][DOCUMENT]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    let as_json: Map<String, Value> = parts
        .iter()
        .map(|p| (p.name(), json!(String::from_utf8_lossy(&p.body))))
        .collect();
    schema::assert_valid(&spec, form_schema, &Value::Object(as_json));

    let ops: Vec<_> = log
        .take()
        .into_iter()
        .map(|c| (c.operation, c.http_status, c.outcome))
        .collect();
    assert_eq!(
        ops,
        [
            ("login", Some(201), "ok"),
            ("submit_document", Some(201), "ok")
        ]
    );
}

#[tokio::test]
async fn document_types_follow_the_document_and_its_country() {
    let spec = schema::load_spec("killb-users-subset.reconstructed.json");
    let upload_types = schema::pointer(&spec, "#/components/schemas/PersonUploadDocumentType");
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    // KillB documents an empty 201; a JSON body, or a 200, is taken as success too.
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"message": "uploaded"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .respond_with(ResponseTemplate::new(201))
        .with_priority(3)
        .mount(&server)
        .await;
    let killb = connector(&server);
    let national = |country: &str| {
        user_with(
            json!({"type": "national_id", "number": "1020304050", "issuing_country": country,
                   "issued_on": null, "expires_on": null}),
            "CO",
        )
    };
    let passport_ve = json!({"type": "passport", "number": "PA1234567", "issuing_country": "VE",
                             "issued_on": null, "expires_on": null});
    let cases = [
        (national("CO"), DocumentType::NationalId, "NUIP"),
        (national("MX"), DocumentType::NationalId, "INE"),
        (national("SV"), DocumentType::NationalId, "DUI"),
        (national("BO"), DocumentType::NationalId, "BOLIVIAN_ID"),
        (national("CN"), DocumentType::NationalId, "CHINESE_ID"),
        (national("AR"), DocumentType::NationalId, "DNI"),
        (national("BR"), DocumentType::NationalId, "DNI"),
        (national("MX"), DocumentType::Passport, "PASSPORT"),
        (
            national("MX"),
            DocumentType::DriversLicense,
            "DRIVER_LICENSE",
        ),
        (
            user_with(
                json!({"type": "residence_permit", "number": "E123456", "issuing_country": "CO",
                       "issued_on": null, "expires_on": null}),
                "CO",
            ),
            DocumentType::ResidencePermit,
            "CE",
        ),
        // A Venezuelan passport holder living in Colombia: the permit is Colombia's.
        (
            user_with(passport_ve.clone(), "CO"),
            DocumentType::ResidencePermit,
            "CE",
        ),
        (
            national("CO"),
            DocumentType::ProofOfAddress,
            "PROVE_OF_ADDRESS_UTILITY_BILL",
        ),
    ];
    let front = jpeg_of(110 * 1024);
    let log = CallLog::new();
    for (i, (u, document_type, want)) in cases.iter().enumerate() {
        let bytes: &[u8] = if *document_type == DocumentType::ProofOfAddress {
            multipart_wire::PDF
        } else {
            &front
        };
        killb
            .submit_document(link(), upload(u, *document_type, file(bytes), None), &log)
            .await
            .unwrap_or_else(|e| panic!("{document_type} {want}: {e}"));
        let sent = requests_to(&server, "POST", DOCUMENT).await;
        assert_eq!(sent.len(), i + 1);
        let parts = multipart_wire::parts(sent.last().unwrap());
        assert_eq!(
            multipart_wire::names(&parts),
            ["userId", "documentType", "frontDocument"],
            "no back part without a back"
        );
        multipart_wire::assert_text(&parts[1], "documentType", want);
        schema::assert_valid(&spec, upload_types, &json!(want));
        let (file_name, content_type) = if *document_type == DocumentType::ProofOfAddress {
            ("front.pdf", "application/pdf")
        } else {
            ("front.jpg", "image/jpeg")
        };
        multipart_wire::assert_file(&parts[2], "frontDocument", file_name, content_type, bytes);
    }
}

#[tokio::test]
async fn documents_killb_cannot_take_are_not_supported_and_nothing_is_sent() {
    let server = untouchable_server().await;
    let killb = connector(&server);
    let mut no_document = user_json();
    no_document["identity_document"] = Value::Null;
    let no_document: CanonicalUser = serde_json::from_value(no_document).unwrap();
    let peruvian_permit = user_with(
        json!({"type": "residence_permit", "number": "E123456", "issuing_country": "PE",
               "issued_on": null, "expires_on": null}),
        "CO",
    );
    let living_in_mexico = user_with(
        json!({"type": "passport", "number": "PA1234567", "issuing_country": "CO",
               "issued_on": null, "expires_on": null}),
        "MX",
    );
    let u = user();
    let front = jpeg_of(110 * 1024);
    let cases = [
        (&u, DocumentType::Selfie, "no selfie upload"),
        (
            &peruvian_permit,
            DocumentType::ResidencePermit,
            "issued by CO only, not PE",
        ),
        (
            &living_in_mexico,
            DocumentType::ResidencePermit,
            "issued by CO only, not MX",
        ),
        (
            &no_document,
            DocumentType::NationalId,
            "no identity_document",
        ),
    ];
    for (u, document_type, message) in cases {
        let log = CallLog::new();
        let e = killb
            .submit_document(link(), upload(u, document_type, file(&front), None), &log)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::NotSupported, "{document_type}");
        assert!(
            e.message.contains(message),
            "{document_type}: {}",
            e.message
        );
        assert!(log.take().is_empty(), "{document_type}: no call, no login");
    }
}

#[tokio::test]
async fn a_401_on_upload_relogs_in_and_resends_the_same_form() {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    login_mock("tok-2", 3_600_000)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .and(header("authorization", bearer("tok-1").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errorCode": "AUTH.0002", "arguments": [], "message": ["Token expired"],
            "statusCode": "401"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .and(header("authorization", bearer("tok-2").as_str()))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let front = jpeg_of(110 * 1024);
    let back = jpeg_of(105 * 1024);
    let u = user();
    let log = CallLog::new();
    connector(&server)
        .submit_document(
            link(),
            upload(
                &u,
                DocumentType::DriversLicense,
                file(&front),
                Some(file(&back)),
            ),
            &log,
        )
        .await
        .unwrap();
    let sent = requests_to(&server, "POST", DOCUMENT).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body, sent[1].body,
        "the same form, boundary included"
    );
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        ["login", "submit_document", "login", "submit_document"]
    );
}

async fn upload_error_for(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    login_mock("tok-1", 3_600_000).mount(&server).await;
    Mock::given(method("POST"))
        .and(path(DOCUMENT))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let u = user();
    let front = jpeg_of(110 * 1024);
    connector(&server)
        .submit_document(
            link(),
            upload(&u, DocumentType::Passport, file(&front), None),
            &CallLog::new(),
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn upload_error_envelopes_map_by_code_and_message() {
    // The route's documented example: "User not found" with `statusCode: "400"`.
    let e = upload_error_for(ResponseTemplate::new(400).set_body_json(json!({
        "errorCode": "API_USER.0001",
        "arguments": [{"key": "email", "value": "invalid@email.com"}],
        "message": ["User not found", "Account not found"],
        "statusCode": "400"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
    assert_eq!(e.provider_code.as_deref(), Some("API_USER.0001"));
    assert_eq!(e.http_status, Some(400));
    assert_eq!(e.message, "killb: user not found");

    // The error guide's pairing: USER.0001 with 404.
    let e = upload_error_for(ResponseTemplate::new(404).set_body_json(json!({
        "errorCode": "USER.0001", "message": ["User not found"], "statusCode": 404
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::NotFound);

    // No code, only the message.
    let e = upload_error_for(ResponseTemplate::new(400).set_body_json(json!({
        "message": ["User not found"], "statusCode": "400"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
    assert_eq!(e.provider_code, None);

    // "Invalid document": the file is refused, whatever status it comes with.
    for status in [400, 422, 404] {
        let e = upload_error_for(ResponseTemplate::new(status).set_body_json(json!({
            "errorCode": "USER.0002", "arguments": [], "message": ["Invalid document"],
            "statusCode": status.to_string()
        })))
        .await;
        assert_eq!(e.kind, ProviderErrorKind::Rejected, "{status}");
        assert!(!e.retryable());
        assert_eq!(e.provider_code.as_deref(), Some("USER.0002"));
        assert_eq!(e.http_status, Some(status));
        assert_eq!(e.message, "killb: invalid document");
    }

    // Validation of the form.
    let e = upload_error_for(ResponseTemplate::new(400).set_body_json(json!({
        "errorCode": "INVALID.INPUT", "arguments": [],
        "message": ["documentType must be one of the following values: PASSPORT, NUIP"],
        "statusCode": "400"
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert!(
        e.message.contains("documentType must be one of"),
        "{}",
        e.message
    );

    // Outages and throttling stay retryable.
    let e = upload_error_for(ResponseTemplate::new(500).set_body_json(json!({
        "statusCode": "500", "message": ["Internal server error"]
    })))
    .await;
    assert_eq!(e.kind, ProviderErrorKind::Unavailable);
    assert!(e.retryable());
    let e = upload_error_for(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "3")
            .set_body_json(json!({"message": ["Too Many Requests"], "statusCode": "429"})),
    )
    .await;
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
}

// ---------------------------------------------------------------------------------------------
// Hosted verification: the user's `complianceUrl` (https://docs.killb.com/concepts/users)

async fn open_session(
    killb: &KillbConnector,
    log: &CallLog,
) -> Result<HostedSession, onboarding_gateway::providers::error::ProviderError> {
    let u = user();
    killb
        .create_verification_session(
            link(),
            SessionRequest {
                user: &u,
                redirect_url: Some("https://app.example.com/done"),
            },
            log,
        )
        .await
}

#[tokio::test]
async fn a_session_is_the_compliance_url_read_again_with_the_bearer_token() {
    let server = MockServer::start().await;
    login_mock("tok-s", 3_600_000)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(user_path()))
        .and(header("authorization", bearer("tok-s").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(killb_user("PENDING")))
        .expect(2)
        .mount(&server)
        .await;
    let killb = connector(&server);
    assert_eq!(killb.session_reuse(), SessionReuse::AskEachTime);
    assert!(!killb.session_needs_redirect_url());
    let log = CallLog::new();
    let session = open_session(&killb, &log).await.unwrap();
    assert_eq!(session.url, "https://kyc.example.com/session/abc");
    assert_eq!(session.expires_at, None);
    assert_eq!(session.provider_user_id.as_deref(), Some(USER_ID));
    // Asked again for the next session: KillB's link may change at any time.
    open_session(&killb, &log).await.unwrap();

    let gets = requests_to(&server, "GET", &user_path()).await;
    assert_eq!(gets.len(), 2);
    for get in &gets {
        assert!(get.body.is_empty());
        assert_eq!(get.url.query(), None);
        let auth = get.headers.get("authorization").unwrap().to_str().unwrap();
        assert_eq!(auth, "Bearer tok-s");
    }
    let ops: Vec<_> = log
        .take()
        .iter()
        .map(|c| (c.operation, c.outcome))
        .collect();
    assert_eq!(
        ops,
        [
            ("login", "ok"),
            ("verification_session", "ok"),
            ("verification_session", "ok")
        ]
    );
}

#[tokio::test]
async fn a_user_without_a_compliance_url_or_a_failed_read_is_an_error() {
    let server = MockServer::start().await;
    login_mock("tok", 3_600_000).mount(&server).await;
    for missing in [json!(null), json!(""), json!("  ")] {
        server.reset().await;
        login_mock("tok", 3_600_000).mount(&server).await;
        let mut answer = killb_user("PENDING");
        answer["complianceUrl"] = missing.clone();
        Mock::given(method("GET"))
            .and(path(user_path()))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&server)
            .await;
        let err = open_session(&connector(&server), &CallLog::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{missing}");
    }
    server.reset().await;
    login_mock("tok", 3_600_000).mount(&server).await;
    Mock::given(method("GET"))
        .and(path(user_path()))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "errorCode": "USER.0001", "message": ["User not found"], "statusCode": "404"})))
        .mount(&server)
        .await;
    let err = open_session(&connector(&server), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::NotFound);
    assert_eq!(err.provider_code.as_deref(), Some("USER.0001"));
}
