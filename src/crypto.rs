//! Encryption of personal data at rest, and keyed hashes for looking it up.
//!
//! Every sealed value is AES-256-GCM with a fresh random 96-bit nonce, stored as
//! `nonce ‖ ciphertext ‖ tag` next to the id of the key that sealed it, so keys can rotate: the
//! current key seals, every configured key opens, and a background pass re-seals rows still
//! under an older key (see `workers::reencrypt`). The associated data binds each value to its
//! table, column and row, so a ciphertext copied onto another row does not open there.
//!
//! Lookups that need a sealed value (a user's e-mail address, say) use an HMAC-SHA256 of the
//! normalised value under a separate lookup key instead of the plaintext.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::settings::{ConfigError, EncryptionSettings};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Base64 of the development data key and lookup key in `config/default.toml`: anyone can read
/// them, so they are refused when `GATEWAY_ENV=production`.
pub const DEV_DATA_KEY: &str = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE=";
pub const DEV_LOOKUP_KEY: &str = "ZGV2LW9ubHktbG9va3VwLWtleS1ub3QtZm9yLXByb2Q=";

/// A value sealed under one of the keyring's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A row names a key that is not configured (removed too early from `[encryption.keys]`).
    #[error("data key `{0}` is not configured")]
    UnknownKey(String),
    /// The bytes do not open under the key: tampered, truncated, or bound to another row.
    #[error("sealed value does not authenticate under key `{0}`")]
    Corrupt(String),
}

/// The configured data keys and the lookup key. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    ciphers: BTreeMap<String, Aes256Gcm>,
    lookup: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: key material never prints.
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("keys", &self.ciphers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn decode_key(path: &str, value: &SecretString) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.expose_secret().trim())
        .map_err(|_| ConfigError(format!("{path}: must be base64 of 32 random bytes")))?;
    if bytes.len() != 32 {
        return Err(ConfigError(format!(
            "{path}: must be base64 of 32 random bytes (got {} bytes)",
            bytes.len()
        )));
    }
    Ok(Zeroizing::new(bytes))
}

/// Key ids go into every row: short, printable, stable.
fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Refuses the development keys of `config/default.toml` (they are public) for production.
pub fn refuse_development_keys(settings: &EncryptionSettings) -> Result<(), ConfigError> {
    for (id, key) in &settings.keys {
        if key.expose_secret().trim() == DEV_DATA_KEY {
            return Err(ConfigError(format!(
                "encryption.keys.{id}: the development data key cannot be used with \
                 GATEWAY_ENV=production; configure your own (base64 of 32 random bytes)"
            )));
        }
    }
    if settings.lookup_key.expose_secret().trim() == DEV_LOOKUP_KEY {
        return Err(ConfigError(
            "encryption.lookup_key: the development lookup key cannot be used with \
             GATEWAY_ENV=production; configure your own (base64 of 32 random bytes)"
                .into(),
        ));
    }
    Ok(())
}

impl Keyring {
    /// Builds the keyring from `[encryption]`, naming the offending key on any problem; in
    /// production (`production`), the development keys are refused too.
    pub fn for_environment(
        settings: &EncryptionSettings,
        production: bool,
    ) -> Result<Self, ConfigError> {
        if production {
            refuse_development_keys(settings)?;
        }
        Self::from_settings(settings)
    }

