//! What each provider needs beyond the canonical base set (README "Providers"), checked before
//! anything is sent, so a user routed to a provider is either complete or refused with one
//! error per missing field.

use serde_json::Value;

use crate::domain::provider::ProviderId;
use crate::domain::user::CanonicalUser;
use crate::domain::FieldError;

/// The canonical JSON paths a provider requires (beyond the base set every user has).
pub fn required_fields(provider: ProviderId) -> &'static [&'static str] {
    match provider {
        ProviderId::Kraken => &[
            "phone",
            "address.line1",
            "address.city",
            "address.postal_code",
            "nationalities",
            "employment",
            "terms.version",
        ],
        ProviderId::Killb => &[
            "phone",
            "address.line1",
            "address.city",
            "address.region",
            "address.postal_code",
            "identity_document",
        ],
        ProviderId::Carbn => &[
            "phone",
            "address.line1",
            "address.city",
            "address.postal_code",
            "identity_document",
            "terms.accepted_at",
        ],
    }
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |node, key| node.get(key))
        .filter(|v| !v.is_null())
}

/// The canonical fields `user` lacks for `provider`, and the values present that the provider
/// cannot take (KillB's identity document types by country), as field errors naming the
/// provider: refused before anything is stored, rather than failing at submission.
pub fn missing_fields(provider: ProviderId, user: &CanonicalUser) -> Vec<FieldError> {
    let json = serde_json::to_value(user).expect("a canonical user serialises");
    let mut errors: Vec<FieldError> = required_fields(provider)
        .iter()
        .filter(|path| lookup(&json, path).is_none())
        .map(|path| FieldError {
            field: (*path).to_owned(),
            code: "required",
            message: format!("is required by {}", provider.as_str()),
        })
        .collect();
    if provider == ProviderId::Killb {
        if let Some(Err(e)) = user.identity_document.as_ref().map(|d| {
            crate::providers::killb::transformers::document_type(d.doc_type, d.issuing_country)
        }) {
            errors.push(FieldError {
                field: e.field.to_owned(),
                code: "not_supported_by_provider",
                message: e.reason,
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_user_at;
    use serde_json::json;
    use time::macros::datetime;

    fn user(document: Value) -> CanonicalUser {
        let json = json!({
            "external_id": "crm-1", "type": "individual", "email": "jane@example.com",
            "phone": "+573001234567", "name": {"first": "Jane", "last": "Doe"},
            "date_of_birth": "1990-01-15",
            "address": {"line1": "Calle 1", "city": "Bogotá", "region": "DC",
                        "postal_code": "110111", "country": "CO"},
            "identity_document": document,
        });
        parse_user_at(&json, datetime!(2026-11-20 12:00 UTC)).unwrap()
    }

    #[test]
    fn killb_refuses_document_types_it_has_no_equivalent_for() {
        let ok =
            user(json!({"type": "national_id", "number": "1020304050", "issuing_country": "CO"}));
        assert!(missing_fields(ProviderId::Killb, &ok).is_empty());
        for (kind, country) in [("national_id", "DE"), ("residence_permit", "MX")] {
            let doc = json!({"type": kind, "number": "X1234567", "issuing_country": country});
            let errors = missing_fields(ProviderId::Killb, &user(doc.clone()));
            assert_eq!(errors.len(), 1, "{kind} {country}");
            assert_eq!(errors[0].field, "identity_document.type");
            assert_eq!(errors[0].code, "not_supported_by_provider");
            // Other providers take it.
            assert!(missing_fields(ProviderId::Carbn, &user(doc))
                .iter()
                .all(|e| e.field != "identity_document.type"));
        }
    }
}
