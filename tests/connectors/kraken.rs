//! Kraken Embed connector contract: exact bytes, headers and `API-Sign` on the wire (wiremock),
//! percent-encoded IIBAN paths, nonces under concurrency, error mapping, outbound bodies
//! validated against Privy's mirror of Kraken's schemas, and document verifications (multipart
//! parts, their order and headers, the metadata JSON, `API-Sign` over the multipart bytes).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::domain::status::LinkStatus;
use onboarding_gateway::domain::user::CanonicalUser;
use onboarding_gateway::domain::verification::{
    DocumentContentType, DocumentType, VerificationAttestation,
};
use onboarding_gateway::providers::connector::{
    CallLog, Connector, CreateRequest, DocumentFile, DocumentUpload, FieldPolicy, LinkRef,
    SubmittedDocument,
};
use onboarding_gateway::providers::error::ProviderErrorKind;
use onboarding_gateway::providers::http::{HttpTimeouts, ProviderHttp};
use onboarding_gateway::providers::kraken::signing::verify_api_sign;
use onboarding_gateway::providers::kraken::KrakenSettings;
use onboarding_gateway::providers::kraken::{
    user_path, verification_path, KrakenConnector, RequestBody, UNKNOWN_STATUS,
};
use onboarding_gateway::providers::multipart::MultipartForm;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use time::macros::datetime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::multipart_wire::{self, JPEG, PDF, PNG};
use super::schema::{assert_valid, load_spec};

/// The private key of Kraken's published Spot vector, used for the derived V1–V4.
const SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const API_KEY: &str = "test-api-key";
const IIBAN: &str = "AA45N8G4MLDYWAR7";
const SPACED_IIBAN: &str = "AA95 N84G TEST XXXX";

fn settings(api_key: Option<&str>, api_secret: Option<&str>) -> KrakenSettings {
    KrakenSettings {
        enabled: true,
        base_url: "http://unused".into(),
        api_key: api_key.map(SecretString::from),
        api_secret: api_secret.map(SecretString::from),
        webhook_secret: None,
        on_unknown_outcome: Default::default(),
    }
}

fn http(base_url: &str, total: Duration) -> ProviderHttp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ProviderHttp::new(
        ProviderId::Kraken,
        base_url,
        HttpTimeouts {
            connect: Duration::from_secs(2),
            total,
        },
    )
    .unwrap()
}

fn connector(server: &MockServer) -> KrakenConnector {
    connector_with_timeout(server, Duration::from_secs(5))
}

fn connector_with_timeout(server: &MockServer, total: Duration) -> KrakenConnector {
    KrakenConnector::new(
        &settings(Some(API_KEY), Some(SECRET)),
        http(&server.uri(), total),
    )
    .unwrap()
}

/// The user behind the locally derived signing vector V2.
fn v2_user() -> CanonicalUser {
    serde_json::from_value(json!({
        "external_id": "partner-user-12345", "type": "individual",
        "email": "jsmith@example.com", "phone": "+14155550110",
        "name": {"first": "John", "last": "Smith"},
        "date_of_birth": "1990-01-15",
        "nationalities": ["US"],
        "address": {"line1": "1 Market St", "city": "San Francisco", "postal_code": "94103",
                    "country": "US"},
        "employment": {"status": "employed", "industry": "computers_and_it"},
        "terms": {"version": 1, "accepted_at": null}
    }))
    .unwrap()
}

const V2_BODY: &str = r#"{"email":"jsmith@example.com","external_id":"partner-user-12345","tos_version_accepted":1,"full_name":{"first_name":"John","last_name":"Smith"},"date_of_birth":"1990-01-15","residence":{"line1":"1 Market St","city":"San Francisco","postal_code":"94103","country":"US"},"phone":"+14155550110","nationalities":["US"],"occupation":"computers_and_it"}"#;

