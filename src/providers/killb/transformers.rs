//! KillB wire types (the generated types of the official SDK, https://github.com/Kill-B/sdk
//! (`src/types/schema.ts`), and https://docs.killb.com/api-reference/user/create-a-user) and their
//! conversions to and from the canonical model, plus the explicit status mapping (README
//! "Providers").
//!
//! Outbound DTOs carry PII, so their `Debug` prints no field values.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::status::LinkStatus;
use crate::domain::user::{
    iso_date, Address, CanonicalUser, CountryCode, EmploymentStatus, FinancialProfile,
    IdentityDocument, IdentityDocumentType, MonthlyDeposits, MonthlyVolumeUsd, SourceOfFunds,
    TotalAssetsUsd, UserType,
};
use crate::domain::verification::DocumentType;
use crate::providers::connector::ProviderUserState;
use crate::providers::error::{ProviderError, ProviderErrorKind};

// ---------------------------------------------------------------------------------------------
// Mapping errors

/// A canonical user that cannot be expressed as a KillB request. Names the canonical field;
/// never carries its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct MappingError {
    /// The canonical JSON path, e.g. `identity_document`.
    pub field: &'static str,
    pub reason: String,
}

impl MappingError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    fn required(field: &'static str) -> Self {
        Self::new(field, "is required by killb")
    }
}

impl From<MappingError> for ProviderError {
    fn from(e: MappingError) -> Self {
        ProviderError::new(
            ProviderErrorKind::Rejected,
            format!("cannot send the user to killb: {e}"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Auth (https://docs.killb.com/api-reference/auth/generate-an-access-token)

/// `LoginDto`.
#[derive(Serialize)]
pub struct LoginRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
}

impl fmt::Debug for LoginRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginRequest { .. }")
    }
}

/// `LoginResponseDto`. `expiresIn` is in **milliseconds**.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<f64>,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("access_token", &"***")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Enumerations

/// `CreateUserDto.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillbUserType {
    Person,
    Company,
}

/// `PersonUserDocumentDto.type` (https://docs.killb.com/api-reference/user/create-a-user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillbDocumentType {
    Passport,
    DriverLicense,
    Nuip,
    Rfc,
    Ssn,
    Curp,
    Cpf,
    Ine,
    Ife,
    Dni,
    Dui,
    Nit,
    Rut,
    ChineseId,
    BolivianId,
    Ce,
}

/// `employmentStatus` (https://docs.killb.com/api-reference/user/create-a-user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillbEmploymentStatus {
    Employee,
    SelfEmployed,
    Retired,
    Unemployed,
    Other,
}

/// `primarySourceOfFunds` (https://docs.killb.com/api-reference/user/create-a-user), the values a
/// person can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillbSourceOfFunds {
    Employment,
    Savings,
    Winnings,
    Marital,
    RealEstate,
    Trust,
    Investment,
    Other,
    Company,
    Loan,
    Grant,
}

/// `totalAssets` / `usdValueOfFiat` bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillbAmountBand10K {
    #[serde(rename = "UPTO_10K")]
    UpTo10K,
    #[serde(rename = "TEN_TO_100K")]
    TenTo100K,
    #[serde(rename = "ONEHUNDREDK_TO_1M")]
    OneHundredKTo1M,
    #[serde(rename = "ONE_TO_10M")]
    OneTo10M,
    #[serde(rename = "TEN_TO_50M")]
    TenTo50M,
    #[serde(rename = "FIFTY_TO_250M")]
    FiftyTo250M,
    #[serde(rename = "MORE_THAN_250M")]
    MoreThan250M,
}

/// `monthlyDeposits`-style count bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillbCountBand {
    #[serde(rename = "UPTO_5")]
    UpTo5,
    #[serde(rename = "FIVE_TO_10")]
    FiveTo10,
    #[serde(rename = "TEN_TO_25")]
    TenTo25,
    #[serde(rename = "MORE_THAN_25")]
    MoreThan25,
}

/// `monthlyInvestmentDeposit`-style USD bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillbAmountBand1K {
    #[serde(rename = "UPTO_1K")]
    UpTo1K,
    #[serde(rename = "ONE_TO_100K")]
    OneTo100K,
    #[serde(rename = "ONEHUNDREDK_TO_1M")]
    OneHundredKTo1M,
    #[serde(rename = "MILLION_TO_5M")]
    MillionTo5M,
    #[serde(rename = "MORE_THAN_5M")]
    MoreThan5M,
}

/// The KillB document type for a canonical identity document.
///
/// - `passport` → `PASSPORT` and `drivers_license` → `DRIVER_LICENSE`, whatever the country.
/// - `national_id` depends on the issuing country: CO `NUIP` (the Cédula de Ciudadanía number,
///   [I]), MX `INE` (the voter card; KillB also wants `cic`/`identificadorCiudadano`,
///   which the canonical user does not carry, so KillB decides), BR `CPF`, AR/PE/ES `DNI`,
///   CL/UY `RUT`... see the table below. A country KillB has no national-id type for is an
///   error: KillB's guide sends "other countries" to `PASSPORT`.
/// - `residence_permit` → `CE` (Cédula / Carné de Extranjería), which only Colombia and Peru
///   issue; elsewhere it is an error.
pub fn document_type(
    doc_type: IdentityDocumentType,
    issuing_country: CountryCode,
) -> Result<KillbDocumentType, MappingError> {
    use KillbDocumentType as K;
    let country = issuing_country.as_str();
    match doc_type {
        IdentityDocumentType::Passport => Ok(K::Passport),
        IdentityDocumentType::DriversLicense => Ok(K::DriverLicense),
        IdentityDocumentType::NationalId => national_id_type(country).ok_or_else(|| {
            MappingError::new(
                "identity_document.type",
                format!(
                    "killb has no national-id document type for {country}; use a passport"
                ),
            )
        }),
        IdentityDocumentType::ResidencePermit => match country {
            "CO" | "PE" => Ok(K::Ce),
            _ => Err(MappingError::new(
                "identity_document.type",
                format!(
                    "killb accepts residence permits (CE) from CO and PE only, not {country}; use a passport"
                ),
            )),
        },
    }
}

