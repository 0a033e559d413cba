//! Each provider's required fields and refused values, as `providers::requirements` reads
//! them from the provider's folder.

use onboarding_gateway::domain::parse_user_at;
use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::domain::user::CanonicalUser;
use onboarding_gateway::providers::requirements::{missing_fields, required_fields};
use serde_json::{json, Value};
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
    let ok = user(json!({"type": "national_id", "number": "1020304050", "issuing_country": "CO"}));
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

#[test]
fn each_provider_names_its_required_fields() {
    assert!(required_fields(ProviderId::Kraken).contains(&"employment"));
    assert!(required_fields(ProviderId::Killb).contains(&"address.region"));
    assert!(required_fields(ProviderId::Carbn).contains(&"terms.accepted_at"));
    // A user with no phone lacks it everywhere, and the error names the provider.
    let mut json = serde_json::to_value(user(
        json!({"type": "passport", "number": "C01X00T47", "issuing_country": "CO"}),
    ))
    .unwrap();
    json.as_object_mut().unwrap().remove("phone");
    let no_phone = parse_user_at(&json, datetime!(2026-11-20 12:00 UTC)).unwrap();
    for id in ProviderId::ALL {
        let errors = missing_fields(*id, &no_phone);
        let phone = errors.iter().find(|e| e.field == "phone").expect("phone");
        assert_eq!(phone.code, "required");
        assert!(phone.message.contains(id.as_str()), "{}", phone.message);
    }
}