/// Every optional field Kraken has, filled.
fn full_user() -> CanonicalUser {
    serde_json::from_value(json!({
        "external_id": "crm-000123", "type": "individual", "email": "jane.doe@example.com",
        "phone": "+4915112345678",
        "name": {"first": "Jane", "middle": "Q", "last": "Doe"},
        "date_of_birth": "1990-01-15",
        "birth_place": {"city": "Berlin", "country": "DE"},
        "nationalities": ["DE", "AT"],
        "citizenship": "DE",
        "address": {"line1": "Invalidenstr. 1", "line2": "Hinterhaus", "city": "Berlin",
                    "region": "BE", "postal_code": "10115", "country": "DE"},
        "identity_document": {"type": "passport", "number": "C01X00T47",
                              "issuing_country": "DE", "issued_on": "2019-05-01",
                              "expires_on": "2029-04-30"},
        "tax_ids": [{"type": "steuer_id", "number": "12345678901", "issuing_country": "DE"}],
        "employment": {"status": "self_employed", "industry": null,
                       "occupation": "Consultant", "employer_name": "Acme GmbH"},
        "financial_profile": {"source_of_funds": "employment", "total_assets_usd": "10k_100k",
                              "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k"},
        "language": "de",
        "terms": {"version": 3, "accepted_at": "2026-11-01T09:30:00Z"},
        "metadata": {"any": "never sent"}
    }))
    .unwrap()
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

fn path_and_query(request: &Request) -> String {
    match request.url.query() {
        Some(q) => format!("{}?{q}", request.url.path()),
        None => request.url.path().to_owned(),
    }
}

/// Checks the auth headers of a received request and that `API-Sign` verifies over the
/// request-target and raw body as received. Returns the nonce.
fn assert_signed(request: &Request) -> u64 {
    assert_eq!(header(request, "API-Key"), API_KEY);
    assert_eq!(header(request, "Payward-Version"), "2025-04-15");
    let nonce: u64 = header(request, "API-Nonce").parse().unwrap();
    verify_api_sign(
        SECRET,
        &path_and_query(request),
        nonce,
        &request.body,
        header(request, "API-Sign"),
    )
    .unwrap_or_else(|e| panic!("API-Sign does not verify: {e}"));
    nonce
}

fn get_user_body(iiban: &str, status: Value) -> Value {
    json!({"result": {"user": iiban, "user_type": "individual", "status": status,
                      "created_at": "2023-11-07T05:31:56Z", "external_id": "crm-000123"}})
}

fn initial_status() -> Value {
    json!({"state": "ok", "required_actions": [{"action_type": "verification",
        "verification_type": "identity", "reasons": ["initial_onboarding"],
        "deadline": "2023-11-07T05:31:56Z"}]})
}

fn link<'a>(iiban: &'a str, data: &'a Map<String, Value>) -> LinkRef<'a> {
    LinkRef {
        provider_user_id: iiban,
        link_data: data,
    }
}

/// The create-user request schema of Privy's proxy (`POST /v1/kraken_embed/users/{user_id}`,
/// whose body mirrors Kraken's `POST /b2b/users`).
fn create_schema(spec: &Value) -> Value {
    spec["paths"]["/v1/kraken_embed/users/{user_id}"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]
        .clone()
}

/// Privy exposes no update-user call, so the update schema is derived: Kraken's update body
/// (https://docs.kraken.com/api/docs/embed-api) has the create fields minus `email`/`external_id`,
/// each optional. Nested objects keep their own `required` lists, which the connector satisfies by
/// always sending `full_name` and `residence` whole.
fn update_schema(spec: &Value) -> Value {
    let mut schema = create_schema(spec);
    let object = schema.as_object_mut().unwrap();
    object.remove("required");
    object.remove("example");
    let properties = object["properties"].as_object_mut().unwrap();
    properties.remove("email");
    properties.remove("external_id");
    object.insert("additionalProperties".into(), json!(false));
    schema
}

// ---------------------------------------------------------------------------------------------
// Create

#[tokio::test]
async fn create_sends_exact_bytes_and_headers_then_reads_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/b2b/users"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": {"user": IIBAN}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/b2b/users/{IIBAN}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(get_user_body(IIBAN, initial_status())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = v2_user();
    let log = CallLog::new();
    let state = kraken
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &user,
            },
            &log,
        )
        .await
        .unwrap();

    assert_eq!(state.provider_user_id, IIBAN);
    assert_eq!(state.provider_status, "ok");
    assert_eq!(state.status, Some(LinkStatus::ActionRequired));
    assert_eq!(
        state.requirements,
        initial_status()["required_actions"]
            .as_array()
            .unwrap()
            .clone()
    );

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let create = &received[0];
    assert_eq!(create.method.as_str(), "POST");
    assert_eq!(path_and_query(create), "/b2b/users");
    assert_eq!(std::str::from_utf8(&create.body).unwrap(), V2_BODY);
    assert_eq!(header(create, "Content-Type"), "application/json");
    let create_nonce = assert_signed(create);
    let get = &received[1];
    assert_eq!(get.method.as_str(), "GET");
    assert!(get.body.is_empty());
    assert!(get.headers.get("Content-Type").is_none());
    assert!(assert_signed(get) > create_nonce);

    let calls = log.take();
    let ops: Vec<_> = calls
        .iter()
        .map(|c| (c.operation, c.http_status, c.outcome))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("create_user", Some(201), "ok"),
            ("get_user", Some(200), "ok")
        ]
    );
}

#[tokio::test]
async fn create_keeps_the_iiban_when_the_status_read_fails() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/b2b/users"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"result": {"user": SPACED_IIBAN}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": ["EService:Unavailable"]})),
        )
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = full_user();
    let log = CallLog::new();
    let state = kraken
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &user,
            },
            &log,
        )
        .await
        .expect("a created account is never lost");
    assert_eq!(state.provider_user_id, SPACED_IIBAN);
    assert_eq!(state.provider_status, UNKNOWN_STATUS);
    assert_eq!(state.status, None);
    let calls = log.take();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].http_status, Some(503));
    assert_eq!(calls[1].outcome, "unavailable");
}

#[tokio::test]
async fn create_with_missing_kraken_fields_is_refused_without_a_call() {
    let server = MockServer::start().await;
    let kraken = connector(&server);
    let mut value = serde_json::to_value(v2_user()).unwrap();
    value["employment"] = Value::Null;
    let user: CanonicalUser = serde_json::from_value(value).unwrap();
    let log = CallLog::new();
    let error = kraken
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &user,
            },
            &log,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::Rejected);
    assert!(error.message.contains("employment"), "{}", error.message);
    assert!(log.take().is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bodies against the (third-party) schema

#[test]
fn create_bodies_validate_against_the_privy_create_schema() {
    let spec = load_spec("privy-kraken-embed-create-user.subset.json");
    let schema = create_schema(&spec);
    assert!(schema["required"].as_array().unwrap().len() >= 9);
    for user in [v2_user(), full_user()] {
        let body: Value =
            serde_json::from_slice(&KrakenConnector::create_body(&user).unwrap()).unwrap();
        assert_valid(&spec, &schema, &body);
    }
    // The full user exercises every optional field the gateway can fill.
    let body: Value =
        serde_json::from_slice(&KrakenConnector::create_body(&full_user()).unwrap()).unwrap();
    for key in [
        "employer_name",
        "city_of_birth",
        "country_of_birth",
        "tax_ids",
        "client_identifier",
        "language",
    ] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }
    assert_eq!(body["occupation"], "self_employed");
    assert_eq!(
        body["client_identifier"],
        json!({"type": "passport", "value": "C01X00T47"})
    );
}

