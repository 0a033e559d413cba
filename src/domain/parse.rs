//! Parse untrusted JSON into a [`CanonicalUser`], collecting every problem with its JSON path.
//!
//! Rules in brief: unknown keys are rejected at every level; `null` equals absent; strings are
//! trimmed; an empty string is `required` for required fields and `too_short` for optional
//! ones (send `null` to unset); countries and languages are case-insensitive; phones accept
//! spaces, dashes, dots and parentheses. Messages never echo the submitted value (no PII in
//! error bodies or logs).

use serde_json::{Map, Value};
use time::macros::date;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use super::errors::{codes, index, join, FieldError, Invalid};
use super::provider::ProviderId;
use super::user::*;
use super::WireEnum;

/// At most this many errors are reported for one document (the first ones found).
pub const MAX_ERRORS: usize = 100;
/// Clock skew allowed for `terms.accepted_at`.
pub const ACCEPTED_AT_SKEW: Duration = Duration::minutes(5);
/// Earliest accepted date of birth / document issue date.
pub const EARLIEST_DATE: Date = date!(1900 - 01 - 01);
/// Minimum age of a user, in years.
pub const MINIMUM_AGE: i32 = 18;
/// Maximum number of `metadata` keys.
pub const METADATA_MAX_KEYS: usize = 50;
/// Maximum length of a `metadata` key, in characters.
pub const METADATA_MAX_KEY_CHARS: usize = 40;
/// Maximum size of `metadata` serialised as compact JSON, in bytes.
pub const METADATA_MAX_BYTES: usize = 8 * 1024;
/// Maximum nesting depth of `metadata` (the `metadata` object itself is level 1).
pub const METADATA_MAX_DEPTH: usize = 5;

/// The top-level keys of the canonical user.
pub const USER_KEYS: &[&str] = &[
    "external_id",
    "type",
    "email",
    "phone",
    "name",
    "date_of_birth",
    "birth_place",
    "nationalities",
    "citizenship",
    "address",
    "identity_document",
    "tax_ids",
    "employment",
    "financial_profile",
    "language",
    "terms",
    "metadata",
];
const NAME_KEYS: &[&str] = &["first", "middle", "last"];
const BIRTH_PLACE_KEYS: &[&str] = &["city", "country"];
const ADDRESS_KEYS: &[&str] = &["line1", "line2", "city", "region", "postal_code", "country"];
const DOCUMENT_KEYS: &[&str] = &[
    "type",
    "number",
    "issuing_country",
    "issued_on",
    "expires_on",
];
const TAX_ID_KEYS: &[&str] = &["type", "number", "issuing_country"];
const EMPLOYMENT_KEYS: &[&str] = &["status", "industry", "occupation", "employer_name"];
const FINANCIAL_KEYS: &[&str] = &[
    "source_of_funds",
    "total_assets_usd",
    "monthly_deposits",
    "monthly_volume_usd",
];
const TERMS_KEYS: &[&str] = &["version", "accepted_at"];

/// Parses a canonical user, judging dates against the current UTC time.
pub fn parse_user(input: &Value) -> Result<CanonicalUser, Vec<FieldError>> {
    parse_user_at(input, OffsetDateTime::now_utc())
}

/// Parses a canonical user as of `now` ("today" is `now`'s UTC date). For tests and replays.
///
/// Optional fields that fail to parse are reported in the error list; a `CanonicalUser` is only
/// returned when there are no errors at all.
pub fn parse_user_at(input: &Value, now: OffsetDateTime) -> Result<CanonicalUser, Vec<FieldError>> {
    let mut p = Parser::new(now);
    let user = p.user(input, &[]);
    p.finish(user)
}

/// Parses a `POST /v1/users` body: the canonical user plus an optional top-level
/// `providers` array (1–3 distinct provider ids). `None` means "let routing choose".
pub fn parse_create_request(
    input: &Value,
) -> Result<(CanonicalUser, Option<Vec<ProviderId>>), Vec<FieldError>> {
    parse_create_request_at(input, OffsetDateTime::now_utc())
}

