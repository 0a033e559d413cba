//! Carbn Connect wire types and their conversions from/to the canonical model, after Carbn's
//! API reference (https://docs.carbn.xyz/api-reference/user-management/update-user and the
//! other user-management pages, https://docs.carbn.xyz/api-reference/errors).
//!
//! Carbn publishes no OpenAPI file: these structs follow the update-user request example and the
//! get-user/get-all-users response examples; choices on undocumented points are marked [I]
//! (inference).
//! Every PII-carrying struct redacts its `Debug` output.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::domain::status::LinkStatus;
use crate::domain::user::{iso_date, CanonicalUser, IdentityDocument, IdentityDocumentType, TaxId};

/// `user_type` for a natural person (the only kind the gateway onboards in v1).
pub const USER_TYPE_INDIVIDUAL: &str = "individual";
/// `documents[].type` for tax ids (value seen in the update-user example: `tax_document`).
pub const TAX_DOCUMENT_TYPE: &str = "tax_document";
/// `documents[].name` for a tax id whose canonical `type` is unset [I].
pub const UNNAMED_TAX_ID: &str = "tax_id";
/// The `link_data` key under which the consent id is kept with the link.
pub const LINK_TNC_ID: &str = "tnc_id";
/// The `link_data` key under which non-null `rejection_reasons` are kept verbatim.
pub const LINK_REJECTION_REASONS: &str = "rejection_reasons";

fn redact<T>(v: &Option<T>) -> Option<&'static str> {
    v.as_ref().map(|_| "***")
}

// ---------------------------------------------------------------------------------------------
// Conversion errors

/// The canonical user lacks something Carbn needs (or holds something Carbn cannot take).
/// Raised before any HTTP call, so nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct TransformError {
    /// The canonical JSON path, e.g. `identity_document`.
    pub field: &'static str,
    pub message: &'static str,
}

impl TransformError {
    fn required(field: &'static str) -> Self {
        Self {
            field,
            message: "is required by carbn",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consent: `POST /onboarding/api/v1/tnc`
// (https://docs.carbn.xyz/api-reference/user-management/generate-user-consent)

/// `{"tnc_data":{"tnc_accepted":true,"accepted_at":"2024-01-01T12:00:00Z"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRequest {
    pub tnc_data: TncData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TncData {
    /// Always `true`: the gateway only asks for a consent once the user accepted the terms.
    pub tnc_accepted: bool,
    /// RFC 3339 in UTC (`Z`), from the canonical `terms.accepted_at`.
    pub accepted_at: String,
}

impl ConsentRequest {
    pub fn accepted_at(at: OffsetDateTime) -> Self {
        let accepted_at = at
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        Self {
            tnc_data: TncData {
                tnc_accepted: true,
                accepted_at,
            },
        }
    }
}

impl TryFrom<&CanonicalUser> for ConsentRequest {
    type Error = TransformError;

    fn try_from(user: &CanonicalUser) -> Result<Self, Self::Error> {
        user.terms
            .as_ref()
            .and_then(|t| t.accepted_at)
            .map(Self::accepted_at)
            .ok_or(TransformError::required("terms.accepted_at"))
    }
}

/// The consent id answered by `POST /tnc`. Documented as a bare JSON string holding a UUID
/// [C R-consent]; an object carrying `consent_id`, `tnc_id` or `id` is accepted too, in case
/// the undocumented real answer wraps it [I].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentId(pub String);

impl<'de> Deserialize<'de> for ConsentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let id = match &value {
            Value::String(s) => Some(s.as_str()),
            Value::Object(map) => ["consent_id", "tnc_id", "id"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str)),
            _ => None,
        };
        match id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => Ok(Self(id.to_owned())),
            None => Err(serde::de::Error::custom(
                "expected the consent id as a JSON string",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared request parts (https://docs.carbn.xyz/api-reference/user-management/update-user)

/// `identity{…}`: the primary identity document.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CarbnIdentity {
    /// ISO 3166-1 alpha-3.
    pub identity_country_code: String,
    pub identity_number: String,
    pub identity_document_name: String,
}

impl fmt::Debug for CarbnIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnIdentity")
            .field("identity_country_code", &self.identity_country_code)
            .field("identity_number", &"***")
            .field("identity_document_name", &self.identity_document_name)
            .finish()
    }
}

/// The Carbn `identity_document_name` for a canonical document type. `national_id` and
/// `permanent_residency_id` are values seen in Carbn's docs [C]; `passport` and
/// `drivers_license` are inferred from G-onboard ("national ID, passport") [I].
pub fn identity_document_name(t: IdentityDocumentType) -> &'static str {
    match t {
        IdentityDocumentType::Passport => "passport",
        IdentityDocumentType::NationalId => "national_id",
        IdentityDocumentType::DriversLicense => "drivers_license",
        IdentityDocumentType::ResidencePermit => "permanent_residency_id",
    }
}

impl From<&IdentityDocument> for CarbnIdentity {
    /// `issued_on` / `expires_on` have no Carbn field and are not sent.
    fn from(d: &IdentityDocument) -> Self {
        Self {
            identity_country_code: d.issuing_country.alpha3().to_owned(),
            identity_number: d.number.clone(),
            identity_document_name: identity_document_name(d.doc_type).to_owned(),
        }
    }
}

/// `documents[]{name, type, issuing_country, document_number}`: supporting documents (metadata
/// only); the gateway sends its tax ids here [I].
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CarbnDocument {
    /// The canonical tax id `type` (`steuer_id`, …), or `tax_id` when unset [I].
    pub name: String,
    /// Always `tax_document`.
    #[serde(rename = "type")]
    pub doc_type: String,
    /// ISO 3166-1 alpha-3.
    pub issuing_country: String,
    pub document_number: String,
}

impl fmt::Debug for CarbnDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnDocument")
            .field("name", &self.name)
            .field("type", &self.doc_type)
            .field("issuing_country", &self.issuing_country)
            .field("document_number", &"***")
            .finish()
    }
}

