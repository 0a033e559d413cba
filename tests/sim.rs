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
