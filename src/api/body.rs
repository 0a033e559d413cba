//! Reading request bodies: content type, size limit, JSON syntax, shape and complexity, each
//! failure a 4xx problem document (415, 413, 408, 400, 422) instead of actix's plain-text
//! defaults.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::problem::Problem;
use crate::domain::errors::{codes, FieldError};

/// Bodies over 1 MiB are refused (README "Limits").
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// JSON bodies nested deeper than this (the body object itself is level 1) are refused with
/// `422 validation_failed` (`too_deep`, naming the path) while parsing, long before serde_json's
/// own recursion limit (128) or the stack could be reached. The canonical user needs 6.
pub const MAX_JSON_DEPTH: usize = 32;
/// Arrays with more items, or objects with more members, than this are refused with
/// `422 validation_failed` (`too_many_items`, naming the path) as soon as the next one is read.
pub const MAX_JSON_ITEMS: usize = 1000;

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

/// The `reason` member of an operator's action; an invalid one is recorded in `errors`.
pub fn parse_reason(
    value: &serde_json::Value,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<crate::domain::operator::Reason> {
    crate::domain::operator::Reason::parse(value)
        .map_err(|e| errors.push(e.at("reason")))
        .ok()
}

/// Reads an optional JSON object body: none at all (or only whitespace) is `None`, whatever the
/// content type, and so is a JSON `null`; anything else must be a JSON object of an `accepted`
/// content type.
pub async fn read_optional_json_object(
    req: &HttpRequest,
    payload: web::Payload,
    accepted: &[&str],
) -> Result<Option<serde_json::Value>, Problem> {
    let body = read_bytes(req, payload).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    check_content_type(req, accepted)?;
    if body.trim_ascii() == b"null" {
        return Ok(None);
    }
    parse_json_object(&body).map(Some)
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
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| match e {
                actix_web::error::PayloadError::Overflow => {
                    Problem::payload_too_large(MAX_BODY_BYTES)
                }
                _ => Problem::bad_request("the request body could not be read"),
            })?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Problem::payload_too_large(MAX_BODY_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    // A client trickling its body is cut off (`server.body_read_timeout_secs`, then 408).
    let limit = Duration::from_secs(
        req.app_data::<web::Data<super::AppState>>()
            .map_or(30, |state| state.settings.server.body_read_timeout_secs),
    );
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result,
        Err(_) => Err(Problem::request_timeout(limit)),
    }
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

/// Parses bytes as a JSON object within [`MAX_JSON_DEPTH`] and [`MAX_JSON_ITEMS`]: a breach is
/// a 422 naming the JSON path where it happened, found while parsing (nothing deeper or longer
/// is ever built); a syntax error is a 400.
pub fn parse_json_object(bytes: &[u8]) -> Result<serde_json::Value, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value = parse_bounded(bytes, MAX_JSON_DEPTH, MAX_JSON_ITEMS).map_err(|e| match e {
        BoundedError::Limit(error) => Problem::validation(vec![error]),
        BoundedError::Json(e) => Problem::bad_request(format!(
            "invalid JSON at line {} column {}: {}",
            e.line(),
            e.column(),
            json_error_kind(&e)
        )),
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

/// Why [`parse_bounded`] failed.
#[derive(Debug)]
pub enum BoundedError {
    /// A depth or size limit, with the path of the value that broke it.
    Limit(FieldError),
    /// Not JSON (or serde_json's own limits).
    Json(serde_json::Error),
}

/// Parses any JSON value (not only objects), refusing containers nested deeper than
/// `max_depth` (the outermost container is level 1), arrays or objects with more than
/// `max_items` entries, and strings or member names with NUL characters. Limits are checked while parsing, so hostile input costs no more than
/// the first offending container; the error names its JSON path (`metadata.a[3]`, `""` for the
/// body itself).
pub fn parse_bounded(
    bytes: &[u8],
    max_depth: usize,
    max_items: usize,
) -> Result<Value, BoundedError> {
    let breach = RefCell::new(None);
    let seed = Bounded {
        depth: 0,
        limits: Limits {
            max_depth,
            max_items,
            breach: &breach,
        },
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (result, breach.into_inner()) {
        (Err(_), Some(breach)) => Err(BoundedError::Limit(breach)),
        (Err(e), None) => Err(BoundedError::Json(e)),
        (Ok(value), _) => Ok(value),
    }
}

#[derive(Clone, Copy)]
struct Limits<'a> {
    max_depth: usize,
    max_items: usize,
    /// The breached limit, with a path that grows as the error unwinds: each container
    /// prefixes the key or index under which the breach happened.
    breach: &'a RefCell<Option<FieldError>>,
}

impl Limits<'_> {
    fn refuse<E: de::Error>(&self, code: &'static str, message: String) -> E {
        *self.breach.borrow_mut() = Some(FieldError::new("", code, message));
        E::custom("JSON limit exceeded")
    }

    /// Puts `segment` in front of the breach's path while the error travels up.
    fn prefix(&self, segment: impl FnOnce(&str) -> String) {
        if let Some(breach) = self.breach.borrow_mut().as_mut() {
            breach.field = segment(&breach.field);
        }
    }

    fn enter<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            return Err(self.refuse(
                codes::TOO_DEEP,
                format!(
                    "JSON is nested too deeply here: at most {} levels of objects and arrays",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    /// Postgres text cannot hold NUL, and no field needs it: refused here, as a 422.
    fn text<E: de::Error>(&self, text: &str, message: &str) -> Result<(), E> {
        if text.contains('\0') {
            return Err(self.refuse(codes::INVALID_FORMAT, message.to_owned()));
        }
        Ok(())
    }

    fn count<E: de::Error>(&self, items: usize, what: &str) -> Result<(), E> {
        if items >= self.max_items {
            return Err(self.refuse(
                codes::TOO_MANY_ITEMS,
                format!("must have at most {} {what}", self.max_items),
            ));
        }
        Ok(())
    }
}

/// A JSON value at nesting `depth` (the number of containers around it).
struct Bounded<'a> {
    depth: usize,
    limits: Limits<'a>,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.limits
            .text(v, "must not contain NUL (U+0000) characters")?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.limits
            .text(&v, "must not contain NUL (U+0000) characters")?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        self.limits.enter(depth)?;
        let mut items = Vec::new();
        loop {
            let child = Bounded {
                depth,
                limits: self.limits,
            };
            match seq.next_element_seed(child) {
                Ok(Some(item)) => {
                    self.limits.count(items.len(), "items")?;
                    items.push(item);
                }
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    let i = items.len();
                    self.limits
                        .prefix(|rest| format!("[{i}]{}", rest_after(rest)));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        self.limits.enter(depth)?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.limits.text(
                &key,
                "member names must not contain NUL (U+0000) characters",
            )?;
            let child = Bounded {
                depth,
                limits: self.limits,
            };
            match map.next_value_seed(child) {
                Ok(value) => {
                    if !members.contains_key(&key) {
                        self.limits.count(members.len(), "members")?;
                    }
                    members.insert(key, value);
                }
                Err(e) => {
                    self.limits
                        .prefix(|rest| format!("{key}{}", rest_after(rest)));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(members))
    }
}

/// How the rest of a path follows a segment: `.key`, `[i]`, or nothing.
fn rest_after(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        rest.to_owned()
    } else {
        format!(".{rest}")
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
    fn deep_nesting_is_a_422_naming_the_path_not_a_crash() {
        let deep = "[".repeat(100_000);
        let problem = parse_json_object(deep.as_bytes()).unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        assert_eq!(problem.errors[0].code, codes::TOO_DEEP);
        assert_eq!(problem.errors[0].field, "[0]".repeat(MAX_JSON_DEPTH));

        // Closed, and inside an object: the path names the keys and indices on the way.
        let body = format!(
            r#"{{"a":1,"metadata":{{"b":[0,{}{}]}}}}"#,
            r#"{"c":"#.repeat(10_000),
            "}".repeat(10_000)
        );
        let problem = parse_json_object(body.as_bytes()).unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        let want = format!("metadata.b[1]{}", ".c".repeat(MAX_JSON_DEPTH - 3));
        assert_eq!(problem.errors[0].field, want);
    }

    #[test]
    fn the_deepest_allowed_document_parses() {
        let depth = MAX_JSON_DEPTH;
        let body = format!("{}{}", r#"{"a":"#.repeat(depth - 1), "{}") + &"}".repeat(depth - 1);
        assert!(parse_json_object(body.as_bytes()).is_ok());
        let body = format!("{}{}", r#"{"a":"#.repeat(depth), "{}") + &"}".repeat(depth);
        let problem = parse_json_object(body.as_bytes()).unwrap_err();
        assert_eq!(problem.errors[0].field, ".a".repeat(depth)[1..]);
    }

    #[test]
    fn long_arrays_and_big_objects_are_422_naming_the_path() {
        let items = |n: usize| vec!["0"; n].join(",");
        let ok = format!(r#"{{"x":{{"list":[{}]}}}}"#, items(MAX_JSON_ITEMS));
        assert!(parse_json_object(ok.as_bytes()).is_ok());
        let long = format!(r#"{{"x":{{"list":[{}]}}}}"#, items(MAX_JSON_ITEMS + 1));
        let problem = parse_json_object(long.as_bytes()).unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        assert_eq!(problem.errors[0].field, "x.list");
        assert_eq!(problem.errors[0].code, codes::TOO_MANY_ITEMS);
        // Nested in arrays.
        let long = format!(r#"{{"x":[[],[{}]]}}"#, items(MAX_JSON_ITEMS * 3));
        assert_eq!(
            parse_json_object(long.as_bytes()).unwrap_err().errors[0].field,
            "x[1]"
        );
        // Objects: members, not repeated keys, are counted.
        let members: Vec<String> = (0..=MAX_JSON_ITEMS)
            .map(|i| format!(r#""k{i}":0"#))
            .collect();
        let big = format!("{{{}}}", members.join(","));
        let problem = parse_json_object(big.as_bytes()).unwrap_err();
        assert_eq!(problem.errors[0].field, "");
        assert_eq!(problem.errors[0].code, codes::TOO_MANY_ITEMS);
        let repeated = format!("{{{}}}", vec![r#""k":0"#; MAX_JSON_ITEMS + 5].join(","));
        assert!(parse_json_object(repeated.as_bytes()).is_ok());
    }

    #[test]
    fn nul_characters_are_a_422_naming_the_path() {
        let problem = parse_json_object(br#"{"a":[{"b":"x\u0000y"}]}"#).unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        assert_eq!(problem.errors[0].field, "a[0].b");
        assert_eq!(problem.errors[0].code, codes::INVALID_FORMAT);
        let problem = parse_json_object(br#"{"a":{"\u0000":1}}"#).unwrap_err();
        assert_eq!(problem.errors[0].field, "a");
        assert!(parse_json_object(br#"{"a":"\u0001 is fine"}"#).is_ok());
    }

    #[test]
    fn bounded_parsing_equals_serde_json_within_the_limits() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":{"c":null,"d":true},"e":"\u00e9\n","f":[]}"#,
            r#"{"k":1,"k":2}"#,
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            let got = parse_bounded(text.as_bytes(), 8, 8).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), want.to_string(), "key order");
        }
        for bad in [&b"{\"a\":1} x"[..], b"{\"a\":[1,]}", b"{\"a\" 1}"] {
            assert!(matches!(
                parse_bounded(bad, 8, 8),
                Err(BoundedError::Json(_))
            ));
        }
    }

    #[test]
    fn syntax_errors_do_not_echo_input() {
        let problem = parse_json_object(br#"{"email": "secret@example.com" "#).unwrap_err();
        assert!(!problem.detail.contains("secret"));
    }
}