impl From<&TaxId> for CarbnDocument {
    fn from(t: &TaxId) -> Self {
        Self {
            name: t
                .tax_type
                .clone()
                .unwrap_or_else(|| UNNAMED_TAX_ID.to_owned()),
            doc_type: TAX_DOCUMENT_TYPE.to_owned(),
            issuing_country: t.issuing_country.alpha3().to_owned(),
            document_number: t.number.clone(),
        }
    }
}

fn documents(user: &CanonicalUser) -> Vec<CarbnDocument> {
    user.tax_ids
        .iter()
        .flatten()
        .map(CarbnDocument::from)
        .collect()
}

/// `address{…}` as sent. `line2` and `sub_division` are `Option<Option<_>>`: absent (`None`)
/// is not sent; `Some(None)` is sent as `null` (an update clearing the value).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CarbnAddress {
    pub line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<Option<String>>,
    pub city: String,
    /// The canonical `address.region` [I].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_division: Option<Option<String>>,
    /// ISO 3166-1 alpha-3.
    pub country: String,
    pub postal_code: String,
}

impl fmt::Debug for CarbnAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnAddress")
            .field("line1", &"***")
            .field("line2", &self.line2.as_ref().map(redact))
            .field("city", &"***")
            .field("sub_division", &self.sub_division)
            .field("country", &self.country)
            .field("postal_code", &"***")
            .finish()
    }
}

