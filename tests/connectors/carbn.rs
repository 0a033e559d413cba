//! Carbn Connect connector against wiremock: exact wire bytes (there is no Carbn OpenAPI spec, so
//! these pin the format of its API reference,
//! https://docs.carbn.xyz/api-reference/user-management/update-user), the `x-api-key` header,
//! consent-then-create ordering, partial updates, status mapping, the error envelope and the lookup
//! by listing.

use std::time::Duration;

use onboarding_gateway::domain::{CanonicalUser, LinkStatus, ProviderId};
use onboarding_gateway::providers::carbn::CarbnConnector;
use onboarding_gateway::providers::carbn::CarbnSettings;
use onboarding_gateway::providers::connector::{
    CallLog, Connector, CreateRequest, FieldPolicy, HostedSession, LinkRef, SessionRequest,
};
use onboarding_gateway::providers::error::ProviderErrorKind;
use onboarding_gateway::providers::http::{HttpTimeouts, ProviderHttp};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "Ab3dEfGh1jKlMn0pQrStUvWxYz012345";
const CONSENT: &str = "8f1b6a4e-2c3d-4e5f-9a0b-1c2d3e4f5a6b";
const USER_ID: &str = "0b7e2f3a-1d4c-4b5a-8e9f-a0b1c2d3e4f5";

fn settings(key: Option<&str>) -> CarbnSettings {
    CarbnSettings {
        enabled: true,
        base_url: "http://127.0.0.1:1".into(),
        api_key: key.map(|k| SecretString::from(k.to_owned())),
        webhook_public_key: None,
        session_currency: "EUR".into(),
        session_redirect_url: None,
    }
}

fn http(base: &str, total: Duration) -> ProviderHttp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ProviderHttp::new(
        ProviderId::Carbn,
        base,
        HttpTimeouts {
            connect: Duration::from_secs(2),
            total,
        },
    )
    .unwrap()
}

fn connector(server: &MockServer) -> CarbnConnector {
    CarbnConnector::new(
        &settings(Some(KEY)),
        http(&server.uri(), Duration::from_secs(5)),
    )
    .unwrap()
}

/// A full canonical user: alpha-2 everywhere, a residence permit issued by Austria, two tax
/// ids (one without a type), fields Carbn has no counterpart for, and a non-UTC acceptance.
fn user() -> CanonicalUser {
    serde_json::from_value(json!({
        "external_id": "crm-000123",
        "type": "individual",
        "email": "Jane.Doe@Example.COM",
        "phone": "+4915112345678",
        "name": { "first": "Jane", "middle": "Q", "last": "Doe" },
        "date_of_birth": "1990-01-15",
        "birth_place": { "city": "Berlin", "country": "DE" },
        "nationalities": ["DE", "AT"],
        "citizenship": "DE",
        "address": { "line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
                     "region": "BE", "postal_code": "10115", "country": "DE" },
        "identity_document": { "type": "residence_permit", "number": "C01X00T47",
                               "issuing_country": "AT", "issued_on": "2019-05-01",
                               "expires_on": "2029-04-30" },
        "tax_ids": [ { "type": "steuer_id", "number": "12345678901", "issuing_country": "DE" },
                     { "type": null, "number": "FR-998", "issuing_country": "FR" } ],
        "employment": { "status": "employed", "industry": "computers_and_it",
                        "occupation": "Software Engineer", "employer_name": "Acme GmbH" },
        "language": "de",
        "terms": { "version": 3, "accepted_at": "2026-11-01T11:30:00+02:00" },
        "metadata": { "tier": "gold" }
    }))
    .unwrap()
}

fn carbn_user(status: &str) -> Value {
    json!({
        "id": USER_ID,
        "status": status,
        "documents": [ { "name": "permanent_residency_id", "type": "identity_front" },
                       { "name": "steuer_id", "type": "tax_document" } ],
        "address": { "line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
                     "country": "DEU", "region": null, "sub_division": "BE",
                     "postal_code": "10115" },
        "first_name": "Jane", "last_name": "Doe",
        "email_address": "Jane.Doe@example.com", "phone_number": "+4915112345678",
        "date_of_birth": "1990-01-15",
        "rejection_reasons": null,
        "requirements": null
    })
}

fn body(req: &Request) -> String {
    String::from_utf8(req.body.clone()).unwrap()
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn no_link_data() -> Map<String, Value> {
    Map::new()
}

fn tnc_link_data() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tnc_id".into(), json!(CONSENT));
    m
}

