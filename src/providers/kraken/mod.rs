//! Kraken Embed (`nexus.kraken.com/b2b`). API reference:
//! https://docs.kraken.com/api/docs/embed-api.
//!
//! Every request is signed (https://docs.kraken.com/api/docs/guides/embed-rest-auth): `API-Key`,
//! `API-Nonce` (one [`signing::NonceSource`] per connector), `API-Sign` over the exact
//! request-target sent (IIBANs percent-encoded) and the exact body bytes sent, plus
//! `Payward-Version: 2025-04-15`. Bodies are serialised once; those bytes are signed and sent:
//! JSON, and the multipart verification bodies, which are built whole
//! ([`crate::providers::multipart`]) before they are signed, as Kraken's Go SDK signs
//! `VerifyUser` (https://github.com/krakenfx/api-go, `pkg/spot/rest.go`).

/// `API-Sign` HMAC-SHA512 request signing and the per-key [`signing::NonceSource`].
pub mod signing;

/// Wire types for `/b2b/users…` and `/b2b/verifications…`, canonical ↔ Kraken conversions, the
/// status mapping.
pub mod transformers;

/// Documents, next actions and rejections in this provider's vocabulary.
pub mod verification;

/// `X-Signature: t=…,v1=…` webhook signatures (HMAC-SHA256 over `"t.body"`).
pub mod webhook;

/// The `[providers.kraken]` configuration section.
pub mod settings;
pub use settings::KrakenSettings;

use std::sync::Arc;

use super::provider::{DocumentFacts, DocumentPolicy, LinkFacts, Provider, WebhookSignature};
use crate::domain::verification::{NextAction, Rejection};
use super::webhook::{Headers, Verified, WebhookEvent, WebhookVerifier};
use crate::domain::FieldError;

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

use self::signing::NonceSource;
use self::transformers::{
    CreateUserRequest, CreateUserResult, Envelope, ErrorEnvelope, GetUserResult, UpdateUserRequest,
    VerificationResult,
};
use super::connector::{
    AfterUnknownOutcome, BoxFuture, CallLog, Connector, CreateRequest, DocumentUpload, FieldPolicy, LinkRef,
    ProviderUserState, SubmittedDocument,
};
use super::error::{ProviderError, ProviderErrorKind};
use super::http::{ProviderHttp, RawResponse};
use super::multipart::{MultipartBody, MultipartForm};
use crate::domain::provider::ProviderId;
use crate::domain::user::CanonicalUser;

/// The API version sent in `Payward-Version`, the only value the API reference lists (its auth
/// guide names the header `Kraken-Version` instead).
pub const API_VERSION: &str = "2025-04-15";
/// The provider status stored when a create succeeded but its state could not be read.
pub const UNKNOWN_STATUS: &str = "unknown";

/// Percent-encodes one path segment: everything except RFC 3986 unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) becomes `%XX` (uppercase hex, per UTF-8 byte), so an IIBAN such as
/// `AA12 N84G ABCD EFGH` becomes `AA12%20N84G%20ABCD%20EFGH`.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The IIBAN as one encoded path segment. An empty or dots-only id is refused locally: it would
/// address another resource (`/b2b/users/`, or a dot segment that URL parsers resolve),
/// whatever the encoding.
fn iiban_segment(iiban: &str) -> Result<String, ProviderError> {
    if iiban.is_empty() || iiban.bytes().all(|b| b == b'.') {
        return Err(ProviderError::new(
            ProviderErrorKind::Rejected,
            "the Kraken user id (IIBAN) is empty or not a path segment",
        ));
    }
    Ok(encode_path_segment(iiban))
}

/// `/b2b/users/{iiban}`, encoded as sent and signed.
pub fn user_path(iiban: &str) -> Result<String, ProviderError> {
    Ok(format!("/b2b/users/{}", iiban_segment(iiban)?))
}

/// `/b2b/verifications/{iiban}`, encoded as sent and signed.
pub fn verification_path(iiban: &str) -> Result<String, ProviderError> {
    Ok(format!("/b2b/verifications/{}", iiban_segment(iiban)?))
}

/// A request body exactly as signed and sent, with its `Content-Type`.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestBody {
    pub content_type: String,
    /// Shared, so that a re-signed resend does not copy a large (multipart) body.
    pub bytes: Bytes,
}

