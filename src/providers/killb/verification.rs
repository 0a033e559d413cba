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

/// Documents are not forwarded yet.
pub fn document_policy(_document: &DocumentFacts) -> DocumentPolicy {
    DocumentPolicy::NotSupported("document uploads are not forwarded to this provider".into())
}