async fn mount_consent(server: &MockServer, status: u16, body: Value) {
    Mock::given(method("POST"))
        .and(path("/onboarding/api/v1/tnc"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

fn envelope(code: &str, message: &str, method: &str, path: &str) -> Value {
    json!({
        "code": code, "httpMethod": method, "message": message, "path": path,
        "requestId": "46a7ad4b-c315-441c-ad2c-473f4075e1b5",
        "resourcePath": "/onboarding/api/v1/{proxy+}"
    })
}

// ---------------------------------------------------------------------------------------------
// (1)(2) Create

#[tokio::test]
async fn create_sends_consent_then_user_with_exact_bodies_and_api_key() {
    let server = MockServer::start().await;
    mount_consent(&server, 200, json!(CONSENT)).await;
    Mock::given(method("POST"))
        .and(path("/onboarding/api/v1/users"))
        .respond_with(ResponseTemplate::new(201).set_body_json(carbn_user("under_review")))
        .expect(1)
        .mount(&server)
        .await;
    let carbn = connector(&server);
    let log = CallLog::new();
    let u = user();
    let state = carbn
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &u,
            },
            &log,
        )
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].url.path(), "/onboarding/api/v1/tnc");
    assert_eq!(requests[1].url.path(), "/onboarding/api/v1/users");
    for r in &requests {
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(header(r, "x-api-key"), Some(KEY));
        assert_eq!(header(r, "content-type"), Some("application/json"));
        assert!(header(r, "authorization").is_none());
    }
    // Consent: UTC with `Z`, tnc_accepted true.
    assert_eq!(
        body(&requests[0]),
        r#"{"tnc_data":{"tnc_accepted":true,"accepted_at":"2026-11-01T09:30:00Z"}}"#
    );
    // Create: snake_case, alpha-3 everywhere, consent id from /tnc, no middle name, no
    // metadata/sharing_consent, no line2 (unset), region as sub_division.
    let expected = concat!(
        r#"{"first_name":"Jane","last_name":"Doe","email_address":"Jane.Doe@example.com","#,
        r#""phone_number":"+4915112345678","user_type":"individual","date_of_birth":"1990-01-15","#,
        r#""consent_id":"8f1b6a4e-2c3d-4e5f-9a0b-1c2d3e4f5a6b","#,
        r#""identity":{"identity_country_code":"AUT","identity_number":"C01X00T47","#,
        r#""identity_document_name":"permanent_residency_id"},"#,
        r#""documents":[{"name":"steuer_id","type":"tax_document","issuing_country":"DEU","#,
        r#""document_number":"12345678901"},{"name":"tax_id","type":"tax_document","#,
        r#""issuing_country":"FRA","document_number":"FR-998"}],"#,
        r#""address":{"line1":"Invalidenstr. 1","city":"Berlin","sub_division":"BE","#,
        r#""country":"DEU","postal_code":"10115"}}"#
    );
    assert_eq!(body(&requests[1]), expected);

    assert_eq!(state.provider_user_id, USER_ID);
    assert_eq!(state.provider_status, "under_review");
    assert_eq!(state.status, Some(LinkStatus::UnderReview));
    assert!(state.requirements.is_empty());
    assert_eq!(state.link_data, tnc_link_data());
    assert_eq!(state.observed_at, None);

    let calls = log.take();
    let ops: Vec<_> = calls.iter().map(|c| (c.operation, c.http_status)).collect();
    assert_eq!(
        ops,
        vec![("accept_terms", Some(200)), ("create_user", Some(201))]
    );
    assert!(calls.iter().all(|c| c.outcome == "ok"));
}

#[tokio::test]
async fn create_with_a_minimal_user_omits_optional_parts() {
    let server = MockServer::start().await;
    mount_consent(&server, 200, json!(CONSENT)).await;
    Mock::given(method("POST"))
        .and(path("/onboarding/api/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(carbn_user("active")))
        .mount(&server)
        .await;
    let mut u = user();
    u.tax_ids = None;
    u.address.region = None;
    u.address.line2 = Some("Hinterhaus".into());
    u.identity_document.as_mut().unwrap().doc_type =
        onboarding_gateway::domain::IdentityDocumentType::Passport;
    let log = CallLog::new();
    let state = connector(&server)
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &u,
            },
            &log,
        )
        .await
        .unwrap();
    assert_eq!(state.status, Some(LinkStatus::Approved));
    let requests = server.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert!(sent.get("documents").is_none());
    assert_eq!(sent["identity"]["identity_document_name"], "passport");
    assert_eq!(
        sent["address"],
        json!({"line1": "Invalidenstr. 1", "line2": "Hinterhaus", "city": "Berlin",
               "country": "DEU", "postal_code": "10115"})
    );
}

#[tokio::test]
async fn consent_failure_stops_before_create() {
    let server = MockServer::start().await;
    mount_consent(
        &server,
        400,
        envelope("4000", "Invalid tnc_data", "POST", "/onboarding/api/v1/tnc"),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/onboarding/api/v1/users"))
        .respond_with(ResponseTemplate::new(201).set_body_json(carbn_user("under_review")))
        .expect(0)
        .mount(&server)
        .await;
    let log = CallLog::new();
    let u = user();
    let err = connector(&server)
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &u,
            },
            &log,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Rejected);
    assert_eq!(err.provider_code.as_deref(), Some("4000"));
    assert_eq!(err.http_status, Some(400));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let ops: Vec<_> = log.take().iter().map(|c| c.operation).collect();
    assert_eq!(ops, vec!["accept_terms"]);
}

