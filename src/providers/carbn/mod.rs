//! Carbn Connect (`api.carbnconnect.com/onboarding/api/v1`). API reference:
//! https://docs.carbn.xyz/api-reference/authentication and the pages beside it.
//!
//! - Auth: a static `x-api-key` header (exactly 32 alphanumerics) on every call
//!   (https://docs.carbn.xyz/api-reference/authentication).
//! - Create: consent first (`POST /tnc`, answers a bare JSON string id), then `POST /users` with
//!   that `consent_id`
//!   (https://docs.carbn.xyz/api-reference/user-management/generate-user-consent). The consent id
//!   is kept in the link's `link_data` as `tnc_id`.
//! - Get `GET /users/{id}`; update `PUT /users/{id}` with only the changed fields (partial despite
//!   the verb, https://docs.carbn.xyz/api-reference/user-management/update-user), answered by the
//!   full user.
//! - No idempotency key and no external id exist: [`CarbnConnector::find_existing_user`]
//!   scans `GET /users/all` to recover a user created but not recorded.
//! - Hosted onboarding: `POST /users/session` `{email, currency, redirect_url}` →
//!   `{onboarding_url, user_id}`
//!   (https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session); the
//!   currency and a default redirect come from `session_currency` / `session_redirect_url`, the
//!   expiry from the `exp` of the JWT in the URL's `session` parameter (read unverified).
//! - Errors use the API Gateway envelope (https://docs.carbn.xyz/api-reference/errors); 401 and 403
//!   both mean bad credentials.

/// Wire types and canonical conversions, status mapping.
pub mod transformers;

/// Documents, next actions and rejections in this provider's vocabulary.
pub mod verification;
/// `X-Webhook-Signature` RSA (PKCS#1 v1.5, SHA-256) webhook signatures.
pub mod webhook;

/// The `[providers.carbn]` configuration section.
pub mod settings;
pub use settings::CarbnSettings;

use std::sync::Arc;

use super::provider::{DocumentFacts, DocumentPolicy, LinkFacts, Provider, WebhookSignature};
use crate::domain::verification::{check_redirect_url, NextAction, Rejection};
use super::webhook::{Headers, Verified, WebhookEvent, WebhookVerifier};
use crate::domain::FieldError;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use self::transformers::{
    map_status, CarbnCreateUser, CarbnError, CarbnUpdateUser, CarbnUser, ConsentId, ConsentRequest,
    TransformError, LINK_TNC_ID,
};
use super::connector::{
    BoxFuture, CallLog, Connector, CreateRequest, FieldPolicy, HostedSession, LinkRef,
    ProviderUserState, SessionRequest,
};
use super::error::{ProviderError, ProviderErrorKind};
use super::http::{ProviderHttp, RawResponse};
use crate::domain::provider::ProviderId;
use crate::domain::user::{iso_date, CanonicalUser};

/// Every onboarding path lives under this prefix.
pub const BASE_PATH: &str = "/onboarding/api/v1";
/// The authentication header.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The Carbn Connect connector.
pub struct CarbnConnector {
    http: ProviderHttp,
    api_key: SecretString,
    /// `providers.carbn.session_currency`, checked as an ISO 4217 code.
    session_currency: String,
    /// `providers.carbn.session_redirect_url`, checked like a caller's `redirect_url`.
    session_redirect_url: Option<String>,
}

impl std::fmt::Debug for CarbnConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarbnConnector")
            .field("host", &self.http.host())
            .field("api_key", &"***")
            .finish()
    }
}

