//! Kraken Embed wire types (`/b2b/users…`, `/b2b/verifications…`) and their conversions from
//! and to the canonical model (https://docs.kraken.com/api/docs/embed-api).
//!
//! Serialisation is byte-significant: the connector signs the exact bytes it sends, and the field
//! order here is the order on the wire (it reproduces the locally derived signing vector V2; Kraken
//! publishes no Embed-specific vector). Absent optional fields are omitted, never sent as `null`,
//! except in an update that clears an optional field (see [`UpdateUserRequest`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::UtcOffset;

use crate::domain::status::LinkStatus;
use crate::domain::user::{
    iso_date, CanonicalUser, CountryCode, EmploymentStatus, IdentityDocumentType, Industry,
};
use crate::domain::verification::{DocumentType, VerificationAttestation};
use crate::providers::connector::{DocumentFile, DocumentUpload, FieldPolicy, ProviderUserState};
use crate::providers::error::{ProviderError, ProviderErrorKind};

// ---------------------------------------------------------------------------------------------
// Requests

/// `full_name` (create and update). Kraken's PATCH is documented as "only fields included are
/// updated" without saying whether nested objects merge, so updates always send the whole
/// object.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct FullName {
    pub first_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    pub last_name: String,
}

/// `residence` (create and update); always sent whole, like [`FullName`].
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct Residence {
    pub line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// From the canonical `address.region` [I].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    pub country: String,
}

/// One `tax_ids[]` entry. The canonical `type` has no Kraken field.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct KrakenTaxId {
    pub id: String,
    pub issuing_country: String,
}

/// `client_identifier`, the variants the gateway can fill.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct ClientIdentifier {
    #[serde(rename = "type")]
    pub id_type: &'static str,
    pub value: String,
}

/// `POST /b2b/users`. Field order is the wire order.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct CreateUserRequest {
    pub email: String,
    pub external_id: String,
    pub tos_version_accepted: u32,
    pub full_name: FullName,
    pub date_of_birth: String,
    pub residence: Residence,
    pub phone: String,
    pub nationalities: Vec<String>,
    pub occupation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_ids: Option<Vec<KrakenTaxId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_identifier: Option<ClientIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CreateUserRequest(***)")
    }
}

/// `PATCH /b2b/users/{user}`: only the changed fields.
///
/// Fields Kraken requires at creation are `Option<T>`: present when changed, never `null`.
/// Optional fields are `Option<Option<T>>`: absent when unchanged, `Some(None)` → `null` when
/// the canonical value was cleared (the reference documents every update field as nullable; sending
/// `null` keeps Kraken from silently holding a value the gateway no longer has).
#[derive(Serialize, Clone, PartialEq, Eq, Default)]
pub struct UpdateUserRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_version_accepted: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<FullName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_of_birth: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_of_birth: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residence: Option<Residence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationalities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_ids: Option<Option<Vec<KrakenTaxId>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occupation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_identifier: Option<ClientIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Option<String>>,
}

impl fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpdateUserRequest(***)")
    }
}

impl UpdateUserRequest {
    /// Whether nothing would be sent (every change was to a field without Kraken counterpart).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical → Kraken

/// A field Kraken requires is absent from the canonical user. The gateway checks provider
/// requirements before a create, so this is a defect upstream, reported rather than panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is required by kraken")]
pub struct MissingField {
    /// The canonical JSON path, e.g. `address.line1`.
    pub field: &'static str,
}

fn full_name(user: &CanonicalUser) -> FullName {
    FullName {
        first_name: user.name.first.clone(),
        middle_name: user.name.middle.clone(),
        last_name: user.name.last.clone(),
    }
}

fn residence(user: &CanonicalUser) -> Result<Residence, MissingField> {
    let a = &user.address;
    let need = |v: &Option<String>, field| v.clone().ok_or(MissingField { field });
    Ok(Residence {
        line1: need(&a.line1, "address.line1")?,
        line2: a.line2.clone(),
        city: need(&a.city, "address.city")?,
        postal_code: need(&a.postal_code, "address.postal_code")?,
        province: a.region.clone(),
        country: a.country.as_str().to_owned(),
    })
}

fn nationalities(user: &CanonicalUser) -> Option<Vec<String>> {
    user.nationalities
        .as_ref()
        .filter(|n| !n.is_empty())
        .map(|n| n.iter().map(|c| c.as_str().to_owned()).collect())
}

fn tax_ids(user: &CanonicalUser) -> Option<Vec<KrakenTaxId>> {
    user.tax_ids.as_ref().filter(|t| !t.is_empty()).map(|ids| {
        ids.iter()
            .map(|t| KrakenTaxId {
                id: t.number.clone(),
                issuing_country: t.issuing_country.as_str().to_owned(),
            })
            .collect()
    })
}

/// Kraken's `occupation` enum mixes industries and employment statuses. The canonical
/// `employment.industry` is exactly Kraken's industries, so it wins when present (it says more);
/// otherwise the status maps onto Kraken's status-like values, `retired` and `other` onto
/// `other` (Kraken has no `retired` [I]).
pub fn occupation(status: EmploymentStatus, industry: Option<Industry>) -> &'static str {
    if let Some(industry) = industry {
        return industry.as_str();
    }
    match status {
        EmploymentStatus::Employed => "employed",
        EmploymentStatus::SelfEmployed => "self_employed",
        EmploymentStatus::Student => "student",
        EmploymentStatus::Unemployed => "unemployed",
        EmploymentStatus::Retired | EmploymentStatus::Other => "other",
    }
}

