//! Reading request bodies: content type, size limit, JSON syntax and shape, each failure a
//! 4xx problem document (415, 413, 400) instead of actix's plain-text defaults.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::problem::Problem;

/// Bodies over 1 MiB are refused (API.md).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const JSON: &[&str] = &["application/json"];
pub const JSON_OR_MERGE_PATCH: &[&str] = &["application/json", "application/merge-patch+json"];

/// Reads the body as a JSON object, checking the content type against `accepted`.
pub async fn read_json_object(
    req: &HttpRequest,
    payload: web::Payload,
    accepted: &[&str],
) -> Result<serde_json::Value, Problem> {
    check_content_type(req, accepted)?;
    let body = read_bytes(req, payload).await?;
    parse_json_object(&body)
}

/// Reads the raw body, refusing more than [`MAX_BODY_BYTES`] (413), whatever its content type.
pub async fn read_bytes(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, Problem> {
    if let Some(length) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > MAX_BODY_BYTES as u64 {
            return Err(Problem::payload_too_large(MAX_BODY_BYTES));
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => Problem::payload_too_large(MAX_BODY_BYTES),
            _ => Problem::bad_request("the request body could not be read"),
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Problem::payload_too_large(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn check_content_type(req: &HttpRequest, accepted: &[&str]) -> Result<(), Problem> {
    let accepted_list = accepted.join(" or ");
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(Problem::unsupported_media_type(&accepted_list));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if accepted.iter().any(|a| *a == essence) {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(&accepted_list))
    }
}

/// Parses bytes as a JSON object. serde_json bounds nesting depth (128), so hostile deeply
/// nested documents fail here as a 400 rather than exhausting the stack.
pub fn parse_json_object(bytes: &[u8]) -> Result<serde_json::Value, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::bad_request(format!(
            "invalid JSON at line {} column {}: {}",
            e.line(),
            e.column(),
            json_error_kind(&e)
        ))
    })?;
    if !value.is_object() {
        return Err(Problem::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// A short description of a syntax error that never echoes the input (it may hold PII).
fn json_error_kind(error: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match error.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => {
            if error.to_string().contains("recursion limit") {
                "nesting too deep"
            } else {
                "syntax error"
            }
        }
        Category::Data => "invalid data",
        Category::Io => "unreadable input",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_accepted() {
        assert!(parse_json_object(br#"{"a":1}"#).is_ok());
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"x\"",
            b"null",
            b"",
            b"  ",
            b"{",
            b"{\"a\":}",
        ] {
            let problem = parse_json_object(bad).unwrap_err();
            assert_eq!(
                problem.status.as_u16(),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_a_400_not_a_crash() {
        let deep = "[".repeat(100_000);
        let problem = parse_json_object(deep.as_bytes()).unwrap_err();
        assert_eq!(problem.status.as_u16(), 400);
    }

    #[test]
    fn syntax_errors_do_not_echo_input() {
        let problem = parse_json_object(br#"{"email": "secret@example.com" "#).unwrap_err();
        assert!(!problem.detail.contains("secret"));
    }
}
