//! Response compression where it pays. actix's `Compress` compresses every body the client
//! accepts gzip for, however small, and parses each response's content type to decide. Most of
//! the API's answers (a user, a problem, a receipt) fit in one TCP segment, where gzip saves no
//! round trip and costs CPU on both sides; so a body smaller than [`MIN_COMPRESSED_BYTES`] is
//! sent as it is, and only larger ones (pages of users, event timelines, the OpenAPI document)
//! are compressed. A body that is already encoded (the console's pre-gzipped files) is left
//! alone by actix's encoder, and a client that sends no `Accept-Encoding` costs one header
//! lookup.
//!
//! Caches: a small answer is the same bytes for every client, so it carries no `Vary`; a
//! compressible one carries `Vary: Accept-Encoding` whether or not this client took gzip.

use actix_http::encoding::Encoder;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    self, AcceptEncoding, ContentEncoding, Encoding, Header, HeaderValue,
};
use actix_web::middleware::Next;

/// Bodies below this are sent uncompressed: about one TCP segment on a 1 500-byte MTU.
pub const MIN_COMPRESSED_BYTES: u64 = 1_400;

/// What this server can encode, in its order of preference among equally weighted choices.
const SUPPORTED: [Encoding; 3] = [
    Encoding::identity(),
    Encoding::Known(ContentEncoding::Gzip),
    Encoding::Known(ContentEncoding::Deflate),
];

/// The encoding the request asks for, `None` for identity (no header, an unparseable one, or
/// nothing acceptable but identity: the answer is then sent as it is, which RFC 9110 allows).
fn negotiate(request: &ServiceRequest) -> Option<ContentEncoding> {
    if !request.headers().contains_key(header::ACCEPT_ENCODING) {
        return None;
    }
    let accepted = AcceptEncoding::parse(request).ok()?;
    match accepted.negotiate(SUPPORTED.iter())? {
        Encoding::Known(ContentEncoding::Identity) | Encoding::Unknown(_) => None,
        Encoding::Known(encoding) => Some(encoding),
    }
}

/// Whether a body is worth compressing: large or of unknown length (a stream), and not a
/// format that is compressed already (images but SVG, audio, video, archives).
fn worth_compressing(size: BodySize, content_type: Option<&HeaderValue>) -> bool {
    let large = match size {
        BodySize::Sized(bytes) => bytes >= MIN_COMPRESSED_BYTES,
        BodySize::Stream => true,
        BodySize::None => false,
    };
    large
        && content_type
            .and_then(|value| value.to_str().ok())
            .is_none_or(|mime| {
                let mime = mime.trim_start().to_ascii_lowercase();
                let precompressed = (mime.starts_with("image/") && !mime.starts_with("image/svg"))
                    || mime.starts_with("audio/")
                    || mime.starts_with("video/")
                    || mime.starts_with("application/zip")
                    || mime.starts_with("application/gzip")
                    || mime.starts_with("application/pdf");
                !precompressed
            })
}

/// The middleware (outermost but the request id's: a compressed answer keeps its id header).
pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<
    ServiceResponse<EitherBody<Encoder<impl MessageBody>, impl MessageBody>>,
    actix_web::Error,
> {
    let encoding = negotiate(&request);
    let response = next.call(request).await?;
    Ok(response.map_body(move |head, body| {
        let compressible = worth_compressing(body.size(), head.headers.get(header::CONTENT_TYPE));
        if !compressible {
            return EitherBody::right(body);
        }
        match encoding {
            // The encoder adds `Vary` itself, and leaves a body alone that already has a
            // Content-Encoding (its producer set `Vary` then).
            Some(encoding) => EitherBody::left(Encoder::response(encoding, head, body)),
            None => {
                let varies = head.headers.get_all(header::VARY).any(|value| {
                    value
                        .to_str()
                        .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
                });
                if !varies {
                    head.headers
                        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
                }
                EitherBody::right(body)
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_bodies_of_compressible_types_are_worth_compressing() {
        let json = HeaderValue::from_static("application/json");
        assert!(!worth_compressing(BodySize::Sized(1_399), Some(&json)));
        assert!(worth_compressing(BodySize::Sized(1_400), Some(&json)));
        assert!(worth_compressing(BodySize::Stream, Some(&json)));
        assert!(!worth_compressing(BodySize::None, None));
        assert!(worth_compressing(BodySize::Sized(50_000), None));
        for done in ["image/png", "application/pdf", "video/mp4", "Image/JPEG"] {
            let value = HeaderValue::from_static(done);
            assert!(
                !worth_compressing(BodySize::Sized(50_000), Some(&value)),
                "{done}"
            );
        }
        let svg = HeaderValue::from_static("image/svg+xml");
        assert!(worth_compressing(BodySize::Sized(50_000), Some(&svg)));
    }
}