/// `client_identifier` from the identity document, when one of Kraken's typed variants fits.
///
/// Choice: a passport → `{type:"passport", value:number}`, a national id card →
/// `{type:"national_id", value:number}`; driving licences and residence permits have no
/// variant and are omitted (not `{type:"unknown"}`, which would assert something we don't
/// know). The MiFIR-style `concat` identifier needs the national rules of each country and a
/// calculation timestamp we do not have; `tax_id` is not used because the canonical `tax_ids`
/// already travel in Kraken's `tax_ids` field and which one is the national client identifier
/// is country-specific. A document number is the most direct identifier the user has proved.
pub fn client_identifier(user: &CanonicalUser) -> Option<ClientIdentifier> {
    let doc = user.identity_document.as_ref()?;
    let id_type = match doc.doc_type {
        IdentityDocumentType::Passport => "passport",
        IdentityDocumentType::NationalId => "national_id",
        IdentityDocumentType::DriversLicense | IdentityDocumentType::ResidencePermit => {
            return None
        }
    };
    Some(ClientIdentifier {
        id_type,
        value: doc.number.clone(),
    })
}

impl TryFrom<&CanonicalUser> for CreateUserRequest {
    type Error = MissingField;

    fn try_from(user: &CanonicalUser) -> Result<Self, MissingField> {
        let employment = user.employment.as_ref().ok_or(MissingField {
            field: "employment",
        })?;
        Ok(Self {
            email: user.email.as_str().to_owned(),
            external_id: user.external_id.clone(),
            tos_version_accepted: user.terms.as_ref().and_then(|t| t.version).ok_or(
                MissingField {
                    field: "terms.version",
                },
            )?,
            full_name: full_name(user),
            date_of_birth: iso_date::format(user.date_of_birth.date()),
            residence: residence(user)?,
            phone: user
                .phone
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .ok_or(MissingField { field: "phone" })?,
            nationalities: nationalities(user).ok_or(MissingField {
                field: "nationalities",
            })?,
            occupation: occupation(employment.status, employment.industry),
            employer_name: employment.employer_name.clone(),
            city_of_birth: user.birth_place.as_ref().and_then(|b| b.city.clone()),
            country_of_birth: user
                .birth_place
                .as_ref()
                .map(|b| b.country.as_str().to_owned()),
            tax_ids: tax_ids(user),
            client_identifier: client_identifier(user),
            language: user.language.map(|l| l.as_str().to_owned()),
        })
    }
}

