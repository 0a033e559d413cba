//! The canonical user as typed Rust: every value here has been parsed (see `parse.rs`), so
//! holding one means it is valid. `Debug` never prints PII.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};
use time::{Date, Month, OffsetDateTime};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::errors::{codes, Invalid};

// ---------------------------------------------------------------------------------------------
// Redaction helpers

/// Prints `***` in `Debug`.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `Some(***)` / `None` for an optional PII value.
fn redact_opt<T>(v: &Option<T>) -> Option<Redacted> {
    v.as_ref().map(|_| Redacted)
}

fn string_schema(description: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([json!(example)])
}

// ---------------------------------------------------------------------------------------------
// Dates

/// Serde helpers for `YYYY-MM-DD` dates.
pub mod iso_date {
    use super::*;

    /// Formats a date as `YYYY-MM-DD`.
    pub fn format(d: Date) -> String {
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }

    /// Parses exactly `YYYY-MM-DD` (four-digit year) into a real calendar date.
    pub fn parse(s: &str) -> Result<Date, Invalid> {
        let shape = Invalid::new(
            codes::INVALID_DATE,
            "must be a date in YYYY-MM-DD format, e.g. 1990-01-15",
        );
        let b = s.as_bytes();
        let digits_at = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(shape);
        }
        if !(digits_at(0..4) && digits_at(5..7) && digits_at(8..10)) {
            return Err(shape);
        }
        let year: i32 = s[0..4].parse().map_err(|_| shape.clone())?;
        let month: u8 = s[5..7].parse().map_err(|_| shape.clone())?;
        let day: u8 = s[8..10].parse().map_err(|_| shape.clone())?;
        let not_real = || {
            Invalid::new(
                codes::INVALID_DATE,
                "is not a real calendar date (check the month and day)",
            )
        };
        let month = Month::try_from(month).map_err(|_| not_real())?;
        Date::from_calendar_date(year, month, day).map_err(|_| not_real())
    }

    /// `#[serde(with = "iso_date")]` serializer.
    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// `#[serde(with = "iso_date")]` deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }

    /// Serde helpers for `Option<Date>`.
    pub mod option {
        use super::*;

        /// `#[serde(with = "iso_date::option")]` serializer.
        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&format(*d)),
                None => s.serialize_none(),
            }
        }

        /// `#[serde(with = "iso_date::option")]` deserializer.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => parse(&s)
                    .map(Some)
                    .map_err(|e| serde::de::Error::custom(e.message)),
                None => Ok(None),
            }
        }
    }
}

/// A date of birth (`YYYY-MM-DD`). Redacted in `Debug`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateOfBirth(Date);

impl DateOfBirth {
    /// Wraps a date that has already been checked (past, ≥ 1900, age 18+).
    pub fn new(date: Date) -> Self {
        Self(date)
    }

    /// The date itself.
    pub fn date(&self) -> Date {
        self.0
    }

    /// Full years of age on `today`. A 29 February birthday counts as 1 March in common years.
    pub fn age_on(&self, today: Date) -> i32 {
        let dob = self.0;
        let mut age = today.year() - dob.year();
        if (u8::from(today.month()), today.day()) < (u8::from(dob.month()), dob.day()) {
            age -= 1;
        }
        age
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(***)")
    }
}

impl Serialize for DateOfBirth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        iso_date::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for DateOfBirth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        iso_date::deserialize(d).map(Self)
    }
}

impl PartialSchema for DateOfBirth {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "Date of birth, `YYYY-MM-DD`: a real past date, not before 1900-01-01; the user must be 18 or older.",
            "1990-01-15",
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some("^(19|20)[0-9]{2}-"))
        .into()
    }
}

impl ToSchema for DateOfBirth {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DateOfBirth")
    }
}

// ---------------------------------------------------------------------------------------------
// Country

/// An assigned ISO 3166-1 alpha-2 country code, uppercase (`DE`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode(rust_iso3166::CountryCode);

impl CountryCode {
    /// Case-insensitive parse of an alpha-2 code (`de` → `DE`). No trimming.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let err = || {
            Invalid::new(
                codes::INVALID_COUNTRY,
                "must be an ISO 3166-1 alpha-2 country code, e.g. DE",
            )
        };
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(err());
        }
        rust_iso3166::from_alpha2(&s.to_ascii_uppercase())
            .map(Self)
            .ok_or_else(err)
    }

    /// The alpha-2 code, uppercase.
    pub fn as_str(&self) -> &'static str {
        self.0.alpha2
    }

    /// The ISO 3166-1 alpha-3 code (`DEU`), as the Carbn connector needs.
    pub fn alpha3(&self) -> &'static str {
        self.0.alpha3
    }

    /// The English short name (`Germany`).
    pub fn name(&self) -> &'static str {
        self.0.name
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl PartialSchema for CountryCode {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "ISO 3166-1 alpha-2 country code. Case-insensitive on input, uppercase on output.",
            "DE",
        )
        .pattern(Some(assigned_country_pattern()))
        .into()
    }
}