#[test]
fn update_bodies_validate_against_the_derived_update_schema() {
    let spec = load_spec("privy-kraken-embed-create-user.subset.json");
    let schema = update_schema(&spec);
    let user = full_user();
    let changed: Vec<String> = [
        "phone",
        "name.middle",
        "date_of_birth",
        "birth_place.city",
        "birth_place.country",
        "nationalities",
        "address.region",
        "tax_ids",
        "employment.status",
        "employment.employer_name",
        "language",
        "terms.version",
        "identity_document.number",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let body: Value = serde_json::from_slice(
        &KrakenConnector::update_body(&user, &changed)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_valid(&spec, &schema, &body);
    assert_eq!(body.as_object().unwrap().len(), 13, "{body}");
    for one in &changed {
        let body: Value = serde_json::from_slice(
            &KrakenConnector::update_body(&user, std::slice::from_ref(one))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_valid(&spec, &schema, &body);
    }
}

// ---------------------------------------------------------------------------------------------
// Paths, signatures, nonces

#[tokio::test]
async fn spaced_iiban_is_percent_encoded_and_the_signature_covers_the_encoded_path() {
    let server = MockServer::start().await;
    let encoded = "/b2b/users/AA95%20N84G%20TEST%20XXXX";
    Mock::given(method("GET"))
        .and(path(encoded))
        .respond_with(ResponseTemplate::new(200).set_body_json(get_user_body(
            SPACED_IIBAN,
            json!({"state": "ok", "required_actions": []}),
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(encoded))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "success"})))
        .expect(1)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let data = Map::new();
    let log = CallLog::new();
    let state = kraken
        .get_user(link(SPACED_IIBAN, &data), &log)
        .await
        .unwrap();
    assert_eq!(state.provider_user_id, SPACED_IIBAN);
    assert_eq!(state.status, Some(LinkStatus::Approved));
    let user = full_user();
    let updated = kraken
        .update_user(link(SPACED_IIBAN, &data), &user, &["phone".into()], &log)
        .await
        .unwrap();
    assert_eq!(updated, None);

    assert_eq!(user_path(SPACED_IIBAN).unwrap(), encoded);
    for request in server.received_requests().await.unwrap() {
        assert_eq!(request.url.path(), encoded);
        assert_signed(&request);
        // The raw (unencoded) path must not verify: the signature is over what was sent.
        let nonce: u64 = header(&request, "API-Nonce").parse().unwrap();
        assert!(verify_api_sign(
            SECRET,
            "/b2b/users/AA95 N84G TEST XXXX",
            nonce,
            &request.body,
            header(&request, "API-Sign"),
        )
        .is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nonces_strictly_increase_across_50_concurrent_requests() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(get_user_body(IIBAN, json!({"state": "ok"}))),
        )
        .mount(&server)
        .await;
    let kraken = Arc::new(connector(&server));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let kraken = Arc::clone(&kraken);
        tasks.spawn(async move {
            let data = Map::new();
            kraken
                .get_user(link(IIBAN, &data), &CallLog::new())
                .await
                .unwrap()
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().status, Some(LinkStatus::Approved));
    }
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 50);
    let mut nonces: Vec<u64> = received.iter().map(assert_signed).collect();
    let distinct: HashSet<u64> = nonces.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "nonces repeat: {nonces:?}");
    nonces.sort_unstable();
    assert!(nonces.windows(2).all(|w| w[0] < w[1]));
    // A later request gets a larger nonce than all of them.
    let data = Map::new();
    kraken
        .get_user(link(IIBAN, &data), &CallLog::new())
        .await
        .unwrap();
    let last = server.received_requests().await.unwrap();
    let next: u64 = header(last.last().unwrap(), "API-Nonce").parse().unwrap();
    assert!(next > *nonces.last().unwrap());
}

