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
    /// What a submission does after a create whose answer was lost: `retry` (the default)
    /// sends it again with the same `external_id`, relying on Kraken refusing a second account
    /// for it with 409; `review` flags the link `possible_duplicate_account` for a person.
    #[serde(default)]
    pub on_unknown_outcome: OnUnknownOutcome,
}

/// `[providers.kraken] on_unknown_outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum OnUnknownOutcome {
    /// Re-send the create with the same `external_id`.
    #[default]
    Retry,
    /// Stop and flag the link for review (no lookup by `external_id` exists at Kraken).
    Review,
}

fn enabled_by_default() -> bool {
    true
}

impl TryFrom<String> for OnUnknownOutcome {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "retry" => Ok(Self::Retry),
            "review" => Ok(Self::Review),
            other => Err(format!(
                "on_unknown_outcome must be \"retry\" or \"review\", not {other:?}"
            )),
        }
    }
}