/// A pattern that matches exactly the assigned alpha-2 codes, in any case:
/// `^(?:[Aa][DdEe…]|[Bb][…]|…)$`, one alternative per first letter.
fn assigned_country_pattern() -> String {
    let mut by_first: std::collections::BTreeMap<char, String> = Default::default();
    for country in rust_iso3166::ALL {
        let mut letters = country.alpha2.chars();
        let (Some(first), Some(second)) = (letters.next(), letters.next()) else {
            continue;
        };
        let class = by_first.entry(first).or_default();
        class.push(second);
        class.push(second.to_ascii_lowercase());
    }
    let alternatives: Vec<String> = by_first
        .iter()
        .map(|(first, seconds)| format!("[{first}{}][{seconds}]", first.to_ascii_lowercase()))
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

impl ToSchema for CountryCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CountryCode")
    }
}

// ---------------------------------------------------------------------------------------------
// Language

/// Every ISO 639-1 two-letter language code (184, including the deprecated-in-2021 `bh`).
pub const ISO_639_1: [&str; 184] = [
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", //
    "ba", "be", "bg", "bh", "bi", "bm", "bn", "bo", "br", "bs", //
    "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", //
    "da", "de", "dv", "dz", //
    "ee", "el", "en", "eo", "es", "et", "eu", //
    "fa", "ff", "fi", "fj", "fo", "fr", "fy", //
    "ga", "gd", "gl", "gn", "gu", "gv", //
    "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz", //
    "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", //
    "ja", "jv", //
    "ka", "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw",
    "ky", //
    "la", "lb", "lg", "li", "ln", "lo", "lt", "lu", "lv", //
    "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", //
    "na", "nb", "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", //
    "oc", "oj", "om", "or", "os", //
    "pa", "pi", "pl", "ps", "pt", //
    "qu", //
    "rm", "rn", "ro", "ru", "rw", //
    "sa", "sc", "sd", "se", "sg", "si", "sk", "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su",
    "sv", "sw", //
    "ta", "te", "tg", "th", "ti", "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", //
    "ug", "uk", "ur", "uz", //
    "ve", "vi", "vo", //
    "wa", "wo", //
    "xh", //
    "yi", "yo", //
    "za", "zh", "zu",
];

/// An ISO 639-1 language code, lowercase (`de`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LanguageCode(&'static str);

impl LanguageCode {
    /// Case-insensitive parse (`DE` → `de`). No trimming.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let lower = s.to_ascii_lowercase();
        ISO_639_1
            .binary_search(&lower.as_str())
            .map(|i| Self(ISO_639_1[i]))
            .map_err(|_| {
                Invalid::new(
                    codes::INVALID_LANGUAGE,
                    "must be an ISO 639-1 two-letter language code, e.g. de",
                )
            })
    }

    /// The code, lowercase.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for LanguageCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for LanguageCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for LanguageCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for LanguageCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl PartialSchema for LanguageCode {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "ISO 639-1 language code. Case-insensitive on input, lowercase on output.",
            "de",
        )
        .pattern(Some("^[A-Za-z]{2}$"))
        .into()
    }
}

impl ToSchema for LanguageCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("LanguageCode")
    }
}

// ---------------------------------------------------------------------------------------------
// Email

/// An email address: domain lowercased, local part kept as given. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Practical validation: one `@`; local part 1–64 characters of letters, digits and
    /// ``!#$%&'*+/=?^_`{|}~.-`` without leading, trailing or doubled dots; a domain of at least
    /// two dot-separated labels of letters, digits and hyphens (1–63 each, no leading or
    /// trailing hyphen, the last not all digits); at most 254 characters in total. No trimming.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = |m: &str| Invalid::new(codes::INVALID_EMAIL, m);
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must be an email address without spaces"));
        }
        if s.chars().count() > 254 {
            return Err(bad("must be at most 254 characters"));
        }
        let (local, domain) = match s.split_once('@') {
            Some((l, d)) if !d.contains('@') => (l, d),
            Some(_) => return Err(bad("must contain exactly one @")),
            None => {
                return Err(bad(
                    "must be an email address like jane.doe@example.com (missing @)",
                ))
            }
        };
        if local.is_empty() {
            return Err(bad("must have a name before the @"));
        }
        if local.len() > 64 {
            return Err(bad("the part before the @ must be at most 64 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok {
            return Err(bad(
                "the part before the @ contains characters that are not allowed",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad(
                "the part before the @ must not start or end with a dot or contain two dots in a row",
            ));
        }
        if domain.is_empty() {
            return Err(bad("must have a domain after the @, e.g. example.com"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("the domain must contain a dot, e.g. example.com"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(
                    "the domain must be made of letters, digits and hyphens separated by single dots",
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(bad("the domain must end in a top-level domain, e.g. .com"));
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(***)")
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "Email address. The domain is lowercased; the part before the @ is kept as given.",
            "jane.doe@example.com",
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254))
        .into()
    }
}

impl ToSchema for Email {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Email")
    }
}

// ---------------------------------------------------------------------------------------------
// Phone

/// A phone number in E.164 (`+4915112345678`). Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Lenient input: spaces, dashes, dots and parentheses are removed; what remains must be
    /// `+` and 2–15 digits, and a number valid for its country according to libphonenumber's
    /// metadata (the `phonenumber` crate).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+');
        let shape_ok = digits
            .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        if !shape_ok {
            return Err(Invalid::new(
                codes::INVALID_PHONE,
                "must be an international phone number: + then the country code and number, e.g. +4915112345678",
            ));
        }
        let valid = phonenumber::parse(None, &compact)
            .map(|n| phonenumber::is_valid(&n))
            .unwrap_or(false);
        if !valid {
            return Err(Invalid::new(
                codes::INVALID_PHONE,
                "is not a valid phone number for its country code",
            ));
        }
        Ok(Self(compact))
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(***)")
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The stored copy is trusted and already normalised: only the shape is re-checked.
        let s = String::deserialize(d)?;
        let ok = s
            .strip_prefix('+')
            .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom("phone is not E.164"))
        }
    }
}

