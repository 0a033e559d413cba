//! Verification at Carbn Connect: which documents it takes, what its `requirements` ask of the
//! user, and why it rejected one.
//!
//! Carbn's user carries `status`, `requirements` (the API reference's name; the status guide
//! says `requirements_due`) and `rejection_reasons`, both `null` in every published example
//! (https://docs.carbn.xyz/api-reference/user-management/get-user-details,
//! https://docs.carbn.xyz/documentation/developer-platform/users/compliance/user-status). The
//! guide's wording is Bridge's, so their non-null shapes are read as Bridge documents them
//! (https://apidocs.bridge.xyz/platform/customers/customers/missing-requirements-and-issues):
//! a list of requirement codes, or objects whose `missing` tree and `issues` list hold codes,
//! and rejection reasons `{reason, developer_reason}` (or plain strings). The connector stores
//! the requirements (whichever name was given) followed by the rejection reasons as the link's
//! requirements, and the rejection reasons verbatim in `link_data` as well.

use serde_json::Value;

use super::transformers::LINK_REJECTION_REASONS;
use crate::domain::status::LinkStatus;
use crate::domain::verification::{NextAction, NextActionKind, Rejection};
use crate::providers::provider::{DocumentFacts, DocumentPolicy, LinkFacts};

/// What one requirement code asks for.
///
/// - Profile data (Bridge's `missing` codes for the base endorsement, and the data `issues`) →
///   `update_field` with the canonical paths the connector fills Carbn's fields from.
/// - Identity and proof codes → `open_link`: Carbn takes no document upload; its hosted
///   onboarding session collects them.
/// - `has_base`/`has_sepa` (another approval comes first) → `wait`.
/// - A terms code → `accept_terms` (consent is a new `terms.accepted_at`, sent as a fresh
///   consent id).
/// - Screening matches, a firm refusal (`customer_too_young`), a region without service, and a
///   bank account requirement (`external_account`, which the gateway has no field for) →
///   `contact_support`.
fn code_action(code: &str) -> NextAction {
    let update = |fields: &[&str]| NextAction {
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        ..NextAction::new(code, NextActionKind::UpdateField)
    };
    match code {
        "first_name" => update(&["name.first"]),
        "last_name" => update(&["name.last"]),
        "date_of_birth" | "min_age_18" => update(&["date_of_birth"]),
        "email_address" => update(&["email"]),
        "address_of_residence" => update(&["address"]),
        "tax_identification_number_not_compatible" => update(&["tax_ids"]),
        _ if code.starts_with("residence_address_invalid") => update(&["address"]),
        "id_verification"
        | "identity_document"
        | "proof_of_address"
        | "government_id_verification_failed" => NextAction::new(code, NextActionKind::OpenLink),
        "has_base" | "has_sepa" => NextAction::new(code, NextActionKind::Wait),
        "terms_of_service" => NextAction {
            fields: vec!["terms.accepted_at".into()],
            ..NextAction::new(code, NextActionKind::AcceptTerms)
        },
        "watchlist_report_match"
        | "adverse_media_report_match"
        | "customer_too_young"
        | "endorsement_not_available_in_customers_region"
        | "external_account" => NextAction::new(code, NextActionKind::ContactSupport),
        _ => NextAction::unrecognised(code),
    }
}

/// Every code in a Bridge-like `missing` tree (`{"all_of": ["first_name", {"any_of": […]}]}`).
fn missing_codes(tree: &Value, out: &mut Vec<NextAction>) {
    match tree {
        Value::String(code) => out.push(code_action(code)),
        Value::Array(items) => items.iter().for_each(|i| missing_codes(i, out)),
        Value::Object(members) => members.values().for_each(|v| missing_codes(v, out)),
        Value::Null => {}
        other => out.push(NextAction::unrecognised(other.to_string())),
    }
}