#[tokio::test]
async fn unreadable_consent_answer_stops_before_create() {
    let server = MockServer::start().await;
    mount_consent(&server, 200, json!({"unexpected": true})).await;
    let u = user();
    let err = connector(&server)
        .create_user(
            CreateRequest {
                gateway_user_id: uuid::Uuid::now_v7(),
                user: &u,
            },
            &CallLog::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Removes one field from a user.
type Strip = fn(&mut CanonicalUser);

#[tokio::test]
async fn missing_required_data_is_refused_before_any_call() {
    let server = MockServer::start().await;
    let carbn = connector(&server);
    let cases: Vec<(&str, Strip)> = vec![
        ("terms.accepted_at", |u| u.terms = None),
        ("phone", |u| u.phone = None),
        ("identity_document", |u| u.identity_document = None),
        ("address.line1", |u| u.address.line1 = None),
        ("address.city", |u| u.address.city = None),
        ("address.postal_code", |u| u.address.postal_code = None),
    ];
    for (field, strip) in cases {
        let mut u = user();
        strip(&mut u);
        let err = carbn
            .create_user(
                CreateRequest {
                    gateway_user_id: uuid::Uuid::now_v7(),
                    user: &u,
                },
                &CallLog::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Rejected, "{field}");
        assert!(err.message.starts_with(field), "{field}: {}", err.message);
        assert_eq!(err.http_status, None);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// (3) Get and partial update

#[tokio::test]
async fn get_reads_the_user_and_keeps_link_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/onboarding/api/v1/users/{USER_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(carbn_user("active")))
        .expect(1)
        .mount(&server)
        .await;
    let link_data = tnc_link_data();
    let log = CallLog::new();
    let state = connector(&server)
        .get_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            &log,
        )
        .await
        .unwrap();
    assert_eq!(state.provider_user_id, USER_ID);
    assert_eq!(state.status, Some(LinkStatus::Approved));
    assert_eq!(state.link_data, link_data);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(header(&requests[0], "x-api-key"), Some(KEY));
    assert!(requests[0].body.is_empty());
    assert_eq!(log.take()[0].operation, "get_user");
}

#[tokio::test]
async fn a_stored_id_that_is_not_a_path_segment_is_not_sent() {
    let server = MockServer::start().await;
    let link_data = no_link_data();
    let err = connector(&server)
        .get_user(
            LinkRef {
                provider_user_id: "../users/all",
                link_data: &link_data,
            },
            &CallLog::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::NotFound);
    assert!(server.received_requests().await.unwrap().is_empty());
}

async fn update(
    server: &MockServer,
    u: &CanonicalUser,
    changed: &[&str],
) -> (
    Option<onboarding_gateway::providers::connector::ProviderUserState>,
    Vec<Request>,
    Vec<&'static str>,
) {
    let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
    let link_data = tnc_link_data();
    let log = CallLog::new();
    let state = connector(server)
        .update_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            u,
            &changed,
            &log,
        )
        .await
        .unwrap();
    let ops = log.take().iter().map(|c| c.operation).collect();
    (state, server.received_requests().await.unwrap(), ops)
}

async fn mount_put(server: &MockServer, answer: Value) {
    Mock::given(method("PUT"))
        .and(path(format!("/onboarding/api/v1/users/{USER_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(server)
        .await;
}

#[tokio::test]
async fn update_sends_only_changed_fields_with_alpha3() {
    let server = MockServer::start().await;
    mount_put(&server, carbn_user("under_review")).await;
    let mut u = user();
    u.name.first = "Janet".into();
    u.address.country = onboarding_gateway::domain::CountryCode::parse("AT").unwrap();
    u.address.city = Some("Wien".into());
    u.metadata.insert("tier".into(), json!("platinum"));
    let (state, requests, ops) = update(
        &server,
        &u,
        &[
            "address.city",
            "address.country",
            "metadata.tier",
            "name.first",
            "name.middle",
            "nationalities",
        ],
    )
    .await;
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "PUT");
    assert_eq!(header(r, "x-api-key"), Some(KEY));
    // The address goes out whole (alpha-3); unchanged top-level fields, the middle name,
    // nationalities and metadata do not.
    assert_eq!(
        body(r),
        concat!(
            r#"{"first_name":"Janet","address":{"line1":"Invalidenstr. 1","city":"Wien","#,
            r#""sub_division":"BE","country":"AUT","postal_code":"10115"}}"#
        )
    );
    let state = state.unwrap();
    assert_eq!(state.status, Some(LinkStatus::UnderReview));
    assert_eq!(state.link_data, tnc_link_data());
    assert_eq!(ops, vec!["update_user"]);
}

#[tokio::test]
async fn update_identity_tax_ids_and_cleared_optionals() {
    let server = MockServer::start().await;
    mount_put(&server, carbn_user("under_review")).await;
    let mut u = user();
    u.identity_document.as_mut().unwrap().issuing_country =
        onboarding_gateway::domain::CountryCode::parse("CH").unwrap();
    u.tax_ids.as_mut().unwrap().truncate(1);
    u.tax_ids.as_mut().unwrap()[0].issuing_country =
        onboarding_gateway::domain::CountryCode::parse("ES").unwrap();
    u.address.region = None;
    u.phone = Some(onboarding_gateway::domain::Phone::parse("+33 6 12 34 56 78").unwrap());
    u.email = onboarding_gateway::domain::Email::parse("jane@example.org").unwrap();
    let (_, requests, _) = update(
        &server,
        &u,
        &[
            "address.region",
            "email",
            "identity_document.issuing_country",
            "identity_document.expires_on",
            "phone",
            "tax_ids",
        ],
    )
    .await;
    assert_eq!(
        body(&requests[0]),
        concat!(
            r#"{"email_address":"jane@example.org","phone_number":"+33612345678","#,
            r#""identity":{"identity_country_code":"CHE","identity_number":"C01X00T47","#,
            r#""identity_document_name":"permanent_residency_id"},"#,
            r#""documents":[{"name":"steuer_id","type":"tax_document","issuing_country":"ESP","#,
            r#""document_number":"12345678901"}],"#,
            r#""address":{"line1":"Invalidenstr. 1","city":"Berlin","sub_division":null,"#,
            r#""country":"DEU","postal_code":"10115"}}"#
        )
    );
}

#[tokio::test]
async fn update_with_a_new_acceptance_time_sends_a_fresh_consent() {
    let server = MockServer::start().await;
    let fresh = "11111111-2222-4333-8444-555555555555";
    mount_consent(&server, 200, json!(fresh)).await;
    mount_put(&server, carbn_user("under_review")).await;
    let mut u = user();
    u.terms.as_mut().unwrap().accepted_at = Some(time::macros::datetime!(2027-01-02 03:04:05 UTC));
    let (state, requests, ops) = update(&server, &u, &["terms.accepted_at", "terms.version"]).await;
    assert_eq!(ops, vec!["accept_terms", "update_user"]);
    assert_eq!(
        body(&requests[0]),
        r#"{"tnc_data":{"tnc_accepted":true,"accepted_at":"2027-01-02T03:04:05Z"}}"#
    );
    assert_eq!(body(&requests[1]), format!(r#"{{"consent_id":"{fresh}"}}"#));
    assert_eq!(state.unwrap().link_data["tnc_id"], json!(fresh));
}

#[tokio::test]
async fn update_with_only_ignored_fields_sends_nothing() {
    let server = MockServer::start().await;
    let u = user();
    let (state, requests, ops) = update(
        &server,
        &u,
        &[
            "birth_place.city",
            "employment.occupation",
            "external_id",
            "financial_profile.total_assets_usd",
            "language",
            "metadata.tier",
            "terms.version",
        ],
    )
    .await;
    assert!(state.is_none());
    assert!(requests.is_empty());
    assert!(ops.is_empty());
}

#[tokio::test]
async fn update_cannot_remove_a_required_value() {
    let server = MockServer::start().await;
    let mut u = user();
    u.phone = None;
    let link_data = no_link_data();
    let err = connector(&server)
        .update_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            &u,
            &["phone".to_string()],
            &CallLog::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Rejected);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn field_policies() {
    let carbn = CarbnConnector::new(
        &settings(Some(KEY)),
        http("http://127.0.0.1:1", Duration::from_secs(1)),
    )
    .unwrap();
    for p in [
        "type",
        "email",
        "phone",
        "name.first",
        "name.last",
        "date_of_birth",
        "address.line1",
        "address.line2",
        "address.city",
        "address.region",
        "address.postal_code",
        "address.country",
        "identity_document.type",
        "identity_document.number",
        "identity_document.issuing_country",
        "tax_ids",
        "terms.accepted_at",
    ] {
        assert_eq!(carbn.field_policy(p), FieldPolicy::Send, "{p}");
    }
    for p in [
        "external_id",
        "name.middle",
        "birth_place.city",
        "birth_place.country",
        "nationalities",
        "citizenship",
        "employment.status",
        "financial_profile.source_of_funds",
        "language",
        "identity_document.issued_on",
        "identity_document.expires_on",
        "terms.version",
        "metadata.tier",
        "metadata.a.b",
    ] {
        assert_eq!(carbn.field_policy(p), FieldPolicy::Ignore, "{p}");
    }
    assert_eq!(carbn.id(), ProviderId::Carbn);
}

// ---------------------------------------------------------------------------------------------
// (4) Status mapping, requirements and rejection reasons

#[tokio::test]
async fn status_mapping_and_requirements_verbatim() {
    let cases = [
        ("under_review", Some(LinkStatus::UnderReview)),
        ("incomplete", Some(LinkStatus::ActionRequired)),
        ("active", Some(LinkStatus::Approved)),
        ("rejected", Some(LinkStatus::Rejected)),
        ("paused", Some(LinkStatus::Suspended)),
        ("offboarded", Some(LinkStatus::Closed)),
        ("frozen", None),
        ("ACTIVE", None),
    ];
    for (raw, want) in cases {
        let server = MockServer::start().await;
        let mut answer = carbn_user(raw);
        if raw == "incomplete" {
            answer["requirements"] =
                json!(["proof_of_address", {"field": "identity", "reason": "blurry"}]);
        }
        if raw == "rejected" {
            answer["rejection_reasons"] = json!([{"reason": "identity_document_invalid",
                "developer_reason": "Document expired", "created_at": "2026-01-01"}]);
        }
        Mock::given(method("GET"))
            .and(path(format!("/onboarding/api/v1/users/{USER_ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
            .mount(&server)
            .await;
        let link_data = tnc_link_data();
        let state = connector(&server)
            .get_user(
                LinkRef {
                    provider_user_id: USER_ID,
                    link_data: &link_data,
                },
                &CallLog::new(),
            )
            .await
            .unwrap();
        assert_eq!(state.status, want, "{raw}");
        assert_eq!(state.provider_status, raw);
        match raw {
            "incomplete" => {
                assert_eq!(
                    state.requirements,
                    answer["requirements"].as_array().unwrap().clone()
                );
                assert_eq!(state.link_data, tnc_link_data());
            }
            "rejected" => {
                assert_eq!(
                    state.requirements,
                    answer["rejection_reasons"].as_array().unwrap().clone()
                );
                assert_eq!(
                    state.link_data["rejection_reasons"],
                    answer["rejection_reasons"]
                );
                assert_eq!(state.link_data["tnc_id"], json!(CONSENT));
            }
            _ => {
                assert!(state.requirements.is_empty(), "{raw}");
                assert_eq!(state.link_data, tnc_link_data());
            }
        }
    }
}

#[tokio::test]
async fn requirements_due_and_unusual_shapes_are_kept() {
    let server = MockServer::start().await;
    let mut answer = carbn_user("incomplete");
    answer.as_object_mut().unwrap().remove("requirements");
    answer["requirements_due"] = json!(["external_account"]);
    answer["rejection_reasons"] = json!("free text reason");
    answer["created_at"] = json!("Thu, 04 May 2023 15:40:40.832827000 UTC +00:00");
    answer["brand_new_field"] = json!({"x": 1});
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
        .mount(&server)
        .await;
    let link_data = no_link_data();
    let state = connector(&server)
        .get_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            &CallLog::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        state.requirements,
        vec![json!("external_account"), json!("free text reason")]
    );
    assert_eq!(state.observed_at, None);
}

// ---------------------------------------------------------------------------------------------
// (5) Errors

/// Gets the user and expects an error; returns it with the recorded call's outcome.
async fn get_error(
    server: &MockServer,
) -> (
    onboarding_gateway::providers::error::ProviderError,
    &'static str,
) {
    let link_data = no_link_data();
    let log = CallLog::new();
    let err = connector(server)
        .get_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            &log,
        )
        .await
        .unwrap_err();
    let calls = log.take();
    assert_eq!(calls.len(), 1);
    (err, calls[0].outcome)
}

#[tokio::test]
async fn error_envelopes_are_parsed_and_classified() {
    let p = format!("/onboarding/api/v1/users/{USER_ID}");
    let cases: Vec<(u16, Value, ProviderErrorKind, Option<&str>, &str)> = vec![
        (
            400,
            envelope("4000", "Validation failed: user_id must be a UUID", "GET", &p),
            ProviderErrorKind::Rejected,
            Some("4000"),
            "Validation failed: user_id must be a UUID (requestId 46a7ad4b-c315-441c-ad2c-473f4075e1b5)",
        ),
        (
            403,
            envelope("4030", "Missing authentication token", "GET", &p),
            ProviderErrorKind::Unauthorized,
            Some("4030"),
            "Missing authentication token (requestId 46a7ad4b-c315-441c-ad2c-473f4075e1b5)",
        ),
        (
            401,
            envelope("4101", "API key not found", "GET", &p),
            ProviderErrorKind::Unauthorized,
            Some("4101"),
            "API key not found (requestId 46a7ad4b-c315-441c-ad2c-473f4075e1b5)",
        ),
        (
            404,
            envelope("4040", "User not found", "GET", &p),
            ProviderErrorKind::NotFound,
            Some("4040"),
            "User not found (requestId 46a7ad4b-c315-441c-ad2c-473f4075e1b5)",
        ),
        (
            409,
            json!({"code": 4090, "message": "User with this email_address already exists"}),
            ProviderErrorKind::Conflict,
            Some("4090"),
            "User with this email_address already exists",
        ),
        (
            500,
            envelope("5000", "Internal server error", "GET", &p),
            ProviderErrorKind::Unavailable,
            Some("5000"),
            "Internal server error (requestId 46a7ad4b-c315-441c-ad2c-473f4075e1b5)",
        ),
    ];
    for (status, answer, kind, code, message) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(answer))
            .mount(&server)
            .await;
        let (err, outcome) = get_error(&server).await;
        assert_eq!(outcome, err.outcome(), "{status}");
        assert_eq!(err.kind, kind, "{status}");
        assert_eq!(err.http_status, Some(status));
        assert_eq!(err.provider_code.as_deref(), code, "{status}");
        assert_eq!(err.message, message, "{status}");
        assert_eq!(err.retry_after, None);
    }
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({"message": "Too Many Requests"})),
        )
        .mount(&server)
        .await;
    let (err, outcome) = get_error(&server).await;
    assert_eq!(outcome, "rate_limited");
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(err.provider_code, None);
    assert_eq!(err.message, "Too Many Requests");
    assert!(err.retryable());
}

#[tokio::test]
async fn non_json_error_bodies_and_unreadable_success_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;
    let (err, _) = get_error(&server).await;
    assert_eq!(err.kind, ProviderErrorKind::Unavailable);
    assert_eq!(err.message, "Carbn answered HTTP 502");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": USER_ID})))
        .mount(&server)
        .await;
    // The exchange itself succeeded (recorded `ok`); its body is what cannot be read.
    let (err, outcome) = get_error(&server).await;
    assert_eq!(outcome, "ok");
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);
}