/// The locally derived signing vectors V1–V3 (after
/// https://docs.kraken.com/api/docs/guides/embed-rest-auth; Kraken publishes no Embed-specific
/// vector), built by the connector's own request building with the vector's nonce and sent: the
/// signature and bytes on the wire are pinned.
#[tokio::test]
async fn derived_vectors_v1_to_v3_are_reproduced_on_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(get_user_body(IIBAN, json!({"state": "ok"}))),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": {"user": IIBAN}})))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "success"})))
        .mount(&server)
        .await;
    let kraken = connector(&server);

    let mut v3_user = serde_json::to_value(v2_user()).unwrap();
    v3_user["phone"] = json!("+14155550111");
    let v3_user: CanonicalUser = serde_json::from_value(v3_user).unwrap();
    let v3_body = KrakenConnector::update_body(&v3_user, &["phone".into()])
        .unwrap()
        .unwrap();
    assert_eq!(v3_body, br#"{"phone":"+14155550111"}"#);

    let vectors = [
        (
            Method::GET,
            user_path(IIBAN).unwrap(),
            1_700_000_000_000_000_000_u64,
            None,
            "Tdm+URoOl/7g+EN/YAzC3W2ttdrlPjlVge95fmPAhyU1k4efEIZ+TGDYpOyr7xsmc6W9Yl2ZU/8GzmWQooeV2g==",
        ),
        (
            Method::POST,
            "/b2b/users".to_owned(),
            1_700_000_000_000_000_001,
            Some(KrakenConnector::create_body(&v2_user()).unwrap()),
            "h/TpaDDeMZk9LrJrYC0+o4eMqe4TcLzSqDpJbXZdVb9fW9x4sIhrPpVjZNTeWPa1+xzXWhaG4apw3YK0xzXKtg==",
        ),
        (
            Method::PATCH,
            user_path(IIBAN).unwrap(),
            1_700_000_000_000_000_002,
            Some(v3_body),
            "LO8I2CB/+TtfyjOG+6tKSo50E+94zkVe9czs2GpDfbBsyJtk2F50ZtNg23tCl89J+8vYcVnMGbazhaL9zSkvBw==",
        ),
    ];
    let log = CallLog::new();
    for (i, (method, target, nonce, body, expected)) in vectors.into_iter().enumerate() {
        let signed = kraken
            .sign(method.clone(), target.clone(), body.clone(), nonce)
            .unwrap();
        assert_eq!(signed.api_sign, expected, "V{}", i + 1);
        let raw = kraken.send_signed(&log, "vector", signed).await.unwrap();
        assert!(raw.is_success());
        let received = server.received_requests().await.unwrap();
        let request = received.last().unwrap();
        assert_eq!(request.method.as_str(), method.as_str());
        assert_eq!(path_and_query(request), target);
        assert_eq!(header(request, "API-Nonce"), nonce.to_string());
        assert_eq!(
            header(request, "API-Sign"),
            expected,
            "V{} on the wire",
            i + 1
        );
        assert_eq!(request.body, body.unwrap_or_default());
        assert_signed(request);
    }
    assert_eq!(
        String::from_utf8(KrakenConnector::create_body(&v2_user()).unwrap()).unwrap(),
        V2_BODY
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

/// HTTP status, body, `Retry-After`, expected kind, retryable, provider code.
type ErrorCase = (
    u16,
    Value,
    Option<&'static str>,
    ProviderErrorKind,
    bool,
    Option<&'static str>,
);

#[tokio::test]
async fn error_statuses_map_to_provider_errors() {
    let cases: [ErrorCase; 7] = [
        (
            400,
            json!({"error": ["ENexus:Invalid user ID"]}),
            None,
            ProviderErrorKind::Rejected,
            false,
            Some("ENexus:Invalid user ID"),
        ),
        (
            401,
            json!({"error": ["EAPI:Invalid nonce"]}),
            None,
            ProviderErrorKind::Unauthorized,
            false,
            Some("EAPI:Invalid nonce"),
        ),
        (
            404,
            json!({"error": []}),
            None,
            ProviderErrorKind::NotFound,
            false,
            None,
        ),
        (
            409,
            json!({"error": ["ENexus:User already exists"], "errors": [{"code": "x"}]}),
            None,
            ProviderErrorKind::Conflict,
            false,
            Some("ENexus:User already exists"),
        ),
        (
            429,
            json!({"error": ["EAPI:Rate limit exceeded"]}),
            Some("7"),
            ProviderErrorKind::RateLimited,
            true,
            Some("EAPI:Rate limit exceeded"),
        ),
        (
            500,
            json!({"error": ["EGeneral:Internal error"]}),
            None,
            ProviderErrorKind::Unavailable,
            true,
            Some("EGeneral:Internal error"),
        ),
        (
            503,
            Value::String("<html>maintenance</html>".into()),
            None,
            ProviderErrorKind::Unavailable,
            true,
            None,
        ),
    ];
    for (status, body, retry_after, kind, retryable, code) in cases {
        let server = MockServer::start().await;
        let mut response = match &body {
            Value::String(text) => ResponseTemplate::new(status).set_body_string(text.clone()),
            json => ResponseTemplate::new(status).set_body_json(json.clone()),
        };
        if let Some(secs) = retry_after {
            response = response.insert_header("Retry-After", secs);
        }
        Mock::given(method("GET"))
            .respond_with(response)
            .mount(&server)
            .await;
        let kraken = connector(&server);
        let data = Map::new();
        let log = CallLog::new();
        let error = kraken.get_user(link(IIBAN, &data), &log).await.unwrap_err();
        assert_eq!(error.kind, kind, "{status}");
        assert_eq!(error.retryable(), retryable, "{status}");
        assert_eq!(error.provider_code.as_deref(), code, "{status}");
        assert_eq!(error.http_status, Some(status));
        match code {
            Some(code) => assert_eq!(error.message, code),
            None => assert_eq!(error.message, format!("Kraken answered HTTP {status}")),
        }
        assert_eq!(
            error.retry_after,
            retry_after.map(|s| Duration::from_secs(s.parse().unwrap()))
        );
        let calls = log.take();
        // A refused nonce is re-signed and sent again three times before the refusal stands.
        let sent = if code == Some("EAPI:Invalid nonce") {
            4
        } else {
            1
        };
        assert_eq!(calls.len(), sent, "{status}");
        assert_eq!(server.received_requests().await.unwrap().len(), sent);
        assert_eq!(calls[0].http_status, Some(status));
        assert_eq!(calls[0].outcome, error.outcome());
    }
}

#[tokio::test]
async fn create_errors_map_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"error": ["ENexus:Duplicate external_id"]})),
        )
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = v2_user();
    let log = CallLog::new();
    let error = kraken
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &user,
            },
            &log,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::Conflict);
    assert_eq!(
        error.provider_code.as_deref(),
        Some("ENexus:Duplicate external_id")
    );
    assert_eq!(log.take().len(), 1, "no status read after a failed create");
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(get_user_body(IIBAN, json!({"state": "ok"})))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let kraken = connector_with_timeout(&server, Duration::from_millis(300));
    let data = Map::new();
    let log = CallLog::new();
    let error = kraken.get_user(link(IIBAN, &data), &log).await.unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::Unavailable);
    assert!(error.retryable());
    assert_eq!(error.http_status, None);
    assert_eq!(error.provider_code, None);
    let calls = log.take();
    assert_eq!(calls[0].http_status, None);
    assert_eq!(calls[0].outcome, "unavailable");
}

#[tokio::test]
async fn unreadable_success_answers_are_invalid_responses() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"error": ["EX:odd"]})))
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let data = Map::new();
    let log = CallLog::new();
    let error = kraken.get_user(link(IIBAN, &data), &log).await.unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::InvalidResponse);
    let error = kraken
        .update_user(link(IIBAN, &data), &v2_user(), &["phone".into()], &log)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::InvalidResponse);
    assert_eq!(error.provider_code.as_deref(), Some("EX:odd"));
}

// ---------------------------------------------------------------------------------------------
// Update and field policy

