//! Kraken `API-Sign` request signing (https://docs.kraken.com/api/docs/guides/embed-rest-auth) and
//! strictly increasing nonces.
//!
//! ```text
//! API-Sign = base64( HMAC-SHA512( key = base64_decode(api_secret),
//!                                 msg = path_with_query || SHA256(ascii(nonce) || raw_body) ) )
//! ```
//!
//! `path_with_query` is the exact request-target sent on the wire (already percent-encoded, e.g.
//! `/b2b/users/AA12%20N84G%20ABCD%20EFGH`); `body` is the exact body bytes sent (empty for GET
//! and body-less DELETE). Serialize once, sign those bytes, send those bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

type HmacSha512 = Hmac<Sha512>;

/// Why a signature could not be computed or checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// The API secret is not valid standard (padded) base64.
    #[error("the API secret is not valid base64")]
    InvalidSecret,
    /// The `API-Sign` value to verify is not valid base64.
    #[error("the signature is not valid base64")]
    InvalidSignatureEncoding,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

fn mac(
    secret_b64: &str,
    path_with_query: &str,
    nonce: u64,
    body: &[u8],
) -> Result<HmacSha512, SigningError> {
    let key = STANDARD
        .decode(secret_b64.trim())
        .map_err(|_| SigningError::InvalidSecret)?;
    let mut inner = Sha256::new();
    inner.update(nonce.to_string().as_bytes());
    inner.update(body);
    let inner = inner.finalize();
    let mut mac = HmacSha512::new_from_slice(&key).map_err(|_| SigningError::InvalidSecret)?;
    mac.update(path_with_query.as_bytes());
    mac.update(&inner);
    Ok(mac)
}

