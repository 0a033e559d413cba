//! Reading a received `multipart/form-data` body strictly, independently of the gateway's
//! builder: RFC 7578 framing with CRLF line ends, the boundary taken from the request's
//! `Content-Type`, and small files with real magic bytes for the connectors to send.

use wiremock::Request;

/// A JPEG (SOI, JFIF APP0, EOI), a PNG (signature, IHDR start) and a PDF header: enough for
/// `DocumentContentType::sniff`, small enough to compare byte for byte.
pub const JPEG: &[u8] =
    b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xFF\xD9";
pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02";
pub const PDF: &[u8] = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

/// One part as received: its header lines (name, value) in order, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPart {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedPart {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name` from `Content-Disposition: form-data; name="…"`.
    pub fn name(&self) -> String {
        let disposition = self.header("Content-Disposition").unwrap_or_default();
        let start = disposition
            .find("name=\"")
            .unwrap_or_else(|| panic!("no name in {disposition:?}"))
            + 6;
        let end = disposition[start..].find('"').unwrap() + start;
        disposition[start..end].to_owned()
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a text part is UTF-8")
    }
}

/// The boundary of a `multipart/form-data; boundary=…` request.
pub fn boundary(request: &Request) -> String {
    let content_type = request
        .headers
        .get("content-type")
        .expect("Content-Type")
        .to_str()
        .unwrap();
    content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not multipart/form-data: {content_type}"))
        .to_owned()
}

fn split<'a>(haystack: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = haystack;
    while let Some(at) = rest.windows(delimiter.len()).position(|w| w == delimiter) {
        out.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    out.push(rest);
    out
}

/// The parts of a received multipart request, checking the framing exactly: the body opens
/// with `--boundary CRLF`, parts are separated by `CRLF --boundary CRLF`, and it closes with
/// `CRLF --boundary-- CRLF`; each part's headers end with an empty line.
pub fn parts(request: &Request) -> Vec<ReceivedPart> {
    let boundary = boundary(request);
    let body = request.body.as_slice();
    let open = format!("--{boundary}\r\n");
    let close = format!("\r\n--{boundary}--\r\n");
    let inner = body
        .strip_prefix(open.as_bytes())
        .expect("the body opens with the first boundary line")
        .strip_suffix(close.as_bytes())
        .expect("the body ends with the close delimiter and CRLF");
    split(inner, format!("\r\n--{boundary}\r\n").as_bytes())
        .into_iter()
        .map(|raw| {
            let at = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a part's headers end with an empty line");
            let headers = std::str::from_utf8(&raw[..at])
                .expect("headers are UTF-8")
                .split("\r\n")
                .map(|line| {
                    let (name, value) = line.split_once(": ").expect("a header line");
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            ReceivedPart {
                headers,
                body: raw[at + 4..].to_vec(),
            }
        })
        .collect()
}

/// The part names, in order.
pub fn names(parts: &[ReceivedPart]) -> Vec<String> {
    parts.iter().map(ReceivedPart::name).collect()
}

/// Asserts a text part: its exact headers and value.
pub fn assert_text(part: &ReceivedPart, name: &str, value: &str) {
    assert_eq!(
        part.headers,
        vec![(
            "Content-Disposition".to_owned(),
            format!("form-data; name=\"{name}\"")
        )],
        "headers of {name}"
    );
    assert_eq!(part.text(), value, "value of {name}");
}

/// Asserts a file part: its exact headers and bytes.
pub fn assert_file(
    part: &ReceivedPart,
    name: &str,
    file_name: &str,
    content_type: &str,
    bytes: &[u8],
) {
    assert_eq!(
        part.headers,
        vec![
            (
                "Content-Disposition".to_owned(),
                format!("form-data; name=\"{name}\"; filename=\"{file_name}\"")
            ),
            ("Content-Type".to_owned(), content_type.to_owned()),
        ],
        "headers of {name}"
    );
    assert!(part.body == bytes, "bytes of {name} differ");
}
