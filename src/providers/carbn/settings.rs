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
    /// The ISO 4217 currency sent with every hosted onboarding session (Carbn requires one; the
    /// gateway's API has none).
    #[serde(default = "default_session_currency")]
    pub session_currency: String,
    /// Where Carbn's hosted onboarding sends the person afterwards when the caller gives no
    /// `redirect_url` (Carbn requires one). Unset: callers must give it.
    #[serde(default)]
    pub session_redirect_url: Option<String>,
}

fn default_session_currency() -> String {
    "EUR".to_owned()
}

fn enabled_by_default() -> bool {
    true
}