impl RequestBody {
    /// A serialised JSON body.
    pub fn json(bytes: Vec<u8>) -> Self {
        Self {
            content_type: "application/json".to_owned(),
            bytes: Bytes::from(bytes),
        }
    }

    /// A finished multipart form (its `Content-Type` names its boundary).
    pub fn multipart(body: MultipartBody) -> Self {
        Self {
            content_type: body.content_type(),
            bytes: body.into_bytes(),
        }
    }
}

/// One request, signed and ready to send. `Debug` shows neither body nor signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub method: Method,
    /// The request-target exactly as sent and signed (already percent-encoded).
    pub path_and_query: String,
    pub nonce: u64,
    pub api_sign: String,
    /// The exact body, or `None` for a body-less request.
    pub body: Option<RequestBody>,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("nonce", &self.nonce)
            .field("body_len", &self.body.as_ref().map(|b| b.bytes.len()))
            .finish_non_exhaustive()
    }
}

/// The Kraken Embed connector.
pub struct KrakenConnector {
    http: ProviderHttp,
    api_key: SecretString,
    api_secret: SecretString,
    nonces: NonceSource,
    on_unknown_outcome: settings::OnUnknownOutcome,
}

impl fmt::Debug for KrakenConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KrakenConnector")
            .field("host", &self.http.host())
            .finish_non_exhaustive()
    }
}

fn required_secret(value: &Option<SecretString>, key: &str) -> Result<SecretString, String> {
    match value {
        Some(v) if !v.expose_secret().trim().is_empty() => Ok(v.clone()),
        _ => Err(format!(
            "providers.kraken.{key} is required when the provider is enabled"
        )),
    }
}

impl KrakenConnector {
    /// Builds the connector from its settings; `http` carries the base URL and timeouts.
    /// Fails, naming the key, when `api_key` or `api_secret` is missing or the secret is not
    /// base64.
    pub fn new(settings: &KrakenSettings, http: ProviderHttp) -> Result<Self, String> {
        let api_key = required_secret(&settings.api_key, "api_key")?;
        let api_secret = required_secret(&settings.api_secret, "api_secret")?;
        if STANDARD.decode(api_secret.expose_secret().trim()).is_err() {
            return Err(
                "providers.kraken.api_secret must be base64, as Kraken issues it".to_owned(),
            );
        }
        Ok(Self {
            http,
            api_key,
            api_secret,
            nonces: NonceSource::new(),
            on_unknown_outcome: settings.on_unknown_outcome,
        })
    }

    /// Signs one request with a JSON body (or none) with the given nonce (pure; see
    /// [`Self::send_signed`]). Exposed so the signature of a request can be pinned in tests
    /// with a fixed nonce.
    pub fn sign(
        &self,
        method: Method,
        path_and_query: String,
        body: Option<Vec<u8>>,
        nonce: u64,
    ) -> Result<SignedRequest, ProviderError> {
        self.sign_body(method, path_and_query, body.map(RequestBody::json), nonce)
    }

    /// [`Self::sign`] for a body of any media type (a multipart form): `API-Sign` covers its
    /// exact bytes.
    pub fn sign_body(
        &self,
        method: Method,
        path_and_query: String,
        body: Option<RequestBody>,
        nonce: u64,
    ) -> Result<SignedRequest, ProviderError> {
        let api_sign = signing::api_sign(
            self.api_secret.expose_secret(),
            &path_and_query,
            nonce,
            body.as_ref().map(|b| b.bytes.as_ref()).unwrap_or_default(),
        )
        .map_err(|e| ProviderError::new(ProviderErrorKind::Unauthorized, e.to_string()))?;
        Ok(SignedRequest {
            method,
            path_and_query,
            nonce,
            api_sign,
            body,
        })
    }

