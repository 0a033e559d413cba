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
