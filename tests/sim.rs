//! The provider simulators over real HTTP: auth failure modes, validation, magic values,
//! fault injection and signed webhooks (verified with the crypto of `providers::*`).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::providers::carbn::webhook as carbn_webhook;
use onboarding_gateway::providers::killb::webhook as killb_webhook;
use onboarding_gateway::providers::kraken::signing::{api_sign, NonceSource};
use onboarding_gateway::providers::kraken::webhook as kraken_webhook;
use onboarding_gateway::sim::{self, SimConfig, SimHandle, WebhookTargets};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// helpers

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn start(config: SimConfig) -> SimHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    sim::spawn(config, listener).await.unwrap()
}

fn fast_config() -> SimConfig {
    let mut config = SimConfig::development();
    config.review_delay = Duration::from_millis(300);
    config
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A minimal Kraken client: signs exactly the bytes it sends.
struct Kraken {
    http: reqwest::Client,
    base: String,
    key: String,
    secret: String,
    nonces: NonceSource,
}

impl Kraken {
    fn new(sim: &SimHandle) -> Self {
        let config = SimConfig::development();
        Self {
            http: client(),
            base: sim.base_url().to_owned(),
            key: config.kraken.api_key,
            secret: config.kraken.api_secret_b64,
            nonces: NonceSource::new(),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        nonce: u64,
    ) -> reqwest::RequestBuilder {
        let bytes = body.unwrap_or("").as_bytes().to_vec();
        let sign = api_sign(&self.secret, path, nonce, &bytes).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("API-Key", &self.key)
            .header("API-Nonce", nonce.to_string())
            .header("API-Sign", sign)
            .header("Payward-Version", "2025-04-15");
        if body.is_some() {
            request = request
                .header("Content-Type", "application/json")
                .body(bytes);
        }
        request
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let nonce = self.nonces.next();
        json_of(
            self.request(method, path, body, nonce)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn create(&self, email: &str, external_id: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                "/b2b/users",
                Some(&kraken_user(email, external_id)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["result"]["user"].as_str().unwrap().to_owned()
    }
}

fn encode_iiban(iiban: &str) -> String {
    iiban.replace(' ', "%20")
}

fn kraken_user(email: &str, external_id: &str) -> String {
    json!({
        "email": email, "external_id": external_id, "tos_version_accepted": 1,
        "full_name": {"first_name": "John", "last_name": "Smith"},
        "date_of_birth": "1990-01-15",
        "residence": {"line1": "1 Market St", "city": "San Francisco", "postal_code": "94103", "country": "US"},
        "phone": "+14155550110", "nationalities": ["US"], "occupation": "computers_and_it"
    })
    .to_string()
}

fn killb_user(email: &str, external_id: &str) -> Value {
    json!({
        "type": "PERSON",
        "externalId": external_id,
        "data": {
            "firstName": "Juan", "lastName": "Pérez", "dateOfBirth": "1990-01-15",
            "email": email, "phone": "+573001234567",
            "address": {"street1": "Calle 1 # 2-3", "city": "Bogotá", "state": "DC",
                        "zipCode": "110111", "countryCode": "CO"},
            "document": {"type": "NUIP", "number": "1234567890", "issuedCountryCode": "CO"},
            "nationality": "CO",
            "employmentStatus": "EMPLOYEE",
            "kycProfile": {"fundsSendReceiveJurisdictions": ["CO"], "engageInActivities": "NONE"}
        }
    })
}

async fn killb_login(http: &reqwest::Client, sim: &SimHandle) -> String {
    let config = SimConfig::development();
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/auth/login", sim.base_url()))
            .json(&json!({"email": config.killb.email, "password": config.killb.password}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["accessToken"].as_str().unwrap().to_owned()
}

async fn killb_create(
    http: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    email: &str,
    ext: &str,
) -> Value {
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users", sim.base_url()))
            .bearer_auth(token)
            .json(&killb_user(email, ext))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn carbn_user(email: &str, consent: &str) -> Value {
    json!({
        "first_name": "Jane", "last_name": "Doe", "email_address": email,
        "phone_number": "+4915112345678", "user_type": "individual", "date_of_birth": "1990-01-15",
        "consent_id": consent, "metadata": "{}", "sharing_consent": true,
        "identity": {"identity_country_code": "DEU", "identity_number": "C01X00T47",
                     "identity_document_name": "national_id"},
        "documents": [{"name": "steuer_id", "type": "tax_document", "issuing_country": "DEU",
                       "document_number": "12345678901"}],
        "address": {"line1": "Invalidenstr. 1", "city": "Berlin", "sub_division": "BE",
                    "country": "DEU", "postal_code": "10115"}
    })
}

async fn carbn_consent(http: &reqwest::Client, sim: &SimHandle) -> String {
    let (status, body) = json_of(
        http.post(format!("{}/onboarding/api/v1/tnc", sim.base_url()))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .json(
                &json!({"tnc_data": {"tnc_accepted": true, "accepted_at": "2026-01-01T12:00:00Z"}}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_str().expect("bare JSON string").to_owned()
}

async fn carbn_create(http: &reqwest::Client, sim: &SimHandle, email: &str) -> Value {
    let consent = carbn_consent(http, sim).await;
    let (status, body) = json_of(
        http.post(format!("{}/onboarding/api/v1/users", sim.base_url()))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .json(&carbn_user(email, &consent))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn add_fault(http: &reqwest::Client, sim: &SimHandle, fault: Value) {
    let response = http
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A webhook receiver: records every request; answers 500 to the first `fail_first` ones.
/// (path, headers, raw body) of one received request.
type Hit = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Hit>>>);

impl Received {
    fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn receiver(fail_first: usize) -> (String, Received) {
    let received = Received::default();
    let data = web::Data::new((received.clone(), fail_first));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |data: web::Data<(Received, usize)>, req: HttpRequest, body: web::Bytes| async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let n = {
                    let mut all = data.0 .0.lock().unwrap();
                    all.push((req.path().to_owned(), headers, body.to_vec()));
                    all.len()
                };
                if n <= data.1 {
                    HttpResponse::InternalServerError().finish()
                } else {
                    HttpResponse::Ok().body("OK")
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://{addr}"), received)
}

// ---------------------------------------------------------------------------------------------
// Kraken

#[tokio::test]
async fn kraken_auth_failures_have_krakens_error_bodies() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    let url = format!("{}/b2b/users/AA45N8G4MLDYWAR7", sim.base_url());
    let http = client();

    let (status, body) = json_of(http.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Missing API-Key"]})
        )
    );

    let (status, body) = json_of(http.get(&url).header("API-Key", "x").send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid nonce"]})
        )
    );

    let (status, body) = json_of(
        http.get(&url)
            .header("API-Key", "x")
            .header("API-Nonce", "12x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid nonce"]})
        )
    );

    let (status, body) = json_of(
        http.get(&url)
            .header("API-Key", "x")
            .header("API-Nonce", "12")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid signature"]})
        )
    );

    // Unknown key.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, "/b2b/users/AA45N8G4MLDYWAR7", nonce, b"").unwrap();
    let (status, body) = json_of(
        http.get(&url)
            .header("API-Key", "someone-else")
            .header("API-Nonce", nonce.to_string())
            .header("API-Sign", sign)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid key"]})
        )
    );

    // Signature made with another secret.
    let nonce = kraken.nonces.next();
    let sign = api_sign("c2VjcmV0", "/b2b/users/AA45N8G4MLDYWAR7", nonce, b"").unwrap();
    let (status, body) = json_of(
        http.get(&url)
            .header("API-Key", &kraken.key)
            .header("API-Nonce", nonce.to_string())
            .header("API-Sign", sign)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid signature"]})
        )
    );

    // Correctly signed: passes auth, then 404 for an unknown IIBAN.
    let (status, body) = kraken
        .send(Method::GET, "/b2b/users/AA45N8G4MLDYWAR7", None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": ["ENexus:User not found"]})
        )
    );
}

#[tokio::test]
async fn kraken_signed_requests_nonce_replay_and_tampering() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    let iiban = kraken.create("john@example.com", "ext-1").await;
    assert!(
        iiban.contains(' '),
        "the first IIBAN carries spaces: {iiban}"
    );
    assert!((14..=42).contains(&iiban.len()));

    // The percent-encoded IIBAN is what is signed and sent.
    let path = format!("/b2b/users/{}", encode_iiban(&iiban));
    let (status, body) = kraken.send(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    assert_eq!(result["user"], iiban.as_str());
    assert_eq!(result["user_type"], "individual");
    assert_eq!(result["external_id"], "ext-1");
    assert_eq!(result["status"]["state"], "ok");
    assert_eq!(
        result["status"]["required_actions"][0]["action_type"],
        "verification"
    );
    assert_eq!(
        result["status"]["required_actions"][0]["verification_type"],
        "identity"
    );
    assert_eq!(
        result["status"]["required_actions"][0]["reasons"],
        json!(["initial_onboarding"])
    );

    let patch = r#"{"phone":"+14155550111"}"#;
    let (status, body) = kraken.send(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"result": "success"}))
    );

    // The recorded request shows the exact wire bytes.
    let requests = sim.state().requests(Some(ProviderId::Kraken));
    let last = requests.last().unwrap();
    assert_eq!(last.method, "PATCH");
    assert_eq!(last.path, path);
    assert!(last.path.contains("%20"));
    assert_eq!(last.body, patch);
    assert!(last.headers.contains_key("api-sign"));

    // Replaying the same nonce (even correctly signed) is refused.
    let nonce = kraken.nonces.next();
    let (status, _) = json_of(
        kraken
            .request(Method::GET, &path, None, nonce)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = json_of(
        kraken
            .request(Method::GET, &path, None, nonce)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid nonce"]})
        )
    );
    // A lower nonce too.
    let (status, _) = json_of(
        kraken
            .request(Method::GET, &path, None, nonce - 1)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Body tampered after signing.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &path, nonce, patch.as_bytes()).unwrap();
    let (status, body) = json_of(
        kraken
            .http
            .patch(format!("{}{}", sim.base_url(), path))
            .header("API-Key", &kraken.key)
            .header("API-Nonce", nonce.to_string())
            .header("API-Sign", sign)
            .body(r#"{"phone":"+14155550199"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid signature"]})
        )
    );

    // Signing the unencoded path while sending the encoded one fails.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &format!("/b2b/users/{iiban}"), nonce, b"").unwrap();
    let (status, _) = json_of(
        kraken
            .http
            .get(format!("{}{}", sim.base_url(), path))
            .header("API-Key", &kraken.key)
            .header("API-Nonce", nonce.to_string())
            .header("API-Sign", sign)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The second IIBAN has no spaces.
    let plain = kraken.create("jane@example.com", "ext-2").await;
    assert!(!plain.contains(' '));
    let (status, _) = kraken
        .send(Method::GET, &format!("/b2b/users/{plain}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// A fault `after_handling` loses the answer of a create the provider acted on: the account
/// exists, and a second create with the same `external_id` is refused as Kraken documents a
/// conflict (`409`, its `{"error": [...]}` envelope).
#[tokio::test]
async fn kraken_acts_on_a_create_whose_answer_is_lost_and_refuses_its_external_id_again() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    add_fault(
        &kraken.http,
        &sim,
        json!({"provider": "kraken", "method": "POST", "path": "/b2b/users",
               "drop_connection": true, "after_handling": true, "count": 1}),
    )
    .await;
    let body = kraken_user("lost@example.com", "ext-lost");
    let lost = kraken
        .request(
            Method::POST,
            "/b2b/users",
            Some(&body),
            kraken.nonces.next(),
        )
        .send()
        .await;
    let error = lost.expect_err("the answer is dropped with the connection");
    assert!(error.status().is_none(), "{error:?}");
    let accounts = sim.state().users(ProviderId::Kraken);
    assert_eq!(accounts.len(), 1, "the create took effect");
    assert_eq!(accounts[0].external_id.as_deref(), Some("ext-lost"));

    let (status, refused) = kraken.send(Method::POST, "/b2b/users", Some(&body)).await;
    assert_eq!(
        (status, refused),
        (
            StatusCode::CONFLICT,
            json!({"error": ["ENexus:User already exists"]})
        )
    );
    assert_eq!(sim.state().users(ProviderId::Kraken).len(), 1);
}

#[tokio::test]
async fn kraken_validation_conflicts_and_ids() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    let iiban = kraken.create("a@example.com", "dup").await;

    let (status, body) = kraken
        .send(
            Method::POST,
            "/b2b/users",
            Some(&kraken_user("b@example.com", "dup")),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"error": ["ENexus:User already exists"]})
        )
    );

    let mut bad: Value = serde_json::from_str(&kraken_user("c@example.com", "ext-c")).unwrap();
    bad["residence"]["country"] = json!("USA");
    bad["occupation"] = json!("astronaut");
    bad["phone"] = json!("0123");
    bad.as_object_mut().unwrap().remove("date_of_birth");
    let (status, body) = kraken
        .send(Method::POST, "/b2b/users", Some(&bad.to_string()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let errors: Vec<&str> = body["error"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for field in ["residence.country", "occupation", "phone", "date_of_birth"] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("EGeneral:Invalid arguments:{field} "))),
            "{field} in {errors:?}"
        );
    }

    let path = format!("/b2b/users/{}", encode_iiban(&iiban));
    let (status, body) = kraken
        .send(Method::PATCH, &path, Some(r#"{"email":"new@example.com"}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"][0],
        "EGeneral:Invalid arguments:email is not updatable"
    );

    let (status, body) = kraken.send(Method::GET, "/b2b/users/short", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": ["ENexus:Invalid user ID"]})
        )
    );
}