/// How Kraken treats a change to a canonical field (JSON path from `changed_paths`).
///
/// - `email`, `external_id`: not in Kraken's update body
///   (https://docs.kraken.com/api/docs/embed-api) → `Refuse`.
/// - Fields with a Kraken counterpart → `Send`; `employment.status`/`industry` feed
///   `occupation`; `identity_document.type`/`number` feed `client_identifier` (sent at
///   creation, so a change is sent too, or Kraken would keep a stale identifier).
/// - No counterpart → `Ignore`: `type`, `citizenship`, `financial_profile.*`, `metadata.*`,
///   `employment.occupation` (free-text job title), `terms.accepted_at`, the other
///   `identity_document.*` fields, and any path this connector does not know.
pub fn field_policy(path: &str) -> FieldPolicy {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    match (head, rest) {
        ("email" | "external_id", _) => FieldPolicy::Refuse,
        ("phone" | "date_of_birth" | "nationalities" | "tax_ids" | "language", None) => {
            FieldPolicy::Send
        }
        ("name" | "address" | "birth_place", _) => FieldPolicy::Send,
        ("employment", None | Some("status" | "industry" | "employer_name")) => FieldPolicy::Send,
        ("terms", None | Some("version")) => FieldPolicy::Send,
        ("identity_document", None | Some("type" | "number")) => FieldPolicy::Send,
        _ => FieldPolicy::Ignore,
    }
}

impl UpdateUserRequest {
    /// The update body for the `changed` canonical paths of `user` (the user after the change).
    /// Paths whose policy is not `Send` contribute nothing.
    pub fn from_changes(user: &CanonicalUser, changed: &[String]) -> Result<Self, MissingField> {
        let mut req = Self::default();
        for path in changed {
            if field_policy(path) != FieldPolicy::Send {
                continue;
            }
            let (head, rest) = match path.split_once('.') {
                Some((head, rest)) => (head, Some(rest)),
                None => (path.as_str(), None),
            };
            match (head, rest) {
                ("name", _) => req.full_name = Some(full_name(user)),
                ("date_of_birth", _) => {
                    req.date_of_birth = Some(iso_date::format(user.date_of_birth.date()))
                }
                ("birth_place", rest) => {
                    let place = user.birth_place.as_ref();
                    if matches!(rest, None | Some("city")) {
                        req.city_of_birth = Some(place.and_then(|b| b.city.clone()));
                    }
                    if matches!(rest, None | Some("country")) {
                        req.country_of_birth = Some(place.map(|b| b.country.as_str().to_owned()));
                    }
                }
                ("nationalities", _) => req.nationalities = nationalities(user),
                ("address", _) => req.residence = Some(residence(user)?),
                ("phone", _) => req.phone = user.phone.as_ref().map(|p| p.as_str().to_owned()),
                ("tax_ids", _) => req.tax_ids = Some(tax_ids(user)),
                ("employment", rest) => {
                    let employment = user.employment.as_ref();
                    if matches!(rest, None | Some("status" | "industry")) {
                        req.occupation = employment.map(|e| occupation(e.status, e.industry));
                    }
                    if matches!(rest, None | Some("employer_name")) {
                        req.employer_name = Some(employment.and_then(|e| e.employer_name.clone()));
                    }
                }
                ("language", _) => {
                    req.language = Some(user.language.map(|l| l.as_str().to_owned()))
                }
                ("terms", _) => {
                    req.tos_version_accepted = user.terms.as_ref().and_then(|t| t.version)
                }
                // A removed or non-identifying document leaves Kraken's identifier as it is:
                // we have no better value to send, and `null` would erase a proved one.
                ("identity_document", _) => req.client_identifier = client_identifier(user),
                _ => {}
            }
        }
        Ok(req)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

/// `{"result": T}` (success) with the error arrays some answers carry.
#[derive(Deserialize, Debug, Clone)]
pub struct Envelope<T> {
    pub result: Option<T>,
    #[serde(default)]
    pub error: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// `result` of `POST /b2b/users` (and `POST /b2b/subaccounts`).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateUserResult {
    /// The IIBAN.
    pub user: String,
}

/// `status` of a Kraken user: `{state, required_actions?, reasons?}`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct UserStatus {
    pub state: String,
    #[serde(default)]
    pub required_actions: Vec<Value>,
    #[serde(default)]
    pub reasons: Vec<Value>,
}

/// `result` of `GET /b2b/users/{user}`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct GetUserResult {
    pub user: String,
    #[serde(default)]
    pub user_type: Option<String>,
    pub status: UserStatus,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
}

/// The error envelope `{"error":["ENexus:…"], "errors"?:[…]}` (the exact shape is not documented
/// publicly), read tolerantly: any shape that is not this yields no code.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

