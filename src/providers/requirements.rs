//! What a provider needs beyond the canonical base set (each provider's `required_fields` and
//! `unsupported_values`), checked before anything is sent, so a user routed to a provider is
//! either complete or refused with one error per missing field.

use serde_json::Value;

use crate::domain::provider::ProviderId;
use crate::domain::user::CanonicalUser;
use crate::domain::FieldError;

/// The canonical JSON paths a provider requires (beyond the base set every user has).
pub fn required_fields(provider: ProviderId) -> &'static [&'static str] {
    super::module(provider).required_fields()
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |node, key| node.get(key))
        .filter(|v| !v.is_null())
}

/// The canonical fields `user` lacks for `provider`, and the values present that the provider
/// cannot take, as field errors naming the provider: refused before anything is stored, rather
/// than failing at submission.
pub fn missing_fields(provider: ProviderId, user: &CanonicalUser) -> Vec<FieldError> {
    let json = serde_json::to_value(user).expect("a canonical user serialises");
    let module = super::module(provider);
    let mut errors: Vec<FieldError> = module
        .required_fields()
        .iter()
        .filter(|path| lookup(&json, path).is_none())
        .map(|path| FieldError {
            field: (*path).to_owned(),
            code: "required",
            message: format!("is required by {}", provider.as_str()),
        })
        .collect();
    errors.extend(module.unsupported_values(user));
    errors
}