impl PartialSchema for Phone {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "Phone number in E.164. Input may contain spaces, dashes, dots and parentheses; it is stored and returned as `+` and 2–15 digits.",
            "+4915112345678",
        )
        .into()
    }
}

impl ToSchema for Phone {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Phone")
    }
}

// ---------------------------------------------------------------------------------------------
// Enumerations

string_enum! {
    /// The kind of user. Only `individual` in v1.
    #[schema(examples("individual"))]
    pub enum UserType {
        /// A natural person.
        Individual => "individual",
    }
}

string_enum! {
    /// Kind of identity document.
    #[schema(examples("passport"))]
    pub enum IdentityDocumentType {
        /// Passport.
        Passport => "passport",
        /// National identity card.
        NationalId => "national_id",
        /// Driver's license.
        DriversLicense => "drivers_license",
        /// Residence permit.
        ResidencePermit => "residence_permit",
    }
}

string_enum! {
    /// Employment status.
    #[schema(examples("employed"))]
    pub enum EmploymentStatus {
        /// Employed.
        Employed => "employed",
        /// Self-employed.
        SelfEmployed => "self_employed",
        /// Retired.
        Retired => "retired",
        /// Unemployed.
        Unemployed => "unemployed",
        /// Student.
        Student => "student",
        /// Other.
        Other => "other",
    }
}

string_enum! {
    /// Industry of the user's occupation (Kraken's occupation list minus the status-like values).
    #[schema(examples("computers_and_it"))]
    pub enum Industry {
        /// Agriculture.
        Agriculture => "agriculture",
        /// Business management.
        BusinessManagement => "business_management",
        /// Computers and IT.
        ComputersAndIt => "computers_and_it",
        /// Construction.
        Construction => "construction",
        /// Education.
        Education => "education",
        /// Finance.
        Finance => "finance",
        /// Government.
        Government => "government",
        /// Healthcare.
        Healthcare => "healthcare",
        /// Hospitality.
        Hospitality => "hospitality",
        /// Manufacturing.
        Manufacturing => "manufacturing",
        /// Marketing.
        Marketing => "marketing",
        /// Media.
        Media => "media",
        /// Science.
        Science => "science",
        /// Transportation.
        Transportation => "transportation",
        /// Other.
        Other => "other",
    }
}

string_enum! {
    /// Primary source of funds (KillB `primarySourceOfFunds` for a person; KillB's
    /// company-only values `COMPANY_CAPITAL` and `PRIVATE_CAPITAL` are left out).
    #[schema(examples("employment"))]
    pub enum SourceOfFunds {
        /// Salary or wages (KillB `EMPLOYMENT`).
        Employment => "employment",
        /// Savings (`SAVINGS`).
        Savings => "savings",
        /// Gambling or lottery winnings (`WINNINGS`).
        Winnings => "winnings",
        /// Marriage or divorce settlement (`MARITAL`).
        Marital => "marital",
        /// Sale or rent of real estate (`REAL_ESTATE`).
        RealEstate => "real_estate",
        /// A trust (`TRUST`).
        Trust => "trust",
        /// Investment returns (`INVESTMENT`).
        Investment => "investment",
        /// Income from a company the user owns (`COMPANY`).
        Company => "company",
        /// A loan (`LOAN`).
        Loan => "loan",
        /// A grant (`GRANT`).
        Grant => "grant",
        /// Anything else (`OTHER`).
        Other => "other",
    }
}

string_enum! {
    /// Total assets in USD (KillB `totalAssets`).
    #[schema(examples("10k_100k"))]
    pub enum TotalAssetsUsd {
        /// Up to 10,000 USD (`UPTO_10K`).
        UpTo10k => "up_to_10k",
        /// 10,000–100,000 USD (`TEN_TO_100K`).
        From10kTo100k => "10k_100k",
        /// 100,000–1,000,000 USD (`ONEHUNDREDK_TO_1M`).
        From100kTo1m => "100k_1m",
        /// 1–10 million USD (`ONE_TO_10M`).
        From1mTo10m => "1m_10m",
        /// 10–50 million USD (`TEN_TO_50M`).
        From10mTo50m => "10m_50m",
        /// 50–250 million USD (`FIFTY_TO_250M`).
        From50mTo250m => "50m_250m",
        /// More than 250 million USD (`MORE_THAN_250M`).
        MoreThan250m => "more_than_250m",
    }
}

