//! The `[providers.kraken]` configuration section.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KrakenSettings {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Base64, as Kraken issues it.
    pub api_secret: Option<SecretString>,
    /// Base64, as returned when the webhook was registered.
    pub webhook_secret: Option<SecretString>,
}

fn enabled_by_default() -> bool {
    true
}
