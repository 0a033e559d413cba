//! KillB API v2 (`killb.app/api/v2`). API reference: https://docs.killb.com/api-reference.
//!
//! Every call carries `Authorization: Bearer <JWT>` from [`auth::TokenManager`]; a 401 (or
//! `AUTH.0002`/`AUTH.0003`) invalidates the token, logs in again once and retries the call once
//! (https://docs.killb.com/resources/error-handling). Errors use KillB's envelope and never carry
//! its free-text messages unless they are recognisably PII-free. The hosted KYC flow is the
//! user's `complianceUrl`, read again for every verification session.

/// Login and the shared, single-flight access token.
pub mod auth;
/// Wire types, canonical ↔ KillB conversions, status mapping, error envelope.
pub mod transformers;

/// Documents, next actions and rejections in this provider's vocabulary.
pub mod verification;
/// `x-signature-sha256` webhook signatures.
pub mod webhook;

/// The `[providers.killb]` configuration section.
pub mod settings;
pub use settings::KillbSettings;

use std::sync::Arc;

use crate::domain::user::CanonicalUser;
use crate::domain::FieldError;
use crate::domain::verification::{NextAction, Rejection};
use crate::providers::provider::{DocumentFacts, DocumentPolicy, LinkFacts, Provider, WebhookSignature};
use crate::providers::webhook::{Headers, Verified, WebhookEvent, WebhookVerifier};

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use self::auth::TokenManager;
use self::transformers::{
    KillbCreateUser, KillbErrorEnvelope, KillbUpdateUser, KillbUser, KillbUserList,
};
use crate::domain::provider::ProviderId;
use crate::providers::connector::{
    BoxFuture, CallLog, Connector, CreateRequest, DocumentUpload, FieldPolicy, HostedSession,
    LinkRef, ProviderUserState, SessionRequest, SessionReuse, SubmittedDocument,
};
use crate::providers::error::{ProviderError, ProviderErrorKind};
use crate::providers::http::{ProviderHttp, RawResponse};
use crate::providers::multipart::{MultipartBody, MultipartForm};

/// `POST` (create) and `GET` (search) users.
pub const USERS_PATH: &str = "/api/v2/users";
/// `POST` a person's document (https://docs.killb.com/api-reference/user/add-person-user-document).
pub const PERSON_DOCUMENT_PATH: &str = "/api/v2/users/person/document";

/// The KillB connector.
pub struct KillbConnector {
    http: ProviderHttp,
    auth: TokenManager,
}

impl fmt::Debug for KillbConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillbConnector")
            .field("host", &self.http.host())
            .finish_non_exhaustive()
    }
}

fn required_secret(value: &Option<SecretString>, key: &str) -> Result<SecretString, String> {
    match value {
        Some(s) if !s.expose_secret().trim().is_empty() => Ok(s.clone()),
        _ => Err(format!(
            "providers.killb.{key} is required when the provider is enabled"
        )),
    }
}

/// `/api/v2/users/{id}`, the id percent-encoded as one path segment.
fn user_path(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{USERS_PATH}/{encoded}")
}

/// The unified error for a non-2xx answer, honouring `Retry-After`.
fn error_from(raw: &RawResponse) -> ProviderError {
    KillbErrorEnvelope::parse(&raw.body)
        .into_error(raw.status)
        .with_retry_after(raw.retry_after())
}

fn needs_relogin(raw: &RawResponse) -> bool {
    raw.status == 401
        || ((400..500).contains(&raw.status)
            && KillbErrorEnvelope::parse(&raw.body).is_auth_failure())
}

impl KillbConnector {
    /// Builds the connector; the email and password are required.
    pub fn new(settings: &KillbSettings, http: ProviderHttp) -> Result<Self, String> {
        let email = required_secret(&settings.email, "email")?;
        let password = required_secret(&settings.password, "password")?;
        Ok(Self {
            http,
            auth: TokenManager::new(email, password),
        })
    }