string_enum! {
    /// Number of deposits per month (KillB `monthlyDeposits`).
    #[schema(examples("up_to_5"))]
    pub enum MonthlyDeposits {
        /// Up to 5 (`UPTO_5`).
        UpTo5 => "up_to_5",
        /// 5–10 (`FIVE_TO_10`).
        From5To10 => "5_10",
        /// 10–25 (`TEN_TO_25`).
        From10To25 => "10_25",
        /// More than 25 (`MORE_THAN_25`).
        MoreThan25 => "more_than_25",
    }
}

string_enum! {
    /// Monthly deposit volume in USD (KillB `monthlyInvestmentDeposit`).
    #[schema(examples("1k_100k"))]
    pub enum MonthlyVolumeUsd {
        /// Up to 1,000 USD (`UPTO_1K`).
        UpTo1k => "up_to_1k",
        /// 1,000–100,000 USD (`ONE_TO_100K`).
        From1kTo100k => "1k_100k",
        /// 100,000–1,000,000 USD (`ONEHUNDREDK_TO_1M`).
        From100kTo1m => "100k_1m",
        /// 1–5 million USD (`MILLION_TO_5M`).
        From1mTo5m => "1m_5m",
        /// More than 5 million USD (`MORE_THAN_5M`).
        MoreThan5m => "more_than_5m",
    }
}

// ---------------------------------------------------------------------------------------------
// Structures

/// The user's legal name. Redacted in `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"first": "Jane", "middle": "Q", "last": "Doe"})))]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// Given name, 1–100 characters.
    #[schema(
        examples("Jane"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub first: String,
    /// Middle name(s), 1–100 characters.
    #[schema(
        examples("Q"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub middle: Option<String>,
    /// Family name, 1–100 characters.
    #[schema(
        examples("Doe"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub last: String,
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonName")
            .field("first", &Redacted)
            .field("middle", &redact_opt(&self.middle))
            .field("last", &Redacted)
            .finish()
    }
}

/// Where the user was born. The city is redacted in `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"city": "Berlin", "country": "DE"})))]
#[serde(deny_unknown_fields)]
pub struct BirthPlace {
    /// City of birth, 1–100 characters.
    #[schema(
        examples("Berlin"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub city: Option<String>,
    /// Country of birth (required when `birth_place` is given).
    pub country: CountryCode,
}

impl fmt::Debug for BirthPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BirthPlace")
            .field("city", &redact_opt(&self.city))
            .field("country", &self.country)
            .finish()
    }
}

/// Residential address. Lines, city and postal code are redacted in `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
    "region": "BE", "postal_code": "10115", "country": "DE"})))]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number, 1–200 characters.
    #[schema(
        examples("Invalidenstr. 1"),
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub line1: Option<String>,
    /// Additional address line, 1–200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub line2: Option<String>,
    /// City, 1–100 characters.
    #[schema(
        examples("Berlin"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub city: Option<String>,
    /// State, province or region, 1–100 characters.
    #[schema(
        examples("BE"),
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub region: Option<String>,
    /// Postal code, 1–20 characters.
    #[schema(
        examples("10115"),
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub postal_code: Option<String>,
    /// Country of residence (required).
    pub country: CountryCode,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("line1", &redact_opt(&self.line1))
            .field("line2", &redact_opt(&self.line2))
            .field("city", &redact_opt(&self.city))
            .field("region", &self.region)
            .field("postal_code", &redact_opt(&self.postal_code))
            .field("country", &self.country)
            .finish()
    }
}

/// An identity document. The number is redacted in `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"type": "passport", "number": "C01X00T47", "issuing_country": "DE",
    "issued_on": "2019-05-01", "expires_on": "2029-04-30"})))]
#[serde(deny_unknown_fields)]
pub struct IdentityDocument {
    /// Kind of document.
    #[serde(rename = "type")]
    pub doc_type: IdentityDocumentType,
    /// Document number: 1–64 letters, digits, spaces and hyphens.
    #[schema(examples("C01X00T47"), max_length = 64, pattern = "^[A-Za-z0-9 -]+$")]
    pub number: String,
    /// Country that issued the document.
    pub issuing_country: CountryCode,
    /// Issue date, `YYYY-MM-DD`, not in the future.
    #[serde(with = "iso_date::option")]
    #[schema(examples("2019-05-01"))]
    pub issued_on: Option<Date>,
    /// Expiry date, `YYYY-MM-DD`, after `issued_on`. An expired document is accepted.
    #[serde(with = "iso_date::option")]
    #[schema(examples("2029-04-30"))]
    pub expires_on: Option<Date>,
}

