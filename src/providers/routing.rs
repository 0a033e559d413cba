//! Which providers a new user goes to (README "Providers", **Routing**): the ones the request
//! names, else the first configured rule matching `address.country`, else
//! `routing.default_provider`. A disabled or unconfigured provider is never chosen, and naming one
//! is refused. With neither a matching rule nor a default configured, the user is stored without
//! links (it can be linked later with `POST /v1/users/{id}/providers`).

use super::registry::ProviderRegistry;
use crate::domain::provider::ProviderId;
use crate::domain::user::CanonicalUser;
use crate::domain::FieldError;
use crate::settings::RoutingSettings;

pub fn route(
    requested: Option<&[ProviderId]>,
    user: &CanonicalUser,
    routing: &RoutingSettings,
    registry: &ProviderRegistry,
) -> Result<Vec<ProviderId>, Vec<FieldError>> {
    if let Some(requested) = requested {
        let errors: Vec<FieldError> = requested
            .iter()
            .enumerate()
            .filter_map(|(i, provider)| {
                registry
                    .unavailable_reason(*provider)
                    .map(|reason| FieldError {
                        field: format!("providers[{i}]"),
                        code: "provider_unavailable",
                        message: format!("{} cannot be used: {reason}", provider.as_str()),
                    })
            })
            .collect();
        return if errors.is_empty() {
            Ok(requested.to_vec())
        } else {
            Err(errors)
        };
    }
    let country = user.address.country.as_str();
    let by_rule = routing
        .rules
        .iter()
        .filter(|rule| rule.countries.iter().any(|c| c == country))
        .map(|rule| rule.provider)
        .find(|provider| registry.is_available(*provider));
    if let Some(provider) = by_rule.or(routing
        .default_provider
        .filter(|provider| registry.is_available(*provider)))
    {
        return Ok(vec![provider]);
    }
    if routing.default_provider.is_none()
        && !routing
            .rules
            .iter()
            .any(|r| r.countries.iter().any(|c| c == country))
    {
        return Ok(Vec::new());
    }
    Err(vec![FieldError {
        field: "address.country".into(),
        code: "provider_unavailable",
        message: format!(
            "no enabled provider serves {country}; name one in `providers` or configure routing"
        ),
    }])
}