/// Carbn's documented key format (R-err code 4100): exactly 32 ASCII alphanumerics.
pub fn is_valid_api_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl CarbnConnector {
    /// Checks the configuration: `api_key` present and in Carbn's format. The messages name
    /// the config key and never echo the secret.
    pub fn new(settings: &CarbnSettings, http: ProviderHttp) -> Result<Self, String> {
        let key = settings
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                "providers.carbn.api_key is required when the provider is enabled".to_owned()
            })?;
        if !is_valid_api_key(&key) {
            return Err(format!(
                "providers.carbn.api_key must be exactly 32 alphanumeric characters (A-Z, a-z, 0-9), \
                 as Carbn issues it; the configured value has {} characters{}",
                key.chars().count(),
                if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                    ""
                } else {
                    " including characters that are not letters or digits"
                }
            ));
        }
        let currency = settings.session_currency.trim();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(
                "providers.carbn.session_currency must be an ISO 4217 code (three capital letters, e.g. EUR)"
                    .to_owned(),
            );
        }
        let redirect = settings
            .session_redirect_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        if let Some(url) = redirect {
            check_redirect_url(url)
                .map_err(|why| format!("providers.carbn.session_redirect_url {why}"))?;
        }
        Ok(Self {
            http,
            api_key: SecretString::from(key),
            session_currency: currency.to_owned(),
            session_redirect_url: redirect.map(str::to_owned),
        })
    }

    /// `POST /users/session`: a hosted onboarding session for the user's email, in the
    /// configured currency, sending the person to `redirect_url` afterwards (the caller's, else
    /// `session_redirect_url`). Carbn answers the URL and its user id for that email; the URL's
    /// token says when it expires ([`transformers::session_expiry`]).
    pub async fn create_session(
        &self,
        user: &CanonicalUser,
        redirect_url: Option<&str>,
        log: &CallLog,
    ) -> Result<HostedSession, ProviderError> {
        let redirect_url = redirect_url
            .or(self.session_redirect_url.as_deref())
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::Rejected,
                    "Carbn needs a redirect_url for its hosted onboarding (none given, and no \
                     providers.carbn.session_redirect_url configured)",
                )
            })?;
        let body = transformers::SessionRequest {
            email: user.email.as_str(),
            currency: &self.session_currency,
            redirect_url,
        };
        let req = self.json_request(reqwest::Method::POST, "/users/session", &body)?;
        let answer: transformers::SessionResponse =
            self.call(log, "verification_session", req).await?;
        if answer.onboarding_url.trim().is_empty() {
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidResponse,
                "Carbn answered a session without an onboarding_url",
            ));
        }
        Ok(HostedSession {
            expires_at: transformers::session_expiry(&answer.onboarding_url),
            url: answer.onboarding_url,
            provider_user_id: answer.user_id.filter(|id| !id.is_empty()),
        })
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Validated as ASCII alphanumerics in `new`, so this cannot fail.
        if let Ok(mut value) = HeaderValue::from_str(self.api_key.expose_secret()) {
            value.set_sensitive(true);
            headers.insert(API_KEY_HEADER, value);
        }
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, self.http.url(&format!("{BASE_PATH}{path}")))
            .headers(self.headers())
    }

    fn json_request<T: serde::Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &T,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::InvalidResponse,
                "could not encode the Carbn request body",
            )
        })?;
        Ok(self
            .request(method, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes))
    }

    /// Sends, then reads a 2xx body as `T` or a non-2xx one as Carbn's error envelope.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        log: &CallLog,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let raw = self.http.send(log, operation, request).await?;
        if raw.is_success() {
            raw.json()
        } else {
            Err(error_from_response(&raw))
        }
    }

    /// `POST /tnc`: a fresh consent for `request` (one consent per user [I]).
    async fn consent(
        &self,
        request: &ConsentRequest,
        log: &CallLog,
    ) -> Result<String, ProviderError> {
        let req = self.json_request(reqwest::Method::POST, "/tnc", request)?;
        let id: ConsentId = self.call(log, "accept_terms", req).await?;
        Ok(id.0)
    }

    async fn fetch_user(&self, id: &str, log: &CallLog) -> Result<CarbnUser, ProviderError> {
        let req = self.request(
            reqwest::Method::GET,
            &format!("/users/{}", path_segment(id)?),
        );
        self.call(log, "get_user", req).await
    }

    /// `GET /users/all`: every user of this API key (a bare array, no pagination).
    pub async fn list_users(&self, log: &CallLog) -> Result<Vec<CarbnUser>, ProviderError> {
        let req = self.request(reqwest::Method::GET, "/users/all");
        self.call(log, "list_users", req).await
    }

    /// Finds the Carbn user that a create for `user` may have made without the gateway recording it
    /// (crash or lost answer), by scanning `GET /users/all` (Carbn has no external id, idempotency
    /// key or search; https://docs.carbn.xyz/api-reference/user-management/get-all-users).
    ///
    /// Matching rule: the email address is the key (Carbn refuses a second user with the same
    /// `email_address`; compared ASCII case-insensitively). A user with that email is only
    /// adopted when the identity fields Carbn returns agree as well: `first_name`,
    /// `last_name` (case-insensitive, trimmed) and `date_of_birth` (exact); a field absent or
    /// null in the answer does not count against the match. When the email matches but a
    /// returned name or date of birth differs, the address belongs to someone else: that is a
    /// `Conflict` error (neither adopted nor created again). Several matches are a `Conflict`
    /// too. `Ok(None)`: no Carbn user has that email, so creating is safe.
    ///
    /// The returned state has no `tnc_id` (the consent id is not echoed by Carbn).
    pub async fn find_existing_user(
        &self,
        user: &CanonicalUser,
        log: &CallLog,
    ) -> Result<Option<ProviderUserState>, ProviderError> {
        let users = self.list_users(log).await?;
        let email = user.email.as_str();
        let same_text = |got: &Option<String>, want: &str| {
            got.as_deref()
                .is_none_or(|g| g.trim().to_lowercase() == want.trim().to_lowercase())
        };
        let dob = iso_date::format(user.date_of_birth.date());
        let with_email: Vec<&CarbnUser> = users
            .iter()
            .filter(|u| {
                u.email_address
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
            })
            .collect();
        let (matching, other): (Vec<&CarbnUser>, Vec<&CarbnUser>) =
            with_email.into_iter().partition(|u| {
                same_text(&u.first_name, &user.name.first)
                    && same_text(&u.last_name, &user.name.last)
                    && u.date_of_birth.as_deref().is_none_or(|d| d.trim() == dob)
            });
        match (matching.as_slice(), other.is_empty()) {
            ([], true) => Ok(None),
            ([found], true) => Ok(Some(state_from(found, &Map::new()))),
            ([], false) => Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "a Carbn user with this email address exists with a different name or date of birth",
            )),
            _ => Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "several Carbn users match this email address",
            )),
        }
    }
}