#[tokio::test]
async fn a_timeout_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(carbn_user("active"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let carbn = CarbnConnector::new(
        &settings(Some(KEY)),
        http(&server.uri(), Duration::from_millis(300)),
    )
    .unwrap();
    let link_data = no_link_data();
    let log = CallLog::new();
    let err = carbn
        .get_user(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            &log,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Unavailable);
    assert!(err.retryable());
    let calls = log.take();
    assert_eq!(calls[0].http_status, None);
    assert_eq!(calls[0].outcome, "unavailable");
}

// ---------------------------------------------------------------------------------------------
// (6) Configuration

#[test]
fn api_key_is_required_and_must_be_32_alphanumerics() {
    let h = || http("http://127.0.0.1:1", Duration::from_secs(1));
    let err = CarbnConnector::new(&settings(None), h()).unwrap_err();
    assert_eq!(
        err,
        "providers.carbn.api_key is required when the provider is enabled"
    );
    let err = CarbnConnector::new(&settings(Some("  ")), h()).unwrap_err();
    assert!(err.contains("is required"), "{err}");
    for bad in [
        "short",
        "Ab3dEfGh1jKlMn0pQrStUvWxYz0123456",
        "Ab3dEfGh1jKlMn0pQrStUvWxYz01234-",
        "Ab3dEfGh1jKlMn0pQrStUvWxYz01234é",
    ] {
        let err = CarbnConnector::new(&settings(Some(bad)), h()).unwrap_err();
        assert!(
            err.starts_with("providers.carbn.api_key must be exactly 32 alphanumeric characters"),
            "{err}"
        );
        assert!(!err.contains(bad), "the key must not be echoed: {err}");
    }
    assert!(CarbnConnector::new(&settings(Some(KEY)), h()).is_ok());
    let debug = format!(
        "{:?}",
        CarbnConnector::new(&settings(Some(KEY)), h()).unwrap()
    );
    assert!(!debug.contains(KEY));
}

// ---------------------------------------------------------------------------------------------
// (7) Lookup by listing users (crash recovery)

async fn mount_list(server: &MockServer, users: Value) {
    Mock::given(method("GET"))
        .and(path("/onboarding/api/v1/users/all"))
        .respond_with(ResponseTemplate::new(200).set_body_json(users))
        .mount(server)
        .await;
}

fn other_user(id: &str, email: &str, first: &str) -> Value {
    let mut u = carbn_user("under_review");
    u["id"] = json!(id);
    u["email_address"] = json!(email);
    u["first_name"] = json!(first);
    u
}

#[tokio::test]
async fn lookup_finds_the_user_by_email_name_and_birth_date() {
    let server = MockServer::start().await;
    let mut mine = carbn_user("incomplete");
    mine["email_address"] = json!("jane.doe@EXAMPLE.com");
    mine["last_name"] = json!("DOE");
    mine["requirements"] = json!(["proof_of_address"]);
    mount_list(
        &server,
        json!([
            other_user("a1", "someone@example.com", "Sam"),
            mine,
            other_user("a2", "jane.doe@example.net", "Jane"),
        ]),
    )
    .await;
    let log = CallLog::new();
    let found = connector(&server)
        .find_existing_user(&user(), &log)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.provider_user_id, USER_ID);
    assert_eq!(found.status, Some(LinkStatus::ActionRequired));
    assert_eq!(found.requirements, vec![json!("proof_of_address")]);
    assert!(found.link_data.is_empty());
    let requests = server.received_requests().await.unwrap();
    assert_eq!(header(&requests[0], "x-api-key"), Some(KEY));
    assert_eq!(log.take()[0].operation, "list_users");
}

