//! `/console`: the ops console's static files (README "Console"), built from `console/` into
//! `console/dist/` and embedded in the binary, so it works offline like `/docs`. The pages call
//! the same `/v1/…` endpoints with the same API keys and scopes as any client: nothing here
//! opens another way into the API.
//!
//! Each file is embedded twice, as built and gzipped at build time, so an answer costs no
//! compression work; a strong ETag per representation lets a browser revalidate cheaply
//! (`no-cache`: the files have fixed names, and a new binary must never run old pages).

use std::sync::OnceLock;

use actix_web::http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::problem::Problem;

/// Scripts, styles and connections from this origin only; no inline code, no frames, no forms
/// posted anywhere, no `<base>`: an injected string can neither run nor leak a key.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// One built file: its name under `/console/`, type, bytes and their gzip.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    pub gzip: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/dist/", $name)),
            gzip: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/console/dist/",
                $name,
                ".gz"
            )),
        }
    };
}

/// Every file `console/build.mjs` writes (it writes no others; `--check` holds it to that).
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
];

/// `"<sha-256 prefix>"` of the plain bytes and `"<…>-gz"` of the gzip, per asset, computed once.
fn etags() -> &'static [(String, String)] {
    static ETAGS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = hex::encode(&Sha256::digest(asset.body)[..16]);
                (format!("\"{digest}\""), format!("\"{digest}-gz\""))
            })
            .collect()
    })
}

/// Whether `Accept-Encoding` takes gzip (`gzip` or `*`, with a q-value above zero).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
            return false;
        }
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        quality > 0.0
    })
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this header).
fn none_match(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn header(req: &HttpRequest, name: actix_web::http::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let asset = &ASSETS[index];
    let (plain_etag, gzip_etag) = &etags()[index];
    let gzip = accepts_gzip(header(req, ACCEPT_ENCODING));
    let etag = if gzip { gzip_etag } else { plain_etag };
    let unchanged = none_match(header(req, IF_NONE_MATCH), etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, etag.as_str()))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((VARY, "accept-encoding"))
        .insert_header(("content-security-policy", CONTENT_SECURITY_POLICY))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(asset.content_type)));
    if gzip {
        // Already compressed: the server's own compression middleware leaves it alone.
        response.insert_header((CONTENT_ENCODING, "gzip"));
    }
    if unchanged {
        return response.finish();
    }
    response.body(if gzip { asset.gzip } else { asset.body })
}

/// `GET /console` → `/console/` (so the pages' relative links resolve under it).
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("location", "/console/"))
        .finish()
}

/// `GET /console/{file}`: an embedded file, the page itself for `/console/`, 404 otherwise.
pub async fn file(req: HttpRequest) -> Result<HttpResponse, Problem> {
    let name = req.match_info().get("file").unwrap_or_default();
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .map(|index| serve(&req, index))
        .ok_or_else(|| Problem::not_found("no such console file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_only_when_accepted() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(accepts_gzip("deflate, gzip ; q=1.0"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.000"));
        assert!(!accepts_gzip("gzipx"));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("", "\"abc\""));
        assert!(!none_match("\"abc-gz\"", "\"abc\""));
    }

    #[test]
    fn every_asset_is_embedded_with_its_gzip() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{}", asset.name);
            // The gzip magic number: the file is compressed, not a copy.
            assert_eq!(&asset.gzip[..2], &[0x1f, 0x8b], "{}", asset.name);
        }
    }
}