impl fmt::Debug for IdentityDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityDocument")
            .field("type", &self.doc_type)
            .field("number", &Redacted)
            .field("issuing_country", &self.issuing_country)
            .field("issued_on", &self.issued_on)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// A tax identification number. The number is redacted in `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"type": "steuer_id", "number": "12345678901", "issuing_country": "DE"})))]
#[serde(deny_unknown_fields)]
pub struct TaxId {
    /// Free-form kind of tax id, 1–40 of `a-z`, `0-9`, `_` (e.g. `steuer_id`, `ssn`, `cpf`).
    #[serde(rename = "type")]
    #[schema(examples("steuer_id"), max_length = 40, pattern = "^[a-z0-9_]+$")]
    pub tax_type: Option<String>,
    /// The number, 1–64 characters.
    #[schema(examples("12345678901"), max_length = 64)]
    pub number: String,
    /// Country that issued the tax id.
    pub issuing_country: CountryCode,
}

impl fmt::Debug for TaxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaxId")
            .field("type", &self.tax_type)
            .field("number", &Redacted)
            .field("issuing_country", &self.issuing_country)
            .finish()
    }
}

/// Employment details.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"status": "employed", "industry": "computers_and_it",
    "occupation": "Software Engineer", "employer_name": "Acme GmbH"})))]
#[serde(deny_unknown_fields)]
pub struct Employment {
    /// Employment status (required when `employment` is given).
    pub status: EmploymentStatus,
    /// Industry.
    pub industry: Option<Industry>,
    /// Job title, 1–200 characters.
    #[schema(
        examples("Software Engineer"),
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub occupation: Option<String>,
    /// Employer, 1–200 characters.
    #[schema(
        examples("Acme GmbH"),
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub employer_name: Option<String>,
}

/// Financial profile, in KillB's investment-profile bands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"source_of_funds": "employment", "total_assets_usd": "10k_100k",
    "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k"})))]
#[serde(deny_unknown_fields)]
pub struct FinancialProfile {
    /// Primary source of funds.
    pub source_of_funds: Option<SourceOfFunds>,
    /// Total assets, USD band.
    pub total_assets_usd: Option<TotalAssetsUsd>,
    /// Number of deposits per month, band.
    pub monthly_deposits: Option<MonthlyDeposits>,
    /// Deposit volume per month, USD band.
    pub monthly_volume_usd: Option<MonthlyVolumeUsd>,
}

/// Acceptance of the terms of service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"version": 3, "accepted_at": "2026-11-01T09:30:00Z"})))]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Version of the terms accepted, 1–10000.
    #[schema(examples(3), minimum = 1, maximum = 10000)]
    pub version: Option<u32>,
    /// When they were accepted: RFC 3339, not in the future; returned in UTC.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(examples("2026-11-01T09:30:00Z"))]
    pub accepted_at: Option<OffsetDateTime>,
}

/// The canonical user: one KYC profile, translated by each connector to its provider.
///
/// Optional fields are always present on output (`null` when unset) so the shape is stable;
/// `metadata` is `{}` when unset.
#[derive(Serialize, Deserialize, Clone, PartialEq, ToSchema)]
#[schema(examples(json!({
    "external_id": "crm-000123",
    "type": "individual",
    "email": "jane.doe@example.com",
    "phone": "+4915112345678",
    "name": { "first": "Jane", "middle": "Q", "last": "Doe" },
    "date_of_birth": "1990-01-15",
    "birth_place": { "city": "Berlin", "country": "DE" },
    "nationalities": ["DE"],
    "citizenship": "DE",
    "address": { "line1": "Invalidenstr. 1", "line2": null, "city": "Berlin",
                 "region": "BE", "postal_code": "10115", "country": "DE" },
    "identity_document": { "type": "passport", "number": "C01X00T47", "issuing_country": "DE",
                           "issued_on": "2019-05-01", "expires_on": "2029-04-30" },
    "tax_ids": [ { "type": "steuer_id", "number": "12345678901", "issuing_country": "DE" } ],
    "employment": { "status": "employed", "industry": "computers_and_it",
                    "occupation": "Software Engineer", "employer_name": "Acme GmbH" },
    "financial_profile": { "source_of_funds": "employment", "total_assets_usd": "10k_100k",
                           "monthly_deposits": "up_to_5", "monthly_volume_usd": "1k_100k" },
    "language": "de",
    "terms": { "version": 3, "accepted_at": "2026-11-01T09:30:00Z" },
    "metadata": { "any": "caller-owned JSON, stored and returned, never sent to providers" }
})))]
pub struct CanonicalUser {
    /// The caller's id for this user: 1–128 of `A-Z a-z 0-9 . _ : @ -`; unique per gateway.
    #[schema(
        examples("crm-000123"),
        max_length = 128,
        pattern = "^[A-Za-z0-9._:@-]+$"
    )]
    pub external_id: String,
    /// Kind of user (`individual` only in v1).
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// Email address.
    pub email: Email,
    /// Phone number, E.164.
    pub phone: Option<Phone>,
    /// Legal name.
    pub name: PersonName,
    /// Date of birth; the user must be 18 or older.
    pub date_of_birth: DateOfBirth,
    /// Place of birth.
    pub birth_place: Option<BirthPlace>,
    /// Nationalities: 1–10 distinct country codes.
    #[schema(max_items = 10, min_items = 1)]
    pub nationalities: Option<Vec<CountryCode>>,
    /// Country of citizenship.
    pub citizenship: Option<CountryCode>,
    /// Residential address (`address.country` required).
    pub address: Address,
    /// Identity document.
    pub identity_document: Option<IdentityDocument>,
    /// Tax ids: 1–10 distinct entries.
    #[schema(max_items = 10, min_items = 1)]
    pub tax_ids: Option<Vec<TaxId>>,
    /// Employment.
    pub employment: Option<Employment>,
    /// Financial profile.
    pub financial_profile: Option<FinancialProfile>,
    /// Preferred language, ISO 639-1.
    pub language: Option<LanguageCode>,
    /// Terms of service acceptance.
    pub terms: Option<Terms>,
    /// Caller-owned JSON object: stored and returned, never sent to providers. At most 50 keys
    /// (each 1–40 characters), 8 KiB serialised and 5 levels deep.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

