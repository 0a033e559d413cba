//! A small, strict `multipart/form-data` parser (RFC 7578 over RFC 2046 framing) for the
//! simulated upload routes: it reads the raw request body the signature was checked over, so
//! what a provider validates is exactly what arrived on the wire.
//!
//! Strict about framing: the `Content-Type` must be `multipart/form-data` with a valid
//! `boundary`; the body must open with that boundary's delimiter (an optional preamble ending in
//! CRLF is allowed), every part needs a `Content-Disposition: form-data; name="…"` header, and
//! the closing delimiter (`--boundary--`) must be there. Anything else is a [`MultipartError`]
//! that each provider turns into its own `400`.

use std::fmt;

/// One part of a form.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, when the part is a file.
    pub filename: Option<String>,
    /// Its `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl Part {
    /// Whether the part was sent as a file (it has a `filename`).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }

    /// The part's bytes as text, if they are UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// Document bytes never reach logs or `Debug` output: only their size.
impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("size", &self.data.len())
            .finish()
    }
}

/// Why a body is not a well-formed `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultipartError {
    /// No `Content-Type`, or another media type.
    NotMultipart,
    /// `multipart/form-data` without a `boundary` parameter.
    MissingBoundary,
    /// A `boundary` that RFC 2046 does not allow (empty, over 70 characters, bad characters).
    InvalidBoundary,
    /// The body never opens with the boundary's delimiter (e.g. a different boundary).
    MissingOpeningDelimiter,
    /// A delimiter followed by something other than CRLF or `--`.
    BadDelimiterLine,
    /// The body ends before a closing delimiter (`--boundary--`).
    MissingClosingDelimiter,
    /// A part's headers do not end with an empty line, or a header line has no `:`.
    BadPartHeaders,
    /// A part without `Content-Disposition: form-data; name="…"`.
    MissingName,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipartError::NotMultipart => "Content-Type must be multipart/form-data",
            MultipartError::MissingBoundary => "multipart/form-data needs a boundary parameter",
            MultipartError::InvalidBoundary => "the multipart boundary is invalid",
            MultipartError::MissingOpeningDelimiter => {
                "the multipart body does not start with the boundary delimiter"
            }
            MultipartError::BadDelimiterLine => "a multipart delimiter line is malformed",
            MultipartError::MissingClosingDelimiter => {
                "the multipart body has no closing delimiter"
            }
            MultipartError::BadPartHeaders => "a multipart part has malformed headers",
            MultipartError::MissingName => {
                "a multipart part has no Content-Disposition form-data name"
            }
        })
    }
}

/// The `boundary` of a `multipart/form-data` `Content-Type` (quoted or not).
pub(crate) fn boundary(content_type: Option<&str>) -> Result<String, MultipartError> {
    let content_type = content_type.ok_or(MultipartError::NotMultipart)?;
    let mut pieces = content_type.split(';');
    let media_type = pieces.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    let rest = content_type[content_type.find(';').unwrap_or(content_type.len())..]
        .trim_start_matches(';');
    let params = parameters(rest).ok_or(MultipartError::MissingBoundary)?;
    let boundary = params
        .into_iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or(MultipartError::MissingBoundary)?;
    if valid_boundary(&boundary) {
        Ok(boundary)
    } else {
        Err(MultipartError::InvalidBoundary)
    }
}

/// RFC 2046 §5.1.1: 1 to 70 of `bchars`, not ending in a space.
fn valid_boundary(boundary: &str) -> bool {
    const SPECIALS: &[u8] = b"'()+_,-./:=? ";
    (1..=70).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
}

