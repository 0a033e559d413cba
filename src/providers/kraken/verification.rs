//! Verification at Kraken Embed: which documents it takes, what its outstanding
//! `required_actions` ask of the user, and why it closed or disabled one.
//!
//! The user status model is `{state, reasons?, required_actions?}` with three action types,
//! `verification{verification_type, reasons, deadline?}`, `provide_details{details_type,
//! reason?, deadline?}` and `wait{wait_reason_code}`
//! (https://kraken-sandbox.mintlify.app/api-reference/users/get-user; full enums in Privy's proxy
//! of the Embed API, https://github.com/privy-io/rust-sdk `openapi.json`). The connector stores
//! the state as the link's `provider_status`, `required_actions` verbatim as its requirements,
//! and the state's `reasons` in `link_data`.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::status::LinkStatus;
use crate::domain::verification::{DocumentType, NextAction, NextActionKind, Rejection};
use crate::providers::provider::{DocumentFacts, DocumentPolicy, LinkFacts};

/// The identity documents that satisfy a `verification` of type `identity` (Kraken's
/// `identity_document` takes a passport, id card, driving licence or residence card).
const IDENTITY_DOCUMENTS: [DocumentType; 4] = [
    DocumentType::Passport,
    DocumentType::NationalId,
    DocumentType::DriversLicense,
    DocumentType::ResidencePermit,
];

/// What a `verification` action of this `verification_type` asks for: documents the gateway
/// can forward, or (tax ids, watchlist checks) nothing the person can do through the API. The
/// gateway has no canonical tax document, and watchlist results are the partner's own checks
/// (`watchlists` submissions), so those are `contact_support`.
fn verification(verification_type: &str) -> Option<NextAction> {
    let upload = |types: &[DocumentType]| NextAction {
        document_types: types.to_vec(),
        ..NextAction::new(
            format!("verification:{verification_type}"),
            NextActionKind::UploadDocument,
        )
    };
    let support = || {
        NextAction::new(
            format!("verification:{verification_type}"),
            NextActionKind::ContactSupport,
        )
    };
    Some(match verification_type {
        "identity" => upload(&IDENTITY_DOCUMENTS),
        "residence" => upload(&[DocumentType::ProofOfAddress]),
        "selfie" => upload(&[DocumentType::Selfie]),
        "tax_id" | "sanctions_check" | "pep_check" | "negative_news_check" => support(),
        _ => return None,
    })
}

/// The canonical fields that answer a `provide_details` of this `details_type.type` (the
/// connector's create and update bodies fill each Kraken field from these).
fn details_fields(details_type: &str) -> Option<&'static [&'static str]> {
    Some(match details_type {
        "full_name" => &["name"],
        "date_of_birth" => &["date_of_birth"],
        "city_of_birth" => &["birth_place.city"],
        "country_of_birth" => &["birth_place.country"],
        "nationalities" => &["nationalities"],
        "residence" => &["address"],
        "phone" => &["phone"],
        // `occupation` is derived from the employment status and industry.
        "occupation" => &["employment.status", "employment.industry"],
        "employer" => &["employment.employer_name"],
        "tax_ids" => &["tax_ids"],
        // `client_identifier` is sent from a passport or national id card.
        "client_identifier" => &["identity_document"],
        _ => return None,
    })
}

fn provide_details(action: &Value) -> NextAction {
    let details = action.get("details_type");
    let Some(kind) = details.and_then(|d| d.get("type")).and_then(Value::as_str) else {
        // Not the documented `{type, …}` object: shown as the JSON received.
        let shown = details.map_or_else(|| "null".to_owned(), Value::to_string);
        return NextAction::unrecognised(format!("provide_details:{shown}"));
    };
    let code = format!("provide_details:{kind}");
    if kind == "terms_of_service" {
        return NextAction {
            fields: vec!["terms.version".into()],
            ..NextAction::new(code, NextActionKind::AcceptTerms)
        };
    }
    match details_fields(kind) {
        Some(fields) => NextAction {
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            ..NextAction::new(code, NextActionKind::UpdateField)
        },
        None => NextAction::unrecognised(code),
    }
}

