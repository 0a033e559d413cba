//! Canonical link status, its ordering, and the per-user summary.

string_enum! {
    /// Canonical status of one provider link (and, summarised, of a user).
    #[schema(examples("under_review"))]
    pub enum LinkStatus {
        /// Not yet (successfully) submitted to the provider; retried in the background.
        PendingSubmission => "pending_submission",
        /// The provider refused the data; the link's `last_error` says why.
        SubmissionFailed => "submission_failed",
        /// The provider needs something from the user (verification, more details).
        ActionRequired => "action_required",
        /// The provider is reviewing the user.
        UnderReview => "under_review",
        /// The user is approved at the provider.
        Approved => "approved",
        /// The provider rejected the user (final).
        Rejected => "rejected",
        /// The provider suspended the user (may be lifted).
        Suspended => "suspended",
        /// The account is closed at the provider (final).
        Closed => "closed",
    }
}

impl LinkStatus {
    /// A final decision: no later provider signal moves the link away from it.
    pub const fn is_final(&self) -> bool {
        matches!(self, LinkStatus::Rejected | LinkStatus::Closed)
    }

    /// Whether this is one of the "adverse" statuses that always show in a summary
    /// (`rejected`, `suspended`, `closed`).
    pub const fn is_adverse(&self) -> bool {
        matches!(
            self,
            LinkStatus::Rejected | LinkStatus::Suspended | LinkStatus::Closed
        )
    }

    /// Rank used by [`summarize`]: for the progress statuses, how far onboarding has come
    /// (`pending_submission` 0 … `approved` 4); the adverse statuses rank above them by
    /// severity for the summary's precedence (`suspended` 5 < `rejected` 6 < `closed` 7).
    pub const fn rank(&self) -> u8 {
        match self {
            LinkStatus::PendingSubmission => 0,
            LinkStatus::SubmissionFailed => 1,
            LinkStatus::ActionRequired => 2,
            LinkStatus::UnderReview => 3,
            LinkStatus::Approved => 4,
            LinkStatus::Suspended => 5,
            LinkStatus::Rejected => 6,
            LinkStatus::Closed => 7,
        }
    }
}

/// The user's summary status from its links (README "Status"):
/// - no links: `pending_submission`;
/// - one link: that link's status;
/// - several: if any link is adverse, the most severe adverse one, with the precedence
///   `closed` > `rejected` > `suspended`; otherwise the least advanced one, ordered
///   `pending_submission` < `submission_failed` < `action_required` < `under_review` < `approved`.
pub fn summarize(links: &[LinkStatus]) -> LinkStatus {
    if let Some(worst) = links
        .iter()
        .copied()
        .filter(LinkStatus::is_adverse)
        .max_by_key(LinkStatus::rank)
    {
        return worst;
    }
    links
        .iter()
        .copied()
        .min_by_key(LinkStatus::rank)
        .unwrap_or(LinkStatus::PendingSubmission)
}

#[cfg(test)]
mod tests {
    use super::LinkStatus::*;
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        assert_eq!(LinkStatus::ALL.len(), 8);
        for s in LinkStatus::ALL {
            assert_eq!(s.as_str().parse::<LinkStatus>().unwrap(), *s);
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(v, serde_json::json!(s.as_str()));
            assert_eq!(serde_json::from_value::<LinkStatus>(v).unwrap(), *s);
        }
        assert_eq!(PendingSubmission.as_str(), "pending_submission");
        assert_eq!(ActionRequired.to_string(), "action_required");
        assert!("APPROVED".parse::<LinkStatus>().is_err());
    }

    #[test]
    fn finality() {
        let finals: Vec<_> = LinkStatus::ALL.iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, vec![&Rejected, &Closed]);
        assert!(!Suspended.is_final());
    }

    #[test]
    fn no_links_is_pending_submission() {
        assert_eq!(summarize(&[]), PendingSubmission);
    }

    #[test]
    fn single_link_is_its_status() {
        for s in LinkStatus::ALL {
            assert_eq!(summarize(&[*s]), *s);
        }
    }

    #[test]
    fn several_links_show_the_least_advanced() {
        assert_eq!(summarize(&[Approved, UnderReview]), UnderReview);
        assert_eq!(summarize(&[Approved, ActionRequired]), ActionRequired);
        assert_eq!(
            summarize(&[UnderReview, SubmissionFailed, Approved]),
            SubmissionFailed
        );
        assert_eq!(
            summarize(&[SubmissionFailed, PendingSubmission]),
            PendingSubmission
        );
        assert_eq!(summarize(&[Approved, Approved]), Approved);
    }

    #[test]
    fn adverse_links_always_show_with_precedence() {
        assert_eq!(summarize(&[Approved, Suspended]), Suspended);
        assert_eq!(summarize(&[PendingSubmission, Rejected]), Rejected);
        assert_eq!(summarize(&[Suspended, Rejected, Approved]), Rejected);
        assert_eq!(summarize(&[Rejected, Closed]), Closed);
        assert_eq!(summarize(&[Closed, Suspended, UnderReview]), Closed);
    }

    #[test]
    fn summary_is_order_independent() {
        let a = [Approved, ActionRequired, UnderReview];
        let mut b = a;
        b.reverse();
        assert_eq!(summarize(&a), summarize(&b));
    }
}