impl ErrorEnvelope {
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The provider's code: the first `error[]` string (`ENexus:Invalid user ID`), else the
    /// first `errors[]` item that is a string or carries a string `code`/`message`.
    pub fn code(&self) -> Option<String> {
        let first_string = |items: &[Value]| {
            items.iter().find_map(|item| match item {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Object(o) => ["code", "message", "error"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_str))
                    .map(str::to_owned),
                _ => None,
            })
        };
        first_string(&self.error).or_else(|| first_string(&self.errors))
    }
}

/// The canonical status for a Kraken status (README "Providers"):
/// - `ok` without actions → `approved`;
/// - `ok` with any `verification` or `provide_details` action → `action_required`;
/// - `ok` with only `wait` actions → `under_review`;
/// - `disabled` → `suspended`; `closed` → `closed`;
/// - anything else (an unknown state, or `ok` with only unknown action types) → `None`: the
///   link keeps its last status and the raw value is stored for review.
pub fn map_status(status: &UserStatus) -> Option<LinkStatus> {
    match status.state.as_str() {
        "ok" => {
            let types: Vec<Option<&str>> = status
                .required_actions
                .iter()
                .map(|a| a.get("action_type").and_then(Value::as_str))
                .collect();
            if types.is_empty() {
                Some(LinkStatus::Approved)
            } else if types
                .iter()
                .any(|t| matches!(t, Some("verification" | "provide_details")))
            {
                Some(LinkStatus::ActionRequired)
            } else if types.iter().all(|t| *t == Some("wait")) {
                Some(LinkStatus::UnderReview)
            } else {
                None
            }
        }
        "disabled" => Some(LinkStatus::Suspended),
        "closed" => Some(LinkStatus::Closed),
        _ => None,
    }
}

impl GetUserResult {
    /// The gateway's view of this answer. `required_actions` go to `requirements` as
    /// received; the state's `reasons` (disabled/closed) and `user_type` are kept in
    /// `link_data`. Kraken stamps no status time, so `observed_at` is `None`.
    pub fn into_state(self) -> ProviderUserState {
        let status = map_status(&self.status);
        let mut link_data = Map::new();
        if !self.status.reasons.is_empty() {
            link_data.insert("reasons".into(), Value::Array(self.status.reasons));
        }
        if let Some(user_type) = self.user_type {
            link_data.insert("user_type".into(), Value::String(user_type));
        }
        ProviderUserState {
            provider_user_id: self.user,
            provider_status: self.status.state,
            status,
            requirements: self.status.required_actions,
            link_data,
            observed_at: None,
            external_id: self.external_id,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verifications: `POST /b2b/verifications/{user}`, multipart
// (https://kraken-sandbox.mintlify.app/api-reference/verifications/submit-verification; the
// per-type `metadata` models as Privy's proxy of Embed lists them,
// https://github.com/privy-io/rust-sdk `openapi.json`)

/// `identity` of an `identity_document` verification: who the document names.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub full_name: FullName,
    pub date_of_birth: String,
}

/// The fields every verification type carries: who checked the person, and when.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct VerificationAttestationFields {
    pub verifier: String,
    /// RFC 3339, in UTC.
    pub verified_at: String,
    /// The vendor's id of its check (the canonical `reference`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_verification_id: Option<String>,
}

/// `metadata` of `type=identity_document`. Field order is the wire order.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct IdentityDocumentMetadata {
    pub identity: VerifiedIdentity,
    /// `passport` | `id_card` | `drivers_license` | `residence_card`.
    pub document_type: &'static str,
    pub document_number: String,
    pub issuing_country: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(flatten)]
    pub attestation: VerificationAttestationFields,
    /// The document's expiry (Kraken does not say whether it means the document's or the
    /// check's; the document's is the one the gateway knows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
}

/// `metadata` of `type=residence_document`.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct ResidenceDocumentMetadata {
    pub address: Residence,
    pub document_type: &'static str,
    #[serde(flatten)]
    pub attestation: VerificationAttestationFields,
}

/// `metadata` of `type=selfie`.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct SelfieMetadata {
    pub selfie_type: &'static str,
    #[serde(flatten)]
    pub attestation: VerificationAttestationFields,
}

/// `result` of `POST /b2b/verifications/{user}`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VerificationResult {
    pub verification_id: String,
}

/// One verification ready for the multipart body: its `type`, its `metadata` JSON string and
/// its file parts (part name, file), in wire order. `Debug` shows neither metadata nor bytes.
pub struct VerificationParts<'a> {
    pub verification_type: &'static str,
    pub metadata: String,
    pub files: Vec<(&'static str, DocumentFile<'a>)>,
}

