//! Query-string helpers shared by the list endpoints: parsing, `limit`, and opaque id cursors.

use actix_web::{web, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use super::problem::Problem;
use crate::domain::FieldError;

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

/// The query string as (key, value) pairs; broken URL encoding is a 400, a NUL character
/// (`%00`, which Postgres text cannot hold) a 422 naming the parameter.
pub fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, Problem> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| Problem::bad_request("the query string is not valid URL encoding"))?;
    let errors: Vec<FieldError> = pairs
        .iter()
        .filter(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| {
            invalid(
                &key.replace('\0', "\u{fffd}"),
                "invalid_format",
                "must not contain NUL (U+0000) characters",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(Problem::validation(errors))
    }
}

/// A field error on a query parameter.
pub fn invalid(field: &str, code: &'static str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code,
        message: message.to_owned(),
    }
}

/// `limit` (1–100); an invalid value is recorded in `errors` and the default returned.
pub fn parse_limit(raw: &str, errors: &mut Vec<FieldError>) -> usize {
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
        _ => {
            errors.push(invalid(
                "limit",
                "invalid_value",
                "must be an integer from 1 to 100",
            ));
            DEFAULT_PAGE
        }
    }
}

/// An opaque cursor for lists paged by a time-ordered id.
pub fn encode_id_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The id in a cursor from [`encode_id_cursor`]; anything else is recorded in `errors`.
pub fn decode_id_cursor(raw: &str, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    let id = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok());
    if id.is_none() {
        errors.push(invalid(
            "cursor",
            "invalid_value",
            "is not a cursor returned by this endpoint",
        ));
    }
    id
}