/// A user id as one path segment: Carbn ids are UUIDs; anything that could change the path
/// is refused rather than sent.
fn path_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::new(
            ProviderErrorKind::NotFound,
            "the stored Carbn user id is not a valid id",
        ))
    }
}

/// Reads Carbn's error envelope (`code` as the provider code, `message`, and the `requestId`
/// appended for support) and classifies by HTTP status; `Retry-After` is honoured on 429.
pub fn error_from_response(raw: &RawResponse) -> ProviderError {
    let envelope: Option<CarbnError> = serde_json::from_slice(&raw.body).ok();
    let (code, message) = match envelope {
        Some(e) => {
            let base = e
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("Carbn answered HTTP {}", raw.status));
            let message = match e.request_id {
                Some(id) if !id.is_empty() => format!("{base} (requestId {id})"),
                _ => base,
            };
            (e.code, message)
        }
        None => (None, format!("Carbn answered HTTP {}", raw.status)),
    };
    let retry_after = if raw.status == 429 {
        raw.retry_after()
    } else {
        None
    };
    ProviderError::from_status(raw.status, code, message).with_retry_after(retry_after)
}

fn state_from(user: &CarbnUser, link_data: &Map<String, Value>) -> ProviderUserState {
    ProviderUserState {
        provider_user_id: user.id.clone(),
        provider_status: user.status.clone(),
        status: map_status(&user.status),
        requirements: user.requirements(),
        link_data: user.link_data(link_data),
        // Carbn's `updated_at` format is odd and undocumented.
        observed_at: None,
        // Carbn keeps no partner id for its users.
        external_id: None,
    }
}

fn rejected(e: TransformError) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Rejected, e.to_string())
}

impl Connector for CarbnConnector {
    fn id(&self) -> ProviderId {
        ProviderId::Carbn
    }