impl fmt::Debug for VerificationParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationParts")
            .field("verification_type", &self.verification_type)
            .field(
                "files",
                &self.files.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why a document cannot go to Kraken as it is: said in the error, and nothing is sent.
fn not_supported(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::NotSupported, message)
}

/// Kraken's `document_type` of an identity document. `special_permanent_residence_card` is
/// Japan's, which the canonical `residence_permit` does not single out.
pub fn identity_document_type(doc_type: IdentityDocumentType) -> &'static str {
    match doc_type {
        IdentityDocumentType::Passport => "passport",
        IdentityDocumentType::NationalId => "id_card",
        IdentityDocumentType::DriversLicense => "drivers_license",
        IdentityDocumentType::ResidencePermit => "residence_card",
    }
}

fn attestation_fields(
    attestation: &VerificationAttestation,
) -> Result<VerificationAttestationFields, ProviderError> {
    let verified_at = attestation
        .verified_at
        .to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        // Only a year outside 0000–9999 has no RFC 3339 form.
        .map_err(|_| not_supported("verification.verified_at has no RFC 3339 form"))?;
    Ok(VerificationAttestationFields {
        verifier: attestation.verifier.clone(),
        verified_at,
        external_verification_id: attestation.reference.clone(),
    })
}

/// The nationality a verified document speaks for: its issuing country when it is one of the
/// user's nationalities (a passport or id card shows that one), else the first nationality,
/// else the citizenship; omitted when the user gives none.
fn nationality(user: &CanonicalUser, issuing_country: CountryCode) -> Option<String> {
    let nationalities = user.nationalities.as_deref().unwrap_or_default();
    nationalities
        .iter()
        .find(|c| **c == issuing_country)
        .or_else(|| nationalities.first())
        .or(user.citizenship.as_ref())
        .map(|c| c.as_str().to_owned())
}

/// The `metadata` part: the model serialised once, as the JSON string Kraken expects.
fn metadata_json<T: Serialize>(metadata: &T) -> Result<String, ProviderError> {
    serde_json::to_string(metadata).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Rejected,
            format!("cannot serialise the verification metadata: {e}"),
        )
    })
}

/// The verification Kraken is sent for `upload`, or `NotSupported` (no call is made) when the
/// canonical data cannot say what Kraken requires:
/// - every type needs the caller's `verification` attestation (Kraken takes only
///   partner-attested verifications);
/// - identity documents need the user's `identity_document` of the same type (its number and
///   issuing country describe the document sent), and a passport back is never sent;
/// - a proof of address needs `address.line1`, `city` and `postal_code`.
pub fn verification_parts<'a>(
    upload: &DocumentUpload<'a>,
) -> Result<VerificationParts<'a>, ProviderError> {
    let document = upload.document_type;
    let attestation = upload.verification.ok_or_else(|| {
        not_supported(format!(
            "Kraken accepts only partner-attested verifications: send `verification` \
             (verifier, verified_at, reference) with the {}",
            document.as_str()
        ))
    })?;
    let attestation = attestation_fields(attestation)?;
    match document {
        DocumentType::Passport => identity_parts(upload, IdentityDocumentType::Passport, attestation),
        DocumentType::NationalId => {
            identity_parts(upload, IdentityDocumentType::NationalId, attestation)
        }
        DocumentType::DriversLicense => {
            identity_parts(upload, IdentityDocumentType::DriversLicense, attestation)
        }
        DocumentType::ResidencePermit => {
            identity_parts(upload, IdentityDocumentType::ResidencePermit, attestation)
        }
        DocumentType::ProofOfAddress => {
            let address = residence(upload.user).map_err(|missing| {
                not_supported(format!(
                    "Kraken needs the address a proof_of_address shows: {} is missing",
                    missing.field
                ))
            })?;
            let metadata = ResidenceDocumentMetadata {
                address,
                // The canonical `proof_of_address` has no subtype and Kraken requires one: a
                // utility bill, the most common proof of address, is the default.
                document_type: "utility_bill",
                attestation,
            };
            Ok(VerificationParts {
                verification_type: "residence_document",
                metadata: metadata_json(&metadata)?,
                files: single_file(upload, "document")?,
            })
        }
        DocumentType::Selfie => {
            // Still images only: Kraken's `selfie_capture_video` has no canonical counterpart.
            let metadata = SelfieMetadata {
                selfie_type: "selfie",
                attestation,
            };
            Ok(VerificationParts {
                verification_type: "selfie",
                metadata: metadata_json(&metadata)?,
                files: single_file(upload, "selfie")?,
            })
        }
    }
}