impl fmt::Debug for CanonicalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanonicalUser")
            .field("external_id", &self.external_id)
            .field("type", &self.user_type)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("name", &self.name)
            .field("date_of_birth", &self.date_of_birth)
            .field("birth_place", &self.birth_place)
            .field("nationalities", &self.nationalities)
            .field("citizenship", &self.citizenship)
            .field("address", &self.address)
            .field("identity_document", &self.identity_document)
            .field("tax_ids", &self.tax_ids)
            .field("employment", &self.employment)
            .field("financial_profile", &self.financial_profile)
            .field("language", &self.language)
            .field("terms", &self.terms)
            .field(
                "metadata",
                &format_args!("{{{} keys, redacted}}", self.metadata.len()),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// Every personal value of [`full_user`] (or a telling part of it).
    pub(crate) const FULL_USER_PII: [&str; 15] = [
        "jane.doe",
        "example.com",
        "4915112345678",
        "Janelle",
        "Quintessa",
        "Doemeyer",
        "1990",
        "Wolfsburg",
        "Invalidenstr",
        "Hinterhaus",
        "Potsdam",
        "10115",
        "C01X00T47",
        "98765432109",
        "Geheimnis",
    ];

    pub(crate) fn full_user() -> CanonicalUser {
        CanonicalUser {
            external_id: "crm-000123".into(),
            user_type: UserType::Individual,
            email: Email::parse("jane.doe@example.com").unwrap(),
            phone: Some(Phone::parse("+4915112345678").unwrap()),
            name: PersonName {
                first: "Janelle".into(),
                middle: Some("Quintessa".into()),
                last: "Doemeyer".into(),
            },
            date_of_birth: DateOfBirth::new(date!(1990 - 01 - 15)),
            birth_place: Some(BirthPlace {
                city: Some("Wolfsburg".into()),
                country: CountryCode::parse("DE").unwrap(),
            }),
            nationalities: Some(vec![CountryCode::parse("DE").unwrap()]),
            citizenship: Some(CountryCode::parse("DE").unwrap()),
            address: Address {
                line1: Some("Invalidenstr. 1".into()),
                line2: Some("Hinterhaus links".into()),
                city: Some("Potsdam".into()),
                region: Some("BE".into()),
                postal_code: Some("10115".into()),
                country: CountryCode::parse("DE").unwrap(),
            },
            identity_document: Some(IdentityDocument {
                doc_type: IdentityDocumentType::Passport,
                number: "C01X00T47".into(),
                issuing_country: CountryCode::parse("DE").unwrap(),
                issued_on: Some(date!(2019 - 05 - 01)),
                expires_on: Some(date!(2029 - 04 - 30)),
            }),
            tax_ids: Some(vec![TaxId {
                tax_type: Some("steuer_id".into()),
                number: "98765432109".into(),
                issuing_country: CountryCode::parse("DE").unwrap(),
            }]),
            employment: Some(Employment {
                status: EmploymentStatus::Employed,
                industry: Some(Industry::ComputersAndIt),
                occupation: Some("Software Engineer".into()),
                employer_name: Some("Acme GmbH".into()),
            }),
            financial_profile: Some(FinancialProfile {
                source_of_funds: Some(SourceOfFunds::Employment),
                total_assets_usd: Some(TotalAssetsUsd::From10kTo100k),
                monthly_deposits: Some(MonthlyDeposits::UpTo5),
                monthly_volume_usd: Some(MonthlyVolumeUsd::From1kTo100k),
            }),
            language: Some(LanguageCode::parse("de").unwrap()),
            terms: Some(Terms {
                version: Some(3),
                accepted_at: Some(datetime!(2026-11-01 09:30:00 UTC)),
            }),
            metadata: json!({"secret_note": "Geheimnis"})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn debug_never_prints_pii() {
        let user = full_user();
        let debug = format!("{user:?}");
        let pretty = format!("{user:#?}");
        for pii in FULL_USER_PII.iter().chain(&["secret_note"]) {
            assert!(!debug.contains(pii), "{pii} leaked in {debug}");
            assert!(!pretty.contains(pii), "{pii} leaked in {pretty}");
        }
        assert!(debug.contains("***"));
        assert!(debug.contains("crm-000123"));
        assert!(debug.contains("DE"));
    }

    #[test]
    fn serialises_every_key_with_nulls() {
        let mut user = full_user();
        user.phone = None;
        user.birth_place = None;
        user.metadata = Map::new();
        let v = serde_json::to_value(&user).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 17);
        assert_eq!(obj["phone"], Value::Null);
        assert_eq!(obj["birth_place"], Value::Null);
        assert_eq!(obj["metadata"], json!({}));
        assert_eq!(obj["type"], json!("individual"));
        assert_eq!(obj["date_of_birth"], json!("1990-01-15"));
        assert_eq!(obj["terms"]["accepted_at"], json!("2026-11-01T09:30:00Z"));
        assert_eq!(obj["identity_document"]["issued_on"], json!("2019-05-01"));
        assert_eq!(obj["identity_document"]["type"], json!("passport"));
        assert_eq!(obj["tax_ids"][0]["type"], json!("steuer_id"));
        assert_eq!(
            obj["financial_profile"]["total_assets_usd"],
            json!("10k_100k")
        );
        assert_eq!(obj["address"]["line2"], json!("Hinterhaus links"));
    }

    #[test]
    fn round_trips_through_json() {
        let user = full_user();
        let v = serde_json::to_value(&user).unwrap();
        let back: CanonicalUser = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, user);
        // Missing metadata reads back as {}.
        let mut v2 = v;
        v2.as_object_mut().unwrap().remove("metadata");
        let back: CanonicalUser = serde_json::from_value(v2).unwrap();
        assert!(back.metadata.is_empty());
    }

    #[test]
    fn country_codes() {
        let de = CountryCode::parse("de").unwrap();
        assert_eq!(de.as_str(), "DE");
        assert_eq!(de.alpha3(), "DEU");
        assert_eq!(de.name(), "Germany");
        assert_eq!(CountryCode::parse("Co").unwrap().alpha3(), "COL");
        for bad in ["", "D", "DEU", "XX", "ZZ", "UK", "1A", "d e"] {
            let e = CountryCode::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_COUNTRY, "{bad}");
        }
        assert_eq!(rust_iso3166::ALL_ALPHA2.len(), 249);
    }

    #[test]
    fn language_codes() {
        assert_eq!(ISO_639_1.len(), 184);
        let mut sorted = ISO_639_1;
        sorted.sort_unstable();
        assert_eq!(
            sorted, ISO_639_1,
            "the table must stay sorted for binary search"
        );
        assert!(ISO_639_1.windows(2).all(|w| w[0] != w[1]));
        assert_eq!(LanguageCode::parse("DE").unwrap().as_str(), "de");
        assert_eq!(LanguageCode::parse("zu").unwrap().as_str(), "zu");
        for bad in ["", "d", "deu", "xx", "qq", "e1"] {
            assert_eq!(
                LanguageCode::parse(bad).unwrap_err().code,
                codes::INVALID_LANGUAGE
            );
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("Jane.Doe+kyc@Example.COM").unwrap().as_str(),
            "Jane.Doe+kyc@example.com"
        );
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("o'brien@sub.example-mail.de").is_ok());
        let long_local = format!("{}@example.com", "a".repeat(64));
        assert!(Email::parse(&long_local).is_ok());
        let too_long_local = format!("{}@example.com", "a".repeat(65));
        let too_long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "plainaddress",
            "@example.com",
            "jane@",
            "jane@@example.com",
            "jane@doe@example.com",
            "jane doe@example.com",
            "jane@example",
            "jane@.example.com",
            "jane@example..com",
            "jane@-example.com",
            "jane@example-.com",
            "jane@exa_mple.com",
            "jane@example.123",
            ".jane@example.com",
            "jane.@example.com",
            "ja..ne@example.com",
            "jäne@example.com",
            "jane(x)@example.com",
            too_long_local.as_str(),
            too_long_total.as_str(),
        ] {
            let e = Email::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_EMAIL, "{bad}");
        }
    }

    #[test]
    fn phones() {
        for (input, want) in [
            ("+4915112345678", "+4915112345678"),
            ("+49 151 1234-5678", "+4915112345678"),
            ("+49 (151) 123.456.78", "+4915112345678"),
            ("+1 (202) 555-0143", "+12025550143"),
            ("+57 601 5555555", "+576015555555"),
            ("+44 20 7946 0958", "+442079460958"),
        ] {
            assert_eq!(Phone::parse(input).unwrap().as_str(), want, "{input}");
        }
        for bad in [
            "",
            "+",
            "4915112345678",
            "004915112345678",
            "+49 151 abc",
            "+1234567890123456",
            "+49_15112345678",
            "+49/151/12345678",
            "+1",
            "+999 123456",
            "+49 1",
        ] {
            assert_eq!(
                Phone::parse(bad).unwrap_err().code,
                codes::INVALID_PHONE,
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(
            iso_date::parse("1990-01-15").unwrap(),
            date!(1990 - 01 - 15)
        );
        assert_eq!(
            iso_date::parse("2000-02-29").unwrap(),
            date!(2000 - 02 - 29)
        );
        for bad in [
            "1990-1-15",
            "90-01-15",
            "1990/01/15",
            "1990-01-15T00:00:00Z",
            "+1990-01-15",
            "1990-13-01",
            "1990-00-10",
            "1990-02-30",
            "1900-02-29",
            "1990-01-32",
            "",
        ] {
            assert_eq!(
                iso_date::parse(bad).unwrap_err().code,
                codes::INVALID_DATE,
                "{bad}"
            );
        }
        assert_eq!(iso_date::format(date!(0999 - 01 - 02)), "0999-01-02");
    }

    #[test]
    fn age_counts_full_years() {
        let dob = DateOfBirth::new(date!(2000 - 02 - 29));
        assert_eq!(dob.age_on(date!(2018 - 02 - 28)), 17);
        assert_eq!(dob.age_on(date!(2018 - 03 - 01)), 18);
        assert_eq!(dob.age_on(date!(2020 - 02 - 29)), 20);
        let dob = DateOfBirth::new(date!(1990 - 06 - 15));
        assert_eq!(dob.age_on(date!(2008 - 06 - 14)), 17);
        assert_eq!(dob.age_on(date!(2008 - 06 - 15)), 18);
    }

    #[test]
    fn enums_have_wire_values() {
        assert_eq!(TotalAssetsUsd::ALL.len(), 7);
        assert_eq!(MonthlyDeposits::ALL.len(), 4);
        assert_eq!(MonthlyVolumeUsd::ALL.len(), 5);
        assert_eq!(Industry::ALL.len(), 15);
        assert_eq!(EmploymentStatus::ALL.len(), 6);
        assert_eq!(IdentityDocumentType::ALL.len(), 4);
        assert_eq!(TotalAssetsUsd::From10kTo100k.as_str(), "10k_100k");
        assert_eq!(
            serde_json::to_value(MonthlyVolumeUsd::MoreThan5m).unwrap(),
            json!("more_than_5m")
        );
        assert_eq!(
            "drivers_license".parse::<IdentityDocumentType>().unwrap(),
            IdentityDocumentType::DriversLicense
        );
        assert_eq!(
            IdentityDocumentType::allowed(),
            "passport, national_id, drivers_license, residence_permit"
        );
    }

    #[test]
    fn schema_has_example_and_all_properties() {
        let schema = serde_json::to_value(CanonicalUser::schema()).unwrap();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), 17);
        assert!(schema["examples"][0]["external_id"].is_string());
        assert!(props.contains_key("type"));
        assert!(!props.contains_key("user_type"));
        assert_eq!(props["metadata"]["type"], json!("object"));
        let required = schema["required"].as_array().unwrap();
        for key in [
            "external_id",
            "type",
            "email",
            "name",
            "date_of_birth",
            "address",
        ] {
            assert!(required.contains(&json!(key)), "{key}");
        }
    }

    /// The OpenAPI enums must list the wire values, not the Rust variant names.
    #[test]
    fn schema_enums_use_wire_values() {
        fn check<E: PartialSchema>(all: Vec<&'static str>) {
            let schema = serde_json::to_value(E::schema()).unwrap();
            assert_eq!(schema["enum"], json!(all));
        }
        fn wire<E: Copy>(all: &[E], f: fn(&E) -> &'static str) -> Vec<&'static str> {
            all.iter().map(f).collect()
        }
        check::<UserType>(wire(UserType::ALL, UserType::as_str));
        check::<IdentityDocumentType>(wire(
            IdentityDocumentType::ALL,
            IdentityDocumentType::as_str,
        ));
        check::<EmploymentStatus>(wire(EmploymentStatus::ALL, EmploymentStatus::as_str));
        check::<Industry>(wire(Industry::ALL, Industry::as_str));
        check::<SourceOfFunds>(wire(SourceOfFunds::ALL, SourceOfFunds::as_str));
        check::<TotalAssetsUsd>(wire(TotalAssetsUsd::ALL, TotalAssetsUsd::as_str));
        check::<MonthlyDeposits>(wire(MonthlyDeposits::ALL, MonthlyDeposits::as_str));
        check::<MonthlyVolumeUsd>(wire(MonthlyVolumeUsd::ALL, MonthlyVolumeUsd::as_str));
        use crate::domain::{LinkStatus, ProviderId};
        check::<LinkStatus>(wire(LinkStatus::ALL, LinkStatus::as_str));
        check::<ProviderId>(wire(ProviderId::ALL, ProviderId::as_str));
    }
}