/// Parses a request: its `Content-Type` header value and raw body.
pub(crate) fn parse_request(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Part>, MultipartError> {
    let boundary = boundary(content_type)?;
    parse(body, &boundary)
}

/// Parses `body` framed by `boundary` into its parts, in order.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let dash_boundary = format!("--{boundary}").into_bytes();
    let delimiter = [b"\r\n".as_slice(), &dash_boundary].concat();

    // The first delimiter: at the very start, or after a preamble that ends in CRLF.
    let mut at = if body.starts_with(&dash_boundary) {
        dash_boundary.len()
    } else {
        find(body, &delimiter, 0).ok_or(MultipartError::MissingOpeningDelimiter)? + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` closes the body (an epilogue may follow); otherwise optional
        // transport padding (spaces, tabs) and CRLF open a part.
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if rest.len() == padding {
            return Err(MultipartError::MissingClosingDelimiter);
        }
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(MultipartError::BadDelimiterLine);
        }
        let start = at + padding + 2;
        let end = find(body, &delimiter, start).ok_or(MultipartError::MissingClosingDelimiter)?;
        parts.push(part(&body[start..end])?);
        at = end + delimiter.len();
    }
}

/// One part (headers, empty line, bytes) between two delimiters.
fn part(raw: &[u8]) -> Result<Part, MultipartError> {
    // A part with no headers starts with the empty line at once.
    let (head, data) = if let Some(data) = raw.strip_prefix(b"\r\n") {
        (&raw[..0], data)
    } else {
        let split = find(raw, b"\r\n\r\n", 0).ok_or(MultipartError::BadPartHeaders)?;
        (&raw[..split], &raw[split + 4..])
    };
    let head = std::str::from_utf8(head).map_err(|_| MultipartError::BadPartHeaders)?;
    let mut disposition = None;
    let mut content_type = None;
    let lines = head.split("\r\n").filter(|_| !head.is_empty());
    for line in lines {
        // Folded (obsolete) header lines and lines without a colon are not accepted.
        if line.starts_with([' ', '\t']) {
            return Err(MultipartError::BadPartHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadPartHeaders)?;
        let name = name.trim();
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(MultipartError::BadPartHeaders);
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        }
    }
    let disposition = disposition.ok_or(MultipartError::MissingName)?;
    let (kind, params) = disposition
        .split_once(';')
        .unwrap_or((disposition.as_str(), ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::MissingName);
    }
    let params = parameters(params).ok_or(MultipartError::BadPartHeaders)?;
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let name = param("name")
        .filter(|n| !n.is_empty())
        .ok_or(MultipartError::MissingName)?;
    Ok(Part {
        name,
        filename: param("filename"),
        content_type,
        data: data.to_vec(),
    })
}

/// `; key=value; key="quoted \" value"` parameters (the leading `;` optional). `None` when
/// a parameter is malformed.
fn parameters(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ';') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let key = key.trim().to_owned();
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_some_and(|c| *c != ';') {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((key, value));
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() || from > haystack.len() - needle.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// One part to build: name, filename, content type, bytes.
#[cfg(test)]
type PartSpec<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// Builds a `multipart/form-data` body.
#[cfg(test)]
fn build(boundary: &str, parts: &[PartSpec<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(filename) = filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, b'\r', b'\n', b'-', b'-', b'x', 0x00];

    fn sample(boundary: &str) -> Vec<u8> {
        build(
            boundary,
            &[
                ("type", None, None, b"identity_document"),
                ("metadata", None, Some("application/json"), br#"{"a":1}"#),
                ("front", Some("front.jpg"), Some("image/jpeg"), JPEG),
            ],
        )
    }

    #[test]
    fn parses_text_and_file_parts_in_order() {
        let parts = parse_request(
            Some("multipart/form-data; boundary=XyZ-123"),
            &sample("XyZ-123"),
        )
        .unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name, "type");
        assert_eq!(parts[0].text(), Some("identity_document"));
        assert!(!parts[0].is_file());
        assert_eq!(parts[1].content_type.as_deref(), Some("application/json"));
        assert_eq!(parts[2].name, "front");
        assert_eq!(parts[2].filename.as_deref(), Some("front.jpg"));
        assert_eq!(parts[2].content_type.as_deref(), Some("image/jpeg"));
        // Bytes that look like a line break and dashes stay in the file.
        assert_eq!(parts[2].data, JPEG);
    }

    #[test]
    fn boundary_forms() {
        for header in [
            "multipart/form-data; boundary=abc",
            "Multipart/Form-Data;boundary=\"abc\"",
            "multipart/form-data; charset=utf-8; BOUNDARY=abc",
        ] {
            assert_eq!(boundary(Some(header)).as_deref(), Ok("abc"), "{header}");
        }
        assert_eq!(
            boundary(Some("multipart/form-data; boundary=\"a b'c\"")).as_deref(),
            Ok("a b'c")
        );
        assert_eq!(boundary(None), Err(MultipartError::NotMultipart));
        assert_eq!(
            boundary(Some("application/json")),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary(Some("multipart/mixed; boundary=abc")),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary(Some("multipart/form-data")),
            Err(MultipartError::MissingBoundary)
        );
        assert_eq!(
            boundary(Some("multipart/form-data; charset=utf-8")),
            Err(MultipartError::MissingBoundary)
        );
        for bad in ["", "\"\"", "a{b}", "\"trailing \""] {
            assert_eq!(
                boundary(Some(&format!("multipart/form-data; boundary={bad}"))),
                Err(MultipartError::InvalidBoundary),
                "{bad}"
            );
        }
        let long = "a".repeat(71);
        assert_eq!(
            boundary(Some(&format!("multipart/form-data; boundary={long}"))),
            Err(MultipartError::InvalidBoundary)
        );
    }

    #[test]
    fn a_different_boundary_is_refused() {
        assert_eq!(
            parse(&sample("right"), "wrong"),
            Err(MultipartError::MissingOpeningDelimiter)
        );
        // A boundary that is a prefix of the real one does not frame the body either.
        assert_eq!(
            parse(&sample("right"), "righ"),
            Err(MultipartError::BadDelimiterLine)
        );
    }

    #[test]
    fn a_missing_closing_delimiter_is_refused() {
        let body = sample("b");
        let cut = &body[..body.len() - "--b--\r\n".len()];
        assert_eq!(
            parse(cut, "b"),
            Err(MultipartError::MissingClosingDelimiter)
        );
        // Truncated inside a part.
        assert_eq!(
            parse(&body[..body.len() / 2], "b"),
            Err(MultipartError::MissingClosingDelimiter)
        );
        // Ending right after a delimiter.
        assert_eq!(
            parse(
                b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b",
                "b"
            ),
            Err(MultipartError::MissingClosingDelimiter)
        );
        assert_eq!(
            parse(b"", "b"),
            Err(MultipartError::MissingOpeningDelimiter)
        );
    }

    #[test]
    fn preamble_epilogue_and_padding_are_allowed() {
        let mut body = b"This is a preamble.\r\n".to_vec();
        body.extend(b"--b  \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--");
        body.extend(b"\r\nepilogue");
        let parts = parse(&body, "b").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].data, b"x");
        // An empty form.
        assert_eq!(parse(b"--b--\r\n", "b").unwrap(), Vec::new());
    }

    #[test]
    fn malformed_parts_are_refused() {
        let wrap = |part: &str| format!("--b\r\n{part}\r\n--b--\r\n").into_bytes();
        assert_eq!(
            parse(&wrap("Content-Type: text/plain\r\n\r\nx"), "b"),
            Err(MultipartError::MissingName)
        );
        assert_eq!(
            parse(
                &wrap("Content-Disposition: attachment; name=\"a\"\r\n\r\nx"),
                "b"
            ),
            Err(MultipartError::MissingName)
        );
        assert_eq!(
            parse(
                &wrap("Content-Disposition: form-data; filename=\"a\"\r\n\r\nx"),
                "b"
            ),
            Err(MultipartError::MissingName)
        );
        assert_eq!(
            parse(
                &wrap("Content-Disposition: form-data; name=\"a\"\r\nx"),
                "b"
            ),
            Err(MultipartError::BadPartHeaders)
        );
        assert_eq!(
            parse(&wrap("Content-Disposition form-data\r\n\r\nx"), "b"),
            Err(MultipartError::BadPartHeaders)
        );
        assert_eq!(
            parse(
                &wrap("Content-Disposition: form-data;\r\n name=\"a\"\r\n\r\nx"),
                "b"
            ),
            Err(MultipartError::BadPartHeaders)
        );
        assert_eq!(
            parse(
                &wrap("Content-Disposition: form-data; name=\"a\r\n\r\nx"),
                "b"
            ),
            Err(MultipartError::BadPartHeaders)
        );
        assert_eq!(parse(&wrap("\r\nx"), "b"), Err(MultipartError::MissingName));
        // Junk right after a delimiter.
        assert_eq!(
            parse(b"--bjunk\r\n\r\n--b--", "b"),
            Err(MultipartError::BadDelimiterLine)
        );
    }

    #[test]
    fn header_names_and_parameters_are_read_loosely_where_rfc_allows() {
        let body = b"--b\r\ncontent-disposition: FORM-DATA; NAME=plain; filename=\"we \\\"quoted\\\".pdf\"\r\nCONTENT-TYPE: application/pdf\r\n\r\n%PDF-1.7\r\n--b--";
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts[0].name, "plain");
        assert_eq!(parts[0].filename.as_deref(), Some("we \"quoted\".pdf"));
        assert_eq!(parts[0].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[0].data, b"%PDF-1.7");
    }

    #[test]
    fn debug_output_shows_no_bytes() {
        let part = Part {
            name: "front".into(),
            filename: Some("front.jpg".into()),
            content_type: None,
            data: b"SECRET-BYTES".to_vec(),
        };
        let debug = format!("{part:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("size: 12"), "{debug}");
    }
}