#[tokio::test]
async fn lookup_without_a_match_is_none() {
    let server = MockServer::start().await;
    mount_list(
        &server,
        json!([other_user("a1", "someone@example.com", "Sam")]),
    )
    .await;
    let found = connector(&server)
        .find_existing_user(&user(), &CallLog::new())
        .await
        .unwrap();
    assert!(found.is_none());

    let server = MockServer::start().await;
    mount_list(&server, json!([])).await;
    assert!(connector(&server)
        .find_existing_user(&user(), &CallLog::new())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn lookup_refuses_an_email_held_by_someone_else_or_several_matches() {
    let server = MockServer::start().await;
    mount_list(
        &server,
        json!([other_user("a1", "Jane.Doe@example.com", "Joan")]),
    )
    .await;
    let err = connector(&server)
        .find_existing_user(&user(), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Conflict);

    let server = MockServer::start().await;
    mount_list(
        &server,
        json!([
            other_user("a1", "Jane.Doe@example.com", "Jane"),
            other_user("a2", "Jane.Doe@example.com", "Jane"),
        ]),
    )
    .await;
    let err = connector(&server)
        .find_existing_user(&user(), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Conflict);
}

#[tokio::test]
async fn lookup_errors_use_the_envelope() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/onboarding/api/v1/users/all"))
        .respond_with(ResponseTemplate::new(403).set_body_json(envelope(
            "4300",
            "Insufficient permissions to access resource",
            "GET",
            "/onboarding/api/v1/users/all",
        )))
        .mount(&server)
        .await;
    let err = connector(&server)
        .find_existing_user(&user(), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Unauthorized);
    assert_eq!(err.provider_code.as_deref(), Some("4300"));
}

// ---------------------------------------------------------------------------------------------
// Documents: Carbn documents no upload API, so nothing is sent.

#[tokio::test]
async fn documents_are_not_supported_and_nothing_is_sent() {
    use onboarding_gateway::domain::verification::{DocumentContentType, DocumentType};
    use onboarding_gateway::providers::connector::{DocumentFile, DocumentUpload};
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let carbn = connector(&server);
    let u = user();
    let data = no_link_data();
    let front = DocumentFile {
        bytes: b"\xFF\xD8\xFF\xE0 front",
        content_type: DocumentContentType::Jpeg,
        file_name: "front.jpg",
    };
    for document_type in DocumentType::ALL {
        let log = CallLog::new();
        let error = carbn
            .submit_document(
                LinkRef {
                    provider_user_id: USER_ID,
                    link_data: &data,
                },
                DocumentUpload {
                    user: &u,
                    document_type: *document_type,
                    front,
                    back: None,
                    verification: None,
                },
                &log,
            )
            .await
            .unwrap_err();
        assert_eq!(
            error.kind,
            ProviderErrorKind::NotSupported,
            "{document_type}"
        );
        assert!(log.take().is_empty());
    }
}

// Hosted onboarding session
// (https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session)

/// A JWT whose payload is `claims` (header as in Carbn's example; signature not checked).
fn jwt(claims: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"ES384","kid":"kms","typ":"JWT"}"#),
        b64(claims),
        b64("signature")
    )
}

