//! A complete `multipart/form-data` body (RFC 7578), built in memory before it is sent.
//!
//! Some providers sign the exact body bytes, so the form cannot be left to the HTTP client to
//! stream: it is built once, here, and those bytes are signed and sent unchanged (a client that
//! rebuilt the form would choose another boundary and break the signature). The framing is
//! RFC 7578 over RFC 2046, every line ending in CRLF:
//!
//! ```text
//! --<boundary>\r\n
//! Content-Disposition: form-data; name="type"\r\n
//! \r\n
//! identity_document\r\n
//! --<boundary>\r\n
//! Content-Disposition: form-data; name="front"; filename="front.jpg"\r\n
//! Content-Type: image/jpeg\r\n
//! \r\n
//! <file bytes>\r\n
//! --<boundary>--\r\n
//! ```
//!
//! Text parts carry no `Content-Type` (RFC 7578 §4.4: `text/plain` is implied), as HTML forms,
//! curl's `--form` and Go's `mime/multipart` send them. The boundary is random (128 bits) and is
//! checked not to occur in any part, headers included; on the (astronomically unlikely)
//! collision a new one is drawn.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use rand::Rng;

/// RFC 2046 allows 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// Why a form could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// A fixed boundary that is empty, too long, or has characters that would need quoting.
    #[error("the multipart boundary must be 1-70 of A-Z a-z 0-9 - _ .")]
    InvalidBoundary,
    /// A fixed boundary that occurs in one of the parts.
    #[error("the multipart boundary occurs in part {0:?}")]
    BoundaryInPart(String),
    /// A part name, file name or content type that cannot go in a header as is.
    #[error("the multipart header value {0:?} has a quote, backslash or non-printable character")]
    InvalidHeaderValue(String),
}

struct Part<'a> {
    name: Cow<'a, str>,
    file: Option<(Cow<'a, str>, Cow<'a, str>)>,
    body: Cow<'a, [u8]>,
}

impl Part<'_> {
    /// The part's header block, without the boundary line, ending with the blank line.
    fn headers(&self) -> String {
        match &self.file {
            None => format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                self.name
            ),
            Some((file_name, content_type)) => format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n",
                self.name
            ),
        }
    }
}

/// A form being assembled: parts in the order they are added. File bytes are borrowed until
/// [`MultipartForm::finish`] copies them once into the body.
pub struct MultipartForm<'a> {
    boundary: Option<String>,
    parts: Vec<Part<'a>>,
}