/// The one file of a one-sided document (a back would have no part to go in).
fn single_file<'a>(
    upload: &DocumentUpload<'a>,
    part: &'static str,
) -> Result<Vec<(&'static str, DocumentFile<'a>)>, ProviderError> {
    if upload.back.is_some() {
        return Err(not_supported(format!(
            "Kraken takes a single file for a {}: it has no back side",
            upload.document_type.as_str()
        )));
    }
    Ok(vec![(part, upload.front)])
}

fn identity_parts<'a>(
    upload: &DocumentUpload<'a>,
    doc_type: IdentityDocumentType,
    attestation: VerificationAttestationFields,
) -> Result<VerificationParts<'a>, ProviderError> {
    let user = upload.user;
    let document = upload.document_type.as_str();
    // Sources disagree on a passport's back (Payward's twin API refuses one); it is never sent.
    if doc_type == IdentityDocumentType::Passport && upload.back.is_some() {
        return Err(not_supported(
            "Kraken takes no passport back side: a passport's data page is its front",
        ));
    }
    let identity = user
        .identity_document
        .as_ref()
        .filter(|d| d.doc_type == doc_type)
        .ok_or_else(|| {
            let held = match &user.identity_document {
                Some(d) => format!("the user's identity_document is a {}", d.doc_type.as_str()),
                None => "the user has no identity_document".to_owned(),
            };
            not_supported(format!(
                "Kraken needs the number and issuing country of the {document} sent, and {held}: \
                 set identity_document to this {document} first"
            ))
        })?;
    let metadata = IdentityDocumentMetadata {
        identity: VerifiedIdentity {
            full_name: full_name(user),
            date_of_birth: iso_date::format(user.date_of_birth.date()),
        },
        document_type: identity_document_type(doc_type),
        document_number: identity.number.clone(),
        issuing_country: identity.issuing_country.as_str().to_owned(),
        nationality: nationality(user, identity.issuing_country),
        attestation,
        expiration_date: identity.expires_on.map(iso_date::format),
    };
    let mut files = vec![("front", upload.front)];
    files.extend(upload.back.map(|back| ("back", back)));
    Ok(VerificationParts {
        verification_type: "identity_document",
        metadata: metadata_json(&metadata)?,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: Value) -> CanonicalUser {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "external_id": "crm-1", "type": "individual", "email": "jane@example.com",
            "phone": "+4915112345678",
            "name": {"first": "Jane", "last": "Doe"},
            "date_of_birth": "1990-01-15",
            "nationalities": ["DE"],
            "address": {"line1": "Invalidenstr. 1", "city": "Berlin", "postal_code": "10115",
                        "country": "DE"},
            "employment": {"status": "employed"},
            "terms": {"version": 3, "accepted_at": null}
        })
    }

    fn status(v: Value) -> UserStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn status_mapping_table() {
        let verification = json!({"action_type": "verification", "verification_type": "identity",
                                  "reasons": ["initial_onboarding"]});
        let details = json!({"action_type": "provide_details",
                             "details_type": {"type": "terms_of_service", "version": 2}});
        let wait = json!({"action_type": "wait", "wait_reason_code": "review"});
        let unknown = json!({"action_type": "dance"});
        for (s, want) in [
            (
                json!({"state": "ok", "required_actions": []}),
                Some(LinkStatus::Approved),
            ),
            (json!({"state": "ok"}), Some(LinkStatus::Approved)),
            (
                json!({"state": "ok", "required_actions": [verification]}),
                Some(LinkStatus::ActionRequired),
            ),
            (
                json!({"state": "ok", "required_actions": [details]}),
                Some(LinkStatus::ActionRequired),
            ),
            (
                json!({"state": "ok", "required_actions": [wait, verification]}),
                Some(LinkStatus::ActionRequired),
            ),
            (
                json!({"state": "ok", "required_actions": [wait, wait]}),
                Some(LinkStatus::UnderReview),
            ),
            (json!({"state": "ok", "required_actions": [unknown]}), None),
            (
                json!({"state": "ok", "required_actions": [wait, unknown]}),
                None,
            ),
            (
                json!({"state": "disabled", "reasons": ["trade_lock"], "required_actions": []}),
                Some(LinkStatus::Suspended),
            ),
            (
                json!({"state": "closed", "reasons": ["user_request"]}),
                Some(LinkStatus::Closed),
            ),
            (json!({"state": "frozen", "required_actions": []}), None),
            (json!({"state": "OK", "required_actions": []}), None),
        ] {
            assert_eq!(map_status(&status(s.clone())), want, "{s}");
        }
    }

    #[test]
    fn get_result_keeps_raw_values() {
        let result: GetUserResult = serde_json::from_value(json!({
            "user": "AA00 TEST EXAM PLE1", "user_type": "individual",
            "status": {"state": "mystery", "required_actions": [{"action_type": "wait",
                        "wait_reason_code": "x"}], "reasons": ["r"]},
            "created_at": "2023-11-07T05:31:56Z", "external_id": null
        }))
        .unwrap();
        let state = result.into_state();
        assert_eq!(state.provider_user_id, "AA00 TEST EXAM PLE1");
        assert_eq!(state.provider_status, "mystery");
        assert_eq!(state.status, None);
        assert_eq!(
            state.requirements,
            vec![json!({"action_type": "wait", "wait_reason_code": "x"})]
        );
        assert_eq!(state.link_data["reasons"], json!(["r"]));
    }

    #[test]
    fn occupation_prefers_industry_then_status() {
        use EmploymentStatus::*;
        assert_eq!(occupation(Employed, Some(Industry::Finance)), "finance");
        for (s, want) in [
            (Employed, "employed"),
            (SelfEmployed, "self_employed"),
            (Student, "student"),
            (Unemployed, "unemployed"),
            (Retired, "other"),
            (Other, "other"),
        ] {
            assert_eq!(occupation(s, None), want);
        }
    }

    #[test]
    fn create_maps_every_field_and_omits_absent_ones() {
        let minimal = CreateUserRequest::try_from(&user(base())).unwrap();
        assert_eq!(
            serde_json::to_value(&minimal).unwrap(),
            json!({"email": "jane@example.com", "external_id": "crm-1",
                   "tos_version_accepted": 3,
                   "full_name": {"first_name": "Jane", "last_name": "Doe"},
                   "date_of_birth": "1990-01-15",
                   "residence": {"line1": "Invalidenstr. 1", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
                   "phone": "+4915112345678", "nationalities": ["DE"],
                   "occupation": "employed"})
        );
        let mut full = base();
        let extra = json!({
            "name": {"first": "Jane", "middle": "Q", "last": "Doe"},
            "birth_place": {"city": "Bonn", "country": "DE"},
            "address": {"line1": "Invalidenstr. 1", "line2": "HH", "city": "Berlin",
                        "region": "BE", "postal_code": "10115", "country": "DE"},
            "identity_document": {"type": "national_id", "number": "L01X00T47",
                                  "issuing_country": "DE", "issued_on": null, "expires_on": null},
            "tax_ids": [{"type": "steuer_id", "number": "123", "issuing_country": "DE"}],
            "employment": {"status": "retired", "employer_name": "Acme"},
            "citizenship": "DE", "language": "de",
            "financial_profile": {"source_of_funds": "savings"},
            "metadata": {"x": 1}
        });
        for (k, v) in extra.as_object().unwrap() {
            full[k] = v.clone();
        }
        let req = CreateUserRequest::try_from(&user(full)).unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["full_name"]["middle_name"], "Q");
        assert_eq!(v["residence"]["province"], "BE");
        assert_eq!(v["residence"]["line2"], "HH");
        assert_eq!(v["city_of_birth"], "Bonn");
        assert_eq!(v["country_of_birth"], "DE");
        assert_eq!(
            v["tax_ids"],
            json!([{"id": "123", "issuing_country": "DE"}])
        );
        assert_eq!(v["occupation"], "other");
        assert_eq!(v["employer_name"], "Acme");
        assert_eq!(v["language"], "de");
        assert_eq!(
            v["client_identifier"],
            json!({"type": "national_id", "value": "L01X00T47"})
        );
        let s = v.to_string();
        for absent in [
            "citizenship",
            "financial_profile",
            "metadata",
            "savings",
            "null",
        ] {
            assert!(!s.contains(absent), "{absent} in {s}");
        }
        assert_eq!(format!("{req:?}"), "CreateUserRequest(***)");
    }

    #[test]
    fn create_reports_missing_fields_without_panicking() {
        for (remove, field) in [
            ("phone", "phone"),
            ("nationalities", "nationalities"),
            ("employment", "employment"),
            ("terms", "terms.version"),
        ] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(remove);
            assert_eq!(
                CreateUserRequest::try_from(&user(v)).unwrap_err().field,
                field
            );
        }
        let mut v = base();
        v["address"].as_object_mut().unwrap().remove("postal_code");
        assert_eq!(
            CreateUserRequest::try_from(&user(v)).unwrap_err().field,
            "address.postal_code"
        );
        let mut v = base();
        v["nationalities"] = json!([]);
        assert!(CreateUserRequest::try_from(&user(v)).is_err());
    }

    #[test]
    fn field_policies() {
        for p in ["email", "external_id"] {
            assert_eq!(field_policy(p), FieldPolicy::Refuse, "{p}");
        }
        for p in [
            "phone",
            "name.first",
            "name.middle",
            "date_of_birth",
            "birth_place.city",
            "birth_place.country",
            "nationalities",
            "address.line1",
            "address.region",
            "tax_ids",
            "employment.status",
            "employment.industry",
            "employment.employer_name",
            "language",
            "terms.version",
            "identity_document.number",
        ] {
            assert_eq!(field_policy(p), FieldPolicy::Send, "{p}");
        }
        for p in [
            "type",
            "citizenship",
            "financial_profile.source_of_funds",
            "metadata.tier",
            "identity_document.expires_on",
            "identity_document.issuing_country",
            "employment.occupation",
            "terms.accepted_at",
            "something_new",
        ] {
            assert_eq!(field_policy(p), FieldPolicy::Ignore, "{p}");
        }
    }

    fn changes(user: &CanonicalUser, paths: &[&str]) -> Value {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        serde_json::to_value(UpdateUserRequest::from_changes(user, &paths).unwrap()).unwrap()
    }

    #[test]
    fn update_sends_only_changed_fields_and_whole_nested_objects() {
        let mut v = base();
        v["address"]["region"] = json!("BE");
        v["birth_place"] = json!({"country": "AT"});
        let u = user(v);
        assert_eq!(changes(&u, &["phone"]), json!({"phone": "+4915112345678"}));
        assert_eq!(
            changes(&u, &["address.city"]),
            json!({"residence": {"line1": "Invalidenstr. 1", "city": "Berlin",
                   "postal_code": "10115", "province": "BE", "country": "DE"}})
        );
        assert_eq!(
            changes(&u, &["name.last"]),
            json!({"full_name": {"first_name": "Jane", "last_name": "Doe"}})
        );
        // Cleared optional fields are sent as null; birth_place.city was removed.
        assert_eq!(
            changes(&u, &["birth_place.city", "language", "tax_ids"]),
            json!({"city_of_birth": null, "tax_ids": null, "language": null})
        );
        assert_eq!(
            changes(&u, &["birth_place.country"]),
            json!({"country_of_birth": "AT"})
        );
        assert_eq!(
            changes(&u, &["employment.industry", "terms.version"]),
            json!({"tos_version_accepted": 3, "occupation": "employed"})
        );
        assert_eq!(
            changes(
                &u,
                &[
                    "email",
                    "metadata.a",
                    "citizenship",
                    "terms.accepted_at",
                    "type"
                ]
            ),
            json!({})
        );
        assert!(UpdateUserRequest::from_changes(&u, &["metadata.a".into()])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn error_envelope_is_read_tolerantly() {
        let e = ErrorEnvelope::parse(br#"{"error":["ENexus:Invalid user ID"]}"#);
        assert_eq!(e.code().as_deref(), Some("ENexus:Invalid user ID"));
        let e = ErrorEnvelope::parse(br#"{"error":[],"errors":[{"code":"EX:Y","field":"a"}]}"#);
        assert_eq!(e.code().as_deref(), Some("EX:Y"));
        assert_eq!(ErrorEnvelope::parse(b"<html>").code(), None);
        assert_eq!(ErrorEnvelope::parse(b"").code(), None);
        assert_eq!(ErrorEnvelope::parse(br#"{"error":"flat"}"#).code(), None);
    }
}