#[tokio::test]
async fn update_sends_only_changed_fields() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/b2b/users/{IIBAN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "success"})))
        .expect(2)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = full_user();
    let data = Map::new();
    let log = CallLog::new();
    let changed: Vec<String> = ["address.city", "metadata.any", "citizenship", "phone"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let result = kraken
        .update_user(link(IIBAN, &data), &user, &changed, &log)
        .await
        .unwrap();
    assert_eq!(result, None);
    // Only Kraken-relevant changes, with nested objects whole.
    let ignored_only: Vec<String> = ["metadata.any", "financial_profile.source_of_funds"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        kraken
            .update_user(link(IIBAN, &data), &user, &ignored_only, &log)
            .await
            .unwrap(),
        None
    );
    kraken
        .update_user(
            link(IIBAN, &data),
            &user,
            &["employment.industry".into()],
            &log,
        )
        .await
        .unwrap();

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "ignored-only changes make no call");
    let first = &received[0];
    assert_eq!(
        std::str::from_utf8(&first.body).unwrap(),
        r#"{"residence":{"line1":"Invalidenstr. 1","line2":"Hinterhaus","city":"Berlin","postal_code":"10115","province":"BE","country":"DE"},"phone":"+4915112345678"}"#
    );
    assert_eq!(header(first, "Content-Type"), "application/json");
    assert_signed(first);
    assert_eq!(
        std::str::from_utf8(&received[1].body).unwrap(),
        r#"{"occupation":"self_employed"}"#
    );
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(ops, vec!["update_user", "update_user"]);
}

#[test]
fn field_policy_refuses_email_and_external_id() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kraken = KrakenConnector::new(
        &settings(Some(API_KEY), Some(SECRET)),
        http("http://127.0.0.1:9", Duration::from_secs(1)),
    )
    .unwrap();
    assert_eq!(kraken.id(), ProviderId::Kraken);
    assert_eq!(kraken.field_policy("email"), FieldPolicy::Refuse);
    assert_eq!(kraken.field_policy("external_id"), FieldPolicy::Refuse);
    assert_eq!(kraken.field_policy("address.city"), FieldPolicy::Send);
    assert_eq!(kraken.field_policy("name.first"), FieldPolicy::Send);
    assert_eq!(kraken.field_policy("employment.status"), FieldPolicy::Send);
    for ignored in [
        "citizenship",
        "financial_profile.monthly_deposits",
        "metadata.any",
        "identity_document.expires_on",
        "type",
    ] {
        assert_eq!(
            kraken.field_policy(ignored),
            FieldPolicy::Ignore,
            "{ignored}"
        );
    }
}

#[test]
fn new_names_the_missing_or_invalid_setting() {
    let http = || http("http://127.0.0.1:9", Duration::from_secs(1));
    let err = KrakenConnector::new(&settings(None, Some(SECRET)), http()).unwrap_err();
    assert_eq!(
        err,
        "providers.kraken.api_key is required when the provider is enabled"
    );
    let err = KrakenConnector::new(&settings(Some(" "), Some(SECRET)), http()).unwrap_err();
    assert!(err.contains("providers.kraken.api_key"), "{err}");
    let err = KrakenConnector::new(&settings(Some(API_KEY), None), http()).unwrap_err();
    assert_eq!(
        err,
        "providers.kraken.api_secret is required when the provider is enabled"
    );
    let err =
        KrakenConnector::new(&settings(Some(API_KEY), Some("not base64!")), http()).unwrap_err();
    assert!(err.contains("providers.kraken.api_secret"), "{err}");
    assert!(err.contains("base64"), "{err}");
    let ok = KrakenConnector::new(&settings(Some(API_KEY), Some(SECRET)), http()).unwrap();
    let debug = format!("{ok:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains(API_KEY),
        "{debug}"
    );
}

#[tokio::test]
async fn a_refused_nonce_is_re_signed_with_a_fresh_one_and_sent_again() {
    let server = MockServer::start().await;
    // Kraken saw a higher nonce first (a concurrent call overtook this one): refused once.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": ["EAPI:Invalid nonce"]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(get_user_body(IIBAN, initial_status())),
        )
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let data = Map::new();
    let log = CallLog::new();
    let state = kraken.get_user(link(IIBAN, &data), &log).await.unwrap();
    assert_eq!(state.status, Some(LinkStatus::ActionRequired));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let (first, second) = (assert_signed(&requests[0]), assert_signed(&requests[1]));
    assert!(second > first, "the resend carries a fresh, higher nonce");
    let outcomes: Vec<_> = log.take().into_iter().map(|c| c.http_status).collect();
    assert_eq!(outcomes, vec![Some(401), Some(200)]);
}

// ---------------------------------------------------------------------------------------------
// Documents: `POST /b2b/verifications/{user}` (multipart, signed over the exact bytes)

const VERIFICATION_ID: &str = "ver_01J0M9P2T7K3W2BHJ7T9";
const SPACED_VERIFICATIONS: &str = "/b2b/verifications/AA95%20N84G%20TEST%20XXXX";

fn attestation(reference: Option<&str>) -> VerificationAttestation {
    VerificationAttestation {
        verifier: "example_kyc_vendor".into(),
        // Given with an offset: Kraken is sent the instant in UTC.
        verified_at: datetime!(2026-11-01 10:30:00 +01:00),
        reference: reference.map(str::to_owned),
    }
}

/// A file as the store hands it over, with the caller's own (PII-bearing) file name, which
/// must never reach the provider.
fn file(bytes: &'static [u8]) -> DocumentFile<'static> {
    DocumentFile {
        bytes,
        content_type: DocumentContentType::sniff(bytes).expect("a recognised file"),
        file_name: "IMG_jane_doe_2026.raw",
    }
}

fn upload<'a>(
    user: &'a CanonicalUser,
    document_type: DocumentType,
    front: DocumentFile<'a>,
    back: Option<DocumentFile<'a>>,
    verification: Option<&'a VerificationAttestation>,
) -> DocumentUpload<'a> {
    DocumentUpload {
        user,
        document_type,
        front,
        back,
        verification,
    }
}