/// National identity documents by issuing country, from KillB's document enum.
fn national_id_type(country: &str) -> Option<KillbDocumentType> {
    use KillbDocumentType as K;
    Some(match country {
        "CO" => K::Nuip,
        "MX" => K::Ine,
        "BR" => K::Cpf,
        "AR" | "PE" | "ES" => K::Dni,
        "CL" | "UY" => K::Rut,
        "SV" => K::Dui,
        "BO" => K::BolivianId,
        "CN" => K::ChineseId,
        // https://docs.killb.com/guides/users/create-user: its "United States" tab uses SSN [I].
        "US" => K::Ssn,
        _ => return None,
    })
}

pub fn employment_status(status: EmploymentStatus) -> KillbEmploymentStatus {
    match status {
        EmploymentStatus::Employed => KillbEmploymentStatus::Employee,
        EmploymentStatus::SelfEmployed => KillbEmploymentStatus::SelfEmployed,
        EmploymentStatus::Retired => KillbEmploymentStatus::Retired,
        EmploymentStatus::Unemployed => KillbEmploymentStatus::Unemployed,
        EmploymentStatus::Student | EmploymentStatus::Other => KillbEmploymentStatus::Other,
    }
}

pub fn source_of_funds(s: SourceOfFunds) -> KillbSourceOfFunds {
    use KillbSourceOfFunds as K;
    match s {
        SourceOfFunds::Employment => K::Employment,
        SourceOfFunds::Savings => K::Savings,
        SourceOfFunds::Winnings => K::Winnings,
        SourceOfFunds::Marital => K::Marital,
        SourceOfFunds::RealEstate => K::RealEstate,
        SourceOfFunds::Trust => K::Trust,
        SourceOfFunds::Investment => K::Investment,
        SourceOfFunds::Company => K::Company,
        SourceOfFunds::Loan => K::Loan,
        SourceOfFunds::Grant => K::Grant,
        SourceOfFunds::Other => K::Other,
    }
}

pub fn total_assets(t: TotalAssetsUsd) -> KillbAmountBand10K {
    use KillbAmountBand10K as K;
    match t {
        TotalAssetsUsd::UpTo10k => K::UpTo10K,
        TotalAssetsUsd::From10kTo100k => K::TenTo100K,
        TotalAssetsUsd::From100kTo1m => K::OneHundredKTo1M,
        TotalAssetsUsd::From1mTo10m => K::OneTo10M,
        TotalAssetsUsd::From10mTo50m => K::TenTo50M,
        TotalAssetsUsd::From50mTo250m => K::FiftyTo250M,
        TotalAssetsUsd::MoreThan250m => K::MoreThan250M,
    }
}

pub fn monthly_deposits(m: MonthlyDeposits) -> KillbCountBand {
    match m {
        MonthlyDeposits::UpTo5 => KillbCountBand::UpTo5,
        MonthlyDeposits::From5To10 => KillbCountBand::FiveTo10,
        MonthlyDeposits::From10To25 => KillbCountBand::TenTo25,
        MonthlyDeposits::MoreThan25 => KillbCountBand::MoreThan25,
    }
}

pub fn monthly_volume(m: MonthlyVolumeUsd) -> KillbAmountBand1K {
    use KillbAmountBand1K as K;
    match m {
        MonthlyVolumeUsd::UpTo1k => K::UpTo1K,
        MonthlyVolumeUsd::From1kTo100k => K::OneTo100K,
        MonthlyVolumeUsd::From100kTo1m => K::OneHundredKTo1M,
        MonthlyVolumeUsd::From1mTo5m => K::MillionTo5M,
        MonthlyVolumeUsd::MoreThan5m => K::MoreThan5M,
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound DTOs

/// `AddressDto` (https://docs.killb.com/api-reference/user/create-a-user): every field but
/// `street2` required.
#[derive(Serialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KillbAddress {
    pub street1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street2: Option<String>,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub country_code: String,
}

impl TryFrom<&Address> for KillbAddress {
    type Error = MappingError;

    fn try_from(a: &Address) -> Result<Self, MappingError> {
        let req = |v: &Option<String>, field: &'static str| {
            v.clone().ok_or_else(|| MappingError::required(field))
        };
        Ok(Self {
            street1: req(&a.line1, "address.line1")?,
            street2: a.line2.clone(),
            city: req(&a.city, "address.city")?,
            state: req(&a.region, "address.region")?,
            zip_code: req(&a.postal_code, "address.postal_code")?,
            country_code: a.country.as_str().to_owned(),
        })
    }
}

