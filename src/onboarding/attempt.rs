//! What became of one attempt at a job: the outcome every job handler answers with, and the
//! job runner (`onboarding::jobs`) settles the job by.

use crate::providers::error::ProviderError;
use crate::store::links::LinkRow;

/// What became of one attempt at a provider, for the job that made it.
#[derive(Debug)]
pub enum Attempt {
    /// Finished: recorded on the link (including a refusal of the data, which is final).
    Done,
    /// Worth retrying later (outage, rate limit, credentials being fixed).
    Retry(ProviderError),
    /// A create may have happened without its answer being recorded and the provider offers
    /// no lookup: the link is flagged for a person to check instead of risking a second account.
    NeedsReview(String),
    /// Done, and the job already marked succeeded in the same transaction as its effect; with
    /// the link as written when that was the one-statement record of a create's first answer.
    Settled(Option<Box<LinkRow>>),
}