/// [`full_user`] holding a national id card issued by AT (one of its two nationalities).
fn national_id_user() -> CanonicalUser {
    let mut value = serde_json::to_value(full_user()).unwrap();
    value["identity_document"] = json!({"type": "national_id", "number": "L01X00T47",
        "issuing_country": "AT", "issued_on": null, "expires_on": "2031-02-28"});
    serde_json::from_value(value).unwrap()
}

fn verification_answer() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"error": [], "result": {"verification_id": VERIFICATION_ID}}))
}

/// `API-Sign` recomputed here from its definition
/// (https://docs.kraken.com/api/docs/guides/embed-rest-auth), not with the gateway's signer.
fn independent_api_sign(path_and_query: &str, nonce: u64, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut inner = sha2::Sha256::new();
    inner.update(nonce.to_string().as_bytes());
    inner.update(body);
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(&b64.decode(SECRET).unwrap()).unwrap();
    mac.update(path_and_query.as_bytes());
    mac.update(&inner.finalize());
    b64.encode(mac.finalize().into_bytes())
}

/// Checks the signature of a received request against the raw bytes and the raw
/// request-target it arrived with.
fn assert_signed_independently(request: &Request) {
    let nonce: u64 = header(request, "API-Nonce").parse().unwrap();
    assert_eq!(
        header(request, "API-Sign"),
        independent_api_sign(&path_and_query(request), nonce, &request.body),
        "API-Sign over the received path and body"
    );
    assert_signed(request);
}

/// A server that must not be called: every request fails the test when the server drops.
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
async fn a_two_sided_identity_document_goes_in_one_signed_multipart_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SPACED_VERIFICATIONS))
        .respond_with(verification_answer())
        .expect(1)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = national_id_user();
    let verified = attestation(Some("chk_123"));
    let data = Map::new();
    let log = CallLog::new();
    let submitted = kraken
        .submit_document(
            link(SPACED_IIBAN, &data),
            upload(
                &user,
                DocumentType::NationalId,
                file(JPEG),
                Some(file(PNG)),
                Some(&verified),
            ),
            &log,
        )
        .await
        .unwrap();
    assert_eq!(
        submitted,
        SubmittedDocument {
            provider_document_id: Some(VERIFICATION_ID.into())
        }
    );

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "both sides in one request");
    let request = &received[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(path_and_query(request), SPACED_VERIFICATIONS);
    assert_eq!(header(request, "Accept"), "application/json");
    assert_eq!(
        header(request, "Content-Length"),
        request.body.len().to_string()
    );
    assert_signed_independently(request);
    // The unencoded IIBAN does not verify: the signature is over the path as sent.
    let nonce: u64 = header(request, "API-Nonce").parse().unwrap();
    assert!(verify_api_sign(
        SECRET,
        "/b2b/verifications/AA95 N84G TEST XXXX",
        nonce,
        &request.body,
        header(request, "API-Sign")
    )
    .is_err());

    let parts = multipart_wire::parts(request);
    assert_eq!(
        multipart_wire::names(&parts),
        ["type", "metadata", "front", "back"]
    );
    multipart_wire::assert_text(&parts[0], "type", "identity_document");
    multipart_wire::assert_text(
        &parts[1],
        "metadata",
        r#"{"identity":{"full_name":{"first_name":"Jane","middle_name":"Q","last_name":"Doe"},"date_of_birth":"1990-01-15"},"document_type":"id_card","document_number":"L01X00T47","issuing_country":"AT","nationality":"AT","verifier":"example_kyc_vendor","verified_at":"2026-11-01T09:30:00Z","external_verification_id":"chk_123","expiration_date":"2031-02-28"}"#,
    );
    multipart_wire::assert_file(&parts[2], "front", "front.jpg", "image/jpeg", JPEG);
    multipart_wire::assert_file(&parts[3], "back", "back.png", "image/png", PNG);
    let raw = String::from_utf8_lossy(&request.body);
    assert!(
        !raw.contains("IMG_jane_doe"),
        "the caller's file name is never sent"
    );

    let calls: Vec<_> = log
        .take()
        .into_iter()
        .map(|c| (c.operation, c.http_status, c.outcome))
        .collect();
    assert_eq!(calls, [("submit_document", Some(200), "ok")]);
}

