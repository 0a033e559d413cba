//! The `[providers.killb]` configuration section.

use secrecy::SecretString;
use serde::Deserialize;

use super::webhook::SignatureScheme;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillbSettings {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub base_url: String,
    pub email: Option<SecretString>,
    pub password: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    /// How `x-signature-sha256` is computed: `hmac_sha256` (the documented HMAC of the raw
    /// body, the default) or `sha256_concat` (the official SDK's SHA-256 of body + "_" + secret).
    #[serde(default)]
    pub webhook_signature_scheme: SignatureScheme,
}

fn enabled_by_default() -> bool {
    true
}