    /// Sends one authenticated request built by `build` (called again for the retry). On a
    /// 401 / `AUTH.0002` / `AUTH.0003` the token is dropped, a new login made and the request
    /// retried once; a second refusal is returned as is.
    async fn call<F>(
        &self,
        log: &CallLog,
        operation: &'static str,
        build: F,
    ) -> Result<RawResponse, ProviderError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let token = self.auth.token(&self.http, log).await?;
        let request = build(self.http.client()).bearer_auth(token.value.expose_secret());
        let raw = self.http.send(log, operation, request).await?;
        if !needs_relogin(&raw) {
            return Ok(raw);
        }
        self.auth.invalidate(&token).await;
        let token = self.auth.token(&self.http, log).await?;
        let request = build(self.http.client()).bearer_auth(token.value.expose_secret());
        self.http.send(log, operation, request).await
    }

    /// Reads a 2xx user answer, or maps the error.
    fn user_state(raw: &RawResponse) -> Result<ProviderUserState, ProviderError> {
        if !raw.is_success() {
            return Err(error_from(raw));
        }
        let user: KillbUser = raw.json()?;
        Ok(user.into())
    }

    /// Looks a user up by the gateway's external id (`GET /api/v2/users?type=PERSON&externalId=…`,
    /// https://github.com/Kill-B/sdk (`src/types/schema.ts`)), e.g. to adopt an account created by
    /// a request whose answer was lost [I]. Only exact `externalId` matches count; when several
    /// match, the active one wins, and several active ones are a conflict.
    pub async fn find_by_external_id(
        &self,
        external_id: &str,
        log: &CallLog,
    ) -> Result<Option<ProviderUserState>, ProviderError> {
        let mut url = reqwest::Url::parse(&self.http.url(USERS_PATH)).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::InvalidResponse,
                "providers.killb.base_url is not a valid URL",
            )
        })?;
        url.query_pairs_mut()
            .append_pair("type", "PERSON")
            .append_pair("externalId", external_id);
        let raw = self.call(log, "find_user", |c| c.get(url.clone())).await?;
        if !raw.is_success() {
            return Err(error_from(&raw));
        }
        let list: KillbUserList = raw.json()?;
        let mut matches: Vec<KillbUser> = list
            .users
            .into_iter()
            .filter(|u| u.external_id.as_deref() == Some(external_id))
            .collect();
        if matches.len() > 1 {
            matches.retain(|u| u.active != Some(false));
        }
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop().map(Into::into)),
            n => Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                format!("{n} active killb users carry this external id"),
            )),
        }
    }

    /// Soft-deletes the user (`DELETE /api/v2/users/{id}` → 200, no body; the
    /// user becomes `active: false`, and users with pending ramps cannot be deleted).
    pub async fn delete_user(
        &self,
        provider_user_id: &str,
        log: &CallLog,
    ) -> Result<(), ProviderError> {
        let url = self.http.url(&user_path(provider_user_id));
        let raw = self
            .call(log, "delete_user", |c| c.delete(url.as_str()))
            .await?;
        if raw.is_success() {
            Ok(())
        } else {
            Err(error_from(&raw))
        }
    }

    /// The exact `POST /api/v2/users/person/document` body for `upload` to the KillB user
    /// `user_id`, built on `form` (a fresh [`MultipartForm::new`] when sending; a fixed boundary
    /// pins it in tests): parts `userId`, `documentType`, `frontDocument`, then `backDocument`
    /// when the upload has a back, the files named `front.<ext>` / `back.<ext>` after their
    /// content type, never the caller's file name. `NotSupported` when KillB has no type for the
    /// document (see [`transformers::upload_document_type`]). Sizes are the policy's concern
    /// (checked when the document was uploaded), not re-checked here.
    pub fn document_body<'a>(
        user_id: &'a str,
        upload: &DocumentUpload<'a>,
        form: MultipartForm<'a>,
    ) -> Result<MultipartBody, ProviderError> {
        let document_type = transformers::upload_document_type(upload.document_type, upload.user)?;
        let mut form = form
            .text("userId", user_id.as_bytes())
            .text("documentType", document_type.as_str().as_bytes());
        for (part, side, file) in std::iter::once(("frontDocument", "front", upload.front))
            .chain(upload.back.map(|back| ("backDocument", "back", back)))
        {
            form = form.file(
                part,
                format!("{side}.{}", file.content_type.extension()),
                file.content_type.as_str(),
                file.bytes,
            );
        }
        form.finish().map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Rejected,
                format!("cannot build the document upload body: {e}"),
            )
        })
    }

    /// Uploads a document: 201 with no body (a JSON body is tolerated and not read: KillB's
    /// answer carries no id for the document).
    async fn submit(
        &self,
        link: LinkRef<'_>,
        upload: DocumentUpload<'_>,
        log: &CallLog,
    ) -> Result<SubmittedDocument, ProviderError> {
        let body = Self::document_body(link.provider_user_id, &upload, MultipartForm::new())?;
        let content_type = body.content_type();
        let bytes = body.into_bytes();
        let url = self.http.url(PERSON_DOCUMENT_PATH);
        let raw = self
            .call(log, "submit_document", |c| {
                c.post(url.as_str())
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone())
            })
            .await?;
        if raw.is_success() {
            Ok(SubmittedDocument {
                provider_document_id: None,
            })
        } else {
            Err(error_from(&raw))
        }
    }

    async fn create(
        &self,
        request: CreateRequest<'_>,
        log: &CallLog,
    ) -> Result<ProviderUserState, ProviderError> {
        let body = KillbCreateUser::try_from(request.user)?;
        let url = self.http.url(USERS_PATH);
        let raw = self
            .call(log, "create_user", |c| c.post(url.as_str()).json(&body))
            .await?;
        Self::user_state(&raw)
    }

    async fn get(
        &self,
        link: LinkRef<'_>,
        log: &CallLog,
    ) -> Result<ProviderUserState, ProviderError> {
        let url = self.http.url(&user_path(link.provider_user_id));
        let raw = self.call(log, "get_user", |c| c.get(url.as_str())).await?;
        Self::user_state(&raw)
    }

    /// KillB's hosted KYC flow is the user's `complianceUrl` (https://docs.killb.com/concepts/users):
    /// read again from `GET /api/v2/users/{id}` for every session, since KillB documents
    /// neither its lifetime nor whether it changes after use (so no `expires_at`).
    async fn hosted_session(
        &self,
        link: LinkRef<'_>,
        log: &CallLog,
    ) -> Result<HostedSession, ProviderError> {
        let url = self.http.url(&user_path(link.provider_user_id));
        let raw = self
            .call(log, "verification_session", |c| c.get(url.as_str()))
            .await?;
        if !raw.is_success() {
            return Err(error_from(&raw));
        }
        let user: KillbUser = raw.json()?;
        let compliance_url = user
            .compliance_url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::InvalidResponse,
                    "KillB answered the user without a complianceUrl",
                )
            })?;
        Ok(HostedSession {
            url: compliance_url,
            expires_at: None,
            provider_user_id: Some(user.id),
        })
    }

    async fn update(
        &self,
        link: LinkRef<'_>,
        user: &crate::domain::user::CanonicalUser,
        changed: &[String],
        log: &CallLog,
    ) -> Result<Option<ProviderUserState>, ProviderError> {
        let body = KillbUpdateUser::from_changes(user, changed)?;
        if body.is_empty() {
            return Ok(None);
        }
        let url = self.http.url(&user_path(link.provider_user_id));
        let raw = self
            .call(log, "update_user", |c| c.patch(url.as_str()).json(&body))
            .await?;
        Self::user_state(&raw).map(Some)
    }
}

