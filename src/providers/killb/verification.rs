//! Verification at this provider: which documents it takes, what its outstanding requirements
//! ask of the user, and why it rejected one.

use crate::domain::status::LinkStatus;
use crate::domain::verification::{NextAction, Rejection};
use crate::providers::provider::{DocumentFacts, DocumentPolicy, LinkFacts};

/// Every stored requirement, not yet mapped: kept as `contact_support`, flagged.
pub fn next_actions(link: &LinkFacts<'_>) -> Vec<NextAction> {
    link.requirements
        .iter()
        .map(|raw| NextAction::unrecognised(raw.to_string()))
        .collect()
}

/// A rejected link's reason, as far as the provider gives one.
pub fn rejection(link: &LinkFacts<'_>) -> Option<Rejection> {
    (link.status == LinkStatus::Rejected).then(|| Rejection {
        code: "rejected".into(),
        user_message: None,
        developer_message: None,
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