    /// Builds the keyring from `[encryption]`, naming the offending key on any problem.
    pub fn from_settings(settings: &EncryptionSettings) -> Result<Self, ConfigError> {
        if settings.keys.is_empty() {
            return Err(ConfigError(
                "encryption.keys: at least one data key is required (base64 of 32 bytes)".into(),
            ));
        }
        let mut ciphers = BTreeMap::new();
        for (id, value) in &settings.keys {
            if !valid_key_id(id) {
                return Err(ConfigError(format!(
                    "encryption.keys.{id}: key ids are 1-64 of [A-Za-z0-9._-]"
                )));
            }
            let bytes = decode_key(&format!("encryption.keys.{id}"), value)?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| ConfigError(format!("encryption.keys.{id}: not a 256-bit key")))?;
            ciphers.insert(id.clone(), cipher);
        }
        if !ciphers.contains_key(&settings.current_key_id) {
            return Err(ConfigError(format!(
                "encryption.current_key_id: `{}` is not one of encryption.keys",
                settings.current_key_id
            )));
        }
        let lookup = decode_key("encryption.lookup_key", &settings.lookup_key)?;
        Ok(Self {
            current: settings.current_key_id.clone(),
            ciphers,
            lookup,
        })
    }

    /// A keyring with one random data key and a random lookup key: for tests and tools.
    pub fn ephemeral(key_id: &str) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        let mut lookup = Zeroizing::new(vec![0u8; 32]);
        rand::rng().fill_bytes(lookup.as_mut());
        let mut ciphers = BTreeMap::new();
        ciphers.insert(
            key_id.to_owned(),
            Aes256Gcm::new_from_slice(key.as_ref()).expect("32 bytes"),
        );
        Self {
            current: key_id.to_owned(),
            ciphers,
            lookup,
        }
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.ciphers.keys().map(String::as_str)
    }

    pub fn has_key(&self, key_id: &str) -> bool {
        self.ciphers.contains_key(key_id)
    }

    /// Seals `plaintext` under the current key, bound to `aad` (table, column and row).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let cipher = &self.ciphers[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption only fails for inputs over 64 GiB");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            key_id: self.current.clone(),
            bytes,
        }
    }

    /// Opens a value sealed under `key_id` with the same `aad`.
    pub fn open(&self, key_id: &str, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Corrupt(key_id.to_owned()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Corrupt(key_id.to_owned()))
    }

    /// HMAC-SHA256 of `value` under the lookup key, separated by `purpose` so equal values in
    /// different roles (an e-mail, a document number) hash differently.
    pub fn lookup_hash(&self, purpose: &str, value: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.lookup)
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A large plaintext (a document file) collected where it will be sealed: the sealed value is
/// written over it, so sealing a file needs no second copy of it in memory. Zeroed when dropped
/// unsealed.
pub struct SealBuffer {
    /// `NONCE_LEN` bytes reserved for the nonce, then the plaintext.
    bytes: Zeroizing<Vec<u8>>,
}

