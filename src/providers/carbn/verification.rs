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