/// A value as text for a code: strings as they are, anything else as JSON.
fn raw(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

/// Whether the action's `deadline` lies in the future: until it passes, the action does not
/// hold onboarding up (the field implies a grace period). No or an unreadable deadline: it does.
fn before_deadline(action: &Value, now: OffsetDateTime) -> bool {
    action
        .get("deadline")
        .and_then(Value::as_str)
        .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok())
        .is_some_and(|deadline| deadline > now)
}

fn action(action: &Value, now: OffsetDateTime) -> NextAction {
    let mapped = match action.get("action_type").and_then(Value::as_str) {
        Some("verification") => {
            let kind = action.get("verification_type");
            match kind.and_then(Value::as_str).and_then(verification) {
                Some(mapped) => mapped,
                None => NextAction::unrecognised(format!("verification:{}", raw(kind))),
            }
        }
        Some("provide_details") => provide_details(action),
        Some("wait") => match action.get("wait_reason_code").and_then(Value::as_str) {
            Some(reason) => NextAction::new(format!("wait:{reason}"), NextActionKind::Wait),
            None => NextAction::new("wait", NextActionKind::Wait),
        },
        _ => NextAction::unrecognised(action.to_string()),
    };
    let blocking = mapped.blocking && !before_deadline(action, now);
    NextAction { blocking, ..mapped }
}

/// Each of `required_actions` in turn, after what the state itself says: `disabled` and
/// `closed` leave nothing the person can do (`contact_support`, `state:<state>`); an unknown
/// state is kept, flagged.
pub fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction> {
    let mut out = Vec::new();
    match link.provider_status {
        Some("ok") | None => {}
        Some(state @ ("disabled" | "closed")) => out.push(NextAction::new(
            format!("state:{state}"),
            NextActionKind::ContactSupport,
        )),
        Some(state) => out.push(NextAction::unrecognised(format!("state:{state}"))),
    }
    out.extend(link.requirements.iter().map(|a| action(a, link.now)));
    out
}