/// One item of `requirements`: a code, a Bridge-like requirements object (`missing`, `issues`,
/// `pending` under review; `complete` is done), an endorsement wrapping one
/// (`{name, status, requirements}`), or something unknown (kept, flagged).
fn item_actions(item: &Value, out: &mut Vec<NextAction>) {
    match item {
        Value::String(code) => out.push(code_action(code)),
        Value::Array(items) => items.iter().for_each(|i| item_actions(i, out)),
        Value::Object(members)
            if ["missing", "issues", "pending"]
                .iter()
                .any(|k| members.contains_key(*k)) =>
        {
            if let Some(missing) = members.get("missing") {
                missing_codes(missing, out);
            }
            for issue in members
                .get("issues")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match issue {
                    Value::String(code) => out.push(code_action(code)),
                    other => out.push(NextAction::unrecognised(other.to_string())),
                }
            }
            for pending in members
                .get("pending")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(NextAction::new(raw(pending), NextActionKind::Wait));
            }
        }
        Value::Object(members) if members.get("requirements").is_some_and(Value::is_object) => {
            item_actions(&members["requirements"], out)
        }
        other => out.push(NextAction::unrecognised(other.to_string())),
    }
}

fn raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A raw JSON value as list items, as the connector stores them.
fn items(value: Option<&Value>) -> &[Value] {
    match value {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(other) => std::slice::from_ref(other),
    }
}

/// The stored requirements without the rejection reasons the connector appended to them.
fn requirements<'a>(link: &LinkFacts<'a>) -> &'a [Value] {
    let reasons = items(link.link_data.get(LINK_REJECTION_REASONS));
    let all = link.requirements;
    if !reasons.is_empty() && all.ends_with(reasons) {
        &all[..all.len() - reasons.len()]
    } else {
        all
    }
}

/// The status (`under_review` → `wait`; `rejected`, `paused`, `offboarded` →
/// `contact_support`; `incomplete` with no readable requirement → `open_link`, the hosted
/// session asks for what is missing; an unknown status kept, flagged), then each requirement.
pub fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction> {
    let mut from_requirements = Vec::new();
    for item in requirements(link) {
        item_actions(item, &mut from_requirements);
    }
    let mut actions = Vec::new();
    match link.provider_status {
        None | Some("active") => {}
        Some(status @ "under_review") => actions.push(NextAction::new(
            format!("status:{status}"),
            NextActionKind::Wait,
        )),
        Some(status @ "incomplete") => {
            if from_requirements.is_empty() {
                actions.push(NextAction::new(
                    format!("status:{status}"),
                    NextActionKind::OpenLink,
                ));
            }
        }
        Some(status @ ("rejected" | "paused" | "offboarded")) => actions.push(NextAction::new(
            format!("status:{status}"),
            NextActionKind::ContactSupport,
        )),
        Some(status) => actions.push(NextAction::unrecognised(format!("status:{status}"))),
    }
    for action in from_requirements {
        if !actions
            .iter()
            .any(|a| a.code == action.code && a.next_action == action.next_action)
        {
            actions.push(action);
        }
    }
    actions
}

/// A rejected user: the first `rejection_reasons` entry, whose `reason` is written for the
/// person (`user_message`) and `developer_reason` for the integrator (`developer_message`); a
/// plain string is taken as the reason. Carbn documents no reason codes and no retry, so the
/// code is `rejected` (or the entry's own `code`, if it has one) and it is not retryable.
pub fn rejection(link: &LinkFacts<'_>) -> Option<Rejection> {
    if link.status != LinkStatus::Rejected {
        return None;
    }
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut rejection = Rejection {
        code: "rejected".into(),
        user_message: None,
        developer_message: None,
        retryable: false,
    };
    match items(link.link_data.get(LINK_REJECTION_REASONS)).first() {
        None => {}
        Some(reason @ Value::String(_)) => rejection.user_message = text(Some(reason)),
        Some(Value::Object(reason)) => {
            rejection.user_message = text(reason.get("reason"));
            rejection.developer_message = text(reason.get("developer_reason"));
            if let Some(code) = text(reason.get("code")) {
                rejection.code = code;
            }
        }
        Some(other) => rejection.developer_message = Some(other.to_string()),
    }
    Some(rejection)
}

/// Carbn documents no upload endpoint (https://docs.carbn.xyz/api-reference): identity
/// documents reach it only through its hosted onboarding session
/// (https://docs.carbn.xyz/api-reference/user-management/create-user-onboarding-session).
pub fn document_policy(_document: &DocumentFacts) -> DocumentPolicy {
    DocumentPolicy::NotSupported(
        "Carbn Connect has no document upload API; open a hosted verification session instead"
            .into(),
    )
}

#[cfg(test)]
mod document_policy_tests {
    use super::*;
    use crate::domain::verification::{DocumentContentType, DocumentSide, DocumentType};