/// [`parse_create_request`] as of `now`.
pub fn parse_create_request_at(
    input: &Value,
    now: OffsetDateTime,
) -> Result<(CanonicalUser, Option<Vec<ProviderId>>), Vec<FieldError>> {
    let mut p = Parser::new(now);
    let user = p.user(input, &["providers"]);
    let providers = match input {
        Value::Object(m) => p.providers(field(m, "providers"), "providers"),
        _ => None,
    };
    let user = p.finish(user)?;
    Ok((user, providers))
}

/// `Some(value)` unless the key is absent or `null`.
fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// "a string", "an object"… for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Allowed characters of a field, and how to describe them in an error message.
type CharRule = (fn(char) -> bool, &'static str);

/// Length and character rules for a free-text field.
#[derive(Clone, Copy)]
struct Text {
    max: usize,
    /// Allowed characters and how to describe them.
    chars: Option<CharRule>,
}

impl Text {
    const fn max(max: usize) -> Self {
        Self { max, chars: None }
    }
}

const EXTERNAL_ID: Text = Text {
    max: 128,
    chars: Some((
        |c| c.is_ascii_alphanumeric() || "._:@-".contains(c),
        "may contain only letters A-Z and a-z, digits and . _ : @ -",
    )),
};
const DOCUMENT_NUMBER: Text = Text {
    max: 64,
    chars: Some((
        |c| c.is_ascii_alphanumeric() || c == ' ' || c == '-',
        "may contain only letters A-Z and a-z, digits, spaces and hyphens",
    )),
};
const TAX_ID_TYPE: Text = Text {
    max: 40,
    chars: Some((
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "may contain only lowercase letters a-z, digits and underscores, e.g. steuer_id",
    )),
};

struct Parser {
    errors: Vec<FieldError>,
    now: OffsetDateTime,
    today: Date,
}

impl Parser {
    fn new(now: OffsetDateTime) -> Self {
        let now = now.to_offset(UtcOffset::UTC);
        Self {
            errors: Vec::new(),
            now,
            today: now.date(),
        }
    }

    fn push(&mut self, field: impl Into<String>, code: &'static str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FieldError::new(field, code, message));
        }
    }

    fn push_invalid(&mut self, path: &str, e: Invalid) {
        self.push(path, e.code, e.message);
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a parse failed without an error");
                Err(self.errors)
            }
        }
    }

    fn required(&mut self, path: &str) {
        self.push(path, codes::REQUIRED, "is required");
    }

    fn wrong_type(&mut self, path: &str, expected: &str, got: &Value) {
        let msg = format!("must be {expected}, not {}", json_type(got));
        self.push(path, codes::INVALID_TYPE, msg);
    }

    /// An object whose keys are all in `allowed`; unknown keys are reported.
    fn object<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Value::Object(m) = v else {
            if path.is_empty() {
                self.push(
                    "",
                    codes::INVALID_TYPE,
                    format!(
                        "the request body must be a JSON object, not {}",
                        json_type(v)
                    ),
                );
            } else {
                self.wrong_type(path, "an object", v);
            }
            return None;
        };
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                let msg = format!("is not a known field; allowed: {}", allowed.join(", "));
                self.push(join(path, key), codes::UNKNOWN_FIELD, msg);
            }
        }
        Some(m)
    }

    /// A trimmed, non-empty string. Empty is `required` when `required`, else `too_short`.
    fn str_value<'a>(&mut self, v: &'a Value, path: &str, required: bool) -> Option<&'a str> {
        let Value::String(s) = v else {
            self.wrong_type(path, "a string", v);
            return None;
        };
        let s = s.trim();
        if s.is_empty() {
            if required {
                self.push(path, codes::REQUIRED, "is required and must not be empty");
            } else {
                self.push(
                    path,
                    codes::TOO_SHORT,
                    "must not be empty; send null or leave the field out to unset it",
                );
            }
            return None;
        }
        Some(s)
    }

    /// A value parsed from a string by `f`; `None` input is `required` when `required`.
    fn parsed<T>(
        &mut self,
        v: Option<&Value>,
        path: &str,
        required: bool,
        f: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let Some(v) = v else {
            if required {
                self.required(path);
            }
            return None;
        };
        let s = self.str_value(v, path, required)?;
        f(s).map_err(|e| self.push_invalid(path, e)).ok()
    }

    fn country(&mut self, v: Option<&Value>, path: &str, required: bool) -> Option<CountryCode> {
        self.parsed(v, path, required, CountryCode::parse)
    }

    fn enumeration<E: WireEnum>(
        &mut self,
        v: Option<&Value>,
        path: &str,
        required: bool,
    ) -> Option<E> {
        self.parsed(v, path, required, |s| {
            E::from_wire(s).ok_or_else(|| {
                Invalid::new(
                    codes::INVALID_VALUE,
                    format!("must be one of: {}", E::allowed()),
                )
            })
        })
    }

    fn text(
        &mut self,
        v: Option<&Value>,
        path: &str,
        required: bool,
        rule: Text,
    ) -> Option<String> {
        self.parsed(v, path, required, |s| {
            if s.chars().count() > rule.max {
                return Err(Invalid::new(
                    codes::TOO_LONG,
                    format!("must be at most {} characters", rule.max),
                ));
            }
            if s.chars().any(char::is_control) {
                return Err(Invalid::new(
                    codes::INVALID_FORMAT,
                    "must not contain control characters such as line breaks or tabs",
                ));
            }
            if let Some((allowed, describe)) = rule.chars {
                if !s.chars().all(allowed) {
                    return Err(Invalid::new(codes::INVALID_FORMAT, describe));
                }
            }
            Ok(s.to_owned())
        })
    }

    /// An array of 1..=`max` items (`what` describes the items for type errors).
    fn array<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        max: usize,
        what: &str,
    ) -> Option<&'a Vec<Value>> {
        let Value::Array(items) = v else {
            self.wrong_type(path, &format!("an array of {what}"), v);
            return None;
        };
        if items.is_empty() {
            self.push(
                path,
                codes::TOO_SHORT,
                "must contain at least 1 item; send null or leave the field out to unset it",
            );
            return None;
        }
        if items.len() > max {
            self.push(
                path,
                codes::TOO_MANY_ITEMS,
                format!("must contain at most {max} items"),
            );
            return None;
        }
        Some(items)
    }

    fn date(&mut self, v: Option<&Value>, path: &str, required: bool) -> Option<Date> {
        self.parsed(v, path, required, iso_date::parse)
    }

    // -----------------------------------------------------------------------------------------

    fn user(&mut self, v: &Value, extra_keys: &[&str]) -> Option<CanonicalUser> {
        let allowed: Vec<&str> = USER_KEYS.iter().chain(extra_keys).copied().collect();
        let m = self.object(v, "", &allowed)?;

        let external_id = self.text(field(m, "external_id"), "external_id", true, EXTERNAL_ID);
        let user_type = self.enumeration::<UserType>(field(m, "type"), "type", true);
        let email = self.parsed(field(m, "email"), "email", true, Email::parse);
        let phone = self.parsed(field(m, "phone"), "phone", false, Phone::parse);
        let name = self.name(field(m, "name"), "name");
        let date_of_birth = self.date_of_birth(field(m, "date_of_birth"), "date_of_birth");
        let birth_place = self.birth_place(field(m, "birth_place"), "birth_place");
        let nationalities = self.nationalities(field(m, "nationalities"), "nationalities");
        let citizenship = self.country(field(m, "citizenship"), "citizenship", false);
        let address = self.address(field(m, "address"), "address");
        let identity_document =
            self.identity_document(field(m, "identity_document"), "identity_document");
        let tax_ids = self.tax_ids(field(m, "tax_ids"), "tax_ids");
        let employment = self.employment(field(m, "employment"), "employment");
        let financial_profile =
            self.financial_profile(field(m, "financial_profile"), "financial_profile");
        let language = self.parsed(field(m, "language"), "language", false, LanguageCode::parse);
        let terms = self.terms(field(m, "terms"), "terms");
        let metadata = self.metadata(field(m, "metadata"), "metadata");

        Some(CanonicalUser {
            external_id: external_id?,
            user_type: user_type?,
            email: email?,
            phone,
            name: name?,
            date_of_birth: date_of_birth?,
            birth_place,
            nationalities,
            citizenship,
            address: address?,
            identity_document,
            tax_ids,
            employment,
            financial_profile,
            language,
            terms,
            metadata: metadata?,
        })
    }

    fn name(&mut self, v: Option<&Value>, path: &str) -> Option<PersonName> {
        let Some(v) = v else {
            self.required(&join(path, "first"));
            self.required(&join(path, "last"));
            return None;
        };
        let m = self.object(v, path, NAME_KEYS)?;
        let first = self.text(
            field(m, "first"),
            &join(path, "first"),
            true,
            Text::max(100),
        );
        let middle = self.text(
            field(m, "middle"),
            &join(path, "middle"),
            false,
            Text::max(100),
        );
        let last = self.text(field(m, "last"), &join(path, "last"), true, Text::max(100));
        Some(PersonName {
            first: first?,
            middle,
            last: last?,
        })
    }

    fn date_of_birth(&mut self, v: Option<&Value>, path: &str) -> Option<DateOfBirth> {
        let d = self.date(v, path, true)?;
        if d >= self.today {
            self.push(path, codes::DATE_NOT_IN_PAST, "must be a date in the past");
            return None;
        }
        if d < EARLIEST_DATE {
            self.push(path, codes::INVALID_DATE, "must not be before 1900-01-01");
            return None;
        }
        let dob = DateOfBirth::new(d);
        if dob.age_on(self.today) < MINIMUM_AGE {
            self.push(
                path,
                codes::UNDERAGE,
                format!("the user must be at least {MINIMUM_AGE} years old"),
            );
            return None;
        }
        Some(dob)
    }

    fn birth_place(&mut self, v: Option<&Value>, path: &str) -> Option<BirthPlace> {
        let m = self.object(v?, path, BIRTH_PLACE_KEYS)?;
        let city = self.text(field(m, "city"), &join(path, "city"), false, Text::max(100));
        let country = self.country(field(m, "country"), &join(path, "country"), true);
        Some(BirthPlace {
            city,
            country: country?,
        })
    }

    fn nationalities(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<CountryCode>> {
        let items = self.array(v?, path, 10, "country codes")?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            match self.country(Some(item), &p, true) {
                Some(c) if out.contains(&c) => {
                    ok = false;
                    self.push(p, codes::DUPLICATE_ITEM, "is listed more than once");
                }
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn address(&mut self, v: Option<&Value>, path: &str) -> Option<Address> {
        let Some(v) = v else {
            self.required(&join(path, "country"));
            return None;
        };
        let m = self.object(v, path, ADDRESS_KEYS)?;
        let text = |p: &mut Self, key: &str, max: usize| {
            p.text(field(m, key), &join(path, key), false, Text::max(max))
        };
        let line1 = text(self, "line1", 200);
        let line2 = text(self, "line2", 200);
        let city = text(self, "city", 100);
        let region = text(self, "region", 100);
        let postal_code = text(self, "postal_code", 20);
        let country = self.country(field(m, "country"), &join(path, "country"), true);
        Some(Address {
            line1,
            line2,
            city,
            region,
            postal_code,
            country: country?,
        })
    }

    fn identity_document(&mut self, v: Option<&Value>, path: &str) -> Option<IdentityDocument> {
        let m = self.object(v?, path, DOCUMENT_KEYS)?;
        let doc_type =
            self.enumeration::<IdentityDocumentType>(field(m, "type"), &join(path, "type"), true);
        let number = self.text(
            field(m, "number"),
            &join(path, "number"),
            true,
            DOCUMENT_NUMBER,
        );
        let issuing_country = self.country(
            field(m, "issuing_country"),
            &join(path, "issuing_country"),
            true,
        );

        let issued_path = join(path, "issued_on");
        let mut issued_on = self.date(field(m, "issued_on"), &issued_path, false);
        if let Some(d) = issued_on {
            if d > self.today {
                self.push(
                    &issued_path,
                    codes::DATE_NOT_IN_PAST,
                    "must not be in the future",
                );
                issued_on = None;
            } else if d < EARLIEST_DATE {
                self.push(
                    &issued_path,
                    codes::INVALID_DATE,
                    "must not be before 1900-01-01",
                );
                issued_on = None;
            }
        }
        let expires_path = join(path, "expires_on");
        let mut expires_on = self.date(field(m, "expires_on"), &expires_path, false);
        if let (Some(issued), Some(expires)) = (issued_on, expires_on) {
            if expires <= issued {
                self.push(
                    &expires_path,
                    codes::INVALID_DATE,
                    "must be after issued_on",
                );
                expires_on = None;
            }
        }
        Some(IdentityDocument {
            doc_type: doc_type?,
            number: number?,
            issuing_country: issuing_country?,
            issued_on,
            expires_on,
        })
    }

    fn tax_ids(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<TaxId>> {
        let items = self.array(v?, path, 10, "tax id objects")?;
        let mut out: Vec<TaxId> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            match self.tax_id(item, &p) {
                Some(t) if out.contains(&t) => {
                    ok = false;
                    self.push(p, codes::DUPLICATE_ITEM, "is listed more than once");
                }
                Some(t) => out.push(t),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn tax_id(&mut self, v: &Value, path: &str) -> Option<TaxId> {
        let m = self.object(v, path, TAX_ID_KEYS)?;
        let tax_type = self.text(field(m, "type"), &join(path, "type"), false, TAX_ID_TYPE);
        let number = self.text(
            field(m, "number"),
            &join(path, "number"),
            true,
            Text::max(64),
        );
        let issuing_country = self.country(
            field(m, "issuing_country"),
            &join(path, "issuing_country"),
            true,
        );
        Some(TaxId {
            tax_type,
            number: number?,
            issuing_country: issuing_country?,
        })
    }

    fn employment(&mut self, v: Option<&Value>, path: &str) -> Option<Employment> {
        let m = self.object(v?, path, EMPLOYMENT_KEYS)?;
        let status =
            self.enumeration::<EmploymentStatus>(field(m, "status"), &join(path, "status"), true);
        let industry =
            self.enumeration::<Industry>(field(m, "industry"), &join(path, "industry"), false);
        let occupation = self.text(
            field(m, "occupation"),
            &join(path, "occupation"),
            false,
            Text::max(200),
        );
        let employer_name = self.text(
            field(m, "employer_name"),
            &join(path, "employer_name"),
            false,
            Text::max(200),
        );
        Some(Employment {
            status: status?,
            industry,
            occupation,
            employer_name,
        })
    }

    fn financial_profile(&mut self, v: Option<&Value>, path: &str) -> Option<FinancialProfile> {
        let m = self.object(v?, path, FINANCIAL_KEYS)?;
        Some(FinancialProfile {
            source_of_funds: self.enumeration(
                field(m, "source_of_funds"),
                &join(path, "source_of_funds"),
                false,
            ),
            total_assets_usd: self.enumeration(
                field(m, "total_assets_usd"),
                &join(path, "total_assets_usd"),
                false,
            ),
            monthly_deposits: self.enumeration(
                field(m, "monthly_deposits"),
                &join(path, "monthly_deposits"),
                false,
            ),
            monthly_volume_usd: self.enumeration(
                field(m, "monthly_volume_usd"),
                &join(path, "monthly_volume_usd"),
                false,
            ),
        })
    }

    fn terms(&mut self, v: Option<&Value>, path: &str) -> Option<Terms> {
        let m = self.object(v?, path, TERMS_KEYS)?;
        let version_path = join(path, "version");
        let version = match field(m, "version") {
            None => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i @ 1..=10_000) => Some(i as u32),
                Some(_) => {
                    self.push(
                        &version_path,
                        codes::INVALID_VALUE,
                        "must be between 1 and 10000",
                    );
                    None
                }
                None if n.is_u64() => {
                    self.push(
                        &version_path,
                        codes::INVALID_VALUE,
                        "must be between 1 and 10000",
                    );
                    None
                }
                None => {
                    self.push(
                        &version_path,
                        codes::INVALID_TYPE,
                        "must be a whole number, e.g. 3",
                    );
                    None
                }
            },
            Some(other) => {
                self.wrong_type(&version_path, "an integer", other);
                None
            }
        };
        let at_path = join(path, "accepted_at");
        let latest = self.now + ACCEPTED_AT_SKEW;
        let accepted_at = self.parsed(field(m, "accepted_at"), &at_path, false, |s| {
            let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    Invalid::new(
                        codes::INVALID_DATE,
                        "must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-01T09:30:00Z",
                    )
                })?;
            if t > latest {
                return Err(Invalid::new(
                    codes::DATE_NOT_IN_PAST,
                    "must not be in the future",
                ));
            }
            Ok(t.to_offset(UtcOffset::UTC))
        });
        Some(Terms {
            version,
            accepted_at,
        })
    }

    fn metadata(&mut self, v: Option<&Value>, path: &str) -> Option<Map<String, Value>> {
        let Some(v) = v else {
            return Some(Map::new());
        };
        let Value::Object(m) = v else {
            self.wrong_type(path, "an object", v);
            return None;
        };
        let before = self.errors.len();
        if m.len() > METADATA_MAX_KEYS {
            self.push(
                path,
                codes::TOO_LARGE,
                format!("must have at most {METADATA_MAX_KEYS} keys"),
            );
        }
        for key in m.keys() {
            if key.is_empty() {
                self.push(path, codes::TOO_SHORT, "keys must not be empty");
            } else if key.chars().count() > METADATA_MAX_KEY_CHARS {
                self.push(
                    join(path, key),
                    codes::TOO_LONG,
                    format!("keys must be at most {METADATA_MAX_KEY_CHARS} characters"),
                );
            }
        }
        let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
        if size > METADATA_MAX_BYTES {
            self.push(
                path,
                codes::TOO_LARGE,
                format!("must be at most {METADATA_MAX_BYTES} bytes (8 KiB) as JSON"),
            );
        }
        if depth(v) > METADATA_MAX_DEPTH {
            self.push(
                path,
                codes::TOO_DEEP,
                format!("must be nested at most {METADATA_MAX_DEPTH} levels deep"),
            );
        }
        (self.errors.len() == before).then(|| m.clone())
    }

    fn providers(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<ProviderId>> {
        let items = self.array(v?, path, ProviderId::ALL.len(), "provider ids")?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            match self.enumeration::<ProviderId>(Some(item), &p, true) {
                Some(id) if out.contains(&id) => {
                    self.push(p, codes::DUPLICATE_ITEM, "is listed more than once")
                }
                Some(id) => out.push(id),
                None => {}
            }
        }
        Some(out)
    }
}

/// Nesting depth: scalars 0, an object or array 1 + its deepest child.
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