    /// Sends a signed request through [`ProviderHttp::send`] (timed and recorded in `log`).
    pub async fn send_signed(
        &self,
        log: &CallLog,
        operation: &'static str,
        request: SignedRequest,
    ) -> Result<RawResponse, ProviderError> {
        let mut api_key = HeaderValue::from_str(self.api_key.expose_secret()).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::Unauthorized,
                "providers.kraken.api_key is not a valid header value",
            )
        })?;
        api_key.set_sensitive(true);
        let mut builder = self
            .http
            .client()
            .request(request.method, self.http.url(&request.path_and_query))
            .header("API-Key", api_key)
            .header("API-Nonce", request.nonce.to_string())
            .header("API-Sign", request.api_sign)
            .header("Payward-Version", API_VERSION)
            .header(ACCEPT, "application/json");
        if let Some(body) = request.body {
            builder = builder
                .header(CONTENT_TYPE, body.content_type)
                .body(body.bytes);
        }
        self.http.send(log, operation, builder).await
    }

    /// Takes the next nonce, signs and sends (again, with a fresh nonce, when Kraken saw a
    /// higher one first): the nonce is drawn immediately before sending,
    /// so nonces go out in the order they were drawn as far as this process controls it.
    async fn call(
        &self,
        log: &CallLog,
        operation: &'static str,
        method: Method,
        path_and_query: String,
        body: Option<RequestBody>,
    ) -> Result<RawResponse, ProviderError> {
        // Concurrent calls draw increasing nonces but can reach Kraken out of order, and Kraken
        // refuses a nonce not above the last it saw (`EAPI:Invalid nonce`, before doing
        // anything). Such a refusal is re-signed with a fresh nonce and sent again at once: the
        // benchmark saw thousands under load, each otherwise a job retry seconds later.
        let mut resends = 0;
        loop {
            let signed = self.sign_body(
                method.clone(),
                path_and_query.clone(),
                body.clone(),
                self.nonces.next(),
            )?;
            let raw = self.send_signed(log, operation, signed).await?;
            if resends < NONCE_RESENDS && is_invalid_nonce(&raw) {
                resends += 1;
                metrics::counter!("gateway_kraken_nonce_resends_total").increment(1);
                continue;
            }
            return Ok(raw);
        }
    }

    /// The exact `POST /b2b/users` body bytes for `user`.
    pub fn create_body(user: &CanonicalUser) -> Result<Vec<u8>, ProviderError> {
        let request = CreateUserRequest::try_from(user)
            .map_err(|e| ProviderError::new(ProviderErrorKind::Rejected, e.to_string()))?;
        serialize(&request)
    }

    /// The exact `PATCH /b2b/users/{user}` body bytes for the `changed` paths of `user`, or
    /// `None` when none of them has a Kraken counterpart.
    pub fn update_body(
        user: &CanonicalUser,
        changed: &[String],
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        let request = UpdateUserRequest::from_changes(user, changed)
            .map_err(|e| ProviderError::new(ProviderErrorKind::Rejected, e.to_string()))?;
        if request.is_empty() {
            return Ok(None);
        }
        serialize(&request).map(Some)
    }

    /// The exact `POST /b2b/verifications/{user}` body for `upload`, built on `form` (a fresh
    /// [`MultipartForm::new`] when sending; a fixed boundary pins it in tests): parts `type`,
    /// `metadata` (a JSON string), then the files (`front` and `back`, `document` or `selfie`),
    /// each named `<part>.<extension of its content type>`, never the caller's file name.
    /// `NotSupported` when Kraken cannot be sent this document (see
    /// [`transformers::verification_parts`]).
    pub fn document_body<'a>(
        upload: &DocumentUpload<'a>,
        form: MultipartForm<'a>,
    ) -> Result<MultipartBody, ProviderError> {
        let parts = transformers::verification_parts(upload)?;
        let mut form = form
            .text("type", parts.verification_type.as_bytes())
            .text("metadata", parts.metadata.into_bytes());
        for (name, file) in parts.files {
            form = form.file(
                name,
                format!("{name}.{}", file.content_type.extension()),
                file.content_type.as_str(),
                file.bytes,
            );
        }
        form.finish().map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Rejected,
                format!("cannot build the verification body: {e}"),
            )
        })
    }

    async fn submit(
        &self,
        iiban: &str,
        upload: DocumentUpload<'_>,
        log: &CallLog,
    ) -> Result<SubmittedDocument, ProviderError> {
        let path = verification_path(iiban)?;
        let body = Self::document_body(&upload, MultipartForm::new())?;
        let raw = self
            .call(
                log,
                "submit_document",
                Method::POST,
                path,
                Some(RequestBody::multipart(body)),
            )
            .await?;
        let result: VerificationResult = success_result(&raw)?;
        Ok(SubmittedDocument {
            provider_document_id: Some(result.verification_id),
        })
    }

    async fn fetch_user(
        &self,
        iiban: &str,
        log: &CallLog,
    ) -> Result<ProviderUserState, ProviderError> {
        let raw = self
            .call(log, "get_user", Method::GET, user_path(iiban)?, None)
            .await?;
        let result: GetUserResult = success_result(&raw)?;
        Ok(result.into_state())
    }

    async fn create(
        &self,
        user: &CanonicalUser,
        log: &CallLog,
    ) -> Result<ProviderUserState, ProviderError> {
        let body = Self::create_body(user)?;
        let raw = self
            .call(
                log,
                "create_user",
                Method::POST,
                "/b2b/users".to_owned(),
                Some(RequestBody::json(body)),
            )
            .await?;
        let created: CreateUserResult = success_result(&raw)?;
        // Kraken's create answer has no status. Read it (truthful), but the account now exists
        // and Create User is not idempotent (no lookup by external_id, a re-POST gets 409): if
        // the read fails, the IIBAN is still returned, with an unknown status the reconciler
        // or a webhook will fill in. Losing the IIBAN would orphan the account.
        match self.fetch_user(&created.user, log).await {
            Ok(mut state) => {
                // Keep the id Kraken gave on create, in case the GET normalises it differently.
                state.provider_user_id = created.user;
                Ok(state)
            }
            Err(error) => {
                tracing::warn!(
                    provider = "kraken",
                    kind = ?error.kind,
                    http_status = error.http_status,
                    "created the user but could not read its status; keeping the IIBAN"
                );
                Ok(ProviderUserState {
                    provider_user_id: created.user,
                    provider_status: UNKNOWN_STATUS.to_owned(),
                    status: None,
                    requirements: Vec::new(),
                    link_data: serde_json::Map::new(),
                    observed_at: None,
                })
            }
        }
    }

    async fn update(
        &self,
        iiban: &str,
        user: &CanonicalUser,
        changed: &[String],
        log: &CallLog,
    ) -> Result<Option<ProviderUserState>, ProviderError> {
        let Some(body) = Self::update_body(user, changed)? else {
            return Ok(None);
        };
        let raw = self
            .call(
                log,
                "update_user",
                Method::PATCH,
                user_path(iiban)?,
                Some(RequestBody::json(body)),
            )
            .await?;
        // `{"result":"success"}`; the answer carries no state.
        let _: serde_json::Value = success_result(&raw)?;
        Ok(None)
    }
}