/// `PersonUserDocumentDto`. `expires_on` has no KillB field; `expeditionDate` is the
/// issue date.
#[derive(Serialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KillbDocument {
    #[serde(rename = "type")]
    pub doc_type: KillbDocumentType,
    pub number: String,
    pub issued_country_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expedition_date: Option<String>,
}

impl TryFrom<&IdentityDocument> for KillbDocument {
    type Error = MappingError;

    fn try_from(d: &IdentityDocument) -> Result<Self, MappingError> {
        Ok(Self {
            doc_type: document_type(d.doc_type, d.issuing_country)?,
            number: d.number.clone(),
            issued_country_code: d.issuing_country.as_str().to_owned(),
            expedition_date: d.issued_on.map(iso_date::format),
        })
    }
}

/// `InvestmentProfile` (https://docs.killb.com/api-reference/user/create-a-user): all 13 fields are
/// required once the object is present.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KillbInvestmentProfile {
    pub primary_source_of_funds: KillbSourceOfFunds,
    pub primary_source_of_funds_description: String,
    pub total_assets: KillbAmountBand10K,
    pub usd_value_of_fiat: KillbAmountBand10K,
    pub monthly_deposits: KillbCountBand,
    pub monthly_withdrawals: KillbCountBand,
    pub monthly_investment_deposit: KillbAmountBand1K,
    pub monthly_investment_withdrawal: KillbAmountBand1K,
    pub usd_value_of_crypto: KillbAmountBand1K,
    pub monthly_crypto_deposits: KillbCountBand,
    pub monthly_crypto_withdrawals: KillbCountBand,
    pub monthly_crypto_investment_deposit: KillbAmountBand1K,
    pub monthly_crypto_investment_withdrawal: KillbAmountBand1K,
}

/// What the canonical `financial_profile` can fill of KillB's investment profile: the four
/// canonical bands map one to one (`source_of_funds` → `primarySourceOfFunds`,
/// `total_assets_usd` → `totalAssets`, `monthly_deposits` → `monthlyDeposits`,
/// `monthly_volume_usd` → `monthlyInvestmentDeposit`); the other nine KillB fields
/// (description, fiat/crypto values, withdrawals, crypto flows) have no canonical source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvestmentProfileParts {
    pub primary_source_of_funds: Option<KillbSourceOfFunds>,
    pub primary_source_of_funds_description: Option<String>,
    pub total_assets: Option<KillbAmountBand10K>,
    pub usd_value_of_fiat: Option<KillbAmountBand10K>,
    pub monthly_deposits: Option<KillbCountBand>,
    pub monthly_withdrawals: Option<KillbCountBand>,
    pub monthly_investment_deposit: Option<KillbAmountBand1K>,
    pub monthly_investment_withdrawal: Option<KillbAmountBand1K>,
    pub usd_value_of_crypto: Option<KillbAmountBand1K>,
    pub monthly_crypto_deposits: Option<KillbCountBand>,
    pub monthly_crypto_withdrawals: Option<KillbCountBand>,
    pub monthly_crypto_investment_deposit: Option<KillbAmountBand1K>,
    pub monthly_crypto_investment_withdrawal: Option<KillbAmountBand1K>,
}

impl From<&FinancialProfile> for InvestmentProfileParts {
    fn from(f: &FinancialProfile) -> Self {
        Self {
            primary_source_of_funds: f.source_of_funds.map(source_of_funds),
            total_assets: f.total_assets_usd.map(total_assets),
            monthly_deposits: f.monthly_deposits.map(monthly_deposits),
            monthly_investment_deposit: f.monthly_volume_usd.map(monthly_volume),
            ..Self::default()
        }
    }
}

impl InvestmentProfileParts {
    /// The complete profile, or `None` when any of the 13 required fields is unknown: KillB
    /// rejects a partial `investmentProfile`, and declaring values the
    /// user never gave would be a false compliance statement. With today's canonical
    /// `financial_profile` (four bands) this is always `None`.
    pub fn complete(self) -> Option<KillbInvestmentProfile> {
        Some(KillbInvestmentProfile {
            primary_source_of_funds: self.primary_source_of_funds?,
            primary_source_of_funds_description: self.primary_source_of_funds_description?,
            total_assets: self.total_assets?,
            usd_value_of_fiat: self.usd_value_of_fiat?,
            monthly_deposits: self.monthly_deposits?,
            monthly_withdrawals: self.monthly_withdrawals?,
            monthly_investment_deposit: self.monthly_investment_deposit?,
            monthly_investment_withdrawal: self.monthly_investment_withdrawal?,
            usd_value_of_crypto: self.usd_value_of_crypto?,
            monthly_crypto_deposits: self.monthly_crypto_deposits?,
            monthly_crypto_withdrawals: self.monthly_crypto_withdrawals?,
            monthly_crypto_investment_deposit: self.monthly_crypto_investment_deposit?,
            monthly_crypto_investment_withdrawal: self.monthly_crypto_investment_withdrawal?,
        })
    }
}

fn investment_profile(user: &CanonicalUser) -> Option<KillbInvestmentProfile> {
    user.financial_profile
        .as_ref()
        .and_then(|f| InvestmentProfileParts::from(f).complete())
}

