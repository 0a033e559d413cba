//! Verification at KillB: which documents it takes, what the user's status and access level ask
//! of the user, and why it rejected one.
//!
//! KillB sends no structured list of requirements: a user has a `status` (`ACTIVE`, `PENDING`,
//! `REJECTED`, and `SUSPENDED` in the Spanish webhook guide), `active: false` once deactivated,
//! a KYC `accessLevel` (`L0`–`L4`), a hosted `complianceUrl` and a free-text `note`
//! (https://docs.killb.com/concepts/users, https://docs.killb.com/guides/users/kyc-levels). The
//! connector keeps the status as the link's `provider_status` and `access_level`,
//! `compliance_url`, `active` and `note` in `link_data`; those are what this mapping reads.

use serde_json::Value;

use crate::domain::status::LinkStatus;
use crate::domain::verification::{DocumentType, NextAction, NextActionKind, Rejection};
use crate::providers::provider::{DocumentFacts, DocumentPolicy, LinkFacts};

/// The access level onboarding aims for. L2 is the level documents unlock: "Upload ID images and
/// proof of address → L2", plus the liveness check of the hosted flow
/// (https://docs.killb.com/guides/users/kyc-levels). L1 is reached from the profile alone, and
/// L3/L4 ask for source-of-funds evidence and questionnaires that no canonical document covers,
/// so L2 is the highest level the gateway can move a user to.
pub const TARGET_ACCESS_LEVEL: u8 = 2;

/// The identity documents KillB takes for L2 (its `documentType` enum has a passport, a driving
/// licence and country-specific identity cards and residence permits).
const IDENTITY_DOCUMENTS: [DocumentType; 4] = [
    DocumentType::Passport,
    DocumentType::NationalId,
    DocumentType::DriversLicense,
    DocumentType::ResidencePermit,
];

/// `L0`…`L4` as a number; anything else is not a level KillB documents.
fn level(raw: &str) -> Option<u8> {
    match raw {
        "L0" => Some(0),
        "L1" => Some(1),
        "L2" => Some(2),
        "L3" => Some(3),
        "L4" => Some(4),
        _ => None,
    }
}