/// A closed or disabled account (Kraken has no separate rejection): the state's `reasons`,
/// which are written for the integrator, as `developer_message`; the first reason is the code.
/// Kraken says nothing about trying again, so not retryable.
pub fn rejection(link: &LinkFacts<'_>) -> Option<Rejection> {
    let state = match (link.status, link.provider_status) {
        (_, Some(state @ ("closed" | "disabled"))) => state,
        (LinkStatus::Closed, _) => "closed",
        (LinkStatus::Suspended, _) => "disabled",
        _ => return None,
    };
    let reasons: Vec<String> = link
        .link_data
        .get("reasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| raw(Some(r)))
        .filter(|r| !r.is_empty())
        .collect();
    Some(Rejection {
        code: reasons.first().cloned().unwrap_or_else(|| state.to_owned()),
        user_message: None,
        developer_message: (!reasons.is_empty()).then(|| reasons.join("; ")),
        retryable: false,
    })
}

/// The largest file Kraken is sent: 150 MiB, the limit Payward documents for its twin API's
/// downloads (https://docs.services.payward.com/api-reference/verifications/submit-verification-from-url);
/// Embed documents none for its multipart upload.
pub const MAX_DOCUMENT_BYTES: u64 = 150 * 1024 * 1024;

/// Kraken takes every canonical document as a partner-attested verification
/// (https://kraken-sandbox.mintlify.app/api-reference/verifications/submit-verification), in
/// JPEG, PNG or PDF (all three in Payward's list), with the two sides of a card in one call:
/// - a passport's back is never sent (Payward's twin API refuses one; sources disagree);
/// - without the caller's `verification` attestation there is nothing Kraken accepts;
/// - over [`MAX_DOCUMENT_BYTES`] the file is refused.
pub fn document_policy(document: &DocumentFacts) -> DocumentPolicy {
    use crate::domain::verification::{DocumentSide, DocumentType};
    if document.document_type == DocumentType::Passport && document.side == Some(DocumentSide::Back)
    {
        return DocumentPolicy::NotSupported(
            "Kraken takes no passport back side: send the data page as the front".into(),
        );
    }
    if !document.has_verification {
        return DocumentPolicy::NotSupported(
            "Kraken accepts only partner-attested verifications: send `verification` \
             (verifier, verified_at, reference) with the document"
                .into(),
        );
    }
    if document.size > MAX_DOCUMENT_BYTES {
        return DocumentPolicy::Refuse {
            rule: "max_size",
            message: format!(
                "Kraken takes files of at most 150 MiB ({MAX_DOCUMENT_BYTES} bytes)"
            ),
        };
    }
    DocumentPolicy::Accept {
        pairs_sides: document.document_type.is_two_sided(),
    }
}

#[cfg(test)]
mod document_policy_tests {
    use super::*;
    use crate::domain::verification::{DocumentContentType, DocumentSide, DocumentType};

    fn facts(document_type: DocumentType, side: Option<DocumentSide>) -> DocumentFacts {
        DocumentFacts {
            document_type,
            side,
            content_type: DocumentContentType::Jpeg,
            size: 200_000,
            has_verification: true,
        }
    }

    #[test]
    fn a_passport_back_is_not_supported() {
        let policy = document_policy(&facts(DocumentType::Passport, Some(DocumentSide::Back)));
        assert!(
            matches!(&policy, DocumentPolicy::NotSupported(reason) if reason.contains("passport back")),
            "{policy:?}"
        );
        assert_eq!(
            document_policy(&facts(DocumentType::Passport, Some(DocumentSide::Front))),
            DocumentPolicy::Accept { pairs_sides: false }
        );
    }

    #[test]
    fn without_an_attestation_nothing_is_supported() {
        for t in DocumentType::ALL {
            let policy = document_policy(&DocumentFacts {
                has_verification: false,
                ..facts(*t, None)
            });
            assert!(
                matches!(&policy, DocumentPolicy::NotSupported(reason)
                    if reason.starts_with("Kraken accepts only partner-attested verifications: send `verification`")),
                "{t}: {policy:?}"
            );
        }
    }

    #[test]
    fn files_over_150_mib_are_refused() {
        let at_limit = DocumentFacts {
            size: MAX_DOCUMENT_BYTES,
            ..facts(DocumentType::Selfie, None)
        };
        assert_eq!(
            document_policy(&at_limit),
            DocumentPolicy::Accept { pairs_sides: false }
        );
        let over = DocumentFacts {
            size: 157_286_401,
            content_type: DocumentContentType::Pdf,
            ..facts(DocumentType::ProofOfAddress, None)
        };
        assert!(
            matches!(document_policy(&over), DocumentPolicy::Refuse { rule: "max_size", .. }),
            "{:?}",
            document_policy(&over)
        );
    }

    #[test]
    fn cards_pair_their_sides_and_one_sided_documents_do_not() {
        for (t, pairs) in [
            (DocumentType::NationalId, true),
            (DocumentType::DriversLicense, true),
            (DocumentType::ResidencePermit, true),
            (DocumentType::Passport, false),
            (DocumentType::Selfie, false),
            (DocumentType::ProofOfAddress, false),
        ] {
            for side in [Some(DocumentSide::Front), Some(DocumentSide::Back), None] {
                if t == DocumentType::Passport && side == Some(DocumentSide::Back) {
                    continue;
                }
                for content_type in DocumentContentType::ALL {
                    assert_eq!(
                        document_policy(&DocumentFacts {
                            content_type: *content_type,
                            ..facts(t, side)
                        }),
                        DocumentPolicy::Accept { pairs_sides: pairs },
                        "{t} {side:?} {content_type}"
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
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-03 12:00 UTC);

    fn facts<'a>(
        status: LinkStatus,
        state: Option<&'a str>,
        requirements: &'a [Value],
        link_data: &'a Map<String, Value>,
    ) -> LinkFacts<'a> {
        LinkFacts {
            status,
            provider_status: state,
            requirements,
            link_data,
            submitted_documents: &[],
            now: NOW,
        }
    }

    fn one(action_json: Value) -> NextAction {
        let requirements = [action_json];
        let data = Map::new();
        let actions = next_actions(&facts(
            LinkStatus::ActionRequired,
            Some("ok"),
            &requirements,
            &data,
        ));
        assert_eq!(actions.len(), 1, "{actions:?}");
        actions.into_iter().next().unwrap()
    }

    fn verification_action(kind: &str) -> Value {
        json!({"action_type": "verification", "verification_type": kind,
               "reasons": ["initial_onboarding"]})
    }

    #[test]
    fn every_verification_type_maps() {
        use DocumentType::*;
        for (kind, next, documents) in [
            (
                "identity",
                NextActionKind::UploadDocument,
                vec![Passport, NationalId, DriversLicense, ResidencePermit],
            ),
            ("residence", NextActionKind::UploadDocument, vec![ProofOfAddress]),
            ("selfie", NextActionKind::UploadDocument, vec![Selfie]),
            ("tax_id", NextActionKind::ContactSupport, vec![]),
            ("sanctions_check", NextActionKind::ContactSupport, vec![]),
            ("pep_check", NextActionKind::ContactSupport, vec![]),
            ("negative_news_check", NextActionKind::ContactSupport, vec![]),
        ] {
            let action = one(verification_action(kind));
            assert_eq!(action.code, format!("verification:{kind}"));
            assert_eq!(action.next_action, next, "{kind}");
            assert_eq!(action.document_types, documents, "{kind}");
            assert!(action.blocking && !action.unrecognised, "{kind}");
        }
    }

    #[test]
    fn every_details_type_maps_to_canonical_fields() {
        for (kind, next, fields) in [
            ("full_name", NextActionKind::UpdateField, vec!["name"]),
            ("date_of_birth", NextActionKind::UpdateField, vec!["date_of_birth"]),
            ("city_of_birth", NextActionKind::UpdateField, vec!["birth_place.city"]),
            ("country_of_birth", NextActionKind::UpdateField, vec!["birth_place.country"]),
            ("nationalities", NextActionKind::UpdateField, vec!["nationalities"]),
            ("residence", NextActionKind::UpdateField, vec!["address"]),
            ("phone", NextActionKind::UpdateField, vec!["phone"]),
            (
                "occupation",
                NextActionKind::UpdateField,
                vec!["employment.status", "employment.industry"],
            ),
            ("employer", NextActionKind::UpdateField, vec!["employment.employer_name"]),
            ("tax_ids", NextActionKind::UpdateField, vec!["tax_ids"]),
            ("client_identifier", NextActionKind::UpdateField, vec!["identity_document"]),
            ("terms_of_service", NextActionKind::AcceptTerms, vec!["terms.version"]),
        ] {
            let action = one(json!({"action_type": "provide_details",
                                    "details_type": {"type": kind, "version": 4},
                                    "reason": "missing_information"}));
            assert_eq!(action.code, format!("provide_details:{kind}"));
            assert_eq!(action.next_action, next, "{kind}");
            assert_eq!(action.fields, fields, "{kind}");
            assert!(action.blocking && !action.unrecognised, "{kind}");
        }
    }

    #[test]
    fn waits_keep_their_reason_code() {
        let action = one(json!({"action_type": "wait", "wait_reason_code": "manual_review"}));
        assert_eq!(action.code, "wait:manual_review");
        assert_eq!(action.next_action, NextActionKind::Wait);
        let action = one(json!({"action_type": "wait"}));
        assert_eq!(action.code, "wait");
        assert_eq!(action.next_action, NextActionKind::Wait);
    }

    #[test]
    fn a_future_deadline_makes_an_action_non_blocking_until_it_passes() {
        for (deadline, blocking) in [
            (json!("2026-12-04T00:00:00Z"), false),
            (json!("2026-12-03T11:59:59Z"), true),
            (json!(null), true),
            (json!("next tuesday"), true),
        ] {
            let mut with_deadline = verification_action("identity");
            with_deadline["deadline"] = deadline.clone();
            assert_eq!(one(with_deadline).blocking, blocking, "{deadline}");
            let details = json!({"action_type": "provide_details",
                                 "details_type": {"type": "phone"}, "deadline": deadline});
            assert_eq!(one(details).blocking, blocking);
        }
    }

    #[test]
    fn unknown_values_are_kept_flagged() {
        for (action, code) in [
            (verification_action("dna_sample"), "verification:dna_sample"),
            (json!({"action_type": "verification"}), "verification:null"),
            (
                json!({"action_type": "provide_details", "details_type": {"type": "shoe_size"}}),
                "provide_details:shoe_size",
            ),
            (
                json!({"action_type": "provide_details", "details_type": "phone"}),
                "provide_details:\"phone\"",
            ),
            (json!({"action_type": "dance"}), r#"{"action_type":"dance"}"#),
            (json!("verification"), r#""verification""#),
        ] {
            let mapped = one(action.clone());
            assert_eq!(mapped.code, code, "{action}");
            assert_eq!(mapped.next_action, NextActionKind::ContactSupport);
            assert!(mapped.unrecognised, "{action}");
        }
    }

    #[test]
    fn states_map_before_the_actions() {
        let data = Map::new();
        let none: [Value; 0] = [];
        assert!(next_actions(&facts(LinkStatus::Approved, Some("ok"), &none, &data)).is_empty());
        for state in ["disabled", "closed"] {
            let actions = next_actions(&facts(LinkStatus::Suspended, Some(state), &none, &data));
            assert_eq!(actions.len(), 1);
            assert_eq!(actions[0].code, format!("state:{state}"));
            assert_eq!(actions[0].next_action, NextActionKind::ContactSupport);
            assert!(!actions[0].unrecognised);
        }
        // A disabled user's remaining actions still show, after the state.
        let requirements = [verification_action("selfie")];
        let actions = next_actions(&facts(
            LinkStatus::Suspended,
            Some("disabled"),
            &requirements,
            &data,
        ));
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[1].code, "verification:selfie");
        let actions = next_actions(&facts(LinkStatus::UnderReview, Some("frozen"), &none, &data));
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].code, "state:frozen");
        assert!(actions[0].unrecognised);
    }

    #[test]
    fn closed_and_disabled_accounts_carry_their_reasons() {
        let mut data = Map::new();
        data.insert("reasons".into(), json!(["verification_failed", "fraud_suspected"]));
        let none: [Value; 0] = [];
        let rejection = rejection(&facts(LinkStatus::Closed, Some("closed"), &none, &data)).unwrap();
        assert_eq!(
            rejection,
            Rejection {
                code: "verification_failed".into(),
                user_message: None,
                developer_message: Some("verification_failed; fraud_suspected".into()),
                retryable: false,
            }
        );
        let empty = Map::new();
        let disabled = super::rejection(&facts(LinkStatus::Suspended, Some("disabled"), &none, &empty))
            .unwrap();
        assert_eq!(disabled.code, "disabled");
        assert_eq!(disabled.developer_message, None);
        // A final `closed` stays explained even when the provider now says something else.
        let closed = super::rejection(&facts(LinkStatus::Closed, Some("ok"), &none, &empty)).unwrap();
        assert_eq!(closed.code, "closed");
        for status in [LinkStatus::Approved, LinkStatus::ActionRequired, LinkStatus::UnderReview] {
            assert_eq!(super::rejection(&facts(status, Some("ok"), &none, &data)), None);
        }
    }
}
