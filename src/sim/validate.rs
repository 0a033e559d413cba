//! Small JSON validation helpers shared by the provider simulators. Each provider turns the
//! collected [`FieldError`]s into its own error envelope.

use serde_json::{Map, Value};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// One problem with one field.
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

/// Collects errors while reading a JSON object.
#[derive(Default)]
pub(crate) struct Checker {
    pub errors: Vec<FieldError>,
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker {
    pub fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The value at `key`; `None` (with an error when required) if absent or null.
    pub fn field<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.err(join(path, key), "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    pub fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        match self.field(obj, path, key, required)? {
            Value::String(s) if s.trim().is_empty() && required => {
                self.err(join(path, key), "must not be empty");
                None
            }
            Value::String(s) => Some(s),
            _ => {
                self.err(join(path, key), "must be a string");
                None
            }
        }
    }

    pub fn object<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        match self.field(obj, path, key, required)? {
            Value::Object(m) => Some(m),
            _ => {
                self.err(join(path, key), "must be an object");
                None
            }
        }
    }

    pub fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Vec<Value>> {
        match self.field(obj, path, key, required)? {
            Value::Array(a) => Some(a),
            _ => {
                self.err(join(path, key), "must be an array");
                None
            }
        }
    }

    pub fn boolean(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<bool> {
        match self.field(obj, path, key, required)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.err(join(path, key), "must be a boolean");
                None
            }
        }
    }

    pub fn integer(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<i64> {
        match self.field(obj, path, key, required)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            _ => {
                self.err(join(path, key), "must be an integer");
                None
            }
        }
    }

    pub fn one_of<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        allowed: &[&str],
    ) -> Option<&'a str> {
        let value = self.string(obj, path, key, required)?;
        if allowed.contains(&value) {
            Some(value)
        } else {
            self.err(
                join(path, key),
                format!(
                    "must be one of the following values: {}",
                    allowed.join(", ")
                ),
            );
            None
        }
    }

    pub fn alpha2(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        extra: &[&str],
    ) -> Option<String> {
        let value = self.string(obj, path, key, required)?;
        self.check_alpha2(&join(path, key), value, extra)
    }

    pub fn check_alpha2(&mut self, field: &str, value: &str, extra: &[&str]) -> Option<String> {
        if value.len() == 2
            && (rust_iso3166::from_alpha2(value).is_some() || extra.contains(&value))
        {
            Some(value.to_owned())
        } else {
            self.err(field, "must be an ISO 3166-1 alpha-2 country code");
            None
        }
    }

    pub fn alpha3(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        let value = self.string(obj, path, key, required)?;
        if value.len() == 3 && rust_iso3166::from_alpha3(value).is_some() {
            Some(value.to_owned())
        } else {
            self.err(
                join(path, key),
                "must be an ISO 3166-1 alpha-3 country code",
            );
            None
        }
    }

    pub fn date(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<Date> {
        let value = self.string(obj, path, key, required)?;
        match Date::parse(value, format_description!("[year]-[month]-[day]")) {
            Ok(d) => Some(d),
            Err(_) => {
                self.err(join(path, key), "must be a date (YYYY-MM-DD)");
                None
            }
        }
    }

    /// An RFC 3339 date-time (`2026-11-01T09:30:00Z`).
    pub fn datetime(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<OffsetDateTime> {
        let value = self.string(obj, path, key, required)?;
        match OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
            Ok(at) => Some(at),
            Err(_) => {
                self.err(join(path, key), "must be an RFC 3339 date-time");
                None
            }
        }
    }

    /// A date of birth in the past; `min_age` years old at least when given.
    pub fn birth_date(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<Date> {
        let date = self.date(obj, path, key, required)?;
        if date >= OffsetDateTime::now_utc().date() {
            self.err(join(path, key), "must be in the past");
            return None;
        }
        Some(date)
    }

    /// E.164-like phone: optional `+`, then 2–15 digits not starting with 0.
    pub fn phone(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        plus_required: bool,
    ) -> Option<String> {
        let value = self.string(obj, path, key, required)?;
        let digits = value.strip_prefix('+');
        let ok = match digits {
            Some(d) => is_e164_digits(d),
            None => !plus_required && is_e164_digits(value),
        };
        if ok {
            Some(value.to_owned())
        } else {
            self.err(join(path, key), "must be a phone number in E.164 format");
            None
        }
    }

    pub fn email(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        let value = self.string(obj, path, key, required)?;
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !value.contains(' ')
            }
            None => false,
        };
        if valid {
            Some(value.to_owned())
        } else {
            self.err(join(path, key), "must be an email");
            None
        }
    }

    /// Flags every key not in `allowed`.
    pub fn no_unknown(&mut self, obj: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(join(path, key), "is not a known field");
            }
        }
    }
}

fn is_e164_digits(d: &str) -> bool {
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// Whole years between `dob` and today.
pub(crate) fn age(dob: Date) -> i32 {
    let today = OffsetDateTime::now_utc().date();
    let mut years = today.year() - dob.year();
    if (today.month() as u8, today.day()) < (dob.month() as u8, dob.day()) {
        years -= 1;
    }
    years
}

/// Merges `patch` into `target` at the top level: present keys replace (nested objects are
/// replaced whole, as the providers expect them sent whole).
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    if let (Value::Object(t), Value::Object(p)) = (target, patch) {
        for (k, v) in p {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// RFC 3339 with a fixed number of fractional digits (3 or 9), `Z`.
pub(crate) fn timestamp(at: OffsetDateTime, nanos: bool) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if nanos {
        format!("{base}.{:09}Z", at.nanosecond())
    } else {
        format!("{base}.{:03}Z", at.millisecond())
    }
}