/// Computes `API-Sign` for one request. See the module docs for the exact construction.
pub fn api_sign(
    secret_b64: &str,
    path_with_query: &str,
    nonce: u64,
    body: &[u8],
) -> Result<String, SigningError> {
    let mac = mac(secret_b64, path_with_query, nonce, body)?;
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks an `API-Sign` header value in constant time (server side, used by the simulator).
pub fn verify_api_sign(
    secret_b64: &str,
    path_with_query: &str,
    nonce: u64,
    body: &[u8],
    api_sign: &str,
) -> Result<(), SigningError> {
    let given = STANDARD
        .decode(api_sign.trim())
        .map_err(|_| SigningError::InvalidSignatureEncoding)?;
    let mac = mac(secret_b64, path_with_query, nonce, body)?;
    mac.verify_slice(&given).map_err(|_| SigningError::Mismatch)
}

/// Strictly increasing `API-Nonce` values for one API key, safe under concurrent use.
///
/// Seeded from the wall clock in nanoseconds (Kraken recommends nanoseconds for bursts). Each
/// call returns `max(now_ns, previous + 1)`, so values never repeat and never go backwards, even
/// if the clock steps back. Share one instance (e.g. in an `Arc`) among all users of a key.
#[derive(Debug)]
pub struct NonceSource {
    last: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl NonceSource {
    /// A source whose first nonce is the current time in nanoseconds.
    pub fn new() -> Self {
        Self::starting_after(0)
    }

    /// A source whose nonces are all greater than `last` (e.g. a value persisted earlier).
    pub fn starting_after(last: u64) -> Self {
        Self {
            last: AtomicU64::new(last),
        }
    }

    /// The next nonce: strictly greater than every nonce this source returned before.
    pub fn next(&self) -> u64 {
        let now = now_nanos();
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or_else(|last| last);
        now.max(previous.saturating_add(1))
    }
}

impl Default for NonceSource {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    /// The private key of Kraken's published Spot vector; also used for the derived V1–V4.
    const SPOT_SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    #[test]
    fn reproduces_kraken_published_spot_vector() {
        // Spot REST puts the nonce inside the url-encoded body and hashes nonce || body.
        let nonce = 1_616_492_376_594;
        let body =
            "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25";
        let sign = api_sign(SPOT_SECRET, "/0/private/AddOrder", nonce, body.as_bytes()).unwrap();
        assert_eq!(
            sign,
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
    }

    #[test]
    fn reproduces_derived_embed_vectors() {
        let cases: [(&str, u64, &str, &str); 4] = [
            (
                "/b2b/users/AA45N8G4MLDYWAR7",
                1_700_000_000_000_000_000,
                "",
                "Tdm+URoOl/7g+EN/YAzC3W2ttdrlPjlVge95fmPAhyU1k4efEIZ+TGDYpOyr7xsmc6W9Yl2ZU/8GzmWQooeV2g==",
            ),
            (
                "/b2b/users",
                1_700_000_000_000_000_001,
                r#"{"email":"jsmith@example.com","external_id":"partner-user-12345","tos_version_accepted":1,"full_name":{"first_name":"John","last_name":"Smith"},"date_of_birth":"1990-01-15","residence":{"line1":"1 Market St","city":"San Francisco","postal_code":"94103","country":"US"},"phone":"+14155550110","nationalities":["US"],"occupation":"computers_and_it"}"#,
                "h/TpaDDeMZk9LrJrYC0+o4eMqe4TcLzSqDpJbXZdVb9fW9x4sIhrPpVjZNTeWPa1+xzXWhaG4apw3YK0xzXKtg==",
            ),
            (
                "/b2b/users/AA45N8G4MLDYWAR7",
                1_700_000_000_000_000_002,
                r#"{"phone":"+14155550111"}"#,
                "LO8I2CB/+TtfyjOG+6tKSo50E+94zkVe9czs2GpDfbBsyJtk2F50ZtNg23tCl89J+8vYcVnMGbazhaL9zSkvBw==",
            ),
            (
                "/b2b/assets?page%5Bsize%5D=10&quote=USD",
                1_700_000_000_000_000_003,
                "",
                "NtVsNZ+IDqnSl8QHnj5B1W3BE3quwxVxgELB13ZUUjW8PmFuaSqUad+D6WjGgjsbstMv84BdDrK8/899feboEw==",
            ),
        ];
        for (i, (path, nonce, body, expected)) in cases.iter().enumerate() {
            let sign = api_sign(SPOT_SECRET, path, *nonce, body.as_bytes()).unwrap();
            assert_eq!(&sign, expected, "V{}", i + 1);
            verify_api_sign(SPOT_SECRET, path, *nonce, body.as_bytes(), expected).unwrap();
        }
    }

    #[test]
    fn verify_rejects_tampering() {
        let sign = api_sign(SPOT_SECRET, "/b2b/users", 5, b"{}").unwrap();
        assert_eq!(
            verify_api_sign(SPOT_SECRET, "/b2b/users", 5, b"{ }", &sign),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            verify_api_sign(SPOT_SECRET, "/b2b/users", 6, b"{}", &sign),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            verify_api_sign(SPOT_SECRET, "/b2b/users?x=1", 5, b"{}", &sign),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            verify_api_sign(SPOT_SECRET, "/b2b/users", 5, b"{}", "not base64!"),
            Err(SigningError::InvalidSignatureEncoding)
        );
    }

    #[test]
    fn invalid_secret_is_an_error() {
        assert_eq!(
            api_sign("%%%", "/b2b/users", 1, b""),
            Err(SigningError::InvalidSecret)
        );
    }

    #[test]
    fn nonces_strictly_increase_sequentially() {
        let source = NonceSource::new();
        let mut last = 0;
        for _ in 0..10_000 {
            let n = source.next();
            assert!(n > last);
            last = n;
        }
    }

    #[test]
    fn nonces_never_go_backwards_from_a_future_seed() {
        let far_future = now_nanos() + 3_600_000_000_000;
        let source = NonceSource::starting_after(far_future);
        assert_eq!(source.next(), far_future + 1);
        assert_eq!(source.next(), far_future + 2);
    }

    #[test]
    fn nonces_are_unique_and_increasing_per_thread_under_concurrency() {
        let source = Arc::new(NonceSource::new());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let source = Arc::clone(&source);
                std::thread::spawn(move || {
                    let mut seen = Vec::with_capacity(5_000);
                    for _ in 0..5_000 {
                        seen.push(source.next());
                    }
                    seen
                })
            })
            .collect();
        let mut all = HashSet::new();
        for handle in handles {
            let seen = handle.join().unwrap();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "per-thread order");
            for n in seen {
                assert!(all.insert(n), "duplicate nonce {n}");
            }
        }
        assert_eq!(all.len(), 40_000);
    }
}