/// `CreatePersonUserDto` (https://docs.killb.com/api-reference/user/create-a-user), the `data` of a
/// PERSON create.
#[derive(Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KillbPersonData {
    pub first_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    pub last_name: String,
    pub date_of_birth: String,
    pub email: String,
    pub phone: String,
    pub address: KillbAddress,
    pub document: KillbDocument,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citizenship: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employment_status: Option<KillbEmploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occupation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub investment_profile: Option<KillbInvestmentProfile>,
}

/// `CreateUserDto`: `{type: "PERSON", data, externalId}`.
#[derive(Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KillbCreateUser {
    #[serde(rename = "type")]
    pub user_type: KillbUserType,
    pub data: KillbPersonData,
    pub external_id: String,
}

impl fmt::Debug for KillbCreateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillbCreateUser")
            .field("type", &self.user_type)
            .field("external_id", &self.external_id)
            .finish_non_exhaustive()
    }
}

impl TryFrom<&CanonicalUser> for KillbCreateUser {
    type Error = MappingError;

    fn try_from(user: &CanonicalUser) -> Result<Self, MappingError> {
        let user_type = match user.user_type {
            UserType::Individual => KillbUserType::Person,
        };
        let phone = user
            .phone
            .as_ref()
            .ok_or_else(|| MappingError::required("phone"))?;
        let document = user
            .identity_document
            .as_ref()
            .ok_or_else(|| MappingError::required("identity_document"))?;
        let employment = user.employment.as_ref();
        Ok(Self {
            user_type,
            external_id: user.external_id.clone(),
            data: KillbPersonData {
                first_name: user.name.first.clone(),
                middle_name: user.name.middle.clone(),
                last_name: user.name.last.clone(),
                date_of_birth: iso_date::format(user.date_of_birth.date()),
                email: user.email.as_str().to_owned(),
                phone: phone.as_str().to_owned(),
                address: KillbAddress::try_from(&user.address)?,
                document: KillbDocument::try_from(document)?,
                nationality: nationality(user),
                citizenship: user.citizenship.map(|c| c.as_str().to_owned()),
                employment_status: employment.map(|e| employment_status(e.status)),
                employer_name: employment.and_then(|e| e.employer_name.clone()),
                occupation: employment.and_then(|e| e.occupation.clone()),
                investment_profile: investment_profile(user),
            },
        })
    }
}

/// KillB has one `nationality`: the first canonical nationality.
fn nationality(user: &CanonicalUser) -> Option<String> {
    user.nationalities
        .as_ref()
        .and_then(|n| n.first())
        .map(|c| c.as_str().to_owned())
}

/// `UpdatePersonUserDto` (https://docs.killb.com/api-reference/user/update-user): flat, every field
/// optional, only changed fields present. Nested objects (`address`, `document`,
/// `investmentProfile`) are sent whole.
#[derive(Serialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KillbUpdateUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<KillbAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<KillbDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citizenship: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employment_status: Option<KillbEmploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occupation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub investment_profile: Option<KillbInvestmentProfile>,
}

impl fmt::Debug for KillbUpdateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KillbUpdateUser { .. }")
    }
}