impl CarbnAddress {
    /// The full address from the canonical one; `line2`/`sub_division` are sent when set, and
    /// as `null` when unset and `clear_*` says the update removed them.
    fn from_canonical(
        user: &CanonicalUser,
        clear_line2: bool,
        clear_sub_division: bool,
    ) -> Result<Self, TransformError> {
        let a = &user.address;
        let nullable = |v: &Option<String>, clear: bool| match v {
            Some(s) => Some(Some(s.clone())),
            None if clear => Some(None),
            None => None,
        };
        Ok(Self {
            line1: a
                .line1
                .clone()
                .ok_or(TransformError::required("address.line1"))?,
            line2: nullable(&a.line2, clear_line2),
            city: a
                .city
                .clone()
                .ok_or(TransformError::required("address.city"))?,
            sub_division: nullable(&a.region, clear_sub_division),
            country: a.country.alpha3().to_owned(),
            postal_code: a
                .postal_code
                .clone()
                .ok_or(TransformError::required("address.postal_code"))?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Create user: `POST /onboarding/api/v1/users` ([I] contract = the update-user field set)

/// The create body. Field order follows the update-user example. `metadata` and `sharing_consent`
/// are never sent: canonical metadata is caller-owned (README "The API in short"), and the meaning
/// of `sharing_consent` is undocumented, so the gateway claims no such consent [I].
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CarbnCreateUser {
    pub first_name: String,
    pub last_name: String,
    pub email_address: String,
    /// E.164.
    pub phone_number: String,
    /// `individual`.
    pub user_type: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// From `POST /tnc`; `None` only between the conversion and the consent call (the
    /// connector always sets it before sending; Carbn refuses a create without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
    pub identity: CarbnIdentity,
    /// Tax ids; omitted when the user has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<CarbnDocument>,
    pub address: CarbnAddress,
}

impl CarbnCreateUser {
    pub fn with_consent_id(mut self, consent_id: impl Into<String>) -> Self {
        self.consent_id = Some(consent_id.into());
        self
    }
}

impl fmt::Debug for CarbnCreateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnCreateUser")
            .field("first_name", &"***")
            .field("last_name", &"***")
            .field("email_address", &"***")
            .field("phone_number", &"***")
            .field("user_type", &self.user_type)
            .field("date_of_birth", &"***")
            .field("consent_id", &self.consent_id)
            .field("identity", &self.identity)
            .field("documents", &self.documents)
            .field("address", &self.address)
            .finish()
    }
}

impl TryFrom<&CanonicalUser> for CarbnCreateUser {
    type Error = TransformError;

    /// Needs (README "Providers"): the base set, `phone`, `address.line1`,
    /// `address.city`, `address.postal_code`, `identity_document`. `name.middle` has no Carbn
    /// field and is dropped [I]; the consent id is added with [`Self::with_consent_id`].
    fn try_from(user: &CanonicalUser) -> Result<Self, Self::Error> {
        let phone = user
            .phone
            .as_ref()
            .ok_or(TransformError::required("phone"))?;
        let identity = user
            .identity_document
            .as_ref()
            .ok_or(TransformError::required("identity_document"))?;
        Ok(Self {
            first_name: user.name.first.clone(),
            last_name: user.name.last.clone(),
            email_address: user.email.as_str().to_owned(),
            phone_number: phone.as_str().to_owned(),
            user_type: USER_TYPE_INDIVIDUAL.to_owned(),
            date_of_birth: iso_date::format(user.date_of_birth.date()),
            consent_id: None,
            identity: CarbnIdentity::from(identity),
            documents: documents(user),
            address: CarbnAddress::from_canonical(user, false, false)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Update user: `PUT /onboarding/api/v1/users/{id}` — partial despite the verb
// (https://docs.carbn.xyz/api-reference/user-management/update-user)

/// The partial update body: only the top-level Carbn fields a change touched are present.
/// `identity` and `address` go out whole when any of their parts changed (Carbn's handling of
/// a partial nested object is undocumented [I]); `documents` goes out whole (the array is
/// replaced), `[]` when the tax ids were removed.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
pub struct CarbnUpdateUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// A fresh consent when `terms.accepted_at` changed (set by the connector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<CarbnIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<CarbnDocument>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<CarbnAddress>,
}

impl fmt::Debug for CarbnUpdateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnUpdateUser")
            .field("first_name", &redact(&self.first_name))
            .field("last_name", &redact(&self.last_name))
            .field("email_address", &redact(&self.email_address))
            .field("phone_number", &redact(&self.phone_number))
            .field("user_type", &self.user_type)
            .field("date_of_birth", &redact(&self.date_of_birth))
            .field("consent_id", &self.consent_id)
            .field("identity", &self.identity)
            .field("documents", &self.documents)
            .field("address", &self.address)
            .finish()
    }
}

impl CarbnUpdateUser {
    /// Builds the body from the (already updated) canonical user and the changed canonical
    /// paths. Paths without a Carbn counterpart are skipped (the connector's `field_policy`
    /// says `Ignore` for them). Removing a value Carbn requires (`phone`, `identity_document`,
    /// `address.line1`…) is an error: a partial update cannot express it.
    pub fn from_changes(user: &CanonicalUser, changed: &[String]) -> Result<Self, TransformError> {
        let mut body = Self::default();
        let touched = |prefix: &str| {
            changed.iter().any(|p| {
                p == prefix
                    || p.strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        if touched("name.first") {
            body.first_name = Some(user.name.first.clone());
        }
        if touched("name.last") {
            body.last_name = Some(user.name.last.clone());
        }
        if touched("email") {
            body.email_address = Some(user.email.as_str().to_owned());
        }
        if touched("phone") {
            let phone = user
                .phone
                .as_ref()
                .ok_or(TransformError::required("phone"))?;
            body.phone_number = Some(phone.as_str().to_owned());
        }
        if touched("type") {
            body.user_type = Some(USER_TYPE_INDIVIDUAL.to_owned());
        }
        if touched("date_of_birth") {
            body.date_of_birth = Some(iso_date::format(user.date_of_birth.date()));
        }
        let identity_changed = ["type", "number", "issuing_country"]
            .iter()
            .any(|leaf| touched(&format!("identity_document.{leaf}")))
            || changed.iter().any(|p| p == "identity_document");
        if identity_changed {
            let doc = user
                .identity_document
                .as_ref()
                .ok_or(TransformError::required("identity_document"))?;
            body.identity = Some(CarbnIdentity::from(doc));
        }
        if touched("tax_ids") {
            body.documents = Some(documents(user));
        }
        let address_changed = ["line1", "line2", "city", "region", "postal_code", "country"]
            .iter()
            .any(|leaf| touched(&format!("address.{leaf}")));
        if address_changed {
            body.address = Some(CarbnAddress::from_canonical(
                user,
                touched("address.line2"),
                touched("address.region"),
            )?);
        }
        Ok(body)
    }

    /// Nothing to send (every change had no Carbn counterpart).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

// ---------------------------------------------------------------------------------------------
// User object (https://docs.carbn.xyz/api-reference/user-management/get-user-details): answer of
// create, get, list and update

/// `address` as Carbn returns it (`region` and `sub_division` both present, usually one null).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
pub struct CarbnAddressResponse {
    #[serde(default)]
    pub line1: Option<String>,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub sub_division: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
}

impl fmt::Debug for CarbnAddressResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnAddressResponse")
            .field("line1", &redact(&self.line1))
            .field("line2", &redact(&self.line2))
            .field("city", &redact(&self.city))
            .field("country", &self.country)
            .field("region", &self.region)
            .field("sub_division", &self.sub_division)
            .field("postal_code", &redact(&self.postal_code))
            .finish()
    }
}

/// The Carbn user. Only `id` and `status` are required; everything else is optional because
/// the examples are the only contract (unknown fields are ignored).
#[derive(Clone, PartialEq, Deserialize)]
pub struct CarbnUser {
    pub id: String,
    pub status: String,
    /// Non-null shape undocumented: kept as raw JSON.
    #[serde(default)]
    pub requirements: Option<Value>,
    /// The status guide's name for `requirements` [!]: read when `requirements` is null or absent.
    #[serde(default)]
    pub requirements_due: Option<Value>,
    /// Non-null shape undocumented: kept as raw JSON.
    #[serde(default)]
    pub rejection_reasons: Option<Value>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub date_of_birth: Option<String>,
    #[serde(default)]
    pub address: Option<CarbnAddressResponse>,
    /// `[{name, type}]`, kept raw.
    #[serde(default)]
    pub documents: Option<Value>,
    /// Odd format (`Thu, 04 May 2023 15:40:40.832827000 UTC +00:00`): not used for ordering.
    #[serde(default)]
    pub created_at: Option<Value>,
    #[serde(default)]
    pub updated_at: Option<Value>,
}

impl fmt::Debug for CarbnUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarbnUser")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("requirements", &self.requirements)
            .field("requirements_due", &self.requirements_due)
            .field("rejection_reasons", &self.rejection_reasons)
            .field("first_name", &redact(&self.first_name))
            .field("last_name", &redact(&self.last_name))
            .field("email_address", &redact(&self.email_address))
            .field("phone_number", &redact(&self.phone_number))
            .field("date_of_birth", &redact(&self.date_of_birth))
            .field("address", &self.address)
            .field("documents", &self.documents)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Carbn `status` → canonical (README "Providers", status mapping;
/// https://docs.carbn.xyz/documentation/developer-platform/users/compliance/user-status). `paused`
/// is accepted although only the description, not the rendered enum, lists it [!]. Anything else is
/// `None`: the link keeps its last status and stores the raw value.
pub fn map_status(status: &str) -> Option<LinkStatus> {
    match status {
        "under_review" => Some(LinkStatus::UnderReview),
        "incomplete" => Some(LinkStatus::ActionRequired),
        "active" => Some(LinkStatus::Approved),
        "rejected" => Some(LinkStatus::Rejected),
        "paused" => Some(LinkStatus::Suspended),
        "offboarded" => Some(LinkStatus::Closed),
        _ => None,
    }
}

/// A raw JSON value as list items: an array's elements, `null` as nothing, anything else as
/// one item.
fn items(v: &Option<Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

impl CarbnUser {
    /// The outstanding items, verbatim: `requirements` (or `requirements_due` when that is
    /// the one given), followed by `rejection_reasons`.
    pub fn requirements(&self) -> Vec<Value> {
        let reqs = match &self.requirements {
            None | Some(Value::Null) => &self.requirements_due,
            some => some,
        };
        let mut out = items(reqs);
        out.extend(items(&self.rejection_reasons));
        out
    }

    /// `link_data` for this answer: `base` (what the link already keeps, e.g. `tnc_id`) plus
    /// `rejection_reasons` verbatim when non-null (so they stay distinguishable from
    /// requirements), and without a stale one when null.
    pub fn link_data(&self, base: &Map<String, Value>) -> Map<String, Value> {
        let mut data = base.clone();
        match &self.rejection_reasons {
            None | Some(Value::Null) => {
                data.shift_remove(LINK_REJECTION_REASONS);
            }
            Some(v) => {
                data.insert(LINK_REJECTION_REASONS.to_owned(), v.clone());
            }
        }
        data
    }
}

// ---------------------------------------------------------------------------------------------
// Hosted onboarding session
// (https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session)

/// `POST /users/session`: all three fields are required. Field order is the wire order.
#[derive(Serialize)]
pub struct SessionRequest<'a> {
    pub email: &'a str,
    pub currency: &'a str,
    pub redirect_url: &'a str,
}

impl fmt::Debug for SessionRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRequest")
            .field("email", &"***")
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

/// `{onboarding_url, user_id}`. The URL carries a session token.
#[derive(Deserialize)]
pub struct SessionResponse {
    pub onboarding_url: String,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl fmt::Debug for SessionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionResponse")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// When the session in `onboarding_url` expires: the `exp` claim (seconds since the epoch) of
/// the JWT in its `session` query parameter, read without verifying the token (the gateway has
/// no key for it, and only uses the time to decide when to stop reusing the session). Carbn
/// documents no lifetime; `None` when there is no such parameter, claim, or readable token.
pub fn session_expiry(onboarding_url: &str) -> Option<OffsetDateTime> {
    use base64::Engine as _;
    let url = url::Url::parse(onboarding_url).ok()?;
    let token = url
        .query_pairs()
        .find(|(name, _)| name == "session")
        .map(|(_, value)| value.into_owned())?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp
        .as_i64()
        .or_else(|| exp.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?;
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

// ---------------------------------------------------------------------------------------------
// Error envelope (https://docs.carbn.xyz/api-reference/errors)

/// `{"code":"4030","httpMethod","message","path","requestId","resourcePath"}` (API Gateway).
/// `code` is documented as a string; a number is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarbnError {
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
    #[serde(default)]
    pub http_method: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub resource_path: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table() {
        for (raw, want) in [
            ("under_review", Some(LinkStatus::UnderReview)),
            ("incomplete", Some(LinkStatus::ActionRequired)),
            ("active", Some(LinkStatus::Approved)),
            ("rejected", Some(LinkStatus::Rejected)),
            ("paused", Some(LinkStatus::Suspended)),
            ("offboarded", Some(LinkStatus::Closed)),
            ("ACTIVE", None),
            ("pending", None),
            ("", None),
        ] {
            assert_eq!(map_status(raw), want, "{raw}");
        }
    }

    #[test]
    fn consent_id_shapes() {
        let id: ConsentId = serde_json::from_value(json!("abc")).unwrap();
        assert_eq!(id.0, "abc");
        let id: ConsentId = serde_json::from_value(json!({"consent_id": "x"})).unwrap();
        assert_eq!(id.0, "x");
        assert!(serde_json::from_value::<ConsentId>(json!("")).is_err());
        assert!(serde_json::from_value::<ConsentId>(json!(12)).is_err());
    }

    #[test]
    fn error_code_may_be_a_number() {
        let e: CarbnError = serde_json::from_value(json!({"code": 4030})).unwrap();
        assert_eq!(e.code.as_deref(), Some("4030"));
        let e: CarbnError = serde_json::from_value(json!({})).unwrap();
        assert_eq!(e.code, None);
    }

    #[test]
    fn requirements_fall_back_to_requirements_due() {
        let u: CarbnUser = serde_json::from_value(json!({
            "id": "u", "status": "incomplete", "requirements": null,
            "requirements_due": ["proof_of_address"], "rejection_reasons": "odd"
        }))
        .unwrap();
        assert_eq!(
            u.requirements(),
            vec![json!("proof_of_address"), json!("odd")]
        );
    }
}