#[tokio::test]
async fn each_document_type_has_its_type_metadata_and_file_part() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/b2b/verifications/{IIBAN}")))
        .respond_with(verification_answer())
        .expect(5)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let user = full_user();
    let mut licence_user = serde_json::to_value(full_user()).unwrap();
    licence_user["identity_document"] = json!({"type": "drivers_license", "number": "B072RRE2I55",
        "issuing_country": "DE", "issued_on": null, "expires_on": null});
    licence_user["nationalities"] = json!(["FR"]);
    let licence_user: CanonicalUser = serde_json::from_value(licence_user).unwrap();
    let mut permit_user = serde_json::to_value(full_user()).unwrap();
    permit_user["identity_document"] = json!({"type": "residence_permit", "number": "Y12345678",
        "issuing_country": "DE", "issued_on": null, "expires_on": null});
    permit_user["nationalities"] = Value::Null;
    permit_user["citizenship"] = Value::Null;
    let permit_user: CanonicalUser = serde_json::from_value(permit_user).unwrap();
    let with_reference = attestation(Some("chk_9"));
    let without_reference = attestation(None);
    let identity = |document_type: &str, number: &str, nationality: &str, expiry: &str| {
        format!(
            r#"{{"identity":{{"full_name":{{"first_name":"Jane","middle_name":"Q","last_name":"Doe"}},"date_of_birth":"1990-01-15"}},"document_type":"{document_type}","document_number":"{number}","issuing_country":"DE"{nationality},"verifier":"example_kyc_vendor","verified_at":"2026-11-01T09:30:00Z","external_verification_id":"chk_9"{expiry}}}"#
        )
    };
    let cases = [
        (
            upload(&user, DocumentType::Passport, file(JPEG), None, Some(&with_reference)),
            "identity_document",
            identity("passport", "C01X00T47", r#","nationality":"DE""#, r#","expiration_date":"2029-04-30""#),
            vec![("front", "front.jpg", "image/jpeg", JPEG)],
        ),
        (
            upload(&licence_user, DocumentType::DriversLicense, file(PNG), Some(file(JPEG)), Some(&with_reference)),
            "identity_document",
            identity("drivers_license", "B072RRE2I55", r#","nationality":"FR""#, ""),
            vec![("front", "front.png", "image/png", PNG), ("back", "back.jpg", "image/jpeg", JPEG)],
        ),
        (
            upload(&permit_user, DocumentType::ResidencePermit, file(JPEG), None, Some(&with_reference)),
            "identity_document",
            identity("residence_card", "Y12345678", "", ""),
            vec![("front", "front.jpg", "image/jpeg", JPEG)],
        ),
        (
            upload(&user, DocumentType::ProofOfAddress, file(PDF), None, Some(&without_reference)),
            "residence_document",
            r#"{"address":{"line1":"Invalidenstr. 1","line2":"Hinterhaus","city":"Berlin","postal_code":"10115","province":"BE","country":"DE"},"document_type":"utility_bill","verifier":"example_kyc_vendor","verified_at":"2026-11-01T09:30:00Z"}"#.to_owned(),
            vec![("document", "document.pdf", "application/pdf", PDF)],
        ),
        (
            upload(&user, DocumentType::Selfie, file(JPEG), None, Some(&with_reference)),
            "selfie",
            r#"{"selfie_type":"selfie","verifier":"example_kyc_vendor","verified_at":"2026-11-01T09:30:00Z","external_verification_id":"chk_9"}"#.to_owned(),
            vec![("selfie", "selfie.jpg", "image/jpeg", JPEG)],
        ),
    ];
    let data = Map::new();
    for (i, (document, kind, metadata, files)) in cases.into_iter().enumerate() {
        let label = document.document_type.as_str();
        let log = CallLog::new();
        let submitted = kraken
            .submit_document(link(IIBAN, &data), document, &log)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            submitted.provider_document_id.as_deref(),
            Some(VERIFICATION_ID)
        );
        let received = server.received_requests().await.unwrap();
        assert_eq!(received.len(), i + 1);
        let request = received.last().unwrap();
        assert_signed_independently(request);
        let parts = multipart_wire::parts(request);
        let mut expected_names = vec!["type", "metadata"];
        expected_names.extend(files.iter().map(|f| f.0));
        assert_eq!(multipart_wire::names(&parts), expected_names, "{label}");
        multipart_wire::assert_text(&parts[0], "type", kind);
        multipart_wire::assert_text(&parts[1], "metadata", &metadata);
        for (part, (name, file_name, content_type, bytes)) in parts[2..].iter().zip(files) {
            multipart_wire::assert_file(part, name, file_name, content_type, bytes);
        }
        assert_eq!(log.take()[0].operation, "submit_document");
    }
}

#[tokio::test]
async fn documents_kraken_cannot_take_are_not_supported_and_nothing_is_sent() {
    let server = untouchable_server().await;
    let kraken = connector(&server);
    let user = full_user();
    let national = national_id_user();
    let mut no_document = serde_json::to_value(full_user()).unwrap();
    no_document["identity_document"] = Value::Null;
    let no_document: CanonicalUser = serde_json::from_value(no_document).unwrap();
    let mut no_street = serde_json::to_value(full_user()).unwrap();
    no_street["address"]["line1"] = Value::Null;
    let no_street: CanonicalUser = serde_json::from_value(no_street).unwrap();
    let verified = attestation(Some("chk_1"));
    let cases = [
        (
            upload(&user, DocumentType::Passport, file(JPEG), None, None),
            "Kraken accepts only partner-attested verifications: send `verification`",
        ),
        (
            upload(&user, DocumentType::Selfie, file(JPEG), None, None),
            "Kraken accepts only partner-attested verifications",
        ),
        (
            upload(
                &user,
                DocumentType::Passport,
                file(JPEG),
                Some(file(JPEG)),
                Some(&verified),
            ),
            "no passport back",
        ),
        (
            upload(
                &no_document,
                DocumentType::Passport,
                file(JPEG),
                None,
                Some(&verified),
            ),
            "the user has no identity_document",
        ),
        (
            upload(
                &national,
                DocumentType::DriversLicense,
                file(JPEG),
                None,
                Some(&verified),
            ),
            "the user's identity_document is a national_id",
        ),
        (
            upload(
                &no_street,
                DocumentType::ProofOfAddress,
                file(PDF),
                None,
                Some(&verified),
            ),
            "address.line1 is missing",
        ),
        (
            upload(
                &user,
                DocumentType::Selfie,
                file(JPEG),
                Some(file(PNG)),
                Some(&verified),
            ),
            "single file",
        ),
    ];
    let data = Map::new();
    for (document, message) in cases {
        let label = document.document_type.as_str();
        let log = CallLog::new();
        let error = kraken
            .submit_document(link(IIBAN, &data), document, &log)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ProviderErrorKind::NotSupported, "{label}");
        assert!(
            error.message.contains(message),
            "{label}: {}",
            error.message
        );
        assert!(!error.message.contains("C01X00T47"), "{}", error.message);
        assert!(log.take().is_empty(), "{label}: no call");
    }
}