/// What reaching the target level still needs: the documents not yet submitted (an identity
/// document and a proof of address), and the hosted flow, since KillB takes no upload for the
/// liveness check. Blocking unless KillB already approved the user at its current level.
fn level_actions(link: &LinkFacts<'_>, approved: bool) -> Vec<NextAction> {
    let code = format!("access_level:L{TARGET_ACCESS_LEVEL}");
    let submitted = |t: &DocumentType| link.submitted_documents.contains(t);
    let mut actions = Vec::new();
    if !IDENTITY_DOCUMENTS.iter().any(submitted) {
        actions.push(NextAction {
            document_types: IDENTITY_DOCUMENTS.to_vec(),
            ..NextAction::new(code.clone(), NextActionKind::UploadDocument)
        });
    }
    if !submitted(&DocumentType::ProofOfAddress) {
        actions.push(NextAction {
            document_types: vec![DocumentType::ProofOfAddress],
            ..NextAction::new(code.clone(), NextActionKind::UploadDocument)
        });
    }
    actions.push(NextAction {
        url: link
            .link_data
            .get("compliance_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        ..NextAction::new(code, NextActionKind::OpenLink)
    });
    for action in &mut actions {
        action.blocking = !approved;
    }
    actions
}

/// The status first (`PENDING` → `wait`; `REJECTED`, `SUSPENDED` and a deactivated user →
/// `contact_support`; an unknown status kept, flagged), then, while the user can still progress
/// (`ACTIVE` or `PENDING`), the access level: below [`TARGET_ACCESS_LEVEL`] it asks for the
/// documents and the hosted flow; an unknown level is kept, flagged.
pub fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction> {
    if link.link_data.get("active") == Some(&Value::Bool(false)) {
        return vec![NextAction::new("active:false", NextActionKind::ContactSupport)];
    }
    let mut actions = Vec::new();
    let progressing = match link.provider_status {
        None => return actions,
        Some("ACTIVE") => Some(true),
        Some(status @ "PENDING") => {
            actions.push(NextAction::new(
                format!("status:{status}"),
                NextActionKind::Wait,
            ));
            Some(false)
        }
        Some(status @ ("REJECTED" | "SUSPENDED")) => {
            actions.push(NextAction::new(
                format!("status:{status}"),
                NextActionKind::ContactSupport,
            ));
            None
        }
        Some("") => {
            actions.push(NextAction::unrecognised("status:none"));
            None
        }
        Some(status) => {
            actions.push(NextAction::unrecognised(format!("status:{status}")));
            None
        }
    };
    let Some(approved) = progressing else {
        return actions;
    };
    match link.link_data.get("access_level") {
        None | Some(Value::Null) => {}
        Some(Value::String(raw)) => match level(raw) {
            Some(current) if current >= TARGET_ACCESS_LEVEL => {}
            Some(_) => actions.extend(level_actions(link, approved)),
            None => actions.push(NextAction::unrecognised(format!("access_level:{raw}"))),
        },
        Some(other) => actions.push(NextAction::unrecognised(format!("access_level:{other}"))),
    }
    actions
}

/// A rejected user: KillB's `note` explains it to the integrator only (it is free text about
/// the compliance process, not written for the person); KillB gives no code and does not say
/// whether the user may try again.
pub fn rejection(link: &LinkFacts<'_>) -> Option<Rejection> {
    (link.status == LinkStatus::Rejected).then(|| Rejection {
        code: "rejected".into(),
        user_message: None,
        developer_message: link
            .link_data
            .get("note")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        retryable: false,
    })
}

/// The smallest file KillB takes: "100 KB" (https://docs.killb.com/guides/users/upload-documents),
/// read as 100 KiB = 102 400 bytes. KillB does not define its unit; of the two readings the
/// binary one is the stricter for a minimum, so a file passing it passes either.
pub const MIN_DOCUMENT_BYTES: u64 = 100 * 1024;
/// The largest: "10 MB", read with the same (binary) unit, 10 MiB = 10 485 760 bytes. A file
/// between 10 000 000 and 10 485 760 bytes is sent, and comes back as a provider rejection if
/// KillB means the decimal unit.
pub const MAX_DOCUMENT_BYTES: u64 = 10 * 1024 * 1024;

/// KillB takes identity documents and proofs of address, both sides of a card in one request
/// (https://docs.killb.com/guides/users/upload-documents), in JPEG, PNG or PDF:
/// - no selfie: KillB has no upload type for one, its liveness check runs in its hosted flow;
/// - no passport back: a passport's data page is its one side (KillB's "front image");
/// - a residence permit is accepted: KillB takes one (`CE`) only when Colombian, and the
///   issuing country is not among these facts; the connector, which sees the user, answers
///   `not_supported` for any other country when the document is sent;
/// - sizes outside [`MIN_DOCUMENT_BYTES`]..=[`MAX_DOCUMENT_BYTES`] are refused (KillB's own
///   guide; whether its API enforces them is not documented, so they are checked here).
pub fn document_policy(document: &DocumentFacts) -> DocumentPolicy {
    use crate::domain::verification::{DocumentSide, DocumentType};
    if document.document_type == DocumentType::Selfie {
        return DocumentPolicy::NotSupported(
            "KillB takes no selfie upload: its liveness check runs in its hosted flow; \
             open a verification session instead"
                .into(),
        );
    }
    if document.document_type == DocumentType::Passport && document.side == Some(DocumentSide::Back)
    {
        return DocumentPolicy::NotSupported(
            "KillB takes a passport's data page only: send it as the front".into(),
        );
    }
    if document.size < MIN_DOCUMENT_BYTES {
        return DocumentPolicy::Refuse {
            rule: "min_size",
            message: format!(
                "KillB takes files of at least 100 KB ({MIN_DOCUMENT_BYTES} bytes)"
            ),
        };
    }
    if document.size > MAX_DOCUMENT_BYTES {
        return DocumentPolicy::Refuse {
            rule: "max_size",
            message: format!(
                "KillB takes files of at most 10 MB ({MAX_DOCUMENT_BYTES} bytes)"
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

    fn facts(document_type: DocumentType, side: Option<DocumentSide>, size: u64) -> DocumentFacts {
        DocumentFacts {
            document_type,
            side,
            content_type: DocumentContentType::Jpeg,
            size,
            has_verification: false,
        }
    }

    #[test]
    fn a_selfie_is_not_supported_whatever_its_size() {
        for size in [0, 200_000, 50_000_000] {
            let policy = document_policy(&facts(DocumentType::Selfie, None, size));
            assert!(
                matches!(&policy, DocumentPolicy::NotSupported(reason) if reason.contains("hosted flow")),
                "{policy:?}"
            );
        }
    }

    #[test]
    fn a_passport_back_is_not_supported() {
        let policy = document_policy(&facts(
            DocumentType::Passport,
            Some(DocumentSide::Back),
            200_000,
        ));
        assert!(matches!(policy, DocumentPolicy::NotSupported(_)), "{policy:?}");
    }

    #[test]
    fn sizes_outside_100_kib_to_10_mib_are_refused() {
        for (size, rule) in [
            (0, Some("min_size")),
            (100_000, Some("min_size")),
            (102_399, Some("min_size")),
            (102_400, None),
            (10_000_001, None),
            (10_485_760, None),
            (10_485_761, Some("max_size")),
        ] {
            let policy = document_policy(&facts(DocumentType::ProofOfAddress, None, size));
            match rule {
                Some(rule) => assert!(
                    matches!(&policy, DocumentPolicy::Refuse { rule: r, message } if *r == rule && message.starts_with("KillB takes files")),
                    "{size}: {policy:?}"
                ),
                None => assert_eq!(
                    policy,
                    DocumentPolicy::Accept { pairs_sides: false },
                    "{size}"
                ),
            }
        }
    }

    #[test]
    fn identity_documents_residence_permits_included_are_accepted_and_cards_pair() {
        for (t, pairs) in [
            (DocumentType::Passport, false),
            (DocumentType::NationalId, true),
            (DocumentType::DriversLicense, true),
            (DocumentType::ResidencePermit, true),
            (DocumentType::ProofOfAddress, false),
        ] {
            for side in [Some(DocumentSide::Front), Some(DocumentSide::Back), None] {
                if t == DocumentType::Passport && side == Some(DocumentSide::Back) {
                    continue;
                }
                for content_type in DocumentContentType::ALL {
                    for has_verification in [false, true] {
                        assert_eq!(
                            document_policy(&DocumentFacts {
                                content_type: *content_type,
                                has_verification,
                                ..facts(t, side, 2_000_000)
                            }),
                            DocumentPolicy::Accept { pairs_sides: pairs },
                            "{t} {side:?} {content_type}"
                        );
                    }
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

    const URL: &str = "https://kyc.example.com/verify/1";

    fn data(pairs: Value) -> Map<String, Value> {
        pairs.as_object().unwrap().clone()
    }

    fn actions_for(
        status: LinkStatus,
        provider_status: Option<&str>,
        link_data: &Map<String, Value>,
        submitted: &[DocumentType],
    ) -> Vec<NextAction> {
        next_actions(&LinkFacts {
            status,
            provider_status,
            requirements: &[],
            link_data,
            submitted_documents: submitted,
            now: OffsetDateTime::now_utc(),
        })
    }

    fn summary(actions: &[NextAction]) -> Vec<(String, NextActionKind, bool)> {
        actions
            .iter()
            .map(|a| (a.code.clone(), a.next_action, a.unrecognised))
            .collect()
    }

    #[test]
    fn every_status_maps() {
        use NextActionKind::*;
        let at_l2 = data(json!({"access_level": "L2", "compliance_url": URL, "active": true}));
        for (raw, status, want) in [
            ("ACTIVE", LinkStatus::Approved, vec![]),
            (
                "PENDING",
                LinkStatus::UnderReview,
                vec![("status:PENDING".to_owned(), Wait, false)],
            ),
            (
                "REJECTED",
                LinkStatus::Rejected,
                vec![("status:REJECTED".to_owned(), ContactSupport, false)],
            ),
            (
                "SUSPENDED",
                LinkStatus::Suspended,
                vec![("status:SUSPENDED".to_owned(), ContactSupport, false)],
            ),
            (
                "FROZEN",
                LinkStatus::UnderReview,
                vec![("status:FROZEN".to_owned(), ContactSupport, true)],
            ),
            (
                "",
                LinkStatus::UnderReview,
                vec![("status:none".to_owned(), ContactSupport, true)],
            ),
        ] {
            assert_eq!(
                summary(&actions_for(status, Some(raw), &at_l2, &[])),
                want,
                "{raw}"
            );
        }
        // A deactivated user, whatever the status.
        let inactive = data(json!({"access_level": "L0", "active": false}));
        assert_eq!(
            summary(&actions_for(LinkStatus::Closed, Some("ACTIVE"), &inactive, &[])),
            vec![("active:false".to_owned(), ContactSupport, false)]
        );
        // Never submitted: nothing known yet.
        assert!(actions_for(LinkStatus::PendingSubmission, None, &Map::new(), &[]).is_empty());
    }

    #[test]
    fn below_the_target_level_it_asks_for_documents_and_the_hosted_flow() {
        use DocumentType::*;
        for level in ["L0", "L1"] {
            let link_data = data(json!({"access_level": level, "compliance_url": URL}));
            let actions = actions_for(LinkStatus::UnderReview, Some("PENDING"), &link_data, &[]);
            assert_eq!(actions.len(), 4, "{actions:?}");
            assert_eq!(actions[0].next_action, NextActionKind::Wait);
            let level_actions = &actions[1..];
            assert!(level_actions.iter().all(|a| a.code == "access_level:L2" && a.blocking));
            assert_eq!(
                level_actions[0].document_types,
                vec![Passport, NationalId, DriversLicense, ResidencePermit]
            );
            assert_eq!(level_actions[1].document_types, vec![ProofOfAddress]);
            assert_eq!(level_actions[2].next_action, NextActionKind::OpenLink);
            assert_eq!(level_actions[2].url.as_deref(), Some(URL));
        }
        // At or above the target: nothing more.
        for level in ["L2", "L3", "L4"] {
            let link_data = data(json!({"access_level": level, "compliance_url": URL}));
            assert!(actions_for(LinkStatus::Approved, Some("ACTIVE"), &link_data, &[]).is_empty());
        }
    }

    #[test]
    fn submitted_documents_are_not_asked_for_again() {
        use DocumentType::*;
        let link_data = data(json!({"access_level": "L1", "compliance_url": URL}));
        let actions = actions_for(LinkStatus::UnderReview, Some("PENDING"), &link_data, &[NationalId]);
        assert_eq!(
            actions.iter().map(|a| a.document_types.clone()).collect::<Vec<_>>(),
            vec![vec![], vec![ProofOfAddress], vec![]]
        );
        let actions = actions_for(
            LinkStatus::UnderReview,
            Some("PENDING"),
            &link_data,
            &[Passport, ProofOfAddress, Selfie],
        );
        // Only the hosted liveness step is left (KillB takes no selfie upload).
        assert_eq!(
            summary(&actions),
            vec![
                ("status:PENDING".to_owned(), NextActionKind::Wait, false),
                ("access_level:L2".to_owned(), NextActionKind::OpenLink, false)
            ]
        );
    }

    #[test]
    fn an_approved_user_below_the_target_is_not_blocked() {
        let link_data = data(json!({"access_level": "L1"}));
        let actions = actions_for(LinkStatus::Approved, Some("ACTIVE"), &link_data, &[]);
        assert_eq!(actions.len(), 3);
        assert!(actions.iter().all(|a| !a.blocking));
        // Without a stored link, the hosted step still shows (a session gives the URL).
        assert_eq!(actions[2].url, None);
    }

    #[test]
    fn rejected_or_suspended_users_get_no_level_actions_and_unknown_levels_are_flagged() {
        let link_data = data(json!({"access_level": "L0"}));
        for status in ["REJECTED", "SUSPENDED"] {
            assert_eq!(
                actions_for(LinkStatus::Rejected, Some(status), &link_data, &[]).len(),
                1
            );
        }
        for (raw, code) in [
            (json!("L9"), "access_level:L9"),
            (json!("gold"), "access_level:gold"),
            (json!(2), "access_level:2"),
        ] {
            let link_data = data(json!({ "access_level": raw }));
            assert_eq!(
                summary(&actions_for(LinkStatus::Approved, Some("ACTIVE"), &link_data, &[])),
                vec![(code.to_owned(), NextActionKind::ContactSupport, true)]
            );
        }
    }

    #[test]
    fn a_rejection_carries_the_note_for_the_developer_only() {
        let facts = |status, link_data| LinkFacts {
            status,
            provider_status: Some("REJECTED"),
            requirements: &[],
            link_data,
            submitted_documents: &[],
            now: OffsetDateTime::now_utc(),
        };
        let with_note = data(json!({"note": "KYC verification failed."}));
        assert_eq!(
            rejection(&facts(LinkStatus::Rejected, &with_note)),
            Some(Rejection {
                code: "rejected".into(),
                user_message: None,
                developer_message: Some("KYC verification failed.".into()),
                retryable: false,
            })
        );
        let without = Map::new();
        assert_eq!(
            rejection(&facts(LinkStatus::Rejected, &without))
                .unwrap()
                .developer_message,
            None
        );
        for status in [LinkStatus::Approved, LinkStatus::UnderReview, LinkStatus::Suspended] {
            assert_eq!(rejection(&facts(status, &with_note)), None);
        }
    }
}
