//! Field-level validation errors, each carrying the JSON path of the offending input.

use serde::Serialize;
use utoipa::ToSchema;

/// Stable, snake_case error codes used in [`FieldError::code`].
pub mod codes {
    /// A required field is missing, `null`, or an empty string.
    pub const REQUIRED: &str = "required";
    /// The JSON type is wrong (e.g. a number where a string is expected).
    pub const INVALID_TYPE: &str = "invalid_type";
    /// The key is not part of the schema.
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// Not one of the allowed enumeration values (the message lists them).
    pub const INVALID_VALUE: &str = "invalid_value";
    /// Not a usable email address.
    pub const INVALID_EMAIL: &str = "invalid_email";
    /// Not an E.164 phone number.
    pub const INVALID_PHONE: &str = "invalid_phone";
    /// Not an assigned ISO 3166-1 alpha-2 country code.
    pub const INVALID_COUNTRY: &str = "invalid_country";
    /// Not an ISO 639-1 language code.
    pub const INVALID_LANGUAGE: &str = "invalid_language";
    /// Not a real calendar date / timestamp, or dates in an impossible order.
    pub const INVALID_DATE: &str = "invalid_date";
    /// The date must lie in the past.
    pub const DATE_NOT_IN_PAST: &str = "date_not_in_past";
    /// The person is younger than 18.
    pub const UNDERAGE: &str = "underage";
    /// Too many characters.
    pub const TOO_LONG: &str = "too_long";
    /// Too few characters (or an empty optional string), or too few array items.
    pub const TOO_SHORT: &str = "too_short";
    /// Too many array items (or, for any JSON body, object members).
    pub const TOO_MANY_ITEMS: &str = "too_many_items";
    /// The characters or the shape of the value are not allowed.
    pub const INVALID_FORMAT: &str = "invalid_format";
    /// The array already contains this item.
    pub const DUPLICATE_ITEM: &str = "duplicate_item";
    /// `metadata` is too big (too many keys, or more than 8 KiB serialised).
    pub const TOO_LARGE: &str = "too_large";
    /// `metadata` (or, for any JSON body, the document) is nested too deeply.
    pub const TOO_DEEP: &str = "too_deep";
}

/// One problem with one input field.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({
    "field": "address.country",
    "code": "invalid_country",
    "message": "must be an ISO 3166-1 alpha-2 country code, e.g. DE"
})))]
pub struct FieldError {
    /// JSON path of the field in the request body, dotted, with array indices
    /// (`tax_ids[0].number`); `""` for the body itself.
    #[schema(examples("tax_ids[0].number"))]
    pub field: String,
    /// Stable machine-readable code (see the `codes` list).
    #[schema(value_type = String, examples("invalid_country"))]
    pub code: &'static str,
    /// Human-readable explanation. Never echoes the submitted value.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field` with `code` and `message`.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{} ({})", self.message, self.code)
        } else {
            write!(f, "{}: {} ({})", self.field, self.message, self.code)
        }
    }
}

/// A problem found while parsing one value, before it is placed at a JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Stable code (see [`codes`]).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Invalid {
    /// Builds a problem with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Places the problem at a JSON path.
    pub fn at(self, field: impl Into<String>) -> FieldError {
        FieldError::new(field, self.code, self.message)
    }
}

/// Joins a parent path and a key: `join("name", "first") == "name.first"`, `join("", "email") == "email"`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends an array index: `index("tax_ids", 0) == "tax_ids[0]"`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_dotted_with_indices() {
        assert_eq!(join("", "email"), "email");
        assert_eq!(join("name", "first"), "name.first");
        assert_eq!(join(&index("tax_ids", 0), "number"), "tax_ids[0].number");
    }

    #[test]
    fn serialises_as_field_code_message() {
        let e = FieldError::new("address.country", codes::INVALID_COUNTRY, "bad");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"field": "address.country", "code": "invalid_country", "message": "bad"})
        );
        assert_eq!(e.to_string(), "address.country: bad (invalid_country)");
    }
}