// ---------------------------------------------------------------------------------------------
// KillB

#[tokio::test]
async fn killb_auth_failures_token_expiry_and_relogin() {
    let mut config = fast_config();
    config.killb.token_ttl = Duration::from_millis(1000);
    let sim = start(config).await;
    let http = client();
    let users = format!("{}/api/v2/users/{}", sim.base_url(), uuid::Uuid::new_v4());

    let (status, body) = json_of(http.get(&users).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"errorCode": "AUTH.0003", "arguments": [], "message": ["Missing bearer token"], "statusCode": "401"})
    );

    let (status, body) = json_of(
        http.get(&users)
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"errorCode": "AUTH.0003", "arguments": [], "message": ["Invalid token"], "statusCode": "401"})
    );

    let (status, body) = json_of(
        http.post(format!("{}/api/v2/auth/login", sim.base_url()))
            .json(&json!({"email": sim::killb::DEV_EMAIL, "password": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errorCode": "AUTH.0001", "arguments": [], "message": ["Invalid credentials"], "statusCode": "400"})
    );

    let (status, body) = json_of(
        http.post(format!("{}/api/v2/auth/login", sim.base_url()))
            .json(&json!({"email": sim::killb::DEV_EMAIL, "password": sim::killb::DEV_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["expiresIn"], 1000);
    let token = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "JWT-like");
    let refresh = body["refreshToken"].as_str().unwrap().to_owned();

    let (status, body) = json_of(http.get(&users).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "valid token passes auth: {body}"
    );
    assert_eq!(body["errorCode"], "USER.0001");
    assert_eq!(body["statusCode"], "404");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = json_of(http.get(&users).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"errorCode": "AUTH.0002", "arguments": [], "message": ["Token expired"], "statusCode": "401"})
    );

    // Re-login works.
    let token = killb_login(&http, &sim).await;
    let (status, _) = json_of(http.get(&users).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Refresh works too, and a refresh token is not an access token.
    let (status, _) = json_of(http.get(&users).bearer_auth(&refresh).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/auth/refresh", sim.base_url()))
            .json(&json!({"refreshToken": refresh}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let refreshed = body["accessToken"].as_str().unwrap();
    let (status, _) = json_of(
        http.get(&users)
            .bearer_auth(refreshed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The control endpoint expires tokens on demand.
    http.post(format!("{}/_sim/killb/expire-tokens", sim.base_url()))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(http.get(&users).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(
        (status, body["errorCode"].clone()),
        (StatusCode::UNAUTHORIZED, json!("AUTH.0002"))
    );
}

#[tokio::test]
async fn killb_users_create_search_conflict_update_delete() {
    let sim = start(fast_config()).await;
    let http = client();
    let token = killb_login(&http, &sim).await;
    let user = killb_create(&http, &sim, &token, "juan@example.com", "crm-1").await;
    assert_eq!(user["status"], "PENDING");
    assert_eq!(user["accessLevel"], "L1");
    assert_eq!(user["type"], "PERSON");
    assert_eq!(user["externalId"], "crm-1");
    assert_eq!(user["active"], true);
    assert_eq!(user["data"]["firstName"], "Juan");
    let id = user["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    // Search by external id (type required).
    let (status, body) = json_of(
        http.get(format!(
            "{}/api/v2/users?type=PERSON&externalId=crm-1",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["totalPage"], 1);
    assert_eq!(body["users"][0]["id"], id.as_str());
    let (status, body) = json_of(
        http.get(format!("{}/api/v2/users?externalId=crm-1", sim.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "INVALID.INPUT");

    // Duplicate external id and duplicate email.
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users", sim.base_url()))
            .bearer_auth(&token)
            .json(&killb_user("other@example.com", "crm-1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["statusCode"], "409");
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users", sim.base_url()))
            .bearer_auth(&token)
            .json(&killb_user("juan@example.com", "crm-2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].clone()),
        (StatusCode::CONFLICT, json!("USER.0003"))
    );

    // Validation and age.
    let mut bad = killb_user("x@example.com", "crm-3");
    bad["data"]["document"]["type"] = json!("CC");
    bad["data"]["address"]["countryCode"] = json!("COL");
    bad["data"]["shoeSize"] = json!(42);
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users", sim.base_url()))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "INVALID.INPUT");
    assert_eq!(body["statusCode"], "400");
    let messages = body["message"].to_string();
    for field in [
        "data.document.type",
        "data.address.countryCode",
        "data.shoeSize",
    ] {
        assert!(messages.contains(field), "{field} in {messages}");
    }
    let mut young = killb_user("kid@example.com", "crm-4");
    young["data"]["dateOfBirth"] = json!("2015-01-01");
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users", sim.base_url()))
            .bearer_auth(&token)
            .json(&young)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("USER.0004"))
    );

    // Flat PATCH merges.
    let (status, body) = json_of(
        http.patch(format!("{}/api/v2/users/{id}", sim.base_url()))
            .bearer_auth(&token)
            .json(&json!({"phone": "+573009999999"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["phone"], "+573009999999");
    assert_eq!(body["data"]["firstName"], "Juan");

    // DELETE is a soft delete.
    let response = http
        .delete(format!("{}/api/v2/users/{id}", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().is_empty());
    let (_, body) = json_of(
        http.get(format!("{}/api/v2/users/{id}", sim.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["active"], false);
}

// ---------------------------------------------------------------------------------------------
// Carbn

#[tokio::test]
async fn carbn_auth_failures_have_carbns_error_bodies() {
    let sim = start(fast_config()).await;
    let http = client();
    let url = format!("{}/onboarding/api/v1/users/all", sim.base_url());

    let (status, body) = json_of(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "4030");
    assert_eq!(body["message"], "Missing authentication token");
    assert_eq!(body["httpMethod"], "GET");
    assert_eq!(body["path"], "/onboarding/api/v1/users/all");
    assert_eq!(body["resourcePath"], "/onboarding/api/v1/{proxy+}");
    assert!(uuid::Uuid::parse_str(body["requestId"].as_str().unwrap()).is_ok());

    let (status, body) = json_of(
        http.get(&url)
            .header("x-api-key", "short")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("4100"))
    );

    let (status, body) = json_of(
        http.get(&url)
            .header("x-api-key", "A".repeat(32))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("4101"))
    );
    assert_eq!(body["message"], "API key not found");

    let (status, body) = json_of(
        http.get(&url)
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn carbn_consent_then_create_get_list_update() {
    let sim = start(fast_config()).await;
    let http = client();
    let key = sim::carbn::DEV_API_KEY;
    let consent = carbn_consent(&http, &sim).await;
    assert!(uuid::Uuid::parse_str(&consent).is_ok());

    // Unknown consent.
    let (status, body) = json_of(
        http.post(format!("{}/onboarding/api/v1/users", sim.base_url()))
            .header("x-api-key", key)
            .json(&carbn_user(
                "jane@example.com",
                &uuid::Uuid::new_v4().to_string(),
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("4000"))
    );

    let (status, user) = json_of(
        http.post(format!("{}/onboarding/api/v1/users", sim.base_url()))
            .header("x-api-key", key)
            .json(&carbn_user("jane@example.com", &consent))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["status"], "under_review");
    assert_eq!(user["address"]["country"], "DEU");
    assert_eq!(user["requirements"], Value::Null);
    assert_eq!(
        user["documents"][0],
        json!({"name": "national_id", "type": "identity_front"})
    );
    let id = user["id"].as_str().unwrap().to_owned();

    // The consent is single-use; alpha-2 countries are refused.
    let (status, _) = json_of(
        http.post(format!("{}/onboarding/api/v1/users", sim.base_url()))
            .header("x-api-key", key)
            .json(&carbn_user("other@example.com", &consent))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let mut bad = carbn_user("third@example.com", &carbn_consent(&http, &sim).await);
    bad["address"]["country"] = json!("DE");
    let (status, body) = json_of(
        http.post(format!("{}/onboarding/api/v1/users", sim.base_url()))
            .header("x-api-key", key)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("address.country"));

    let (status, body) = json_of(
        http.get(format!("{}/onboarding/api/v1/users/{id}", sim.base_url()))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["id"].clone()), (StatusCode::OK, json!(id)));

    let (status, body) = json_of(
        http.get(format!("{}/onboarding/api/v1/users/all", sim.base_url()))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);

    let (status, body) = json_of(
        http.put(format!("{}/onboarding/api/v1/users/{id}", sim.base_url()))
            .header("x-api-key", key)
            .json(&json!({"phone_number": "+4915199999999"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["phone_number"], "+4915199999999");
    assert_eq!(body["first_name"], "Jane");

    let (status, body) = json_of(
        http.get(format!(
            "{}/onboarding/api/v1/users/{}",
            sim.base_url(),
            uuid::Uuid::new_v4()
        ))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("4040"))
    );
}

// ---------------------------------------------------------------------------------------------
// Magic values

#[tokio::test]
async fn magic_email_tags_produce_the_documented_statuses() {
    let sim = start(fast_config()).await;
    let http = client();
    let kraken = Kraken::new(&sim);
    let token = killb_login(&http, &sim).await;

    let kraken_status = |iiban: String| {
        let kraken = &kraken;
        async move {
            let (_, body) = kraken
                .send(
                    Method::GET,
                    &format!("/b2b/users/{}", encode_iiban(&iiban)),
                    None,
                )
                .await;
            body["result"]["status"].clone()
        }
    };

    // Kraken
    let s = kraken_status(kraken.create("a+approve@example.com", "k1").await).await;
    assert_eq!(s, json!({"state": "ok", "required_actions": []}));
    let s = kraken_status(kraken.create("a+reject@example.com", "k2").await).await;
    assert_eq!(s["state"], "closed");
    let s = kraken_status(kraken.create("a+incomplete@example.com", "k3").await).await;
    assert_eq!(s["required_actions"][0]["action_type"], "provide_details");
    let s = kraken_status(kraken.create("a+suspend@example.com", "k4").await).await;
    assert_eq!(s["state"], "disabled");
    let review = kraken.create("a+review@example.com", "k5").await;
    let s = kraken_status(review.clone()).await;
    assert_eq!(s["required_actions"][0]["action_type"], "wait");

    // KillB
    for (tag, status, level) in [
        ("approve", "ACTIVE", "L2"),
        ("reject", "REJECTED", "L0"),
        ("incomplete", "PENDING", "L0"),
        ("suspend", "SUSPENDED", "L1"),
        ("review", "PENDING", "L1"),
    ] {
        let user = killb_create(&http, &sim, &token, &format!("b+{tag}@example.com"), tag).await;
        assert_eq!(
            (user["status"].as_str(), user["accessLevel"].as_str()),
            (Some(status), Some(level)),
            "{tag}"
        );
    }

    // Carbn
    for (tag, status) in [
        ("approve", "active"),
        ("reject", "rejected"),
        ("incomplete", "incomplete"),
        ("suspend", "paused"),
        ("review", "under_review"),
        ("none", "under_review"),
    ] {
        let user = carbn_create(&http, &sim, &format!("c+{tag}@example.com")).await;
        assert_eq!(user["status"], status, "{tag}");
        if tag == "incomplete" {
            assert_eq!(user["requirements"], json!(["proof_of_address"]));
        }
        if tag == "reject" {
            assert!(user["rejection_reasons"].is_array());
        }
    }

    // +review users are approved after review_delay.
    let state = Arc::clone(sim.state());
    wait_until("+review approvals", || {
        [ProviderId::Kraken, ProviderId::Killb, ProviderId::Carbn]
            .iter()
            .flat_map(|p| state.users(*p))
            .filter(|u| u.profile.to_string().contains("+review@"))
            .all(|u| u.status == sim::SimStatus::Approved)
    })
    .await;
    let s = kraken_status(review).await;
    assert_eq!(s, json!({"state": "ok", "required_actions": []}));
    let (_, body) = json_of(
        http.get(format!(
            "{}/api/v2/users?type=PERSON&externalId=review",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(body["users"][0]["status"], "ACTIVE");
    let carbn_users = sim.state().users(ProviderId::Carbn);
    let review = carbn_users
        .iter()
        .find(|u| u.profile["email_address"] == "c+review@example.com")
        .unwrap();
    assert_eq!(review.status, sim::SimStatus::Approved);

    // An update of an incomplete Carbn user sends it to review, then approval.
    let incomplete = carbn_users
        .iter()
        .find(|u| u.profile["email_address"] == "c+incomplete@example.com")
        .unwrap();
    let (_, body) = json_of(
        http.put(format!("{}/onboarding/api/v1/users/{}", sim.base_url(), incomplete.id))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .json(&json!({"address": {"line1": "Neue Str. 2", "city": "Berlin", "country": "DEU", "postal_code": "10115"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["status"], "under_review");
    let state = Arc::clone(sim.state());
    let id = incomplete.id.clone();
    wait_until("approval after update", || {
        state.user(ProviderId::Carbn, &id).unwrap().status == sim::SimStatus::Approved
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn faults_429_with_retry_after_500_latency_drop_and_timeout() {
    let sim = start(fast_config()).await;
    let http = client();
    let kraken = Kraken::new(&sim);

    add_fault(
        &http,
        &sim,
        json!({"provider": "kraken", "status": 429, "retry_after_secs": 7, "count": 1}),
    )
    .await;
    let nonce = kraken.nonces.next();
    let response = kraken
        .request(Method::GET, "/b2b/users/AA45N8G4MLDYWAR7", None, nonce)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": ["EAPI:Rate limit exceeded"]})
    );
    // count = 1: the next request goes through.
    let (status, _) = kraken
        .send(Method::GET, "/b2b/users/AA45N8G4MLDYWAR7", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    add_fault(
        &http,
        &sim,
        json!({"provider": "killb", "status": 500, "path": "/api/v2/auth/login"}),
    )
    .await;
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/auth/login", sim.base_url()))
            .json(&json!({"email": sim::killb::DEV_EMAIL, "password": sim::killb::DEV_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["statusCode"], "500");
    let response = http
        .delete(format!("{}/_sim/faults", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"cleared": 1})
    );
    killb_login(&http, &sim).await;

    add_fault(
        &http,
        &sim,
        json!({"provider": "carbn", "latency_ms": 300, "count": 1}),
    )
    .await;
    let started = Instant::now();
    let response = http
        .get(format!("{}/onboarding/api/v1/users/all", sim.base_url()))
        .header("x-api-key", sim::carbn::DEV_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    add_fault(
        &http,
        &sim,
        json!({"provider": "carbn", "drop_connection": true, "count": 1}),
    )
    .await;
    let outcome = http
        .get(format!("{}/onboarding/api/v1/users/all", sim.base_url()))
        .header("x-api-key", sim::carbn::DEV_API_KEY)
        .send()
        .await;
    let err = outcome.expect_err("the connection is dropped");
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");

    add_fault(
        &http,
        &sim,
        json!({"provider": "carbn", "timeout": true, "count": 1}),
    )
    .await;
    let outcome = http
        .get(format!("{}/onboarding/api/v1/users/all", sim.base_url()))
        .header("x-api-key", sim::carbn::DEV_API_KEY)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(outcome.expect_err("hangs").is_timeout());

    add_fault(&http, &sim, json!({"provider": "carbn", "status": 503})).await;
    let (status, body) = json_of(
        http.get(format!("{}/onboarding/api/v1/users/all", sim.base_url()))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("503"))
    );

    // Requests are recorded even when a fault answers.
    let response = http
        .get(format!("{}/_sim/requests?provider=carbn", sim.base_url()))
        .send()
        .await
        .unwrap();
    let recorded: Vec<Value> = response.json().await.unwrap();
    assert_eq!(recorded.len(), 4);
    assert!(recorded
        .iter()
        .all(|r| r["path"] == "/onboarding/api/v1/users/all"));
}

// ---------------------------------------------------------------------------------------------
// Webhooks

#[tokio::test]
async fn status_changes_send_correctly_signed_webhooks() {
    let (base, received) = receiver(1).await; // the first delivery fails once: retried
    let mut config = fast_config();
    config.webhook_targets = WebhookTargets::gateway(&base);
    let sim = start(config).await;
    let http = client();
    let kraken = Kraken::new(&sim);
    let dev = SimConfig::development();

    // Kraken: a control-endpoint status change emits user.disabled.
    let iiban = kraken.create("k@example.com", "k-1").await;
    let response = http
        .post(format!(
            "{}/_sim/kraken/users/{}/status",
            sim.base_url(),
            encode_iiban(&iiban)
        ))
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"]["state"],
        "disabled"
    );
    let r = received.clone();
    wait_until("kraken webhook", || r.all().len() >= 2).await;
    let all = received.all();
    let (path, headers, body) = &all[1];
    assert_eq!(path, "/v1/webhooks/kraken");
    let signature = header(headers, "x-signature").unwrap();
    kraken_webhook::verify(
        &dev.kraken.webhook_secret_b64,
        signature,
        body,
        onboarding_gateway::providers::webhook::unix_now(),
        kraken_webhook::DEFAULT_TOLERANCE,
    )
    .unwrap();
    assert_eq!(header(headers, "x-webhook-event"), Some("user.disabled"));
    assert!(header(headers, "x-webhook-id").is_some());
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event_type"], "user.disabled");
    assert_eq!(event["iiban"], iiban.as_str());
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all[0].2, all[1].2, "the retry carries the same event");
    let state = Arc::clone(sim.state());
    wait_until("delivery logged", || {
        state.webhook_deliveries()[0].delivered
    })
    .await;
    let deliveries = sim.state().webhook_deliveries();
    assert_eq!(deliveries[0].attempts.len(), 2);
    assert_eq!(deliveries[0].attempts[0].status, Some(500));
    assert!(deliveries[0].delivered);

    // KillB: create sends USER/CREATE, a status change USER/UPDATE, signed per the docs.
    let token = killb_login(&http, &sim).await;
    let user = killb_create(&http, &sim, &token, "kb@example.com", "kb-1").await;
    let id = user["id"].as_str().unwrap();
    http.post(format!("{}/_sim/killb/users/{id}/status", sim.base_url()))
        .json(&json!({"status": "ACTIVE"}))
        .send()
        .await
        .unwrap();
    let r = received.clone();
    wait_until("killb webhooks", || {
        r.all()
            .iter()
            .filter(|x| x.0 == "/v1/webhooks/killb")
            .count()
            >= 2
    })
    .await;
    let killb: Vec<_> = received
        .all()
        .into_iter()
        .filter(|x| x.0 == "/v1/webhooks/killb")
        .collect();
    for (_, headers, body) in &killb {
        let signature = header(headers, "x-signature-sha256").unwrap();
        killb_webhook::verify(
            killb_webhook::SignatureScheme::HmacSha256,
            &dev.killb.webhook_secret,
            body,
            signature,
        )
        .unwrap();
    }
    let create: Value = serde_json::from_slice(&killb[0].2).unwrap();
    let update: Value = serde_json::from_slice(&killb[1].2).unwrap();
    assert_eq!(
        (create["event"].as_str(), create["action"].as_str()),
        (Some("USER"), Some("CREATE"))
    );
    assert_eq!(update["action"], "UPDATE");
    assert_eq!(update["data"]["status"], "ACTIVE");
    assert_eq!(update["attempts"], 0);

    // Carbn: RSA-signed USER_STATUS_UPDATE.
    let user = carbn_create(&http, &sim, "cb@example.com").await;
    let id = user["id"].as_str().unwrap();
    http.post(format!("{}/_sim/carbn/users/{id}/status", sim.base_url()))
        .json(&json!({"status": "rejected"}))
        .send()
        .await
        .unwrap();
    let r = received.clone();
    wait_until("carbn webhook", || {
        r.all().iter().any(|x| x.0 == "/v1/webhooks/carbn")
    })
    .await;
    let all = received.all();
    let (_, headers, body) = all.iter().find(|x| x.0 == "/v1/webhooks/carbn").unwrap();
    let signature = header(headers, "x-webhook-signature").unwrap();
    carbn_webhook::verify(sim::carbn::DEV_WEBHOOK_PUBLIC_KEY_PEM, body, signature).unwrap();
    assert!(uuid::Uuid::parse_str(header(headers, "x-webhook-event-id").unwrap()).is_ok());
    assert_eq!(header(headers, "user-agent"), Some("Java/17.0.14"));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event, json!({"status": "rejected", "user_id": id}));

    // A raw provider status (unknown to the gateway) can be injected too.
    let response = http
        .post(format!("{}/_sim/carbn/users/{id}/status", sim.base_url()))
        .json(&json!({"provider_status": "on_hold", "webhook": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "on_hold");
}

#[tokio::test]
async fn review_delay_approval_sends_webhooks_with_the_sdk_scheme_when_configured() {
    let (base, received) = receiver(0).await;
    let mut config = fast_config();
    config.webhook_targets = WebhookTargets::gateway(&base);
    config.killb.webhook_scheme = killb_webhook::SignatureScheme::Sha256Concat;
    let sim = start(config).await;
    let http = client();
    let kraken = Kraken::new(&sim);
    let token = killb_login(&http, &sim).await;

    let iiban = kraken.create("r+review@example.com", "r-1").await;
    killb_create(&http, &sim, &token, "r+review@example.com", "r-2").await;
    let r = received.clone();
    wait_until("approval webhooks", || {
        let all = r.all();
        all.iter().any(|x| x.0 == "/v1/webhooks/kraken")
            && all.iter().filter(|x| x.0 == "/v1/webhooks/killb").count() >= 2
    })
    .await;
    let all = received.all();
    let (_, headers, body) = all.iter().find(|x| x.0 == "/v1/webhooks/kraken").unwrap();
    assert_eq!(header(headers, "x-webhook-event"), Some("user.verified"));
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap()["iiban"],
        iiban.as_str()
    );
    let (_, headers, body) = all
        .iter()
        .filter(|x| x.0 == "/v1/webhooks/killb")
        .nth(1)
        .unwrap();
    let signature = header(headers, "x-signature-sha256").unwrap();
    assert_eq!(
        killb_webhook::verify_any(sim::killb::DEV_WEBHOOK_SECRET, body, signature),
        Ok(killb_webhook::SignatureScheme::Sha256Concat)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap()["data"]["status"],
        "ACTIVE"
    );
}

#[tokio::test]
async fn control_endpoints_dump_users_and_requests() {
    let sim = start(fast_config()).await;
    let http = client();
    let user = carbn_create(&http, &sim, "d@example.com").await;
    let dump: Value = http
        .get(format!("{}/_sim/carbn/users", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dump[0]["id"], user["id"]);
    assert_eq!(dump[0]["sim_status"], "pending");
    assert_eq!(dump[0]["user"]["status"], "under_review");

    let requests: Value = http
        .get(format!("{}/_sim/requests?provider=carbn", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 2);
    assert_eq!(requests[1]["method"], "POST");
    assert_eq!(requests[1]["path"], "/onboarding/api/v1/users");
    assert_eq!(requests[1]["headers"]["x-api-key"], sim::carbn::DEV_API_KEY);
    let sent: Value = serde_json::from_str(requests[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["email_address"], "d@example.com");

    http.delete(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(sim.state().requests(None).is_empty());

    let response = http
        .post(format!("{}/_sim/nobody/users/x/status", sim.base_url()))
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    sim.stop().await;
}

#[tokio::test]
async fn with_recording_off_requests_and_webhooks_are_not_kept_but_faults_still_apply() {
    let mut config = fast_config();
    config.record = false;
    let sim = start(config).await;
    let http = client();
    // A fixed latency on Carbn's user creation only (the benchmark's provider-latency knob).
    add_fault(
        &http,
        &sim,
        json!({"provider": "carbn", "method": "POST", "path": "/onboarding/api/v1/users",
               "latency_ms": 50}),
    )
    .await;
    let created = carbn_create(&http, &sim, "norecord+approve@example.com").await;
    assert!(created["id"].is_string(), "{created}");
    let (status, faults) = json_of(
        http.get(format!("{}/_sim/faults", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        faults[0]["hits"], 1,
        "the latency fault matched the create: {faults}"
    );
    let (_, requests) = json_of(
        http.get(format!("{}/_sim/requests", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(requests, json!([]), "nothing recorded");
    assert!(sim.state().requests(None).is_empty());
    assert!(sim.state().webhook_deliveries().is_empty());
}

/// `SimConfig::gateway_settings` writes the gateway's own `[providers.<id>]` keys (each
/// provider's settings refuse unknown ones), with the credentials the simulator accepts.
#[test]
fn gateway_settings_are_the_gateways_provider_sections() {
    use onboarding_gateway::providers::{
        carbn::CarbnSettings, killb::KillbSettings, kraken::KrakenSettings,
    };
    use secrecy::ExposeSecret;

    let mut config = SimConfig::development();
    config.killb.webhook_scheme = killb_webhook::SignatureScheme::Sha256Concat;
    let section = |id| Value::Object(config.gateway_settings(id, "http://127.0.0.1:7777"));

    let kraken: KrakenSettings = serde_json::from_value(section(ProviderId::Kraken)).unwrap();
    assert!(kraken.enabled);
    assert_eq!(kraken.base_url, "http://127.0.0.1:7777");
    assert_eq!(
        kraken.api_key.unwrap().expose_secret(),
        sim::kraken::DEV_API_KEY
    );
    assert_eq!(
        kraken.api_secret.unwrap().expose_secret(),
        sim::kraken::DEV_API_SECRET_B64
    );
    assert_eq!(
        kraken.webhook_secret.unwrap().expose_secret(),
        sim::kraken::DEV_WEBHOOK_SECRET_B64
    );

    let killb: KillbSettings = serde_json::from_value(section(ProviderId::Killb)).unwrap();
    assert_eq!(killb.base_url, "http://127.0.0.1:7777");
    assert_eq!(killb.email.unwrap().expose_secret(), sim::killb::DEV_EMAIL);
    assert_eq!(
        killb.password.unwrap().expose_secret(),
        sim::killb::DEV_PASSWORD
    );
    assert_eq!(
        killb.webhook_secret.unwrap().expose_secret(),
        sim::killb::DEV_WEBHOOK_SECRET
    );
    assert_eq!(
        killb.webhook_signature_scheme,
        killb_webhook::SignatureScheme::Sha256Concat
    );

    let carbn: CarbnSettings = serde_json::from_value(section(ProviderId::Carbn)).unwrap();
    assert_eq!(carbn.base_url, "http://127.0.0.1:7777");
    assert_eq!(
        carbn.api_key.unwrap().expose_secret(),
        sim::carbn::DEV_API_KEY
    );
    assert_eq!(
        carbn.webhook_public_key.as_deref(),
        Some(sim::carbn::DEV_WEBHOOK_PUBLIC_KEY_PEM)
    );
}

// ---------------------------------------------------------------------------------------------
// Verification: multipart helpers

const BOUNDARY: &str = "sim-test-boundary-7Qx";

/// One part of a multipart body to send.
struct FormPart {
    name: &'static str,
    filename: Option<&'static str>,
    content_type: Option<&'static str>,
    data: Vec<u8>,
}

fn text_part(name: &'static str, value: &str) -> FormPart {
    FormPart {
        name,
        filename: None,
        content_type: None,
        data: value.as_bytes().to_vec(),
    }
}

fn file_part(
    name: &'static str,
    filename: &'static str,
    content_type: &'static str,
    data: Vec<u8>,
) -> FormPart {
    FormPart {
        name,
        filename: Some(filename),
        content_type: Some(content_type),
        data,
    }
}

/// The body bytes, with `\r\n` framing, closed by `--boundary--`.
fn multipart_body(boundary: &str, parts: &[FormPart]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(filename) = part.filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn multipart_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// `size` bytes starting with the format's magic bytes.
fn magic_file(magic: &[u8], size: usize) -> Vec<u8> {
    let mut data = magic.to_vec();
    data.resize(size.max(magic.len()), 0x42);
    data
}

fn jpeg(size: usize) -> Vec<u8> {
    magic_file(&[0xFF, 0xD8, 0xFF, 0xE0], size)
}

fn png(size: usize) -> Vec<u8> {
    magic_file(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A], size)
}

fn pdf(size: usize) -> Vec<u8> {
    magic_file(b"%PDF-1.7\n", size)
}

impl Kraken {
    /// POSTs `body` with `content_type`, signed over exactly those bytes.
    async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let nonce = self.nonces.next();
        let sign = api_sign(&self.secret, path, nonce, &body).unwrap();
        self.post_signed(path, content_type, body, nonce, &sign)
            .await
    }

    async fn post_signed(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        nonce: u64,
        sign: &str,
    ) -> (StatusCode, Value) {
        json_of(
            self.http
                .post(format!("{}{}", self.base, path))
                .header("API-Key", &self.key)
                .header("API-Nonce", nonce.to_string())
                .header("API-Sign", sign)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `POST /b2b/verifications/{iiban}` with `parts`.
    async fn verify(&self, iiban: &str, parts: &[FormPart]) -> (StatusCode, Value) {
        let path = format!("/b2b/verifications/{}", encode_iiban(iiban));
        self.post_bytes(
            &path,
            &multipart_type(BOUNDARY),
            multipart_body(BOUNDARY, parts),
        )
        .await
    }

    async fn user(&self, iiban: &str) -> Value {
        let (status, body) = self
            .send(
                Method::GET,
                &format!("/b2b/users/{}", encode_iiban(iiban)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["result"].clone()
    }
}

fn identity_metadata() -> Value {
    json!({
        "identity": {"full_name": {"first_name": "Erika", "last_name": "Mustermann"},
                     "date_of_birth": "1990-01-15"},
        "document_type": "passport", "document_number": "C01X00T47", "issuing_country": "DE",
        "nationality": "DE", "verifier": "example_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z",
        "external_verification_id": "chk_123"
    })
}

fn residence_metadata() -> Value {
    json!({
        "address": {"line1": "Invalidenstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "document_type": "utility_bill", "verifier": "example_kyc_vendor",
        "verified_at": "2026-11-01T09:30:00+01:00"
    })
}

fn selfie_metadata() -> Value {
    json!({"selfie_type": "selfie", "verifier": "example_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z"})
}

/// `type`, `metadata` and the given files, in the wire contract's order.
fn verification(kind: &str, metadata: &Value, files: Vec<FormPart>) -> Vec<FormPart> {
    let mut parts = vec![
        text_part("type", kind),
        text_part("metadata", &metadata.to_string()),
    ];
    parts.extend(files);
    parts
}

fn identity_parts(metadata: &Value) -> Vec<FormPart> {
    verification(
        "identity_document",
        metadata,
        vec![file_part("front", "front.jpg", "image/jpeg", jpeg(2048))],
    )
}

/// `metadata` with `pointer` (a JSON pointer) replaced by `value`, or removed when `None`.
fn with(metadata: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut out = metadata.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = out.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => target.insert(key.to_owned(), v),
        None => target.remove(key),
    };
    out
}

async fn assert_invalid(kraken: &Kraken, iiban: &str, parts: Vec<FormPart>, what: &str) {
    let (status, body) = kraken.verify(iiban, &parts).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    let errors = body["error"].as_array().unwrap();
    let expected = format!("EGeneral:Invalid arguments:{what}");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().starts_with(&expected)),
        "wanted {expected:?} in {body}"
    );
}

fn actions_of(user: &Value) -> Vec<Value> {
    user["status"]["required_actions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn verification_types(user: &Value) -> Vec<String> {
    actions_of(user)
        .iter()
        .map(|a| {
            a["verification_type"]
                .as_str()
                .or(a["details_type"]["type"].as_str())
                .or(a["wait_reason_code"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn post_json(http: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    json_of(http.post(url).json(&body).send().await.unwrap()).await
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Verification: Kraken

#[tokio::test]
async fn kraken_verification_validates_parts_metadata_and_files() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    let iiban = kraken.create("v@example.com", "v-1").await;
    let meta = identity_metadata();

    // Success first: the answer's shape and the PWS-like id.
    let (status, body) = kraken.verify(&iiban, &identity_parts(&meta)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"], json!([]));
    let id = body["result"]["verification_id"].as_str().unwrap();
    assert!(
        regex_lite::Regex::new("^ver_[0-9A-HJKMNP-TV-Z]{20}$")
            .unwrap()
            .is_match(id),
        "{id}"
    );
    // Residence, selfie, tax id and watchlists are accepted as well (PNG and PDF files too).
    for parts in [
        verification(
            "residence_document",
            &residence_metadata(),
            vec![file_part(
                "document",
                "document.pdf",
                "application/pdf",
                pdf(4096),
            )],
        ),
        verification(
            "selfie",
            &selfie_metadata(),
            vec![file_part("selfie", "selfie.png", "image/png", png(4096))],
        ),
        verification(
            "tax_id_document",
            &json!({"tax_id_type": "tax_identification_number", "document_type": "other",
                    "country": "DE", "verifier": "v", "verified_at": "2026-11-01T09:30:00Z"}),
            vec![file_part(
                "document",
                "document.pdf",
                "application/octet-stream",
                pdf(100),
            )],
        ),
        verification(
            "watchlists",
            &json!({"sanctions": {"verifier": "v", "verified_at": "2026-11-01T09:30:00Z", "status": "Cleared"}}),
            vec![],
        ),
        verification(
            "identity_document",
            &with(&meta, "/document_type", Some(json!("id_card"))),
            vec![
                file_part("front", "front.jpg", "image/jpeg", jpeg(100)),
                file_part("back", "back.jpg", "image/jpeg", jpeg(100)),
                file_part(
                    "verifier_response",
                    "response.json",
                    "application/json",
                    b"{}".to_vec(),
                ),
            ],
        ),
    ] {
        let (status, body) = kraken.verify(&iiban, &parts).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Framing.
    let path = format!("/b2b/verifications/{}", encode_iiban(&iiban));
    let good = multipart_body(BOUNDARY, &identity_parts(&meta));
    let (status, body) = kraken
        .post_bytes(&path, "application/json", meta.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": ["EGeneral:Invalid arguments:Content-Type must be multipart/form-data"]})
    );
    let (status, body) = kraken
        .post_bytes(&path, "multipart/form-data", good.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": ["EGeneral:Invalid arguments:multipart/form-data needs a boundary parameter"]})
    );
    let (status, body) = kraken
        .post_bytes(&path, &multipart_type("another-boundary"), good.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": ["EGeneral:Invalid arguments:the multipart body does not start with the boundary delimiter"]})
    );
    let unclosed = good[..good.len() - format!("--{BOUNDARY}--\r\n").len()].to_vec();
    let (status, body) = kraken
        .post_bytes(&path, &multipart_type(BOUNDARY), unclosed)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": ["EGeneral:Invalid arguments:the multipart body has no closing delimiter"]})
    );

    // Parts.
    let front = || file_part("front", "front.jpg", "image/jpeg", jpeg(100));
    let m = meta.to_string();
    assert_invalid(
        &kraken,
        &iiban,
        vec![text_part("metadata", &m), front()],
        "type is required",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("kyc_report", &meta, vec![front()]),
        "type must be one of the following values: identity_document, residence_document, tax_id_document, selfie, watchlists",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        vec![
            file_part(
                "type",
                "type.txt",
                "text/plain",
                b"identity_document".to_vec(),
            ),
            text_part("metadata", &m),
            front(),
        ],
        "type must be a text part",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        vec![text_part("type", "identity_document"), front()],
        "metadata is required",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        vec![
            text_part("type", "identity_document"),
            text_part("metadata", "{not json"),
            front(),
        ],
        "metadata must be a JSON object sent as a string",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("identity_document", &meta, vec![]),
        "front is required for identity_document",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("residence_document", &residence_metadata(), vec![]),
        "document is required for residence_document",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("selfie", &selfie_metadata(), vec![]),
        "selfie is required for selfie",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![
                front(),
                file_part("document", "d.pdf", "application/pdf", pdf(10)),
            ],
        ),
        "document is not allowed for identity_document",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![front(), text_part("nickname", "x")],
        ),
        "nickname is not a known part",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("identity_document", &meta, vec![front(), front()]),
        "front is given more than once",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![text_part("front", "not a file")],
        ),
        "front must be a file",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![file_part(
                "front",
                "front.jpg",
                "image/jpeg",
                b"GIF89a-not-allowed".to_vec(),
            )],
        ),
        "front must be a JPEG, PNG or PDF file",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![file_part("front", "front.jpg", "image/jpeg", Vec::new())],
        ),
        "front must be a JPEG, PNG or PDF file",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![file_part("front", "front.png", "image/png", jpeg(100))],
        ),
        "front is declared image/png but its content is image/jpeg",
    )
    .await;
    // A passport has no back (configurable; see the next test).
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "identity_document",
            &meta,
            vec![
                front(),
                file_part("back", "back.jpg", "image/jpeg", jpeg(100)),
            ],
        ),
        "back must be omitted for a passport",
    )
    .await;

    // Metadata: required fields, enums, countries, dates, unknown fields.
    for (pointer, value, what) in [
        (
            "/identity/full_name/last_name",
            None,
            "metadata.identity.full_name.last_name is required",
        ),
        (
            "/identity/full_name/first_name",
            Some(json!("")),
            "metadata.identity.full_name.first_name must not be empty",
        ),
        (
            "/identity/full_name",
            None,
            "metadata.identity.full_name is required",
        ),
        (
            "/identity/date_of_birth",
            None,
            "metadata.identity.date_of_birth is required",
        ),
        (
            "/identity/date_of_birth",
            Some(json!("15.01.1990")),
            "metadata.identity.date_of_birth must be a date",
        ),
        ("/identity", None, "metadata.identity is required"),
        (
            "/document_type",
            Some(json!("visa")),
            "metadata.document_type must be one of the following values",
        ),
        ("/document_type", None, "metadata.document_type is required"),
        (
            "/document_number",
            None,
            "metadata.document_number is required",
        ),
        (
            "/issuing_country",
            Some(json!("DEU")),
            "metadata.issuing_country must be an ISO 3166-1 alpha-2",
        ),
        (
            "/issuing_country",
            None,
            "metadata.issuing_country is required",
        ),
        (
            "/nationality",
            Some(json!("ZZ")),
            "metadata.nationality must be an ISO 3166-1 alpha-2",
        ),
        ("/verifier", None, "metadata.verifier is required"),
        (
            "/verified_at",
            Some(json!("2026-11-01 09:30")),
            "metadata.verified_at must be an RFC 3339 date-time",
        ),
        ("/verified_at", None, "metadata.verified_at is required"),
        (
            "/expiration_date",
            Some(json!("soon")),
            "metadata.expiration_date must be a date",
        ),
        (
            "/shoe_size",
            Some(json!(42)),
            "metadata.shoe_size is not a known field",
        ),
        (
            "/identity/full_name/nickname",
            Some(json!("E")),
            "metadata.identity.full_name.nickname is not a known field",
        ),
    ] {
        assert_invalid(
            &kraken,
            &iiban,
            identity_parts(&with(&meta, pointer, value)),
            what,
        )
        .await;
    }
    let residence = residence_metadata();
    let document = || file_part("document", "document.pdf", "application/pdf", pdf(100));
    for (pointer, value, what) in [
        ("/address/city", None, "metadata.address.city is required"),
        ("/address/line1", None, "metadata.address.line1 is required"),
        (
            "/address/postal_code",
            None,
            "metadata.address.postal_code is required",
        ),
        (
            "/address/country",
            Some(json!("Germany")),
            "metadata.address.country must be an ISO 3166-1 alpha-2",
        ),
        ("/address", None, "metadata.address is required"),
        (
            "/document_type",
            Some(json!("passport")),
            "metadata.document_type must be one of the following values",
        ),
        (
            "/identity",
            Some(json!({})),
            "metadata.identity is not a known field",
        ),
    ] {
        assert_invalid(
            &kraken,
            &iiban,
            verification(
                "residence_document",
                &with(&residence, pointer, value),
                vec![document()],
            ),
            what,
        )
        .await;
    }
    let selfie = || file_part("selfie", "selfie.jpg", "image/jpeg", jpeg(100));
    for (pointer, value, what) in [
        ("/selfie_type", None, "metadata.selfie_type is required"),
        ("/selfie_type", Some(json!("portrait")), "metadata.selfie_type must be one of the following values: selfie, selfie_capture_video"),
    ] {
        assert_invalid(&kraken, &iiban, verification("selfie", &with(&selfie_metadata(), pointer, value), vec![selfie()]), what).await;
    }
    assert_invalid(
        &kraken,
        &iiban,
        verification(
            "tax_id_document",
            &json!({"tax_id_type": "steuer_id", "document_type": "other", "country": "DE",
                    "verifier": "v", "verified_at": "2026-11-01T09:30:00Z"}),
            vec![document()],
        ),
        "metadata.tax_id_type must be one of the following values",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("watchlists", &json!({}), vec![]),
        "metadata needs at least one of sanctions, pep, negative_news",
    )
    .await;
    assert_invalid(
        &kraken,
        &iiban,
        verification("watchlists", &json!({"pep": {"verifier": "v", "verified_at": "2026-11-01T09:30:00Z", "status": "clear"}}), vec![]),
        "metadata.pep.status must be one of the following values: Cleared, Matched",
    )
    .await;
    // Every violation is listed, not only the first.
    let (status, body) = kraken
        .verify(
            &iiban,
            &verification("identity_document", &with(&meta, "/verifier", None), vec![]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"].as_array().unwrap().len(), 2, "{body}");

    // Users: an unknown IIBAN and a malformed one.
    let (status, body) = kraken
        .verify("AA11 ZZZZ ZZZZ ZZZZ", &identity_parts(&meta))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": ["ENexus:User not found"]})
        )
    );
    let (status, body) = kraken.verify("nope", &identity_parts(&meta)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": ["ENexus:Invalid user ID"]})
        )
    );
    // There is no GET of a verification.
    let (status, body) = kraken
        .send(
            Method::GET,
            &format!("/b2b/verifications/{}", encode_iiban(&iiban)),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": ["EGeneral:Unknown method"]})
        )
    );
}

#[tokio::test]
async fn kraken_passport_back_is_accepted_when_configured() {
    let mut config = fast_config();
    config.kraken.accept_passport_back = true;
    let sim = start(config).await;
    let kraken = Kraken::new(&sim);
    let iiban = kraken.create("pb@example.com", "pb-1").await;
    let parts = verification(
        "identity_document",
        &identity_metadata(),
        vec![
            file_part("front", "front.jpg", "image/jpeg", jpeg(100)),
            file_part("back", "back.jpg", "image/jpeg", jpeg(100)),
        ],
    );
    let (status, body) = kraken.verify(&iiban, &parts).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn kraken_verification_signature_covers_the_raw_multipart_bytes() {
    let sim = start(fast_config()).await;
    let kraken = Kraken::new(&sim);
    // The first user's IIBAN has spaces: the signed path is the percent-encoded one.
    let iiban = kraken.create("sig@example.com", "sig-1").await;
    assert!(iiban.contains(' '), "{iiban}");
    let path = format!("/b2b/verifications/{}", encode_iiban(&iiban));
    let parts = identity_parts(&identity_metadata());
    let body = multipart_body(BOUNDARY, &parts);

    // Signed over the exact bytes sent: accepted, and recorded byte for byte.
    let (status, answer) = kraken
        .post_bytes(&path, &multipart_type(BOUNDARY), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let recorded = sim.state().requests(Some(ProviderId::Kraken));
    let last = recorded.last().unwrap();
    assert_eq!(last.path, path);
    assert_eq!(last.body, String::from_utf8_lossy(&body));

    // The same form re-encoded (another boundary) under the original signature: refused.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &path, nonce, &body).unwrap();
    let other = "re-encoded-boundary";
    let reencoded = multipart_body(other, &parts);
    assert_ne!(reencoded, body);
    let (status, answer) = kraken
        .post_signed(
            &path,
            &multipart_type(other),
            reencoded.clone(),
            nonce,
            &sign,
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid signature"]})
        )
    );
    // Re-encoded with LF line breaks instead of CRLF: refused too.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &path, nonce, &body).unwrap();
    let lf = String::from_utf8_lossy(&body)
        .replace("\r\n", "\n")
        .into_bytes();
    let (status, _) = kraken
        .post_signed(&path, &multipart_type(BOUNDARY), lf, nonce, &sign)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // One file byte changed after signing: refused.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &path, nonce, &body).unwrap();
    let mut tampered = body.clone();
    let at = tampered.len() - format!("\r\n--{BOUNDARY}--\r\n").len() - 1;
    tampered[at] ^= 0x01;
    let (status, _) = kraken
        .post_signed(&path, &multipart_type(BOUNDARY), tampered, nonce, &sign)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed over the decoded path (with spaces): refused.
    let nonce = kraken.nonces.next();
    let sign = api_sign(
        &kraken.secret,
        &format!("/b2b/verifications/{iiban}"),
        nonce,
        &body,
    )
    .unwrap();
    let (status, _) = kraken
        .post_signed(&path, &multipart_type(BOUNDARY), body.clone(), nonce, &sign)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The re-encoded bytes, signed themselves, are fine: the form is not the problem.
    let (status, _) = kraken
        .post_bytes(&path, &multipart_type(other), reencoded)
        .await;
    assert_eq!(status, StatusCode::OK);
    // A replayed nonce is refused like on every other route.
    let nonce = kraken.nonces.next();
    let sign = api_sign(&kraken.secret, &path, nonce, &body).unwrap();
    let (status, _) = kraken
        .post_signed(&path, &multipart_type(BOUNDARY), body.clone(), nonce, &sign)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = kraken
        .post_signed(&path, &multipart_type(BOUNDARY), body, nonce, &sign)
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": ["EAPI:Invalid nonce"]})
        )
    );
}

#[tokio::test]
async fn kraken_accepted_verifications_clear_actions_then_wait_then_verified_with_webhook() {
    let (base, received) = receiver(0).await;
    let mut config = fast_config();
    // Long enough to see the wait action, short enough for a test.
    config.review_delay = Duration::from_millis(800);
    config.webhook_targets = WebhookTargets::gateway(&base);
    let sim = start(config).await;
    let http = client();
    let kraken = Kraken::new(&sim);
    let iiban = kraken.create("flow@example.com", "flow-1").await;
    let actions_url = format!(
        "{}/_sim/kraken/users/{}/actions",
        sim.base_url(),
        encode_iiban(&iiban)
    );
    assert_eq!(verification_types(&kraken.user(&iiban).await), ["identity"]);

    // The control endpoint adds raw actions (one, or several at once).
    let (status, user) = post_json(
        &http,
        actions_url.clone(),
        json!({"action_type": "verification", "verification_type": "residence", "reasons": ["sim"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(verification_types(&user), ["identity", "residence"]);
    let (status, user) = post_json(
        &http,
        actions_url.clone(),
        json!([
            {"action_type": "provide_details", "details_type": {"type": "phone"}, "reason": "sim"},
            {"action_type": "verification", "verification_type": "sanctions_check", "reasons": ["sim"]},
            {"action_type": "verification", "verification_type": "pep_check", "reasons": ["sim"]},
            {"action_type": "verification", "verification_type": "selfie", "reasons": ["sim"]}
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        verification_types(&user),
        [
            "identity",
            "residence",
            "phone",
            "sanctions_check",
            "pep_check",
            "selfie"
        ]
    );
    assert_eq!(kraken.user(&iiban).await["status"]["state"], "ok");

    // Each accepted verification removes its own action, and only that one.
    let (status, _) = kraken
        .verify(&iiban, &identity_parts(&identity_metadata()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        verification_types(&kraken.user(&iiban).await),
        [
            "residence",
            "phone",
            "sanctions_check",
            "pep_check",
            "selfie"
        ]
    );
    let residence = verification(
        "residence_document",
        &residence_metadata(),
        vec![file_part(
            "document",
            "document.pdf",
            "application/pdf",
            pdf(512),
        )],
    );
    assert_eq!(kraken.verify(&iiban, &residence).await.0, StatusCode::OK);
    let selfie = verification(
        "selfie",
        &selfie_metadata(),
        vec![file_part("selfie", "selfie.jpg", "image/jpeg", jpeg(512))],
    );
    assert_eq!(kraken.verify(&iiban, &selfie).await.0, StatusCode::OK);
    assert_eq!(
        verification_types(&kraken.user(&iiban).await),
        ["phone", "sanctions_check", "pep_check"]
    );
    // A watchlist section clears its check only when it came back Cleared.
    let check = |status: &str| json!({"verifier": "v", "verified_at": "2026-11-01T09:30:00Z", "status": status});
    let watchlists = verification(
        "watchlists",
        &json!({"sanctions": check("Cleared"), "pep": check("Matched")}),
        vec![],
    );
    assert_eq!(kraken.verify(&iiban, &watchlists).await.0, StatusCode::OK);
    assert_eq!(
        verification_types(&kraken.user(&iiban).await),
        ["phone", "pep_check"]
    );
    let watchlists = verification("watchlists", &json!({"pep": check("Cleared")}), vec![]);
    assert_eq!(kraken.verify(&iiban, &watchlists).await.0, StatusCode::OK);
    assert_eq!(verification_types(&kraken.user(&iiban).await), ["phone"]);
    // A submission nothing asks for is accepted and changes nothing.
    assert_eq!(kraken.verify(&iiban, &selfie).await.0, StatusCode::OK);
    assert_eq!(verification_types(&kraken.user(&iiban).await), ["phone"]);
    // No webhook so far: Kraken notifies verified, disabled and closed only.
    assert!(received.all().is_empty(), "{:?}", received.all());

    // Providing the phone clears the last blocking action: a wait takes its place...
    let (status, body) = kraken
        .send(
            Method::PATCH,
            &format!("/b2b/users/{}", encode_iiban(&iiban)),
            Some(&json!({"phone": "+14155550111"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = kraken.user(&iiban).await;
    assert_eq!(
        user["status"],
        json!({"state": "ok", "required_actions": [{"action_type": "wait", "wait_reason_code": "sim_review"}]})
    );
    // ...until the review delay ends: no actions, and a signed user.verified.
    wait_for("verified", || async {
        actions_of(&kraken.user(&iiban).await).is_empty()
    })
    .await;
    assert_eq!(
        kraken.user(&iiban).await["status"],
        json!({"state": "ok", "required_actions": []})
    );
    let r = received.clone();
    wait_until("user.verified webhook", || !r.all().is_empty()).await;
    let all = received.all();
    assert_eq!(all.len(), 1, "one webhook");
    let (path, headers, body) = &all[0];
    assert_eq!(path, "/v1/webhooks/kraken");
    kraken_webhook::verify(
        &SimConfig::development().kraken.webhook_secret_b64,
        header(headers, "x-signature").unwrap(),
        body,
        onboarding_gateway::providers::webhook::unix_now(),
        kraken_webhook::DEFAULT_TOLERANCE,
    )
    .unwrap();
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event_type"], "user.verified");
    assert_eq!(event["iiban"], iiban.as_str());

    // The plain flow: a new user's identity verification alone leads to verified.
    let second = kraken.create("flow2@example.com", "flow-2").await;
    assert_eq!(
        kraken
            .verify(&second, &identity_parts(&identity_metadata()))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        verification_types(&kraken.user(&second).await),
        ["sim_review"]
    );
    wait_for("second verified", || async {
        actions_of(&kraken.user(&second).await).is_empty()
    })
    .await;
    let r = received.clone();
    wait_until("second webhook", || r.all().len() >= 2).await;
    let event: Value = serde_json::from_slice(&received.all()[1].2).unwrap();
    assert_eq!(
        (event["event_type"].as_str(), event["iiban"].as_str()),
        (Some("user.verified"), Some(second.as_str()))
    );

    // Control endpoint errors: bad bodies, an unknown user, a user not in state ok.
    for bad in [
        json!("residence"),
        json!([]),
        json!({"verification_type": "residence"}),
    ] {
        let (status, _) = post_json(&http, actions_url.clone(), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, _) = post_json(
        &http,
        format!(
            "{}/_sim/kraken/users/AA11ZZZZZZZZZZZZ/actions",
            sim.base_url()
        ),
        json!({"action_type": "wait", "wait_reason_code": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let closed = kraken.create("gone+reject@example.com", "flow-3").await;
    let (status, _) = post_json(
        &http,
        format!(
            "{}/_sim/kraken/users/{}/actions",
            sim.base_url(),
            encode_iiban(&closed)
        ),
        json!({"action_type": "verification", "verification_type": "identity", "reasons": []}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A status set from outside brings back that status's own actions.
    let (status, user) = post_json(
        &http,
        format!(
            "{}/_sim/kraken/users/{}/status",
            sim.base_url(),
            encode_iiban(&iiban)
        ),
        json!({"status": "incomplete", "webhook": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verification_types(&user), ["residence"]);
}

// ---------------------------------------------------------------------------------------------
// Verification: KillB

/// KillB's smallest and largest accepted documents (100 KiB, 10 MiB).
const KILLB_MIN: usize = 100 * 1024;
const KILLB_MAX: usize = 10 * 1024 * 1024;

async fn killb_upload_raw(
    http: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    json_of(
        http.post(format!("{}/api/v2/users/person/document", sim.base_url()))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn killb_upload(
    http: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    parts: &[FormPart],
) -> (StatusCode, Value) {
    killb_upload_raw(
        http,
        sim,
        token,
        &multipart_type(BOUNDARY),
        multipart_body(BOUNDARY, parts),
    )
    .await
}

/// The wire contract's parts: `userId`, `documentType`, `frontDocument`, `backDocument?`.
fn killb_document(
    user_id: &str,
    kind: &str,
    front: Option<Vec<u8>>,
    back: Option<Vec<u8>>,
) -> Vec<FormPart> {
    let mut parts = vec![
        text_part("userId", user_id),
        text_part("documentType", kind),
    ];
    if let Some(front) = front {
        parts.push(file_part("frontDocument", "front.jpg", "image/jpeg", front));
    }
    if let Some(back) = back {
        parts.push(file_part("backDocument", "back.jpg", "image/jpeg", back));
    }
    parts
}

async fn killb_get(http: &reqwest::Client, sim: &SimHandle, token: &str, id: &str) -> Value {
    let (status, body) = json_of(
        http.get(format!("{}/api/v2/users/{id}", sim.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn invalid_input(messages: &[&str]) -> Value {
    json!({"errorCode": "INVALID.INPUT", "arguments": [], "message": messages, "statusCode": "400"})
}

#[tokio::test]
async fn killb_document_upload_validates_parts_users_and_files() {
    let sim = start(fast_config()).await;
    let http = client();
    let token = killb_login(&http, &sim).await;
    let user = killb_create(&http, &sim, &token, "docs@example.com", "docs-1").await;
    let id = user["id"].as_str().unwrap();
    let ok = || Some(jpeg(KILLB_MIN));

    // Bearer auth like every other route.
    let (status, body) = json_of(
        http.post(format!("{}/api/v2/users/person/document", sim.base_url()))
            .header("Content-Type", multipart_type(BOUNDARY))
            .body(multipart_body(
                BOUNDARY,
                &killb_document(id, "PASSPORT", ok(), None),
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "AUTH.0003");

    // Success: 201 with no body, and nothing the user shows moves.
    let response = http
        .post(format!("{}/api/v2/users/person/document", sim.base_url()))
        .bearer_auth(&token)
        .header("Content-Type", multipart_type(BOUNDARY))
        .body(multipart_body(
            BOUNDARY,
            &killb_document(id, "NUIP", ok(), Some(png(KILLB_MIN + 1))),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.bytes().await.unwrap().is_empty(), "no body");
    let after = killb_get(&http, &sim, &token, id).await;
    assert_eq!(
        (after["status"].as_str(), after["accessLevel"].as_str()),
        (Some("PENDING"), Some("L1"))
    );

    // Multipart only, strictly framed.
    let (status, body) = killb_upload_raw(
        &http,
        &sim,
        &token,
        "application/json",
        json!({"userId": id, "documentType": "PASSPORT"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            invalid_input(&["Content-Type must be multipart/form-data"])
        )
    );
    let (status, body) = killb_upload_raw(
        &http,
        &sim,
        &token,
        &multipart_type("not-the-boundary"),
        multipart_body(BOUNDARY, &killb_document(id, "PASSPORT", ok(), None)),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            invalid_input(&["the multipart body does not start with the boundary delimiter"])
        )
    );

    // Missing and invalid fields (all listed).
    let cases: Vec<(Vec<FormPart>, Vec<&str>)> = vec![
        (
            vec![text_part("documentType", "PASSPORT"), file_part("frontDocument", "f.jpg", "image/jpeg", jpeg(KILLB_MIN))],
            vec!["userId should not be empty"],
        ),
        (
            vec![text_part("userId", id), file_part("frontDocument", "f.jpg", "image/jpeg", jpeg(KILLB_MIN))],
            vec!["documentType should not be empty"],
        ),
        (killb_document(id, "PASSPORT", None, None), vec!["frontDocument is required"]),
        (killb_document("12345", "PASSPORT", ok(), None), vec!["userId must be a UUID"]),
        (
            killb_document(id, "SELFIE", ok(), None),
            vec!["documentType must be one of the following values: PASSPORT, DRIVER_LICENSE, NUIP, RFC, SSN, CURP, CPF, INE, IFE, DNI, DUI, CHINESE_ID, BOLIVIAN_ID, CE, PROVE_OF_ADDRESS_BANK_STATEMENT, PROVE_OF_ADDRESS_UTILITY_BILL, PROVE_OF_ADDRESS_LEASE_AGREEMENT, SOURCE_OF_FUNDS_BANK_STATEMENT, SOURCE_OF_FUNDS_PAYSLIP, KYC_REPORT"],
        ),
        (
            vec![text_part("userId", id), text_part("documentType", "PASSPORT"), text_part("frontDocument", "not a file")],
            vec!["frontDocument must be a file"],
        ),
        (
            {
                let mut parts = killb_document(id, "PASSPORT", ok(), None);
                parts.push(text_part("selfie", "x"));
                parts
            },
            vec!["property selfie should not exist"],
        ),
        (
            vec![file_part("frontDocument", "f.jpg", "image/jpeg", jpeg(KILLB_MIN))],
            vec!["userId should not be empty", "documentType should not be empty"],
        ),
    ];
    for (parts, messages) in cases {
        let (status, body) = killb_upload(&http, &sim, &token, &parts).await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, invalid_input(&messages)),
            "{messages:?}"
        );
    }

    // An unknown user: the documented API_USER.0001 answer, status 400.
    let stranger = uuid::Uuid::new_v4().to_string();
    let (status, body) = killb_upload(
        &http,
        &sim,
        &token,
        &killb_document(&stranger, "PASSPORT", ok(), None),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errorCode": "API_USER.0001", "arguments": [{"key": "userId", "value": stranger}],
               "message": ["User not found", "Account not found"], "statusCode": "400"})
    );

    // Files: JPEG/PNG/PDF by content, 100 KiB to 10 MiB, each side.
    let invalid_document = json!({"errorCode": "USER.0002", "arguments": [], "message": ["Invalid document"], "statusCode": "400"});
    for (front, back) in [
        (magic_file(b"GIF89a", KILLB_MIN), None),
        (vec![0u8; KILLB_MIN], None),
        (jpeg(KILLB_MIN - 1), None),
        (pdf(KILLB_MAX + 1), None),
        (jpeg(KILLB_MIN), Some(jpeg(1024))),
        (jpeg(KILLB_MIN), Some(magic_file(b"RIFF", KILLB_MIN))),
    ] {
        let (status, body) = killb_upload(
            &http,
            &sim,
            &token,
            &killb_document(id, "DNI", Some(front), back),
        )
        .await;
        assert_eq!(
            (status, &body),
            (StatusCode::BAD_REQUEST, &invalid_document)
        );
    }
    for front in [jpeg(KILLB_MIN), pdf(KILLB_MAX), png(1024 * 1024)] {
        let (status, body) = killb_upload(
            &http,
            &sim,
            &token,
            &killb_document(id, "PROVE_OF_ADDRESS_UTILITY_BILL", Some(front), None),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let after = killb_get(&http, &sim, &token, id).await;
    assert_eq!(
        (after["status"].as_str(), after["accessLevel"].as_str()),
        (Some("PENDING"), Some("L1"))
    );
}

#[tokio::test]
async fn killb_reaches_l2_only_after_id_images_with_back_proof_of_address_and_liveness() {
    let (base, received) = receiver(0).await;
    let mut config = fast_config();
    // Long enough that "not at once" holds on a busy machine.
    config.review_delay = Duration::from_millis(500);
    config.webhook_targets = WebhookTargets::gateway(&base);
    let sim = start(config).await;
    let http = client();
    let token = killb_login(&http, &sim).await;
    let user = killb_create(&http, &sim, &token, "l2@example.com", "l2-1").await;
    let id = user["id"].as_str().unwrap().to_owned();
    let updates = |received: &Received, id: &str| {
        received
            .all()
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_slice::<Value>(body).ok())
            .filter(|e| e["action"] == "UPDATE" && e["data"]["id"] == id)
            .count()
    };

    // The compliance page is served by the simulator itself.
    let compliance_url = user["complianceUrl"].as_str().unwrap();
    assert_eq!(
        compliance_url,
        format!("{}/_sim/killb/users/{id}/verify", sim.base_url())
    );
    let page = http.get(compliance_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("action=\"/_sim/killb/users/{id}/liveness\"")),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets: {html}"
    );

    // A two-sided ID's front alone, a proof of address and liveness: not enough.
    let front = || Some(jpeg(KILLB_MIN));
    for parts in [
        killb_document(&id, "NUIP", front(), None),
        killb_document(
            &id,
            "PROVE_OF_ADDRESS_BANK_STATEMENT",
            Some(pdf(KILLB_MIN)),
            None,
        ),
    ] {
        assert_eq!(
            killb_upload(&http, &sim, &token, &parts).await.0,
            StatusCode::CREATED
        );
    }
    // The page's button: a browser form post gets a page back.
    let response = http
        .post(format!("{}/_sim/killb/users/{id}/liveness", sim.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("Still needed: ID images"), "{html}");
    // Past the review delay: still PENDING at L1, and no UPDATE webhook.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = killb_get(&http, &sim, &token, &id).await;
    assert_eq!(
        (now["status"].as_str(), now["accessLevel"].as_str()),
        (Some("PENDING"), Some("L1"))
    );
    assert!(now["note"].as_str().unwrap().contains("ID images"), "{now}");
    assert_eq!(updates(&received, &id), 0);

    // The back arrives (with its front, in one call): L2 after the review delay.
    let parts = killb_document(&id, "NUIP", front(), Some(jpeg(KILLB_MIN)));
    assert_eq!(
        killb_upload(&http, &sim, &token, &parts).await.0,
        StatusCode::CREATED
    );
    let pending = killb_get(&http, &sim, &token, &id).await;
    assert_eq!(pending["status"], "PENDING", "not at once");
    wait_for("ACTIVE at L2", || async {
        killb_get(&http, &sim, &token, &id).await["accessLevel"] == "L2"
    })
    .await;
    let active = killb_get(&http, &sim, &token, &id).await;
    assert_eq!(active["status"], "ACTIVE");
    let r = received.clone();
    let wanted = id.clone();
    wait_until("USER/UPDATE", move || updates(&r, &wanted) == 1).await;
    let (_, headers, body) = received
        .all()
        .into_iter()
        .find(|(_, _, body)| {
            serde_json::from_slice::<Value>(body)
                .is_ok_and(|e| e["action"] == "UPDATE" && e["data"]["id"] == id.as_str())
        })
        .unwrap();
    killb_webhook::verify(
        killb_webhook::SignatureScheme::HmacSha256,
        sim::killb::DEV_WEBHOOK_SECRET,
        &body,
        header(&headers, "x-signature-sha256").unwrap(),
    )
    .unwrap();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (
            event["data"]["status"].as_str(),
            event["data"]["accessLevel"].as_str()
        ),
        (Some("ACTIVE"), Some("L2"))
    );

    // A passport has one side; liveness through the JSON control call; order does not matter.
    let second = killb_create(&http, &sim, &token, "l2b@example.com", "l2-2").await;
    let second = second["id"].as_str().unwrap().to_owned();
    let (status, answer) = post_json(
        &http,
        format!("{}/_sim/killb/users/{second}/liveness", sim.base_url()),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["missing_for_l2"],
        json!([
            "ID images (front, and back for ID cards)",
            "proof of address"
        ])
    );
    let parts = killb_document(&second, "PASSPORT", front(), None);
    assert_eq!(
        killb_upload(&http, &sim, &token, &parts).await.0,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        killb_get(&http, &sim, &token, &second).await["accessLevel"],
        "L1",
        "no proof of address yet"
    );
    let parts = killb_document(
        &second,
        "PROVE_OF_ADDRESS_LEASE_AGREEMENT",
        Some(pdf(KILLB_MIN)),
        None,
    );
    assert_eq!(
        killb_upload(&http, &sim, &token, &parts).await.0,
        StatusCode::CREATED
    );
    wait_for("passport user at L2", || async {
        killb_get(&http, &sim, &token, &second).await["accessLevel"] == "L2"
    })
    .await;

    // Control errors.
    let (status, _) = post_json(
        &http,
        format!("{}/_sim/killb/users/not-a-uuid/liveness", sim.base_url()),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let stranger = uuid::Uuid::new_v4();
    let (status, _) = post_json(
        &http,
        format!("{}/_sim/killb/users/{stranger}/liveness", sim.base_url()),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let page = http
        .get(format!(
            "{}/_sim/killb/users/{stranger}/verify",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn killb_access_tokens_level_control_and_public_base_url() {
    let (base, received) = receiver(0).await;
    let mut config = fast_config();
    config.webhook_targets = WebhookTargets::gateway(&base);
    config.public_base_url = Some("http://sim.example:1234/".into());
    let sim = start(config).await;
    let http = client();
    let token = killb_login(&http, &sim).await;
    let user = killb_create(&http, &sim, &token, "tok@example.com", "tok-1").await;
    let id = user["id"].as_str().unwrap().to_owned();
    // The configured public address, not the listen address.
    assert_eq!(
        user["complianceUrl"],
        format!("http://sim.example:1234/_sim/killb/users/{id}/verify")
    );

    let token_call = |body: Value| {
        let request = http
            .post(format!("{}/api/v2/compliance/access-token", sim.base_url()))
            .bearer_auth(&token)
            .json(&body);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let (status, body) = token_call(
        json!({"id": id, "idType": "userId", "levelName": "basic-kyc-level", "ttlInSecs": 600}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let value = body["token"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(value.strip_prefix("_act-").unwrap()).is_ok(),
        "{value}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1);
    let (status, _) = token_call(json!({"id": id})).await;
    assert_eq!(status, StatusCode::CREATED);

    let stranger = uuid::Uuid::new_v4().to_string();
    let (status, body) = token_call(json!({"id": stranger})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "API_USER.0001");
    assert_eq!(body["arguments"], json!([{"key": "id", "value": stranger}]));
    // The simulator has no accounts: an accountId is unknown.
    let (status, body) = token_call(json!({"id": id, "idType": "accountId"})).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("API_USER.0001"))
    );
    for (body, message) in [
        (
            json!({"id": id, "idType": "email"}),
            "idType must be one of the following values: userId, accountId",
        ),
        (json!({"idType": "userId"}), "id is required"),
        (
            json!({"id": id, "ttlInSecs": 0}),
            "ttlInSecs must be a positive number",
        ),
        (
            json!({"id": id, "ttlInSecs": "600"}),
            "ttlInSecs must be an integer",
        ),
        (
            json!({"id": id, "applicant": "x"}),
            "applicant is not a known field",
        ),
    ] {
        let (status, answer) = token_call(body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, invalid_input(&[message])),
            "{message}"
        );
    }
    let (status, _) = json_of(
        http.post(format!("{}/api/v2/compliance/access-token", sim.base_url()))
            .json(&json!({"id": id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Level up and down behind the gateway's back, each with USER/UPDATE.
    let level_url = format!("{}/_sim/killb/users/{id}/level", sim.base_url());
    let (status, view) = post_json(&http, level_url.clone(), json!({"level": "L3"})).await;
    assert_eq!(
        (status, view["accessLevel"].as_str()),
        (StatusCode::OK, Some("L3"))
    );
    assert_eq!(
        killb_get(&http, &sim, &token, &id).await["accessLevel"],
        "L3"
    );
    let (status, view) = post_json(
        &http,
        level_url.clone(),
        json!({"level": "L0", "webhook": false}),
    )
    .await;
    assert_eq!(
        (status, view["accessLevel"].as_str()),
        (StatusCode::OK, Some("L0"))
    );
    let r = received.clone();
    let wanted = id.clone();
    wait_until("level webhook", move || {
        r.all().iter().any(|(_, _, b)| {
            serde_json::from_slice::<Value>(b)
                .is_ok_and(|e| e["action"] == "UPDATE" && e["data"]["id"] == wanted.as_str())
        })
    })
    .await;
    let levels: Vec<Value> = received
        .all()
        .iter()
        .filter_map(|(_, _, b)| serde_json::from_slice::<Value>(b).ok())
        .filter(|e| e["action"] == "UPDATE")
        .map(|e| e["data"]["accessLevel"].clone())
        .collect();
    assert_eq!(
        levels,
        [json!("L3")],
        "the second change asked for no webhook"
    );
    for bad in [
        json!({"level": "L9"}),
        json!({}),
        json!({"level": "L1", "extra": 1}),
    ] {
        let (status, _) = post_json(&http, level_url.clone(), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // A status change brings back the status's own level.
    let (status, view) = post_json(
        &http,
        format!("{}/_sim/killb/users/{id}/status", sim.base_url()),
        json!({"status": "ACTIVE"}),
    )
    .await;
    assert_eq!(
        (status, view["accessLevel"].as_str()),
        (StatusCode::OK, Some("L2"))
    );
}

// ---------------------------------------------------------------------------------------------
// Verification: Carbn

async fn carbn_session(
    http: &reqwest::Client,
    sim: &SimHandle,
    body: Value,
) -> (StatusCode, Value) {
    json_of(
        http.post(format!(
            "{}/onboarding/api/v1/users/session",
            sim.base_url()
        ))
        .header("x-api-key", sim::carbn::DEV_API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap(),
    )
    .await
}

fn session_request(email: &str) -> Value {
    json!({"email": email, "currency": "EUR", "redirect_url": "https://app.example.com/done?step=kyc"})
}

/// A session's `(user_id, onboarding_url, token)`.
async fn carbn_open_session(
    http: &reqwest::Client,
    sim: &SimHandle,
    email: &str,
) -> (String, String, String) {
    let (status, body) = carbn_session(http, sim, session_request(email)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["onboarding_url"].as_str().unwrap().to_owned();
    let token = url.split_once("session=").unwrap().1.to_owned();
    (body["user_id"].as_str().unwrap().to_owned(), url, token)
}

fn jwt_part(token: &str, index: usize) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(index).unwrap())
        .unwrap()
}

async fn carbn_get(http: &reqwest::Client, sim: &SimHandle, id: &str) -> Value {
    let (status, body) = json_of(
        http.get(format!("{}/onboarding/api/v1/users/{id}", sim.base_url()))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn assert_carbn_envelope(body: &Value, code: &str, method: &str, path: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["httpMethod"], method, "{body}");
    assert_eq!(body["path"], path, "{body}");
    assert!(
        uuid::Uuid::parse_str(body["requestId"].as_str().unwrap()).is_ok(),
        "{body}"
    );
    assert_eq!(body["resourcePath"], "/onboarding/api/v1/{proxy+}");
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn carbn_session_validates_and_answers_a_jwt_url_reusing_the_user_of_an_email() {
    let sim = start(fast_config()).await;
    let http = client();
    let path = "/onboarding/api/v1/users/session";

    for (body, field) in [
        (
            json!({"currency": "EUR", "redirect_url": "https://a.example/"}),
            "email is required",
        ),
        (
            json!({"email": "x@example.com", "redirect_url": "https://a.example/"}),
            "currency is required",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR"}),
            "redirect_url is required",
        ),
        (
            json!({"email": "not-an-email", "currency": "EUR", "redirect_url": "https://a.example/"}),
            "email must be an email",
        ),
        (
            json!({"email": "x@example.com", "currency": "eur", "redirect_url": "https://a.example/"}),
            "currency must be an ISO 4217 code",
        ),
        (
            json!({"email": "x@example.com", "currency": "EURO", "redirect_url": "https://a.example/"}),
            "currency must be an ISO 4217 code",
        ),
        (
            json!({"email": "x@example.com", "currency": "E1R", "redirect_url": "https://a.example/"}),
            "currency must be an ISO 4217 code",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR", "redirect_url": "/return"}),
            "redirect_url must be an absolute URI",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR", "redirect_url": "www.example.com"}),
            "redirect_url must be an absolute URI",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR", "redirect_url": "https://exa mple.com/"}),
            "redirect_url must be an absolute URI",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR", "redirect_url": "1http://a.example/"}),
            "redirect_url must be an absolute URI",
        ),
        (
            json!({"email": "x@example.com", "currency": "EUR", "redirect_url": "https://a.example/", "locale": "de"}),
            "locale is not a known field",
        ),
    ] {
        let (status, answer) = carbn_session(&http, &sim, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_carbn_envelope(&answer, "4000", "POST", path);
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    assert!(
        sim.state().users(ProviderId::Carbn).is_empty(),
        "no user from a refused session"
    );
    // Any absolute URI will do, not only http(s).
    let (status, _) = carbn_session(
        &http,
        &sim,
        json!({"email": "app@example.com", "currency": "USD", "redirect_url": "myapp://kyc/done"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = json_of(
        http.post(format!("{}{path}", sim.base_url()))
            .json(&session_request("x@example.com"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_carbn_envelope(&answer, "4030", "POST", path);

    // A new email: a new simulated user, and a URL on the simulator with a JWT session.
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let (id, url, token) = carbn_open_session(&http, &sim, "hosted@example.com").await;
    assert!(
        url.starts_with(&format!("{}/_sim/carbn/checkout?session=", sim.base_url())),
        "{url}"
    );
    assert_eq!(token.split('.').count(), 3);
    let header: Value = serde_json::from_slice(&jwt_part(&token, 0)).unwrap();
    assert_eq!(header, json!({"alg": "ES384", "kid": "kms", "typ": "JWT"}));
    let payload: Value = serde_json::from_slice(&jwt_part(&token, 1)).unwrap();
    assert_eq!(payload["sub"], id.as_str());
    let (iat, exp) = (
        payload["iat"].as_i64().unwrap(),
        payload["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 1800, "the default lifetime: {payload}");
    assert!((before..=before + 5).contains(&iat), "{payload}");
    assert_eq!(jwt_part(&token, 2).len(), 96, "an ES384-sized signature");
    let user = carbn_get(&http, &sim, &id).await;
    assert_eq!(user["email_address"], "hosted@example.com");
    assert_eq!(user["status"], "under_review");

    // The same email: the same user, a fresh token.
    let (again, _, other_token) = carbn_open_session(&http, &sim, "hosted@example.com").await;
    assert_eq!(again, id);
    assert_ne!(other_token, token);
    // A user created through POST /users: its session carries that user's id.
    let created = carbn_create(&http, &sim, "api-first@example.com").await;
    let (session_user, _, _) = carbn_open_session(&http, &sim, "api-first@example.com").await;
    assert_eq!(session_user, created["id"].as_str().unwrap());
    assert_eq!(sim.state().users(ProviderId::Carbn).len(), 3);

    // The hosted page, served by the simulator: a completion form for that user.
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("action=\"/_sim/carbn/sessions/complete\""),
        "{html}"
    );
    assert!(
        html.contains(&format!("name=\"user_id\" value=\"{id}\"")),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets: {html}"
    );
    // Unknown or forged sessions are refused.
    for bogus in ["", "abc", "a.b.c"] {
        let page = http
            .get(format!(
                "{}/_sim/carbn/checkout?session={bogus}",
                sim.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{bogus}");
    }
    let forged = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] =
            engine.encode(json!({"sub": id, "exp": exp, "jti": uuid::Uuid::new_v4()}).to_string());
        parts.join(".")
    };
    let page = http
        .get(format!(
            "{}/_sim/carbn/checkout?session={forged}",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // The lifetime is configurable; an expired session's page says so.
    let mut config = fast_config();
    config.carbn.session_ttl = Duration::ZERO;
    let short = start(config).await;
    let (_, url, token) = carbn_open_session(&http, &short, "brief@example.com").await;
    let payload: Value = serde_json::from_slice(&jwt_part(&token, 1)).unwrap();
    assert_eq!(payload["exp"], payload["iat"]);
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::GONE
    );
}

#[tokio::test]
async fn carbn_completion_goes_under_review_then_to_each_outcome_with_webhooks() {
    let (base, received) = receiver(0).await;
    let mut config = fast_config();
    config.webhook_targets = WebhookTargets::gateway(&base);
    config.carbn.requirements_shape = sim::carbn::RequirementsShape::Objects;
    let sim = start(config).await;
    let http = client();
    let complete_url = format!("{}/_sim/carbn/sessions/complete", sim.base_url());
    let statuses_of = |received: &Received, id: &str| -> Vec<String> {
        received
            .all()
            .iter()
            .filter(|(path, _, _)| path == "/v1/webhooks/carbn")
            .filter_map(|(_, headers, body)| {
                carbn_webhook::verify(
                    sim::carbn::DEV_WEBHOOK_PUBLIC_KEY_PEM,
                    body,
                    header(headers, "x-webhook-signature").unwrap(),
                )
                .unwrap();
                let event: Value = serde_json::from_slice(body).unwrap();
                (event["user_id"] == id).then(|| event["status"].as_str().unwrap().to_owned())
            })
            .collect()
    };

    let (active, _, _) = carbn_open_session(&http, &sim, "a@example.com").await;
    let (incomplete, _, _) = carbn_open_session(&http, &sim, "i@example.com").await;
    let (rejected, _, _) = carbn_open_session(&http, &sim, "r@example.com").await;
    assert!(
        received.all().is_empty(),
        "a new session's user sends no webhook"
    );

    // Completion without an outcome: under_review now, active after the review delay.
    let (status, answer) = post_json(&http, complete_url.clone(), json!({"user_id": active})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            answer["outcome"].as_str(),
            answer["user"]["status"].as_str()
        ),
        (Some("active"), Some("under_review"))
    );
    let (status, _) = post_json(
        &http,
        complete_url.clone(),
        json!({"user_id": incomplete, "outcome": "incomplete"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_json(
        &http,
        complete_url.clone(),
        json!({"user_id": rejected, "outcome": "rejected"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for (id, outcome) in [
        (&active, "active"),
        (&incomplete, "incomplete"),
        (&rejected, "rejected"),
    ] {
        wait_for(outcome, || async {
            carbn_get(&http, &sim, id).await["status"] == outcome
        })
        .await;
        let r = received.clone();
        let wanted = id.clone();
        wait_until("two webhooks", move || statuses_of(&r, &wanted).len() >= 2).await;
        assert_eq!(
            statuses_of(&received, id),
            ["under_review", outcome],
            "{outcome}"
        );
    }
    let user = carbn_get(&http, &sim, &active).await;
    assert_eq!(
        (&user["requirements"], &user["rejection_reasons"]),
        (&Value::Null, &Value::Null)
    );
    let user = carbn_get(&http, &sim, &incomplete).await;
    assert_eq!(
        user["requirements"],
        json!([{"name": "base", "status": "incomplete", "requirements": {
            "complete": ["first_name", "last_name", "date_of_birth", "email_address"],
            "pending": [], "missing": {"all_of": ["proof_of_address"]}, "issues": []}}])
    );
    let user = carbn_get(&http, &sim, &rejected).await;
    let reasons = user["rejection_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1);
    let reason = reasons[0].as_object().unwrap();
    assert_eq!(
        reason.keys().collect::<Vec<_>>(),
        ["developer_reason", "reason", "created_at"]
    );
    assert!(reason["reason"].as_str().unwrap().contains("clear photo"));
    time::OffsetDateTime::parse(
        reason["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    // The outcome is spent: the incomplete user's update is reviewed to active as usual.
    let (status, _) = json_of(
        http.put(format!(
            "{}/onboarding/api/v1/users/{incomplete}",
            sim.base_url()
        ))
        .header("x-api-key", sim::carbn::DEV_API_KEY)
        .json(&json!({"first_name": "Ida"}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_for("updated user active", || async {
        carbn_get(&http, &sim, &incomplete).await["status"] == "active"
    })
    .await;
    // A rejected user may apply again; an active one may not.
    let (status, _) = post_json(
        &http,
        complete_url.clone(),
        json!({"user_id": rejected, "outcome": "active"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_for("re-applied user active", || async {
        carbn_get(&http, &sim, &rejected).await["status"] == "active"
    })
    .await;
    let (status, _) = post_json(&http, complete_url.clone(), json!({"user_id": active})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The page's form: a browser post gets a page with the way back to redirect_url.
    let (formed, url, token) = carbn_open_session(&http, &sim, "form@example.com").await;
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let response = http
        .post(&complete_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "user_id={formed}&session={token}&outcome=incomplete"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("href=\"https://app.example.com/done?step=kyc\""),
        "{html}"
    );
    wait_for("form user incomplete", || async {
        carbn_get(&http, &sim, &formed).await["status"] == "incomplete"
    })
    .await;

    // Control errors.
    let stranger = uuid::Uuid::new_v4().to_string();
    for (body, wanted) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (
            json!({"user_id": formed, "outcome": "approved"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"user_id": formed, "extra": true}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"user_id": 7}), StatusCode::BAD_REQUEST),
        (json!({"user_id": stranger}), StatusCode::NOT_FOUND),
    ] {
        let (status, answer) = post_json(&http, complete_url.clone(), body).await;
        assert_eq!(status, wanted, "{answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn carbn_requirements_take_the_configured_shape() {
    let http = client();
    for (shape, expected) in [
        (sim::carbn::RequirementsShape::Null, Value::Null),
        (
            sim::carbn::RequirementsShape::Strings,
            json!(["proof_of_address"]),
        ),
    ] {
        let mut config = fast_config();
        config.carbn.requirements_shape = shape;
        let sim = start(config).await;
        let (id, _, _) = carbn_open_session(&http, &sim, "shape@example.com").await;
        let (status, _) = post_json(
            &http,
            format!("{}/_sim/carbn/sessions/complete", sim.base_url()),
            json!({"user_id": id, "outcome": "incomplete"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        wait_for("incomplete", || async {
            carbn_get(&http, &sim, &id).await["status"] == "incomplete"
        })
        .await;
        assert_eq!(
            carbn_get(&http, &sim, &id).await["requirements"],
            expected,
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn carbn_document_upload_like_routes_are_404_in_carbns_envelope() {
    let sim = start(fast_config()).await;
    let http = client();
    let user = carbn_create(&http, &sim, "nodocs@example.com").await;
    let id = user["id"].as_str().unwrap();
    let body = multipart_body(
        BOUNDARY,
        &[file_part("file", "front.jpg", "image/jpeg", jpeg(2048))],
    );
    for (method, path) in [
        (
            Method::POST,
            format!("/onboarding/api/v1/users/{id}/documents"),
        ),
        (
            Method::PUT,
            format!("/onboarding/api/v1/users/{id}/documents/identity_front"),
        ),
        (Method::POST, "/onboarding/api/v1/documents".to_owned()),
        (
            Method::POST,
            format!("/onboarding/api/v1/users/{id}/upload"),
        ),
        (Method::POST, "/onboarding/api/v1/kyc/files".to_owned()),
        (
            Method::POST,
            format!("/onboarding/api/v1/users/{id}/identity-image"),
        ),
    ] {
        let (status, answer) = json_of(
            http.request(method.clone(), format!("{}{path}", sim.base_url()))
                .header("x-api-key", sim::carbn::DEV_API_KEY)
                .header("Content-Type", multipart_type(BOUNDARY))
                .body(body.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_carbn_envelope(&answer, "4040", method.as_str(), &path);
    }
    // Other unknown routes keep API Gateway's 403.
    let (status, answer) = json_of(
        http.post(format!("{}/onboarding/api/v1/wallets", sim.base_url()))
            .header("x-api-key", sim::carbn::DEV_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_carbn_envelope(&answer, "4030", "POST", "/onboarding/api/v1/wallets");
}