#[tokio::test]
async fn document_error_envelopes_map_to_provider_errors() {
    let cases: [(u16, Value, ProviderErrorKind, Option<&str>); 6] = [
        (
            400,
            json!({"error": ["EGeneral:Invalid arguments:metadata"]}),
            ProviderErrorKind::Rejected,
            Some("EGeneral:Invalid arguments:metadata"),
        ),
        (
            400,
            json!({"error": ["ENexus:Invalid user ID"]}),
            ProviderErrorKind::Rejected,
            Some("ENexus:Invalid user ID"),
        ),
        (
            404,
            json!({"error": ["ENexus:Unknown user"]}),
            ProviderErrorKind::NotFound,
            Some("ENexus:Unknown user"),
        ),
        (
            409,
            json!({"error": ["ENexus:Verification not required"]}),
            ProviderErrorKind::Conflict,
            Some("ENexus:Verification not required"),
        ),
        (
            429,
            json!({"error": ["EAPI:Rate limit exceeded"]}),
            ProviderErrorKind::RateLimited,
            Some("EAPI:Rate limit exceeded"),
        ),
        (
            503,
            json!({"error": ["EService:Unavailable"]}),
            ProviderErrorKind::Unavailable,
            Some("EService:Unavailable"),
        ),
    ];
    let user = full_user();
    let verified = attestation(None);
    let data = Map::new();
    for (status, body, kind, code) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
        let log = CallLog::new();
        let error = connector(&server)
            .submit_document(
                link(IIBAN, &data),
                upload(
                    &user,
                    DocumentType::Selfie,
                    file(JPEG),
                    None,
                    Some(&verified),
                ),
                &log,
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, kind, "{status}");
        assert_eq!(error.provider_code.as_deref(), code, "{status}");
        assert_eq!(error.http_status, Some(status));
        let calls = log.take();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].operation, "submit_document");
        assert_eq!(calls[0].outcome, error.outcome());
    }

    // A 200 without `result` is unreadable, not a success.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"error": ["EGeneral:odd"]})))
        .mount(&server)
        .await;
    let error = connector(&server)
        .submit_document(
            link(IIBAN, &data),
            upload(
                &user,
                DocumentType::Selfie,
                file(JPEG),
                None,
                Some(&verified),
            ),
            &CallLog::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProviderErrorKind::InvalidResponse);
    assert_eq!(error.provider_code.as_deref(), Some("EGeneral:odd"));
}

#[tokio::test]
async fn a_refused_nonce_resends_the_same_body_re_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": ["EAPI:Invalid nonce"]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(verification_answer())
        .with_priority(2)
        .mount(&server)
        .await;
    let user = national_id_user();
    let verified = attestation(Some("chk_1"));
    let data = Map::new();
    let log = CallLog::new();
    connector(&server)
        .submit_document(
            link(IIBAN, &data),
            upload(
                &user,
                DocumentType::NationalId,
                file(JPEG),
                Some(file(PNG)),
                Some(&verified),
            ),
            &log,
        )
        .await
        .unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].body, received[1].body,
        "the same bytes, boundary included"
    );
    assert_eq!(
        header(&received[0], "Content-Type"),
        header(&received[1], "Content-Type")
    );
    assert_ne!(
        header(&received[0], "API-Nonce"),
        header(&received[1], "API-Nonce")
    );
    for request in &received {
        assert_signed_independently(request);
    }
    assert_eq!(log.take().len(), 2);
}

/// The locally derived multipart vector (`tests/fixtures/kraken-multipart-signing.derived.json`,
/// written and signed by hand outside the gateway's code): the connector builds the same bytes
/// for the same passport, signs them to the same `API-Sign`, and sends them unchanged.
#[tokio::test]
async fn the_derived_multipart_vector_is_reproduced_on_the_wire() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let vector = load_spec("kraken-multipart-signing.derived.json");
    let field = |name: &str| vector[name].as_str().unwrap().to_owned();
    assert_eq!(field("secret"), SECRET);
    let expected_body = b64.decode(field("body_base64")).unwrap();
    let front = b64.decode(field("front_base64")).unwrap();
    assert_eq!(front, JPEG);
    let nonce: u64 = field("nonce").parse().unwrap();

    let user: CanonicalUser = serde_json::from_value(json!({
        "external_id": "partner-user-1", "type": "individual", "email": "erika@example.com",
        "phone": "+4915112345678", "name": {"first": "Erika", "last": "Mustermann"},
        "date_of_birth": "1990-01-15", "nationalities": ["DE"],
        "address": {"line1": "Heidestr. 17", "city": "Köln", "postal_code": "51147", "country": "DE"},
        "identity_document": {"type": "passport", "number": "C01X00T47", "issuing_country": "DE",
                              "issued_on": null, "expires_on": null},
        "employment": {"status": "employed"}, "terms": {"version": 1, "accepted_at": null}
    }))
    .unwrap();
    let verified = VerificationAttestation {
        verifier: "example_kyc_vendor".into(),
        verified_at: datetime!(2026-11-01 09:30:00 UTC),
        reference: Some("chk_123".into()),
    };
    let document = upload(
        &user,
        DocumentType::Passport,
        file(JPEG),
        None,
        Some(&verified),
    );
    let body =
        KrakenConnector::document_body(&document, MultipartForm::with_boundary(field("boundary")))
            .unwrap();
    assert_eq!(body.content_type(), field("content_type"));
    assert!(
        body.bytes().as_ref() == expected_body.as_slice(),
        "body bytes"
    );
    assert_eq!(verification_path(SPACED_IIBAN).unwrap(), field("path"));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(field("path")))
        .respond_with(verification_answer())
        .expect(1)
        .mount(&server)
        .await;
    let kraken = connector(&server);
    let signed = kraken
        .sign_body(
            Method::POST,
            field("path"),
            Some(RequestBody::multipart(body)),
            nonce,
        )
        .unwrap();
    assert_eq!(signed.api_sign, field("api_sign"));
    let raw = kraken
        .send_signed(&CallLog::new(), "submit_document", signed)
        .await
        .unwrap();
    assert!(raw.is_success());
    let received = server.received_requests().await.unwrap();
    let request = &received[0];
    assert_eq!(request.body, expected_body);
    assert_eq!(header(request, "Content-Type"), field("content_type"));
    assert_eq!(header(request, "API-Nonce"), field("nonce"));
    assert_eq!(header(request, "API-Sign"), field("api_sign"));
    assert_signed_independently(request);
}