fn touches(changed: &[String], prefix: &str) -> bool {
    changed.iter().any(|p| {
        p == prefix
            || p.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

impl KillbUpdateUser {
    /// The flat PATCH body for the canonical paths in `changed` (those whose field policy is
    /// `Send`), read from the updated `user`.
    ///
    /// A cleared optional value (`name.middle`, `nationalities`, `citizenship`, `employment.*`)
    /// cannot be expressed: KillB keeps omitted fields and its DTO has no nulls, so it is left
    /// out. Removing something KillB requires (phone, identity document, address parts) is an
    /// error naming the field.
    pub fn from_changes(user: &CanonicalUser, changed: &[String]) -> Result<Self, MappingError> {
        let mut body = Self::default();
        let has = |p: &str| changed.iter().any(|c| c == p);
        if has("name.first") {
            body.first_name = Some(user.name.first.clone());
        }
        if has("name.middle") {
            body.middle_name = user.name.middle.clone();
        }
        if has("name.last") {
            body.last_name = Some(user.name.last.clone());
        }
        if has("date_of_birth") {
            body.date_of_birth = Some(iso_date::format(user.date_of_birth.date()));
        }
        if has("email") {
            body.email = Some(user.email.as_str().to_owned());
        }
        if has("phone") {
            let phone = user
                .phone
                .as_ref()
                .ok_or_else(|| MappingError::required("phone"))?;
            body.phone = Some(phone.as_str().to_owned());
        }
        if touches(changed, "address") {
            body.address = Some(KillbAddress::try_from(&user.address)?);
        }
        let document_paths = ["type", "number", "issuing_country", "issued_on"];
        // `expires_on` has no KillB field: a change to it alone sends nothing.
        if document_paths
            .iter()
            .any(|p| has(&format!("identity_document.{p}")))
        {
            let doc = user
                .identity_document
                .as_ref()
                .ok_or_else(|| MappingError::required("identity_document"))?;
            body.document = Some(KillbDocument::try_from(doc)?);
        }
        if has("nationalities") {
            body.nationality = nationality(user);
        }
        if has("citizenship") {
            body.citizenship = user.citizenship.map(|c| c.as_str().to_owned());
        }
        let employment = user.employment.as_ref();
        if has("employment.status") {
            body.employment_status = employment.map(|e| employment_status(e.status));
        }
        if has("employment.occupation") {
            body.occupation = employment.and_then(|e| e.occupation.clone());
        }
        if has("employment.employer_name") {
            body.employer_name = employment.and_then(|e| e.employer_name.clone());
        }
        if touches(changed, "financial_profile") {
            body.investment_profile = investment_profile(user);
        }
        Ok(body)
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Inbound DTOs

/// `CreateUserResponseDto` = `GetUserByIdResponse`, read tolerantly: older responses
/// lacked `status`, `note` and `complianceUrl`, so only `id` is required. `data` (PII)
/// is not kept.
#[derive(Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KillbUser {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "type")]
    pub user_type: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub compliance_url: Option<String>,
    #[serde(default)]
    pub access_level: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl fmt::Debug for KillbUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillbUser")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("external_id", &self.external_id)
            .field("access_level", &self.access_level)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// `GetUserQueryResponse`: `{users, totalPage}`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KillbUserList {
    #[serde(default)]
    pub users: Vec<KillbUser>,
    #[serde(default)]
    pub total_page: Option<f64>,
}

/// The canonical status for KillB's `status` and `active` (README "Providers";
/// https://docs.killb.com/concepts/users).
/// A soft-deleted user (`active: false`) is `closed` whatever its status; an unknown or
/// missing status is `None`.
pub fn map_status(status: Option<&str>, active: Option<bool>) -> Option<LinkStatus> {
    if active == Some(false) {
        return Some(LinkStatus::Closed);
    }
    match status? {
        "PENDING" => Some(LinkStatus::UnderReview),
        "ACTIVE" => Some(LinkStatus::Approved),
        "REJECTED" => Some(LinkStatus::Rejected),
        // Only in the Spanish webhook guide (https://docs.killb.com/es/concepts/webhooks).
        "SUSPENDED" => Some(LinkStatus::Suspended),
        _ => None,
    }
}

impl From<KillbUser> for ProviderUserState {
    fn from(u: KillbUser) -> Self {
        let status = map_status(u.status.as_deref(), u.active);
        let mut requirements = Vec::new();
        // The access level is what KillB reports as outstanding (README, `GET
        // /v1/users/{id}/requirements`); the hosted KYC link is the action while the user is not
        // approved.
        if let Some(level) = &u.access_level {
            requirements.push(json!({ "accessLevel": level }));
        }
        if status != Some(LinkStatus::Approved) {
            if let Some(url) = u.compliance_url.as_ref().filter(|s| !s.is_empty()) {
                requirements.push(json!({ "complianceUrl": url }));
            }
        }
        let mut link_data = Map::new();
        if let Some(level) = &u.access_level {
            link_data.insert("access_level".into(), json!(level));
        }
        if let Some(url) = &u.compliance_url {
            link_data.insert("compliance_url".into(), json!(url));
        }
        if let Some(active) = u.active {
            link_data.insert("active".into(), json!(active));
        }
        // KillB's word on the compliance process: a rejection's only explanation.
        if let Some(note) = u.note.as_ref().filter(|n| !n.is_empty()) {
            link_data.insert("note".into(), json!(note));
        }
        let observed_at = u
            .updated_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        Self {
            provider_user_id: u.id,
            provider_status: u.status.unwrap_or_default(),
            status,
            requirements,
            link_data,
            observed_at,
            external_id: u.external_id,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Document uploads (`POST /api/v2/users/person/document`,
// https://docs.killb.com/api-reference/user/add-person-user-document)

/// `documentType` of a person's document upload (`UploadPersonDocumentDto`, whose enum is not
/// the user's `document.type`: it has proofs of address and no `RUT`/`NIT`). Only the values
/// the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillbUploadDocumentType {
    Passport,
    DriverLicense,
    Nuip,
    Ine,
    Dui,
    BolivianId,
    ChineseId,
    Dni,
    Ce,
    /// KillB's own spelling ("PROVE_OF").
    ProveOfAddressUtilityBill,
}

impl KillbUploadDocumentType {
    /// The wire value.
    pub const fn as_str(&self) -> &'static str {
        match self {
            KillbUploadDocumentType::Passport => "PASSPORT",
            KillbUploadDocumentType::DriverLicense => "DRIVER_LICENSE",
            KillbUploadDocumentType::Nuip => "NUIP",
            KillbUploadDocumentType::Ine => "INE",
            KillbUploadDocumentType::Dui => "DUI",
            KillbUploadDocumentType::BolivianId => "BOLIVIAN_ID",
            KillbUploadDocumentType::ChineseId => "CHINESE_ID",
            KillbUploadDocumentType::Dni => "DNI",
            KillbUploadDocumentType::Ce => "CE",
            KillbUploadDocumentType::ProveOfAddressUtilityBill => "PROVE_OF_ADDRESS_UTILITY_BILL",
        }
    }
}

fn upload_not_supported(message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::NotSupported, message)
}

/// The upload's `documentType`, or `NotSupported` (nothing is sent):
/// - `passport` → `PASSPORT`, `drivers_license` → `DRIVER_LICENSE`, whatever the country;
/// - `national_id` by the issuing country of the user's `identity_document` (the upload names
///   none; a person's documents are issued by the country of their nationality): CO `NUIP`
///   (cédula), MX `INE`, SV `DUI`, BO `BOLIVIAN_ID`, CN `CHINESE_ID`, else `DNI`, KillB's
///   generic national identity card (its `CPF`, `SSN`, `RFC` and `CURP` are tax or population
///   numbers, not cards);
/// - `residence_permit` → `CE` (cédula de extranjería) when Colombian: the issuing country of
///   the user's `identity_document` if that is the residence permit, else the country of
///   residence (`address.country`: a residence permit is issued where the person lives);
/// - `proof_of_address` → `PROVE_OF_ADDRESS_UTILITY_BILL`: the canonical type has no subtype
///   and KillB requires one (also `_BANK_STATEMENT`, `_LEASE_AGREEMENT`); a utility bill is the
///   most common proof of address;
/// - `selfie`: KillB has no upload type for it; its liveness check runs in its hosted flow.
pub fn upload_document_type(
    document: DocumentType,
    user: &CanonicalUser,
) -> Result<KillbUploadDocumentType, ProviderError> {
    use KillbUploadDocumentType as K;
    let identity_document = user.identity_document.as_ref();
    match document {
        DocumentType::Passport => Ok(K::Passport),
        DocumentType::DriversLicense => Ok(K::DriverLicense),
        DocumentType::NationalId => {
            let country = identity_document.map(|d| d.issuing_country).ok_or_else(|| {
                upload_not_supported(
                    "KillB needs the issuing country of a national_id, and the user has no \
                     identity_document"
                        .to_owned(),
                )
            })?;
            Ok(match country.as_str() {
                "CO" => K::Nuip,
                "MX" => K::Ine,
                "SV" => K::Dui,
                "BO" => K::BolivianId,
                "CN" => K::ChineseId,
                _ => K::Dni,
            })
        }
        DocumentType::ResidencePermit => {
            let country = identity_document
                .filter(|d| d.doc_type == IdentityDocumentType::ResidencePermit)
                .map(|d| d.issuing_country)
                .unwrap_or(user.address.country);
            match country.as_str() {
                "CO" => Ok(K::Ce),
                other => Err(upload_not_supported(format!(
                    "KillB takes residence permits (CE) issued by CO only, not {other}"
                ))),
            }
        }
        DocumentType::ProofOfAddress => Ok(K::ProveOfAddressUtilityBill),
        DocumentType::Selfie => Err(upload_not_supported(
            "KillB takes no selfie upload: its liveness check runs in its hosted flow \
             (open a verification session)"
                .to_owned(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors (https://docs.killb.com/resources/error-handling)

/// `BadRequestResponse` / `InternalServerErrorResponse`:
/// `{"errorCode","arguments":[{key,value}],"message":[…],"statusCode":"404"}`. `statusCode`
/// is a string upstream; a number is tolerated. `message` may be a single string.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KillbErrorEnvelope {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub arguments: Vec<Value>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub message: Vec<String>,
    #[serde(default)]
    pub status_code: Option<Value>,
}

fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

impl KillbErrorEnvelope {
    /// Parses an error body; anything unreadable gives an empty envelope.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `statusCode` as a string, whichever JSON type it came as.
    pub fn status_code(&self) -> Option<String> {
        match &self.status_code {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Whether KillB says the token is expired or invalid.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.error_code.as_deref(), Some("AUTH.0002" | "AUTH.0003"))
    }

    /// The values KillB echoed in `arguments` (input, so possibly PII).
    fn argument_values(&self) -> Vec<String> {
        self.arguments
            .iter()
            .filter_map(|a| a.get("value"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A message safe for logs and `last_error`: the documented meaning of the code when
    /// known, plus the validation messages that are recognisably of the
    /// `<field> must|should <constraint>` form (class-validator) and echo no input. Anything
    /// else in `message[]` may echo user data and is dropped.
    pub fn safe_message(&self, http_status: u16) -> String {
        let base = self
            .error_code
            .as_deref()
            .and_then(known_code)
            .unwrap_or(match http_status {
                400 | 422 => "killb rejected the request",
                401 | 403 => "killb refused the credentials",
                404 => "killb does not know the user",
                409 => "killb reports a conflict",
                429 => "killb rate limit reached",
                500..=599 => "killb is unavailable",
                _ => "unexpected answer from killb",
            });
        let echoed = self.argument_values();
        let details: Vec<&str> = self
            .message
            .iter()
            .map(String::as_str)
            .filter(|m| is_constraint_message(m) && !echoed.iter().any(|v| m.contains(v.as_str())))
            .take(10)
            .collect();
        if details.is_empty() {
            base.to_owned()
        } else {
            format!("{base}: {}", details.join("; "))
        }
    }

    /// Whether KillB says it does not know the user: `USER.0001` (the error guide, with 404),
    /// `API_USER.0001` (the upload reference's example, with `statusCode: "400"`), or a bare
    /// "User not found" message.
    pub fn is_user_not_found(&self) -> bool {
        matches!(
            self.error_code.as_deref(),
            Some("USER.0001" | "API_USER.0001")
        ) || (self.error_code.is_none()
            && self
                .message
                .iter()
                .any(|m| m.trim().eq_ignore_ascii_case("user not found")))
    }

    /// The unified error for a non-2xx answer. A 4xx is classified by its code (or message)
    /// first: KillB's documentation pairs the same code with different statuses.
    pub fn into_error(self, http_status: u16) -> ProviderError {
        let message = self.safe_message(http_status);
        let client_error = (400..500).contains(&http_status);
        let kind_status = match self.error_code.as_deref() {
            _ if client_error && self.is_user_not_found() => 404,
            // "Invalid document": the provider refuses the file, whatever the status.
            Some("USER.0002") if client_error => 400,
            Some("USER.0003") if http_status == 400 => 409,
            _ => http_status,
        };
        let mut e = ProviderError::from_status(kind_status, self.error_code, message);
        e.http_status = Some(http_status);
        e
    }
}

/// The documented meaning of KillB's error codes (https://docs.killb.com/resources/error-handling).
fn known_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "INVALID.INPUT" => "killb validation failed",
        "AUTH.0001" => "killb: invalid credentials",
        "AUTH.0002" => "killb: token expired",
        "AUTH.0003" => "killb: invalid token",
        "USER.0001" | "API_USER.0001" => "killb: user not found",
        "USER.0002" => "killb: invalid document",
        "USER.0003" => "killb: email already exists",
        "USER.0004" => "killb: underage user (must be 18+)",
        _ => return None,
    })
}

/// `<field path> must|should <constraint>`, the shape of NestJS class-validator messages,
/// which name the field and the rule but not the value. No `@` (emails), no quotes.
fn is_constraint_message(m: &str) -> bool {
    if m.len() > 200 || m.contains('@') || m.contains('"') {
        return false;
    }
    let mut words = m.splitn(3, ' ');
    let (Some(field), Some(verb), Some(rest)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let field_ok = field.starts_with(|c: char| c.is_ascii_alphabetic())
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '[' | ']'));
    let rest_ok = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ,:'()_-".contains(c));
    field_ok && matches!(verb, "must" | "should") && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).unwrap()
    }

    #[test]
    fn document_types_by_country() {
        use IdentityDocumentType as T;
        use KillbDocumentType as K;
        for (t, c, want) in [
            (T::Passport, "DE", K::Passport),
            (T::Passport, "CO", K::Passport),
            (T::DriversLicense, "CO", K::DriverLicense),
            (T::DriversLicense, "US", K::DriverLicense),
            (T::NationalId, "CO", K::Nuip),
            (T::NationalId, "MX", K::Ine),
            (T::NationalId, "BR", K::Cpf),
            (T::NationalId, "AR", K::Dni),
            (T::NationalId, "PE", K::Dni),
            (T::NationalId, "CL", K::Rut),
            (T::NationalId, "SV", K::Dui),
            (T::NationalId, "BO", K::BolivianId),
            (T::NationalId, "CN", K::ChineseId),
            (T::NationalId, "US", K::Ssn),
            (T::ResidencePermit, "CO", K::Ce),
            (T::ResidencePermit, "PE", K::Ce),
        ] {
            assert_eq!(document_type(t, cc(c)).unwrap(), want, "{t:?} {c}");
        }
        let e = document_type(T::NationalId, cc("DE")).unwrap_err();
        assert_eq!(e.field, "identity_document.type");
        assert!(document_type(T::ResidencePermit, cc("MX")).is_err());
        assert_eq!(
            serde_json::to_value(K::DriverLicense).unwrap(),
            json!("DRIVER_LICENSE")
        );
        assert_eq!(
            serde_json::to_value(K::BolivianId).unwrap(),
            json!("BOLIVIAN_ID")
        );
    }

    #[test]
    fn statuses_map_explicitly() {
        use LinkStatus as L;
        for (raw, active, want) in [
            (Some("PENDING"), Some(true), Some(L::UnderReview)),
            (Some("ACTIVE"), Some(true), Some(L::Approved)),
            (Some("ACTIVE"), None, Some(L::Approved)),
            (Some("REJECTED"), Some(true), Some(L::Rejected)),
            (Some("SUSPENDED"), Some(true), Some(L::Suspended)),
            (Some("ACTIVE"), Some(false), Some(L::Closed)),
            (Some("PENDING"), Some(false), Some(L::Closed)),
            (Some("BLOCKED"), Some(true), None),
            (Some("active"), Some(true), None),
            (None, Some(true), None),
        ] {
            assert_eq!(map_status(raw, active), want, "{raw:?} {active:?}");
        }
    }

    #[test]
    fn employment_and_bands() {
        use EmploymentStatus as E;
        for (e, want) in [
            (E::Employed, "EMPLOYEE"),
            (E::SelfEmployed, "SELF_EMPLOYED"),
            (E::Retired, "RETIRED"),
            (E::Unemployed, "UNEMPLOYED"),
            (E::Student, "OTHER"),
            (E::Other, "OTHER"),
        ] {
            assert_eq!(
                serde_json::to_value(employment_status(e)).unwrap(),
                json!(want)
            );
        }
        let wire = |v: Value| v.as_str().unwrap().to_owned();
        let assets: Vec<String> = TotalAssetsUsd::ALL
            .iter()
            .map(|t| wire(serde_json::to_value(total_assets(*t)).unwrap()))
            .collect();
        assert_eq!(
            assets,
            [
                "UPTO_10K",
                "TEN_TO_100K",
                "ONEHUNDREDK_TO_1M",
                "ONE_TO_10M",
                "TEN_TO_50M",
                "FIFTY_TO_250M",
                "MORE_THAN_250M"
            ]
        );
        let deposits: Vec<String> = MonthlyDeposits::ALL
            .iter()
            .map(|t| wire(serde_json::to_value(monthly_deposits(*t)).unwrap()))
            .collect();
        assert_eq!(
            deposits,
            ["UPTO_5", "FIVE_TO_10", "TEN_TO_25", "MORE_THAN_25"]
        );
        let volume: Vec<String> = MonthlyVolumeUsd::ALL
            .iter()
            .map(|t| wire(serde_json::to_value(monthly_volume(*t)).unwrap()))
            .collect();
        assert_eq!(
            volume,
            [
                "UPTO_1K",
                "ONE_TO_100K",
                "ONEHUNDREDK_TO_1M",
                "MILLION_TO_5M",
                "MORE_THAN_5M"
            ]
        );
        for s in SourceOfFunds::ALL {
            let w = wire(serde_json::to_value(source_of_funds(*s)).unwrap());
            assert_eq!(w, s.as_str().to_ascii_uppercase());
        }
    }

    #[test]
    fn a_partial_investment_profile_is_never_sent() {
        let full = FinancialProfile {
            source_of_funds: Some(SourceOfFunds::Employment),
            total_assets_usd: Some(TotalAssetsUsd::From10kTo100k),
            monthly_deposits: Some(MonthlyDeposits::UpTo5),
            monthly_volume_usd: Some(MonthlyVolumeUsd::From1kTo100k),
        };
        let parts = InvestmentProfileParts::from(&full);
        assert_eq!(parts.total_assets, Some(KillbAmountBand10K::TenTo100K));
        assert_eq!(parts.monthly_deposits, Some(KillbCountBand::UpTo5));
        assert_eq!(
            parts.monthly_investment_deposit,
            Some(KillbAmountBand1K::OneTo100K)
        );
        assert_eq!(parts.clone().complete(), None);
        let all = InvestmentProfileParts {
            primary_source_of_funds_description: Some("salary".into()),
            usd_value_of_fiat: Some(KillbAmountBand10K::UpTo10K),
            monthly_withdrawals: Some(KillbCountBand::UpTo5),
            monthly_investment_withdrawal: Some(KillbAmountBand1K::UpTo1K),
            usd_value_of_crypto: Some(KillbAmountBand1K::UpTo1K),
            monthly_crypto_deposits: Some(KillbCountBand::UpTo5),
            monthly_crypto_withdrawals: Some(KillbCountBand::UpTo5),
            monthly_crypto_investment_deposit: Some(KillbAmountBand1K::UpTo1K),
            monthly_crypto_investment_withdrawal: Some(KillbAmountBand1K::UpTo1K),
            ..parts
        };
        let profile = serde_json::to_value(all.complete().unwrap()).unwrap();
        assert_eq!(profile.as_object().unwrap().len(), 13);
        assert_eq!(profile["monthlyInvestmentDeposit"], json!("ONE_TO_100K"));
    }

    #[test]
    fn error_messages_keep_constraints_and_drop_echoes() {
        let env = KillbErrorEnvelope::parse(
            br#"{"errorCode":"INVALID.INPUT","arguments":[{"key":"email","value":"x-y"}],
                "message":["phone must be a valid phone number",
                           "document.type must be one of the following values: PASSPORT, NUIP",
                           "User jane@example.com already exists",
                           "lastName must not contain x-y",
                           "Doe is not a valid name"],
                "statusCode":"400"}"#,
        );
        assert_eq!(
            env.safe_message(400),
            "killb validation failed: phone must be a valid phone number; document.type must be one of the following values: PASSPORT, NUIP"
        );
        let env = KillbErrorEnvelope::parse(br#"{"statusCode":500,"message":"boom"}"#);
        assert_eq!(env.status_code().as_deref(), Some("500"));
        assert_eq!(env.safe_message(500), "killb is unavailable");
        assert_eq!(
            KillbErrorEnvelope::parse(b"<html>"),
            KillbErrorEnvelope::default()
        );
    }

    #[test]
    fn user_state_keeps_raw_status_and_access_level() {
        let u: KillbUser = serde_json::from_value(json!({
            "id": "0b8f", "status": "PENDING", "type": "PERSON", "accessLevel": "L1",
            "complianceUrl": "https://kyc.example.com/x", "note": "n", "active": true,
            "createdAt": "2024-02-06T00:03:30.791Z", "updatedAt": "2024-02-06T00:03:30.791Z",
            "data": {"firstName": "John"}, "extra": 1
        }))
        .unwrap();
        let s = ProviderUserState::from(u);
        assert_eq!(s.provider_user_id, "0b8f");
        assert_eq!(s.provider_status, "PENDING");
        assert_eq!(s.status, Some(LinkStatus::UnderReview));
        assert_eq!(
            s.requirements,
            vec![
                json!({"accessLevel": "L1"}),
                json!({"complianceUrl": "https://kyc.example.com/x"})
            ]
        );
        assert_eq!(s.link_data["access_level"], json!("L1"));
        assert_eq!(s.link_data["note"], json!("n"));
        assert!(s.observed_at.is_some());
        // Old shape: no status, isBlocked.
        let old: KillbUser =
            serde_json::from_value(json!({"id": "1", "isBlocked": false})).unwrap();
        let s = ProviderUserState::from(old);
        assert_eq!(s.status, None);
        assert_eq!(s.provider_status, "");
    }
}