    #[test]
    fn no_document_is_supported() {
        for document_type in DocumentType::ALL {
            for side in [None, Some(DocumentSide::Front), Some(DocumentSide::Back)] {
                for has_verification in [false, true] {
                    assert_eq!(
                        document_policy(&DocumentFacts {
                            document_type: *document_type,
                            side,
                            content_type: DocumentContentType::Png,
                            size: 500_000,
                            has_verification,
                        }),
                        DocumentPolicy::NotSupported(
                            "Carbn Connect has no document upload API; open a hosted \
                             verification session instead"
                                .into()
                        )
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};
    use time::OffsetDateTime;

    fn actions(status: &str, requirements: &[Value], link_data: &Map<String, Value>) -> Vec<NextAction> {
        next_actions(&LinkFacts {
            status: LinkStatus::ActionRequired,
            provider_status: Some(status),
            requirements,
            link_data,
            submitted_documents: &[],
            now: OffsetDateTime::now_utc(),
        })
    }

    fn summary(actions: &[NextAction]) -> Vec<(String, NextActionKind, Vec<String>, bool)> {
        actions
            .iter()
            .map(|a| (a.code.clone(), a.next_action, a.fields.clone(), a.unrecognised))
            .collect()
    }

    #[test]
    fn every_status_maps() {
        use NextActionKind::*;
        let none = Map::new();
        for (status, want) in [
            ("active", None),
            ("under_review", Some(Wait)),
            ("incomplete", Some(OpenLink)),
            ("rejected", Some(ContactSupport)),
            ("paused", Some(ContactSupport)),
            ("offboarded", Some(ContactSupport)),
        ] {
            let got = actions(status, &[], &none);
            match want {
                None => assert!(got.is_empty(), "{status}: {got:?}"),
                Some(kind) => {
                    assert_eq!(got.len(), 1, "{status}");
                    assert_eq!(got[0].code, format!("status:{status}"));
                    assert_eq!(got[0].next_action, kind, "{status}");
                    assert!(got[0].blocking && !got[0].unrecognised);
                }
            }
        }
        let unknown = actions("ACTIVE", &[], &none);
        assert_eq!(summary(&unknown), vec![("status:ACTIVE".into(), ContactSupport, vec![], true)]);
    }

    #[test]
    fn every_documented_code_maps() {
        use NextActionKind::*;
        let none = Map::new();
        let field = |f: &str| vec![f.to_owned()];
        for (code, kind, fields) in [
            ("first_name", UpdateField, field("name.first")),
            ("last_name", UpdateField, field("name.last")),
            ("date_of_birth", UpdateField, field("date_of_birth")),
            ("min_age_18", UpdateField, field("date_of_birth")),
            ("email_address", UpdateField, field("email")),
            ("address_of_residence", UpdateField, field("address")),
            ("residence_address_invalid_postal_code", UpdateField, field("address")),
            ("residence_address_invalid", UpdateField, field("address")),
            ("tax_identification_number_not_compatible", UpdateField, field("tax_ids")),
            ("id_verification", OpenLink, vec![]),
            ("identity_document", OpenLink, vec![]),
            ("proof_of_address", OpenLink, vec![]),
            ("government_id_verification_failed", OpenLink, vec![]),
            ("has_base", Wait, vec![]),
            ("has_sepa", Wait, vec![]),
            ("terms_of_service", AcceptTerms, field("terms.accepted_at")),
            ("watchlist_report_match", ContactSupport, vec![]),
            ("adverse_media_report_match", ContactSupport, vec![]),
            ("customer_too_young", ContactSupport, vec![]),
            ("endorsement_not_available_in_customers_region", ContactSupport, vec![]),
            ("external_account", ContactSupport, vec![]),
        ] {
            let got = actions("incomplete", &[json!(code)], &none);
            assert_eq!(
                summary(&got),
                vec![(code.to_owned(), kind, fields, false)],
                "{code}"
            );
        }
        let got = actions("incomplete", &[json!("selfie_with_llama")], &none);
        assert_eq!(
            summary(&got),
            vec![("selfie_with_llama".into(), ContactSupport, vec![], true)]
        );
    }

    #[test]
    fn bridge_like_objects_give_their_codes() {
        use NextActionKind::*;
        let none = Map::new();
        let requirements = [json!({
            "complete": ["email_address"],
            "pending": ["id_verification"],
            "missing": {"all_of": ["first_name", {"any_of": ["proof_of_address", "mystery"]}]},
            "issues": ["watchlist_report_match", {"odd": 1}]
        })];
        assert_eq!(
            summary(&actions("incomplete", &requirements, &none)),
            vec![
                ("first_name".into(), UpdateField, vec!["name.first".into()], false),
                ("proof_of_address".into(), OpenLink, vec![], false),
                ("mystery".into(), ContactSupport, vec![], true),
                ("watchlist_report_match".into(), ContactSupport, vec![], false),
                (r#"{"odd":1}"#.into(), ContactSupport, vec![], true),
                ("id_verification".into(), Wait, vec![], false),
            ]
        );
        // An endorsement wrapping its requirements.
        let endorsement = [json!({"name": "base", "status": "incomplete",
                                  "requirements": {"complete": [], "pending": [],
                                                   "missing": {"all_of": ["last_name"]},
                                                   "issues": []}})];
        assert_eq!(
            summary(&actions("incomplete", &endorsement, &none)),
            vec![("last_name".into(), UpdateField, vec!["name.last".into()], false)]
        );
        // Anything else is kept, flagged.
        for odd in [json!(42), json!({"what": "ever"}), json!(true)] {
            let got = actions("incomplete", std::slice::from_ref(&odd), &none);
            assert_eq!(got.len(), 1);
            assert!(got[0].unrecognised, "{odd}");
            assert_eq!(got[0].code, odd.to_string());
        }
    }

    #[test]
    fn rejection_reasons_are_not_read_as_requirements() {
        let reasons = json!([{"reason": "Cannot validate ID", "developer_reason": "Blurry face portrait."}]);
        let mut link_data = Map::new();
        link_data.insert(LINK_REJECTION_REASONS.into(), reasons.clone());
        let stored = [json!("proof_of_address"), reasons[0].clone()];
        let got = actions("incomplete", &stored, &link_data);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].code, "proof_of_address");
        let got = actions("rejected", &stored[1..], &link_data);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].code, "status:rejected");
        // Duplicates (both names, both shapes) show once.
        let twice = [json!("first_name"), json!({"missing": ["first_name"]})];
        assert_eq!(actions("incomplete", &twice, &Map::new()).len(), 1);
    }

    fn rejection_of(status: LinkStatus, reasons: Option<Value>) -> Option<Rejection> {
        let mut link_data = Map::new();
        if let Some(r) = reasons {
            link_data.insert(LINK_REJECTION_REASONS.into(), r);
        }
        rejection(&LinkFacts {
            status,
            provider_status: Some("rejected"),
            requirements: &[],
            link_data: &link_data,
            submitted_documents: &[],
            now: OffsetDateTime::now_utc(),
        })
    }

    #[test]
    fn rejections_read_both_shapes() {
        let object = rejection_of(
            LinkStatus::Rejected,
            Some(json!([{"developer_reason": "Blurry face portrait.",
                         "reason": "Cannot validate ID -- upload a clear photo of the full ID",
                         "created_at": "2020-01-02T00:00:00.000Z"},
                        {"reason": "second"}])),
        )
        .unwrap();
        assert_eq!(
            object,
            Rejection {
                code: "rejected".into(),
                user_message: Some("Cannot validate ID -- upload a clear photo of the full ID".into()),
                developer_message: Some("Blurry face portrait.".into()),
                retryable: false,
            }
        );
        let string = rejection_of(LinkStatus::Rejected, Some(json!(["Too young"]))).unwrap();
        assert_eq!(string.user_message.as_deref(), Some("Too young"));
        assert_eq!(string.developer_message, None);
        let single = rejection_of(LinkStatus::Rejected, Some(json!({"reason": "r", "code": "c1"})))
            .unwrap();
        assert_eq!((single.code.as_str(), single.user_message.as_deref()), ("c1", Some("r")));
        let odd = rejection_of(LinkStatus::Rejected, Some(json!([7]))).unwrap();
        assert_eq!(odd.developer_message.as_deref(), Some("7"));
        let bare = rejection_of(LinkStatus::Rejected, None).unwrap();
        assert_eq!((bare.user_message, bare.developer_message), (None, None));
        assert_eq!(rejection_of(LinkStatus::Approved, Some(json!(["x"]))), None);
    }
}