fn session_connector(server: &MockServer, redirect_default: Option<&str>) -> CarbnConnector {
    let mut s = settings(Some(KEY));
    s.session_currency = "USD".into();
    s.session_redirect_url = redirect_default.map(str::to_owned);
    CarbnConnector::new(&s, http(&server.uri(), Duration::from_secs(5))).unwrap()
}

async fn mount_session(server: &MockServer, status: u16, answer: Value) {
    Mock::given(method("POST"))
        .and(path("/onboarding/api/v1/users/session"))
        .respond_with(ResponseTemplate::new(status).set_body_json(answer))
        .mount(server)
        .await;
}

async fn open_session(
    carbn: &CarbnConnector,
    redirect_url: Option<&str>,
    log: &CallLog,
) -> Result<HostedSession, onboarding_gateway::providers::error::ProviderError> {
    let u = user();
    let link_data = tnc_link_data();
    carbn
        .create_verification_session(
            LinkRef {
                provider_user_id: USER_ID,
                link_data: &link_data,
            },
            SessionRequest {
                user: &u,
                redirect_url,
            },
            log,
        )
        .await
}

#[tokio::test]
async fn a_session_sends_email_currency_and_redirect_with_the_api_key() {
    let server = MockServer::start().await;
    let url = format!(
        "https://checkout.noah.com/kyc?session={}",
        jwt(r#"{"sub":"u","exp":1797076800}"#)
    );
    mount_session(
        &server,
        200,
        json!({"onboarding_url": url, "user_id": USER_ID}),
    )
    .await;
    let carbn = session_connector(&server, Some("https://default.example/done"));
    assert!(!carbn.session_needs_redirect_url());
    let log = CallLog::new();
    let session = open_session(
        &carbn,
        Some("https://app.example.com/kyc/done?step=2"),
        &log,
    )
    .await
    .unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/onboarding/api/v1/users/session");
    assert_eq!(r.url.query(), None);
    assert_eq!(header(r, "x-api-key"), Some(KEY));
    assert_eq!(header(r, "content-type"), Some("application/json"));
    assert_eq!(header(r, "accept"), Some("application/json"));
    assert!(header(r, "authorization").is_none());
    // Exactly the three documented fields, in this order; the canonical email (domain lower-cased).
    assert_eq!(
        body(r),
        r#"{"email":"Jane.Doe@example.com","currency":"USD","redirect_url":"https://app.example.com/kyc/done?step=2"}"#
    );

    assert_eq!(session.url, url);
    assert_eq!(
        session.expires_at,
        Some(time::OffsetDateTime::from_unix_timestamp(1_797_076_800).unwrap())
    );
    assert_eq!(session.provider_user_id.as_deref(), Some(USER_ID));
    // The URL carries a token: Debug never shows it.
    assert!(!format!("{session:?}").contains("session="));
    let calls = log.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].operation, calls[0].http_status, calls[0].outcome),
        ("verification_session", Some(200), "ok")
    );
}