    /// Carbn has no external id: list its users and match (see `find_existing_user`).
    fn find_existing<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        Box::pin(self.find_existing_user(request.user, log))
    }

    fn session_needs_redirect_url(&self) -> bool {
        self.session_redirect_url.is_none()
    }

    /// Carbn's hosted onboarding session
    /// (https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session).
    fn create_verification_session<'a>(
        &'a self,
        _link: LinkRef<'a>,
        request: SessionRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<HostedSession, ProviderError>> {
        Box::pin(self.create_session(request.user, request.redirect_url, log))
    }

    /// Carbn's update-user reference says "all fields are optional, only include [the fields to
    /// change]" (https://docs.carbn.xyz/api-reference/user-management/update-user): every field
    /// with a Carbn counterpart is updatable, so nothing the gateway sends is `Refuse`. Fields
    /// Carbn has no counterpart for are `Ignore`.
    fn field_policy(&self, path: &str) -> FieldPolicy {
        match path {
            "type" | "email" | "phone" | "name.first" | "name.last" | "date_of_birth"
            | "tax_ids" | "terms.accepted_at" => FieldPolicy::Send,
            "identity_document"
            | "identity_document.type"
            | "identity_document.number"
            | "identity_document.issuing_country" => FieldPolicy::Send,
            "address"
            | "address.line1"
            | "address.line2"
            | "address.city"
            | "address.region"
            | "address.postal_code"
            | "address.country" => FieldPolicy::Send,
            // Everything else has no Carbn counterpart and stays in the gateway:
            // `external_id` (no external id at Carbn), `name.middle`, `birth_place.*`,
            // `nationalities`, `citizenship`, `employment.*`, `financial_profile.*`,
            // `language`, `identity_document.issued_on`/`expires_on`, `terms.version` (the
            // consent carries only the acceptance time), `metadata.*` (caller-owned, never
            // sent to providers, README "The API in short"), and any future canonical field.
            _ => FieldPolicy::Ignore,
        }
    }

    fn create_user<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(async move {
            // Convert everything first: a user Carbn cannot take wastes no consent.
            let consent = ConsentRequest::try_from(request.user).map_err(rejected)?;
            let body = CarbnCreateUser::try_from(request.user).map_err(rejected)?;
            let consent_id = self.consent(&consent, log).await?;
            let body = body.with_consent_id(consent_id.clone());
            let req = self.json_request(reqwest::Method::POST, "/users", &body)?;
            // Any 2xx is success (the create status code is undocumented).
            let user: CarbnUser = self.call(log, "create_user", req).await?;
            let mut link_data = Map::new();
            link_data.insert(LINK_TNC_ID.to_owned(), Value::String(consent_id));
            Ok(state_from(&user, &link_data))
        })
    }

    fn get_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(async move {
            let user = self.fetch_user(link.provider_user_id, log).await?;
            Ok(state_from(&user, link.link_data))
        })
    }

    /// Sends the changed fields in one partial `PUT`. A changed `terms.accepted_at` means the user
    /// accepted the terms again: a fresh consent is generated first and its id sent as `consent_id`
    /// (the update-user reference accepts it), then kept as the link's new `tnc_id`. When no
    /// changed field has a Carbn counterpart nothing is sent and `Ok(None)` is returned.
    fn update_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        user: &'a CanonicalUser,
        changed: &'a [String],
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        Box::pin(async move {
            let id = path_segment(link.provider_user_id)?;
            let mut body = CarbnUpdateUser::from_changes(user, changed).map_err(rejected)?;
            let reconsent = changed.iter().any(|p| p == "terms.accepted_at")
                && user.terms.as_ref().and_then(|t| t.accepted_at).is_some();
            let mut link_data = link.link_data.clone();
            if reconsent {
                let consent = ConsentRequest::try_from(user).map_err(rejected)?;
                let consent_id = self.consent(&consent, log).await?;
                link_data.insert(LINK_TNC_ID.to_owned(), Value::String(consent_id.clone()));
                body.consent_id = Some(consent_id);
            }
            if body.is_empty() {
                return Ok(None);
            }
            let req = self.json_request(reqwest::Method::PUT, &format!("/users/{id}"), &body)?;
            let updated: CarbnUser = self.call(log, "update_user", req).await?;
            Ok(Some(state_from(&updated, &link_data)))
        })
    }
}

/// Carbn Connect, as the gateway's provider list sees it.
pub struct Carbn;

impl Provider for Carbn {
    type Settings = CarbnSettings;
    const ID: ProviderId = ProviderId::Carbn;

    fn required_fields() -> &'static [&'static str] {
        &[
            "phone",
            "address.line1",
            "address.city",
            "address.postal_code",
            "identity_document",
            "terms.accepted_at",
        ]
    }

    fn unsupported_values(_user: &CanonicalUser) -> Vec<FieldError> {
        Vec::new()
    }

    fn webhook_signature() -> WebhookSignature {
        WebhookSignature {
            headers: &[
                (webhook::SIGNATURE_HEADER, "base64 RSA signature"),
                (
                    webhook::EVENT_ID_HEADER,
                    "the event id used for deduplication",
                ),
            ],
            scheme: "Carbn `X-Webhook-Signature` (RSA PKCS#1 v1.5 SHA-256 of the body)",
        }
    }

    fn enabled(settings: &CarbnSettings) -> bool {
        settings.enabled
    }

    fn base_url(settings: &CarbnSettings) -> &str {
        &settings.base_url
    }

    fn has_credentials(settings: &CarbnSettings) -> bool {
        settings.api_key.is_some()
    }

    fn connector(
        settings: &CarbnSettings,
        http: ProviderHttp,
    ) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(CarbnConnector::new(settings, http)?))
    }

    fn webhook_verifier(settings: &CarbnSettings) -> Result<Arc<dyn WebhookVerifier>, String> {
        match &settings.webhook_public_key {
            Some(pem) => webhook::SignatureVerifier::from_public_key_pem(pem)
                .map(|v| Arc::new(v) as Arc<dyn WebhookVerifier>)
                .map_err(|_| "the Carbn webhook_public_key is not a PEM SPKI RSA key".into()),
            None => Err("no providers.carbn.webhook_public_key".to_owned()),
        }
    }

    fn parse_webhook(header: &Headers<'_>, body: &[u8], verified: Verified) -> WebhookEvent {
        webhook::parse_event(header, body, verified)
    }

    fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction> {
        verification::next_actions(link)
    }

    fn rejection(link: &LinkFacts<'_>) -> Option<Rejection> {
        verification::rejection(link)
    }

    fn document_policy(document: &DocumentFacts) -> DocumentPolicy {
        verification::document_policy(document)
    }
}
