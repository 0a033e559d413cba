//! The masked view of a user (`view=masked`) and the personal fields an operator may reveal one
//! by one. Masking keeps the shape of the canonical user and enough of each value to tell users
//! apart on a screen (`j***@e***.com`, `J***`, `+49***78`), never enough to act on.
//!
//! What is masked: e-mail, phone, name, date of birth, city of birth, address lines, city and
//! postal code, document and tax id numbers, and `metadata` values (caller-owned, so possibly
//! personal; key names are kept). Countries, region, the kinds of documents and ids, the
//! employment and financial bands, language and terms are kept as they are.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::user::{
    Address, CanonicalUser, CountryCode, Employment, FinancialProfile, IdentityDocumentType,
    LanguageCode, Terms, UserType,
};

/// What replaces a masked value, or a masked value's hidden part.
pub const MASK: &str = "***";

/// The date of birth, masked whole.
pub const MASKED_DATE: &str = "****-**-**";

/// Document and tax id numbers show their last 4 characters only from this length on, so a
/// short number is never shown nearly whole.
const MIN_LEN_FOR_TAIL: usize = 8;

/// `j***@e***.com`: the local part's first character, the domain's first character and its
/// last label.
pub fn mask_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let tld = domain.rsplit_once('.').map(|(_, tld)| tld).unwrap_or("");
    format!(
        "{}@{}.{tld}",
        first_then_mask(local),
        first_then_mask(domain)
    )
}

/// `J***`: the first character, then the mask.
pub fn first_then_mask(value: &str) -> String {
    match value.chars().next() {
        Some(first) => format!("{first}{MASK}"),
        None => MASK.to_owned(),
    }
}

/// `+49***78`: the country calling code and the last 2 digits of an E.164 number.
pub fn mask_phone(e164: &str) -> String {
    let country = phonenumber::parse(None, e164)
        .map(|n| n.country().code().to_string())
        .unwrap_or_default();
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(2)..].iter().collect();
    format!("+{country}{MASK}{tail}")
}

/// `***2109`: the last 4 characters of a long enough number, else the mask alone.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < MIN_LEN_FOR_TAIL {
        return MASK.to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{MASK}{tail}")
}

fn mask_opt(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|_| MASK.to_owned())
}

/// The legal name, masked: first letters only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaskedName {
    #[schema(examples("J***"))]
    pub first: String,
    pub middle: Option<String>,
    #[schema(examples("D***"))]
    pub last: String,
}

/// The place of birth, city masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaskedBirthPlace {
    pub city: Option<String>,
    pub country: CountryCode,
}

/// The address, lines, city and postal code masked; region and country kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaskedAddress {
    #[schema(examples("***"))]
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: CountryCode,
}

/// An identity document, number masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaskedIdentityDocument {
    #[serde(rename = "type")]
    pub doc_type: IdentityDocumentType,
    #[schema(examples("***0T47"))]
    pub number: String,
    pub issuing_country: CountryCode,
    #[serde(with = "super::user::iso_date::option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub issued_on: Option<time::Date>,
    #[serde(with = "super::user::iso_date::option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub expires_on: Option<time::Date>,
}

/// A tax id, number masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaskedTaxId {
    #[serde(rename = "type")]
    pub tax_type: Option<String>,
    #[schema(examples("***2109"))]
    pub number: String,
    pub issuing_country: CountryCode,
}

/// The canonical user with its personal values masked (`view=masked`): the same members as
/// the full view, masked strings in place of personal values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaskedUser {
    pub external_id: String,
    #[serde(rename = "type")]
    pub user_type: UserType,
    #[schema(examples("j***@e***.com"))]
    pub email: String,
    #[schema(examples("+49***78"))]
    pub phone: Option<String>,
    pub name: MaskedName,
    /// Always `****-**-**` (this is what tells a masked user from a full one).
    #[schema(pattern = r"^\*{4}-\*{2}-\*{2}$", examples("****-**-**"))]
    pub date_of_birth: String,
    pub birth_place: Option<MaskedBirthPlace>,
    pub nationalities: Option<Vec<CountryCode>>,
    pub citizenship: Option<CountryCode>,
    pub address: MaskedAddress,
    pub identity_document: Option<MaskedIdentityDocument>,
    pub tax_ids: Option<Vec<MaskedTaxId>>,
    pub employment: Option<Employment>,
    pub financial_profile: Option<FinancialProfile>,
    pub language: Option<LanguageCode>,
    pub terms: Option<Terms>,
    /// The caller's keys, each value `***`.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

fn mask_address(address: &Address) -> MaskedAddress {
    MaskedAddress {
        line1: mask_opt(&address.line1),
        line2: mask_opt(&address.line2),
        city: mask_opt(&address.city),
        region: address.region.clone(),
        postal_code: mask_opt(&address.postal_code),
        country: address.country,
    }
}