#[tokio::test]
async fn without_a_redirect_the_configured_default_is_sent_or_nothing_is() {
    let server = MockServer::start().await;
    mount_session(
        &server,
        201,
        json!({"onboarding_url": "https://checkout.noah.com/kyc?session=x", "user_id": USER_ID}),
    )
    .await;
    let carbn = session_connector(&server, Some("https://default.example/done"));
    open_session(&carbn, None, &CallLog::new()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        body(&requests[0]),
        r#"{"email":"Jane.Doe@example.com","currency":"USD","redirect_url":"https://default.example/done"}"#
    );

    // No default: the gateway must ask the caller first, and the connector never sends one.
    let carbn = session_connector(&server, None);
    assert!(carbn.session_needs_redirect_url());
    let err = open_session(&carbn, None, &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Rejected);
    assert!(err.message.contains("redirect_url"), "{}", err.message);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_session_expiry_is_the_tokens_exp_when_it_can_be_read() {
    let server = MockServer::start().await;
    let carbn = session_connector(&server, None);
    for (url, want) in [
        (
            format!(
                "https://checkout.noah.com/kyc?session={}",
                jwt(r#"{"exp":1797076800}"#)
            ),
            Some(1_797_076_800),
        ),
        // `exp` as a float (some issuers send one) is cut to whole seconds.
        (
            format!(
                "https://checkout.noah.com/kyc?a=1&session={}",
                jwt(r#"{"exp":1797076800.9}"#)
            ),
            Some(1_797_076_800),
        ),
        // No `exp` claim.
        (
            format!(
                "https://checkout.noah.com/kyc?session={}",
                jwt(r#"{"sub":"u"}"#)
            ),
            None,
        ),
        // `exp` of the wrong type.
        (
            format!(
                "https://checkout.noah.com/kyc?session={}",
                jwt(r#"{"exp":"soon"}"#)
            ),
            None,
        ),
        // A payload that is not JSON, not base64, or missing.
        (
            format!("https://checkout.noah.com/kyc?session={}", jwt("not json")),
            None,
        ),
        (
            "https://checkout.noah.com/kyc?session=aaa.%%%.bbb".to_owned(),
            None,
        ),
        (
            "https://checkout.noah.com/kyc?session=opaque-token".to_owned(),
            None,
        ),
        // No session parameter at all.
        ("https://checkout.noah.com/kyc?other=1".to_owned(), None),
    ] {
        server.reset().await;
        mount_session(
            &server,
            200,
            json!({"onboarding_url": url, "user_id": USER_ID}),
        )
        .await;
        let session = open_session(&carbn, Some("https://app.example.com/"), &CallLog::new())
            .await
            .unwrap();
        assert_eq!(
            session.expires_at.map(|t| t.unix_timestamp()),
            want,
            "{url}"
        );
        assert_eq!(session.url, url);
    }
}

#[tokio::test]
async fn session_answers_without_a_url_or_with_an_error_are_errors() {
    let server = MockServer::start().await;
    let carbn = session_connector(&server, None);
    mount_session(
        &server,
        200,
        json!({"onboarding_url": "", "user_id": USER_ID}),
    )
    .await;
    let err = open_session(&carbn, Some("https://app.example.com/"), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);

    server.reset().await;
    mount_session(&server, 200, json!({"user_id": USER_ID})).await;
    let err = open_session(&carbn, Some("https://app.example.com/"), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse);

    // No user id in the answer: the session stands, with nothing to compare.
    server.reset().await;
    mount_session(
        &server,
        200,
        json!({"onboarding_url": "https://checkout.noah.com/kyc?session=x"}),
    )
    .await;
    let session = open_session(&carbn, Some("https://app.example.com/"), &CallLog::new())
        .await
        .unwrap();
    assert_eq!(session.provider_user_id, None);

    server.reset().await;
    mount_session(
        &server,
        400,
        envelope(
            "4000",
            "redirect_url must be a URI",
            "POST",
            "/onboarding/api/v1/users/session",
        ),
    )
    .await;
    let err = open_session(&carbn, Some("https://app.example.com/"), &CallLog::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Rejected);
    assert_eq!(err.provider_code.as_deref(), Some("4000"));
    assert!(
        err.message.contains("redirect_url must be a URI"),
        "{}",
        err.message
    );
}

#[test]
fn session_settings_are_checked() {
    let http = http("http://127.0.0.1:1", Duration::from_secs(1));
    let mut s = settings(Some(KEY));
    assert_eq!(s.session_currency, "EUR");
    for bad in ["eur", "EURO", "", "E1R"] {
        s.session_currency = bad.into();
        let err = CarbnConnector::new(&s, http.clone()).unwrap_err();
        assert!(err.contains("providers.carbn.session_currency"), "{err}");
    }
    s.session_currency = "EUR".into();
    for bad in ["http://app.example.com/done", "not a url", "/done"] {
        s.session_redirect_url = Some(bad.into());
        let err = CarbnConnector::new(&s, http.clone()).unwrap_err();
        assert!(
            err.contains("providers.carbn.session_redirect_url"),
            "{err}"
        );
        assert!(!err.contains(bad), "the value is not echoed: {err}");
    }
    s.session_redirect_url = Some("https://app.example.com/done".into());
    assert!(CarbnConnector::new(&s, http).is_ok());
}