impl Default for SealBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl SealBuffer {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A buffer that holds `plaintext` bytes (and the tag sealing adds) without growing.
    pub fn with_capacity(plaintext: usize) -> Self {
        let mut bytes = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext + TAG_LEN));
        bytes.resize(NONCE_LEN, 0);
        Self { bytes }
    }

    pub fn extend_from_slice(&mut self, chunk: &[u8]) {
        let needed = self.bytes.len() + chunk.len() + TAG_LEN;
        if needed > self.bytes.capacity() {
            // Grow by hand: a `Vec` that reallocates frees its old buffer without zeroing it,
            // which would leave plaintext behind. The old one is zeroed when it drops here.
            let mut grown =
                Zeroizing::new(Vec::with_capacity(needed.max(2 * self.bytes.capacity())));
            grown.extend_from_slice(&self.bytes);
            self.bytes = grown;
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// The plaintext collected so far.
    pub fn plaintext(&self) -> &[u8] {
        &self.bytes[NONCE_LEN..]
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - NONCE_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for SealBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealBuffer")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// [`Keyring::seal`], in place: the buffer's plaintext becomes `nonce ‖ ciphertext ‖ tag`.
    pub fn seal_buffer(&self, mut buffer: SealBuffer, aad: &[u8]) -> Sealed {
        let cipher = &self.ciphers[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut bytes = std::mem::take(&mut *buffer.bytes);
        // `extend_from_slice` keeps room for the tag, so this never moves the plaintext.
        bytes.reserve_exact(TAG_LEN);
        let (head, plaintext) = bytes.split_at_mut(NONCE_LEN);
        head.copy_from_slice(&nonce);
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, plaintext.into())
            .expect("AES-GCM encryption only fails for inputs over 64 GiB");
        bytes.extend_from_slice(&tag);
        Sealed {
            key_id: self.current.clone(),
            bytes,
        }
    }

    /// [`Keyring::open`], in place: the sealed bytes become the plaintext (no second copy).
    pub fn open_owned(
        &self,
        key_id: &str,
        mut bytes: Vec<u8>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Corrupt(key_id.to_owned()));
        }
        let tag_at = bytes.len() - TAG_LEN;
        let (head, rest) = bytes.split_at_mut(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at_mut(tag_at - NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*head).try_into().expect("split at NONCE_LEN");
        let tag =
            aes_gcm::Tag::try_from(&*tag).map_err(|_| CryptoError::Corrupt(key_id.to_owned()))?;
        cipher
            .decrypt_inout_detached(&Nonce::from(nonce), aad, ciphertext.into(), &tag)
            .map_err(|_| CryptoError::Corrupt(key_id.to_owned()))?;
        bytes.truncate(tag_at);
        bytes.drain(..NONCE_LEN);
        Ok(Zeroizing::new(bytes))
    }
}

/// The associated data that binds a sealed column value to its row.
pub fn row_aad(table: &str, column: &str, row_key: &str) -> Vec<u8> {
    format!("{table}.{column}:{row_key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::{production, sources};
    use crate::settings::Settings;

    fn keyring_for(sources: &crate::settings::ConfigSources) -> Result<Keyring, ConfigError> {
        let settings = Settings::load(sources)?;
        Keyring::for_environment(&settings.encryption, settings.is_production())
    }

    #[test]
    fn production_refuses_the_dev_keys() {
        // `dev-1` overridden, but `p1` is not a key: the keyring names it.
        let err = keyring_for(&production(&[])).unwrap_err();
        assert!(err.0.contains("encryption.current_key_id"), "{}", err.0);

        keyring_for(&production(&[(
            "GATEWAY__ENCRYPTION__CURRENT_KEY_ID",
            "dev-1",
        )]))
        .unwrap();

        let mut src = sources(&[]);
        src.environment = "production".into();
        let err = keyring_for(&src).unwrap_err();
        assert!(err.0.contains("encryption.keys.dev-1"), "{err}");
        assert!(!err.0.contains(DEV_DATA_KEY), "{err}");

        let err = keyring_for(&production(&[
            ("GATEWAY__ENCRYPTION__CURRENT_KEY_ID", "dev-1"),
            ("GATEWAY__ENCRYPTION__LOOKUP_KEY", DEV_LOOKUP_KEY),
        ]))
        .unwrap_err();
        assert!(err.0.contains("encryption.lookup_key"), "{err}");

        // Outside production the development keys are fine.
        keyring_for(&sources(&[])).unwrap();
    }

    fn settings(current: &str, keys: &[(&str, &str)]) -> EncryptionSettings {
        EncryptionSettings {
            current_key_id: current.into(),
            keys: keys
                .iter()
                .map(|(id, key)| ((*id).to_owned(), SecretString::from((*key).to_owned())))
                .collect(),
            lookup_key: SecretString::from(DEV_LOOKUP_KEY.to_owned()),
            rotation_interval_secs: 60,
            rotation_batch_size: 100,
        }
    }

    const OTHER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn seals_and_opens_with_a_fresh_nonce_each_time() {
        let ring = Keyring::from_settings(&settings("k1", &[("k1", DEV_DATA_KEY)])).unwrap();
        let a = ring.seal(b"C01X00T47", b"users.pii:1");
        let b = ring.seal(b"C01X00T47", b"users.pii:1");
        assert_ne!(a.bytes, b.bytes, "same plaintext, different ciphertexts");
        assert!(!a.bytes.windows(9).any(|w| w == b"C01X00T47"));
        assert_eq!(
            ring.open("k1", &a.bytes, b"users.pii:1").unwrap(),
            b"C01X00T47"
        );
    }

    #[test]
    fn refuses_other_rows_tampering_and_unknown_keys() {
        let ring = Keyring::from_settings(&settings("k1", &[("k1", DEV_DATA_KEY)])).unwrap();
        let sealed = ring.seal(b"secret", b"users.pii:1");
        assert_eq!(
            ring.open("k1", &sealed.bytes, b"users.pii:2"),
            Err(CryptoError::Corrupt("k1".into()))
        );
        let mut flipped = sealed.bytes.clone();
        flipped[20] ^= 1;
        assert!(ring.open("k1", &flipped, b"users.pii:1").is_err());
        assert!(ring
            .open("k1", &sealed.bytes[..10], b"users.pii:1")
            .is_err());
        assert_eq!(
            ring.open("k9", &sealed.bytes, b"users.pii:1"),
            Err(CryptoError::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn buffers_seal_in_place_and_open_like_any_sealed_value() {
        let ring = Keyring::from_settings(&settings("k1", &[("k1", DEV_DATA_KEY)])).unwrap();
        let mut buffer = SealBuffer::new();
        assert!(buffer.is_empty());
        buffer.extend_from_slice(b"%PDF-1.7 ");
        buffer.extend_from_slice(b"C01X00T47");
        assert_eq!(buffer.plaintext(), b"%PDF-1.7 C01X00T47");
        // Room for the tag is always kept, so sealing never moves (and leaves behind) the
        // plaintext; growing by hand keeps it too.
        assert!(buffer.bytes.capacity() >= buffer.bytes.len() + TAG_LEN);
        let mut grown = SealBuffer::with_capacity(4);
        for _ in 0..1000 {
            grown.extend_from_slice(b"0123456789");
            assert!(grown.bytes.capacity() >= grown.bytes.len() + TAG_LEN);
        }
        assert_eq!(grown.len(), 10_000);
        assert!(!format!("{buffer:?}").contains("C01X"));
        let sealed = ring.seal_buffer(buffer, b"document_files.file:1");
        assert_eq!(sealed.bytes.len(), 18 + NONCE_LEN + TAG_LEN);
        assert!(!sealed.bytes.windows(9).any(|w| w == b"C01X00T47"));
        // Either way of opening reads it, and only on its own row.
        assert_eq!(
            ring.open("k1", &sealed.bytes, b"document_files.file:1")
                .unwrap(),
            b"%PDF-1.7 C01X00T47"
        );
        assert_eq!(
            &ring
                .open_owned("k1", sealed.bytes.clone(), b"document_files.file:1")
                .unwrap()[..],
            b"%PDF-1.7 C01X00T47"
        );
        assert!(ring
            .open_owned("k1", sealed.bytes.clone(), b"document_files.file:2")
            .is_err());
        let plain = ring.seal(b"x", b"aad");
        assert_eq!(
            &ring.open_owned("k1", plain.bytes, b"aad").unwrap()[..],
            b"x"
        );
        assert!(ring.open_owned("k1", vec![0; 10], b"aad").is_err());
        assert_eq!(
            ring.open_owned("k9", sealed.bytes, b"aad"),
            Err(CryptoError::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn old_keys_open_while_the_current_key_seals() {
        let old = Keyring::from_settings(&settings("k1", &[("k1", DEV_DATA_KEY)])).unwrap();
        let sealed = old.seal(b"secret", b"aad");
        let rotated =
            Keyring::from_settings(&settings("k2", &[("k1", DEV_DATA_KEY), ("k2", OTHER_KEY)]))
                .unwrap();
        assert_eq!(
            rotated.open("k1", &sealed.bytes, b"aad").unwrap(),
            b"secret"
        );
        assert_eq!(rotated.seal(b"x", b"aad").key_id, "k2");
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let err = Keyring::from_settings(&settings("k1", &[("k1", "c2hvcnQ=")])).unwrap_err();
        assert!(err.0.starts_with("encryption.keys.k1:"), "{}", err.0);
        let err = Keyring::from_settings(&settings("k2", &[("k1", DEV_DATA_KEY)])).unwrap_err();
        assert!(err.0.starts_with("encryption.current_key_id:"), "{}", err.0);
        let err = Keyring::from_settings(&settings("k 1", &[("k 1", DEV_DATA_KEY)])).unwrap_err();
        assert!(err.0.contains("key ids"), "{}", err.0);
    }

    #[test]
    fn lookup_hashes_are_keyed_and_separated_by_purpose() {
        let ring = Keyring::from_settings(&settings("k1", &[("k1", DEV_DATA_KEY)])).unwrap();
        let email = ring.lookup_hash("email", "jane@example.com");
        assert_eq!(email, ring.lookup_hash("email", "jane@example.com"));
        assert_ne!(email, ring.lookup_hash("document", "jane@example.com"));
        assert_ne!(
            email,
            Keyring::ephemeral("t").lookup_hash("email", "jane@example.com")
        );
        let debug = format!("{ring:?}");
        assert!(debug.contains("k1") && !debug.contains(DEV_DATA_KEY));
    }
}