fn serialize<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Rejected,
            format!("cannot serialise the request: {e}"),
        )
    })
}

/// A non-2xx answer as a [`ProviderError`]: kind from the HTTP status, code and message from
/// the first `error[]` string, `Retry-After` kept for 429/5xx.
pub fn error_from_response(raw: &RawResponse) -> ProviderError {
    let code = ErrorEnvelope::parse(&raw.body).code();
    let message = code
        .clone()
        .unwrap_or_else(|| format!("Kraken answered HTTP {}", raw.status));
    let error = ProviderError::from_status(raw.status, code, message);
    if error.retryable() {
        error.with_retry_after(raw.retry_after())
    } else {
        error
    }
}

/// The `result` of a 2xx answer, or the error the answer describes.
fn success_result<T: serde::de::DeserializeOwned>(raw: &RawResponse) -> Result<T, ProviderError> {
    if !raw.is_success() {
        return Err(error_from_response(raw));
    }
    let envelope: Envelope<T> = raw.json()?;
    envelope.result.ok_or_else(|| ProviderError {
        http_status: Some(raw.status),
        provider_code: ErrorEnvelope {
            error: envelope.error,
            errors: envelope.errors,
        }
        .code(),
        ..ProviderError::new(
            ProviderErrorKind::InvalidResponse,
            "Kraken answered without a result",
        )
    })
}

impl Connector for KrakenConnector {
    fn id(&self) -> ProviderId {
        ProviderId::Kraken
    }

    fn field_policy(&self, path: &str) -> FieldPolicy {
        transformers::field_policy(path)
    }

