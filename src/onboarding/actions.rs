//! What each provider asks of a user next, and why it rejected one, read from the links as
//! stored: each provider maps its own values (`providers::<name>::verification`); this module
//! builds the facts it reads and collects the provider values no mapping knows, so they are
//! flagged for review instead of dropped.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::provider::ProviderId;
use crate::domain::status::LinkStatus;
use crate::domain::verification::{DocumentType, NextAction, Rejection};
use crate::providers::provider::LinkFacts;
use crate::store::links::LinkRow;

/// A link's state as the provider mappings read it: the one place [`LinkFacts`] are built.
pub fn facts<'a>(
    status: LinkStatus,
    provider_status: Option<&'a str>,
    requirements: &'a Value,
    link_data: &'a Map<String, Value>,
    submitted_documents: &'a [DocumentType],
    now: OffsetDateTime,
) -> LinkFacts<'a> {
    let requirements = match requirements {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    LinkFacts {
        status,
        provider_status,
        requirements,
        link_data,
        submitted_documents,
        now,
    }
}

/// The facts of a stored link, given the document types already submitted to its provider.
pub fn link_facts<'a>(
    link: &'a LinkRow,
    submitted_documents: &'a [DocumentType],
    now: OffsetDateTime,
) -> LinkFacts<'a> {
    facts(
        link.status,
        link.provider_status.as_deref(),
        &link.requirements.0,
        &link.provider_data.0,
        submitted_documents,
        now,
    )
}

/// What the link's provider asks of the user next.
pub fn next_actions(link: &LinkRow, submitted_documents: &[DocumentType]) -> Vec<NextAction> {
    let facts = link_facts(link, submitted_documents, OffsetDateTime::now_utc());
    crate::providers::module(link.provider).next_actions(&facts)
}

/// Why the link's provider rejected the user, when it did. Documents do not enter into it.
pub fn rejection(link: &LinkRow) -> Option<Rejection> {
    let facts = link_facts(link, &[], OffsetDateTime::now_utc());
    crate::providers::module(link.provider).rejection(&facts)
}

/// The codes of the provider values in `facts` that `provider`'s mapping does not know (each
/// once, in order). Which values a provider sends does not depend on the documents, so `facts`
/// may carry none.
pub fn unrecognised_codes(provider: ProviderId, facts: &LinkFacts<'_>) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for action in crate::providers::module(provider).next_actions(facts) {
        if action.unrecognised && !codes.contains(&action.code) {
            codes.push(action.code);
        }
    }
    codes
}