/// The masked view of `user`.
pub fn mask_user(user: &CanonicalUser) -> MaskedUser {
    MaskedUser {
        external_id: user.external_id.clone(),
        user_type: user.user_type,
        email: mask_email(user.email.as_str()),
        phone: user.phone.as_ref().map(|p| mask_phone(p.as_str())),
        name: MaskedName {
            first: first_then_mask(&user.name.first),
            middle: user.name.middle.as_deref().map(first_then_mask),
            last: first_then_mask(&user.name.last),
        },
        date_of_birth: MASKED_DATE.to_owned(),
        birth_place: user.birth_place.as_ref().map(|b| MaskedBirthPlace {
            city: mask_opt(&b.city),
            country: b.country,
        }),
        nationalities: user.nationalities.clone(),
        citizenship: user.citizenship,
        address: mask_address(&user.address),
        identity_document: user
            .identity_document
            .as_ref()
            .map(|d| MaskedIdentityDocument {
                doc_type: d.doc_type,
                number: mask_number(&d.number),
                issuing_country: d.issuing_country,
                issued_on: d.issued_on,
                expires_on: d.expires_on,
            }),
        tax_ids: user.tax_ids.as_ref().map(|ids| {
            ids.iter()
                .map(|t| MaskedTaxId {
                    tax_type: t.tax_type.clone(),
                    number: mask_number(&t.number),
                    issuing_country: t.issuing_country,
                })
                .collect()
        }),
        employment: user.employment.clone(),
        financial_profile: user.financial_profile.clone(),
        language: user.language,
        terms: user.terms.clone(),
        metadata: user
            .metadata
            .keys()
            .map(|k| (k.clone(), Value::String(MASK.to_owned())))
            .collect(),
    }
}

string_enum! {
    /// A personal field an operator may reveal (`POST /v1/users/{id}/reveal`).
    #[schema(examples("email"))]
    pub enum RevealableField {
        FirstName => "first_name",
        MiddleName => "middle_name",
        LastName => "last_name",
        Email => "email",
        Phone => "phone",
        DateOfBirth => "date_of_birth",
        BirthPlace => "birth_place",
        Address => "address",
        IdentityDocument => "identity_document",
        TaxIds => "tax_ids",
        Metadata => "metadata",
    }
}

/// The unmasked value of one field (`null` when the user has none).
pub fn reveal(user: &CanonicalUser, field: RevealableField) -> Value {
    fn json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).expect("the canonical user always serialises")
    }
    match field {
        RevealableField::FirstName => json(&user.name.first),
        RevealableField::MiddleName => json(&user.name.middle),
        RevealableField::LastName => json(&user.name.last),
        RevealableField::Email => json(&user.email),
        RevealableField::Phone => json(&user.phone),
        RevealableField::DateOfBirth => json(&user.date_of_birth),
        RevealableField::BirthPlace => json(&user.birth_place),
        RevealableField::Address => json(&user.address),
        RevealableField::IdentityDocument => json(&user.identity_document),
        RevealableField::TaxIds => json(&user.tax_ids),
        RevealableField::Metadata => json(&user.metadata),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::tests::{full_user, FULL_USER_PII};

    #[test]
    fn values_are_masked_as_the_contract_says() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@e***.com");
        assert_eq!(mask_email("x@mail.example.co.uk"), "x***@m***.uk");
        assert_eq!(first_then_mask("Émile"), "É***");
        assert_eq!(first_then_mask(""), "***");
        assert_eq!(mask_phone("+4915112345678"), "+49***78");
        assert_eq!(mask_phone("+12025550143"), "+1***43");
        assert_eq!(mask_number("98765432109"), "***2109");
        assert_eq!(mask_number("1234567"), "***");
    }

    #[test]
    fn a_masked_user_holds_no_personal_value() {
        let user = full_user();
        let masked = serde_json::to_string(&mask_user(&user)).unwrap();
        for pii in FULL_USER_PII {
            assert!(!masked.contains(pii), "{pii} leaked into {masked}");
        }
        let masked: Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(masked["email"], "j***@e***.com");
        assert_eq!(masked["name"]["first"], "J***");
        assert_eq!(masked["name"]["middle"], "Q***");
        assert_eq!(masked["date_of_birth"], MASKED_DATE);
        assert_eq!(masked["address"]["country"], "DE");
        assert_eq!(masked["address"]["region"], "BE");
        assert_eq!(masked["address"]["line1"], MASK);
        assert_eq!(masked["identity_document"]["number"], "***0T47");
        assert_eq!(masked["tax_ids"][0]["number"], "***2109");
        assert_eq!(masked["metadata"]["secret_note"], MASK);
        assert_eq!(masked["external_id"], "crm-000123");
    }

    #[test]
    fn masking_keeps_the_full_views_members() {
        let user = full_user();
        let full = serde_json::to_value(&user).unwrap();
        let masked = serde_json::to_value(mask_user(&user)).unwrap();
        fn members(v: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Value::Object(map) = v {
                for (k, v) in map {
                    let path = format!("{prefix}{k}");
                    members(v, &format!("{path}."), out);
                    out.push(path);
                }
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        members(&full, "", &mut a);
        members(&masked, "", &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn reveal_gives_the_stored_value() {
        let user = full_user();
        assert_eq!(
            reveal(&user, RevealableField::Email),
            "jane.doe@example.com"
        );
        assert_eq!(reveal(&user, RevealableField::FirstName), "Janelle");
        assert_eq!(reveal(&user, RevealableField::DateOfBirth), "1990-01-15");
        assert_eq!(reveal(&user, RevealableField::Address)["city"], "Potsdam");
        assert_eq!(
            reveal(&user, RevealableField::TaxIds)[0]["number"],
            "98765432109"
        );
        assert_eq!(
            RevealableField::from_wire("date_of_birth"),
            Some(RevealableField::DateOfBirth)
        );
        assert_eq!(RevealableField::from_wire("password"), None);
    }
}