    fn create_user<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(self.create(request.user, log))
    }

    /// Kraken has no lookup by `external_id`; it refuses a second account with the same one
    /// (409), so a resend is safe unless `on_unknown_outcome = "review"` says otherwise.
    fn after_unknown_outcome(&self) -> AfterUnknownOutcome {
        match self.on_unknown_outcome {
            settings::OnUnknownOutcome::Retry => AfterUnknownOutcome::Resend,
            settings::OnUnknownOutcome::Review => AfterUnknownOutcome::Review,
        }
    }

    fn get_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(self.fetch_user(link.provider_user_id, log))
    }

    fn update_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        user: &'a CanonicalUser,
        changed: &'a [String],
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        Box::pin(self.update(link.provider_user_id, user, changed, log))
    }

    /// `POST /b2b/verifications/{user}`: a partner-attested verification with its files.
    fn submit_document<'a>(
        &'a self,
        link: LinkRef<'a>,
        upload: DocumentUpload<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<SubmittedDocument, ProviderError>> {
        Box::pin(self.submit(link.provider_user_id, upload, log))
    }
}

/// How often one call is re-signed after `EAPI:Invalid nonce` before the refusal stands.
const NONCE_RESENDS: usize = 3;

/// Kraken refused the request's nonce (it had seen a higher one): nothing was done.
fn is_invalid_nonce(raw: &RawResponse) -> bool {
    raw.status == 401
        && ErrorEnvelope::parse(&raw.body).code().as_deref() == Some("EAPI:Invalid nonce")
}

/// Kraken Embed, as the gateway's provider list sees it.
pub struct Kraken;

impl Provider for Kraken {
    type Settings = KrakenSettings;
    const ID: ProviderId = ProviderId::Kraken;

    fn required_fields() -> &'static [&'static str] {
        &[
            "phone",
            "address.line1",
            "address.city",
            "address.postal_code",
            "nationalities",
            "employment",
            "terms.version",
        ]
    }

    fn unsupported_values(_user: &CanonicalUser) -> Vec<FieldError> {
        Vec::new()
    }

    fn webhook_signature() -> WebhookSignature {
        WebhookSignature {
            headers: &[(
                webhook::SIGNATURE_HEADER,
                "`t=<unix>,v1=<hex>`",
            )],
            scheme: "Kraken `X-Signature` (HMAC-SHA256 of `t.body`, 300 s tolerance)",
        }
    }

    fn enabled(settings: &KrakenSettings) -> bool {
        settings.enabled
    }

    fn base_url(settings: &KrakenSettings) -> &str {
        &settings.base_url
    }

    fn has_credentials(settings: &KrakenSettings) -> bool {
        settings.api_key.is_some()
    }

    fn connector(
        settings: &KrakenSettings,
        http: ProviderHttp,
    ) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(KrakenConnector::new(settings, http)?))
    }

    fn webhook_verifier(settings: &KrakenSettings) -> Result<Arc<dyn WebhookVerifier>, String> {
        match &settings.webhook_secret {
            Some(secret) => Ok(Arc::new(webhook::Verifier::new(secret)?)),
            None => Err("no providers.kraken.webhook_secret".to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_path_segment("AA45N8G4MLDYWAR7"), "AA45N8G4MLDYWAR7");
        assert_eq!(
            encode_path_segment("AA12 N84G ABCD EFGH"),
            "AA12%20N84G%20ABCD%20EFGH"
        );
        assert_eq!(
            encode_path_segment("a/b?c#d%e+é~._-"),
            "a%2Fb%3Fc%23d%25e%2B%C3%A9~._-"
        );
        assert_eq!(user_path("../x").unwrap(), "/b2b/users/..%2Fx");
        assert_eq!(
            verification_path("AA12 N84G ABCD EFGH").unwrap(),
            "/b2b/verifications/AA12%20N84G%20ABCD%20EFGH"
        );
        for bad in ["", ".", ".."] {
            assert_eq!(
                user_path(bad).unwrap_err().kind,
                ProviderErrorKind::Rejected
            );
            assert_eq!(
                verification_path(bad).unwrap_err().kind,
                ProviderErrorKind::Rejected
            );
        }
    }
}