/// How KillB treats a change to each canonical field
/// (https://docs.killb.com/api-reference/user/update-user).
pub fn field_policy(path: &str) -> FieldPolicy {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    match path {
        // `externalId` is a top-level `CreateUserDto` field; `UpdatePersonUserDto` holds only
        // the person `data` fields, so it cannot change.
        "external_id" => FieldPolicy::Refuse,
        // Every person field is optional on update.
        // https://docs.killb.com/guides/users/manage-users names email, phone, address, employment,
        // investment profile and KYC profile; name/DOB changes are not documented either way: sent,
        // and a refusal surfaces as an error.
        "email" | "phone" | "date_of_birth" | "nationalities" | "citizenship" => FieldPolicy::Send,
        "name.first" | "name.middle" | "name.last" => FieldPolicy::Send,
        "employment.status" | "employment.occupation" | "employment.employer_name" => {
            FieldPolicy::Send
        }
        // `expeditionDate` is the issue date; KillB has no expiry field.
        "identity_document.expires_on" => FieldPolicy::Ignore,
        // The document is sent whole (its inner fields stay required). A change may
        // move the user back to PENDING (https://docs.killb.com/guides/users/manage-users).
        _ if under("identity_document") || under("address") => FieldPolicy::Send,
        // `investmentProfile` needs all 13 fields, of which the canonical financial profile
        // fills four; a partial one is refused, so the change stays in the gateway.
        _ if under("financial_profile") => FieldPolicy::Ignore,
        // No KillB counterpart: industry, tax ids, terms, language, birth place, metadata,
        // type (individual only).
        _ => FieldPolicy::Ignore,
    }
}

impl Connector for KillbConnector {
    fn id(&self) -> ProviderId {
        ProviderId::Killb
    }

