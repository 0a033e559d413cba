//! The `[providers.carbn]` configuration section.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbnSettings {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// PEM (SPKI) RSA public key that verifies Carbn's webhook signatures.
    pub webhook_public_key: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}