impl fmt::Debug for MultipartForm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Part names only: the values are PII or document bytes.
        f.debug_struct("MultipartForm")
            .field(
                "parts",
                &self.parts.iter().map(|p| &*p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for MultipartForm<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> MultipartForm<'a> {
    /// A form whose boundary is drawn at random when it is finished.
    pub fn new() -> Self {
        Self {
            boundary: None,
            parts: Vec::new(),
        }
    }

    /// A form with this boundary, for tests and test vectors: [`Self::finish`] fails if the
    /// boundary is not a plain token or occurs in a part, rather than silently replacing it.
    pub fn with_boundary(boundary: impl Into<String>) -> Self {
        Self {
            boundary: Some(boundary.into()),
            parts: Vec::new(),
        }
    }

    /// Adds a text part (`Content-Disposition: form-data; name="<name>"`).
    pub fn text(mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, [u8]>>) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file: None,
            body: value.into(),
        });
        self
    }

    /// Adds a file part with its file name and `Content-Type`.
    pub fn file(
        mut self,
        name: impl Into<Cow<'a, str>>,
        file_name: impl Into<Cow<'a, str>>,
        content_type: impl Into<Cow<'a, str>>,
        bytes: &'a [u8],
    ) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file: Some((file_name.into(), content_type.into())),
            body: Cow::Borrowed(bytes),
        });
        self
    }

    /// The part names, in order.
    pub fn part_names(&self) -> Vec<&str> {
        self.parts.iter().map(|p| &*p.name).collect()
    }

    /// The complete body: the fixed boundary if one was given, else a random one that occurs in
    /// no part.
    pub fn finish(self) -> Result<MultipartBody, MultipartError> {
        self.finish_with(random_boundary)
    }

    /// [`Self::finish`] with the random boundaries drawn from `next_boundary` (tests force a
    /// collision with it).
    fn finish_with(
        self,
        mut next_boundary: impl FnMut() -> String,
    ) -> Result<MultipartBody, MultipartError> {
        for part in &self.parts {
            check_header_value(&part.name)?;
            if let Some((file_name, content_type)) = &part.file {
                check_header_value(file_name)?;
                check_header_value(content_type)?;
            }
        }
        let boundary = match &self.boundary {
            Some(fixed) => {
                if !is_token_boundary(fixed) {
                    return Err(MultipartError::InvalidBoundary);
                }
                if let Some(part) = self.part_containing(fixed) {
                    return Err(MultipartError::BoundaryInPart(part.to_owned()));
                }
                fixed.clone()
            }
            None => loop {
                let candidate = next_boundary();
                if is_token_boundary(&candidate) && self.part_containing(&candidate).is_none() {
                    break candidate;
                }
            },
        };
        let headers: Vec<String> = self.parts.iter().map(Part::headers).collect();
        let delimiter_len = boundary.len() + 4; // "--" boundary CRLF
        let capacity = self
            .parts
            .iter()
            .zip(&headers)
            .map(|(p, h)| delimiter_len + h.len() + p.body.len() + 2)
            .sum::<usize>()
            + boundary.len()
            + 6;
        let mut out = Vec::with_capacity(capacity);
        for (part, headers) in self.parts.iter().zip(&headers) {
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(headers.as_bytes());
            out.extend_from_slice(&part.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        Ok(MultipartBody {
            boundary,
            bytes: Bytes::from(out),
        })
    }

    /// The name of the first part whose headers or body contain `boundary`.
    fn part_containing(&self, boundary: &str) -> Option<&str> {
        let needle = boundary.as_bytes();
        self.parts
            .iter()
            .find(|p| contains(p.headers().as_bytes(), needle) || contains(&p.body, needle))
            .map(|p| &*p.name)
    }
}

/// A finished form: its exact bytes and the boundary they use. `Debug` shows neither the
/// bytes nor anything derived from them beyond their length.
#[derive(Clone, PartialEq, Eq)]
pub struct MultipartBody {
    boundary: String,
    bytes: Bytes,
}

impl fmt::Debug for MultipartBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultipartBody")
            .field("boundary", &self.boundary)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl MultipartBody {
    /// The `Content-Type` header value: `multipart/form-data; boundary=<boundary>`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The exact bytes to send (and sign).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// 128 random bits in hex, behind a fixed prefix that tells a reader what they are.
fn random_boundary() -> String {
    format!("gateway-form-{:032x}", rand::rng().random::<u128>())
}

/// 1–70 characters that are RFC 2046 `bchars` and also HTTP token characters, so that the
/// `Content-Type` parameter needs no quoting.
fn is_token_boundary(boundary: &str) -> bool {
    (1..=MAX_BOUNDARY_LEN).contains(&boundary.len())
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Printable ASCII without `"` and `\`: safe inside a quoted header parameter as is.
fn check_header_value(value: &str) -> Result<(), MultipartError> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(MultipartError::InvalidHeaderValue(value.to_owned()))
    }
}

/// Whether `needle` (non-empty) occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut start = 0;
    while let Some(offset) = haystack[start..].iter().position(|&b| b == first) {
        let at = start + offset;
        if haystack[at + 1..].starts_with(rest) {
            return true;
        }
        start = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn a_small_form_has_exact_bytes() {
        let body = MultipartForm::with_boundary("XyZ")
            .text("type", "identity_document".as_bytes())
            .text("metadata", br#"{"a":1}"#.as_slice())
            .file("front", "front.jpg", "image/jpeg", JPEG)
            .finish()
            .unwrap();
        let mut expected = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"type\"\r\n\
            \r\n\
            identity_document\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"metadata\"\r\n\
            \r\n\
            {\"a\":1}\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"front\"; filename=\"front.jpg\"\r\n\
            Content-Type: image/jpeg\r\n\
            \r\n"
            .to_vec();
        expected.extend_from_slice(JPEG);
        expected.extend_from_slice(b"\r\n--XyZ--\r\n");
        assert_eq!(body.bytes().as_ref(), expected.as_slice());
        assert_eq!(body.content_type(), "multipart/form-data; boundary=XyZ");
        assert_eq!(body.boundary(), "XyZ");
        assert!(!format!("{body:?}").contains("identity_document"));
    }

    #[test]
    fn an_empty_form_is_just_the_close_delimiter() {
        let body = MultipartForm::with_boundary("b").finish().unwrap();
        assert_eq!(body.bytes().as_ref(), b"--b--\r\n");
    }

    #[test]
    fn random_boundaries_are_tokens_and_differ() {
        let a = MultipartForm::new()
            .text("x", b"1".as_slice())
            .finish()
            .unwrap();
        let b = MultipartForm::new()
            .text("x", b"1".as_slice())
            .finish()
            .unwrap();
        assert_ne!(a.boundary(), b.boundary());
        assert!(is_token_boundary(a.boundary()), "{}", a.boundary());
        assert!(a.boundary().len() >= 32);
        assert!(a
            .bytes()
            .starts_with(format!("--{}\r\n", a.boundary()).as_bytes()));
        assert!(a
            .bytes()
            .ends_with(format!("\r\n--{}--\r\n", a.boundary()).as_bytes()));
    }

    #[test]
    fn a_colliding_random_boundary_is_drawn_again() {
        // The first candidate occurs in the file, the second in a header, the third nowhere.
        let mut candidates = vec!["COLLIDE", "front", "third"]
            .into_iter()
            .map(String::from);
        let mut drawn = 0;
        let body = MultipartForm::new()
            .text("type", b"selfie".as_slice())
            .file(
                "selfie",
                "front.jpg",
                "image/jpeg",
                b"\xFF\xD8\xFF..COLLIDE..",
            )
            .finish_with(|| {
                drawn += 1;
                candidates.next().unwrap()
            })
            .unwrap();
        assert_eq!(drawn, 3);
        assert_eq!(body.boundary(), "third");
        assert!(body.bytes().starts_with(b"--third\r\n"));
    }

    #[test]
    fn a_colliding_or_invalid_fixed_boundary_is_an_error() {
        let err = MultipartForm::with_boundary("abc")
            .file(
                "document",
                "document.pdf",
                "application/pdf",
                b"%PDF-1.7 xxabcxx",
            )
            .finish()
            .unwrap_err();
        assert_eq!(err, MultipartError::BoundaryInPart("document".into()));
        for bad in ["", "with space", "quote\"", &"x".repeat(71)] {
            assert_eq!(
                MultipartForm::with_boundary(bad).finish().unwrap_err(),
                MultipartError::InvalidBoundary,
                "{bad:?}"
            );
        }
        let err = MultipartForm::with_boundary("b")
            .file("front", "a\"b.jpg", "image/jpeg", JPEG)
            .finish()
            .unwrap_err();
        assert!(matches!(err, MultipartError::InvalidHeaderValue(_)));
        let err = MultipartForm::with_boundary("b")
            .text("x\r\ny", b"1".as_slice())
            .finish()
            .unwrap_err();
        assert!(matches!(err, MultipartError::InvalidHeaderValue(_)));
    }

    #[test]
    fn substring_search() {
        assert!(contains(b"abcabd", b"abd"));
        assert!(contains(b"abd", b"abd"));
        assert!(!contains(b"ab", b"abd"));
        assert!(!contains(b"", b"a"));
        assert!(contains(b"xaab", b"ab"));
    }
}