    /// KillB searches by `externalId`, which the gateway always sends.
    fn find_existing<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        Box::pin(self.find_by_external_id(&request.user.external_id, log))
    }

    fn field_policy(&self, path: &str) -> FieldPolicy {
        field_policy(path)
    }

    fn supports_deletion(&self) -> bool {
        true
    }

    fn delete_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(KillbConnector::delete_user(
            self,
            link.provider_user_id,
            log,
        ))
    }

    fn create_user<'a>(
        &'a self,
        request: CreateRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(self.create(request, log))
    }

    /// The `complianceUrl` is KillB's one current link per user: asked for every time.
    fn session_reuse(&self) -> SessionReuse {
        SessionReuse::AskEachTime
    }

    fn create_verification_session<'a>(
        &'a self,
        link: LinkRef<'a>,
        _request: SessionRequest<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<HostedSession, ProviderError>> {
        Box::pin(self.hosted_session(link, log))
    }

    fn get_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<ProviderUserState, ProviderError>> {
        Box::pin(self.get(link, log))
    }

    fn update_user<'a>(
        &'a self,
        link: LinkRef<'a>,
        user: &'a crate::domain::user::CanonicalUser,
        changed: &'a [String],
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<Option<ProviderUserState>, ProviderError>> {
        Box::pin(self.update(link, user, changed, log))
    }

    /// `POST /api/v2/users/person/document`, both sides of a card in one request.
    fn submit_document<'a>(
        &'a self,
        link: LinkRef<'a>,
        upload: DocumentUpload<'a>,
        log: &'a CallLog,
    ) -> BoxFuture<'a, Result<SubmittedDocument, ProviderError>> {
        Box::pin(self.submit(link, upload, log))
    }
}

/// KillB, as the gateway's provider list sees it.
pub struct Killb;

impl Provider for Killb {
    type Settings = KillbSettings;
    const ID: ProviderId = ProviderId::Killb;

    fn required_fields() -> &'static [&'static str] {
        &[
            "phone",
            "address.line1",
            "address.city",
            "address.region",
            "address.postal_code",
            "identity_document",
        ]
    }

    /// KillB has identity document types only for some countries (`document_type`).
    fn unsupported_values(user: &CanonicalUser) -> Vec<FieldError> {
        match user
            .identity_document
            .as_ref()
            .map(|d| transformers::document_type(d.doc_type, d.issuing_country))
        {
            Some(Err(e)) => vec![FieldError {
                field: e.field.to_owned(),
                code: "not_supported_by_provider",
                message: e.reason,
            }],
            _ => Vec::new(),
        }
    }

    fn webhook_signature() -> WebhookSignature {
        WebhookSignature {
            headers: &[(webhook::SIGNATURE_HEADER, "hex signature")],
            scheme: "KillB `x-signature-sha256` (HMAC-SHA256 of the body, or the SDK's SHA-256 of body + `_` + secret by configuration)",
        }
    }

    fn enabled(settings: &KillbSettings) -> bool {
        settings.enabled
    }

    fn base_url(settings: &KillbSettings) -> &str {
        &settings.base_url
    }

    fn has_credentials(settings: &KillbSettings) -> bool {
        settings.email.is_some()
    }

    fn connector(
        settings: &KillbSettings,
        http: ProviderHttp,
    ) -> Result<Arc<dyn Connector>, String> {
        Ok(Arc::new(KillbConnector::new(settings, http)?))
    }

    fn webhook_verifier(settings: &KillbSettings) -> Result<Arc<dyn WebhookVerifier>, String> {
        match &settings.webhook_secret {
            Some(secret) => Ok(Arc::new(webhook::Verifier::new(
                secret,
                settings.webhook_signature_scheme,
            )?)),
            None => Err("no providers.killb.webhook_secret".to_owned()),
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
    fn field_policies() {
        for p in [
            "email",
            "phone",
            "name.first",
            "name.middle",
            "name.last",
            "date_of_birth",
            "address.line1",
            "address.line2",
            "address.country",
            "identity_document.number",
            "identity_document.type",
            "identity_document.issued_on",
            "nationalities",
            "citizenship",
            "employment.status",
            "employment.occupation",
            "employment.employer_name",
        ] {
            assert_eq!(field_policy(p), FieldPolicy::Send, "{p}");
        }
        for p in [
            "tax_ids",
            "terms.version",
            "terms.accepted_at",
            "language",
            "birth_place.city",
            "metadata.tier",
            "type",
            "employment.industry",
            "identity_document.expires_on",
            "financial_profile.total_assets_usd",
            "addressbook",
        ] {
            assert_eq!(field_policy(p), FieldPolicy::Ignore, "{p}");
        }
        assert_eq!(field_policy("external_id"), FieldPolicy::Refuse);
    }

    #[test]
    fn user_ids_are_one_path_segment() {
        assert_eq!(user_path("3fa85f64-5717"), "/api/v2/users/3fa85f64-5717");
        assert_eq!(user_path("a/../b?x"), "/api/v2/users/a%2F..%2Fb%3Fx");
    }
}
